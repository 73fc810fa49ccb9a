//! Power of the wave test: how large a shift a canary stage catches.
//!
//! A patch that moves a metric by `δ` on every VM it reaches moves the wave
//! test's sum (`bellwether_operators::wave::WavePool::test`) by `δ/σ` per VM window,
//! where `σ` is a window's spread of a VM's change against its peers. With
//! `n` VMs judged over `K` windows each, windows correlated by ρ and VMs
//! compared with controls of `c` VMs, the test's expected z is
//!
//! `δ/σ · √(n·K / ((1+ρ)/(1−ρ) · (1 + (n−1)·s)))`, `s = m/(1+m)`, `m = π/(2c)`
//!
//! (the test's own spread), and it stops the rollout past the threshold
//! `T` with probability `Φ(z − T)`. The constants of the test's chance
//! model are here, where the test (operators) and the planner (control)
//! both read them.

use crate::MetricNoise;
use std::f64::consts::PI;

/// Windows a VM needs before it counts: just after its settle time, a
/// freshly patched wave can move together for a window or two (measured on
/// the simulated fleet during a surge), which is no patch's doing.
pub const MIN_WINDOWS: u32 = 3;

/// The lag-1 correlation assumed before a pool has [`MEASURED_FROM`] points.
pub const ASSUMED_CORRELATION: f64 = 0.5;

/// Points (VM windows) a pool needs before its correlation is measured.
pub const MEASURED_FROM: f64 = 20.0;

/// Share of a VM's deviation against peers that its control's median error
/// makes (common to every VM compared with that control): the median of
/// `n` values varies with σ²·π/(2n), and the deviation was scaled by
/// √(1 + π/(2n)).
pub fn common_share(control_vms: u32) -> f64 {
    let m = PI / (2.0 * control_vms.max(1) as f64);
    m / (1.0 + m)
}

/// Upper tail of the standard normal distribution.
pub fn normal_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// What the wave test faces on one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaveNoise {
    /// A window's spread of a VM's change against its peers as the test
    /// counts it, in the metric's unit (the judge's sigmas are never taken
    /// as varying less than 1).
    pub spread: f64,
    /// Correlation of a VM's consecutive windows.
    pub correlation: f64,
    /// VMs in the control a VM is compared with.
    pub control_vms: usize,
}

impl From<&MetricNoise> for WaveNoise {
    fn from(m: &MetricNoise) -> WaveNoise {
        // The test's window variance is at least 1 sigma²: where the
        // change varies less than the sigmas it is divided by, the test
        // still counts 1.
        let floor = if m.spread_sigmas > 0.0 && m.spread_sigmas < 1.0 {
            1.0 / m.spread_sigmas
        } else {
            1.0
        };
        WaveNoise {
            spread: m.spread * floor,
            correlation: m.correlation,
            control_vms: m.control_vms,
        }
    }
}

/// A canary stage as the wave test sees it: VMs, each judged over windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Patched VMs judged together.
    pub vms: usize,
    /// Windows each is judged in.
    pub windows: u32,
}

impl Stage {
    /// How much the test's sum varies by chance, per VM window, over what
    /// one window's deviation does: the square root of this times `σ/δ`
    /// is the inverse of the expected z's growth.
    fn variance_factor(&self, noise: &WaveNoise) -> f64 {
        let points = self.vms as f64 * self.windows as f64;
        let rho = if points < MEASURED_FROM {
            ASSUMED_CORRELATION
        } else {
            noise.correlation.clamp(0.0, 0.95)
        };
        let inflation = (1.0 + rho) / (1.0 - rho);
        let shared = common_share(noise.control_vms.clamp(1, u32::MAX as usize) as u32);
        inflation * (1.0 + (self.vms as f64 - 1.0).max(0.0) * shared) / points
    }

    /// Whether the test runs at all (enough VMs windows).
    fn tested(&self, min_vms: usize) -> bool {
        self.vms >= min_vms.max(1) && self.windows >= MIN_WINDOWS
    }
}

/// The wave test's expected z for a shift of `shift` (in the metric's
/// unit) on every VM of `stage` (0 where the test does not run).
///
/// ```
/// use bellwether_schemas::power::{expected_z, Stage, WaveNoise};
///
/// // 20 VMs, 10 windows, uncorrelated, a large control: a shift of half
/// // a window's spread is √200 / 2 ≈ 7σ for the test.
/// let noise = WaveNoise { spread: 2.0, correlation: 0.0, control_vms: 1_000_000 };
/// let z = expected_z(1.0, &noise, Stage { vms: 20, windows: 10 }, 3);
/// assert!((z - 200f64.sqrt() / 2.0).abs() < 0.01, "{z}");
/// ```
pub fn expected_z(shift: f64, noise: &WaveNoise, stage: Stage, min_vms: usize) -> f64 {
    if !stage.tested(min_vms) || noise.spread <= 0.0 {
        return 0.0;
    }
    shift.abs() / noise.spread / stage.variance_factor(noise).sqrt()
}

/// Probability that the test passes `threshold` (in sigmas) by the end of
/// `stage` for a shift of `shift` on every VM.
pub fn power(shift: f64, noise: &WaveNoise, stage: Stage, min_vms: usize, threshold: f64) -> f64 {
    if !stage.tested(min_vms) {
        return 0.0;
    }
    normal_tail(threshold - expected_z(shift, noise, stage, min_vms))
}

/// The smallest shift (in the metric's unit) `stage` catches with
/// probability `power` (None where the test does not run).
pub fn smallest_shift(
    noise: &WaveNoise,
    stage: Stage,
    min_vms: usize,
    threshold: f64,
    power: f64,
) -> Option<f64> {
    stage.tested(min_vms).then(|| {
        (threshold + normal_quantile(power)) * noise.spread * stage.variance_factor(noise).sqrt()
    })
}

/// The standard normal quantile of `p` (bisection on the tail: plenty
/// for planning).
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let (mut lo, mut hi) = (-10.0, 10.0);
    for _ in 0..80 {
        let mid = (lo + hi) / 2.0;
        if 1.0 - normal_tail(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOISE: WaveNoise = WaveNoise {
        spread: 4.0,
        correlation: 0.6,
        control_vms: 100,
    };

    #[test]
    fn quantiles_of_the_normal() {
        assert!((normal_quantile(0.95) - 1.644_854).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.025) + 1.959_964).abs() < 1e-5);
    }

    #[test]
    fn the_expected_z_by_hand() {
        // 12 VMs, 8 windows (96 points: ρ measured, 0.6), control of 100:
        // inflation 1.6/0.4 = 4; m = π/200 = 0.015708, s = 0.015465;
        // 1 + 11·s = 1.170115; factor 4 · 1.170115 / 96 = 0.048755;
        // a shift of 2 is 2/4 / √0.048755 = 2.264.
        let z = expected_z(
            2.0,
            &NOISE,
            Stage {
                vms: 12,
                windows: 8,
            },
            3,
        );
        assert!((z - 2.264).abs() < 0.002, "{z}");
        // Under 20 points the test assumes ρ = 0.5 (inflation 3):
        // 3 VMs × 5 windows, 1 + 2·s = 1.03093, factor 3·1.03093/15 = 0.206186,
        // z = 0.5 / 0.454077 = 1.1011.
        let z = expected_z(2.0, &NOISE, Stage { vms: 3, windows: 5 }, 3);
        assert!((z - 1.1011).abs() < 0.001, "{z}");
        // Too few VMs or windows: no test.
        assert_eq!(
            expected_z(
                2.0,
                &NOISE,
                Stage {
                    vms: 2,
                    windows: 50
                },
                3
            ),
            0.0
        );
        assert_eq!(
            expected_z(
                2.0,
                &NOISE,
                Stage {
                    vms: 30,
                    windows: 2
                },
                3
            ),
            0.0
        );
    }

    #[test]
    fn the_smallest_shift_is_caught_with_the_power_asked() {
        let stage = Stage {
            vms: 12,
            windows: 8,
        };
        let shift = smallest_shift(&NOISE, stage, 3, 5.0, 0.95).unwrap();
        // (5 + 1.6449) · 4 · √0.048755 = 5.868
        assert!((shift - 5.868).abs() < 0.005, "{shift}");
        let p = power(shift, &NOISE, stage, 3, 5.0);
        assert!((p - 0.95).abs() < 1e-6, "{p}");
        assert!(power(shift / 2.0, &NOISE, stage, 3, 5.0) < 0.1);
    }

    #[test]
    fn a_change_that_varies_less_than_its_sigmas_counts_as_one_sigma() {
        let m = MetricNoise {
            metric: "cpu".into(),
            vms: 200,
            spread: 1.5,
            spread_sigmas: 0.5,
            level: 40.0,
            correlation: 0.3,
            control_vms: 250,
        };
        assert_eq!(WaveNoise::from(&m).spread, 3.0);
        let wide = MetricNoise {
            spread_sigmas: 2.0,
            ..m
        };
        assert_eq!(WaveNoise::from(&wide).spread, 1.5);
    }
}
