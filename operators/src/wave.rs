//! Waves judged whole: a rollout's patched VMs, together, against their peers.
//!
//! A patch that adds 5% to every VM it reaches is lost in each VM's noise
//! and plain in twenty of them. A [`WavePool`] keeps, per VM of a group,
//! its deviations against peers ([`crate::peers`]) over the windows it was
//! judged in, each clipped at ±[`CLIP_SIGMA`], and each VM's mean at
//! ±[`CLIP_SIGMA`] of its own spread, so that one VM's own incident (which
//! its own verdict handles) cannot stop a group alone.
//! Its [`test`](WavePool::test) sums the VMs' mean deviations, each
//! weighed by its windows, and divides by the spread that sum has by
//! chance: a window's deviation has unit variance (more where the VMs'
//! windows vary more), a VM's mean over `K` windows correlated by ρ varies
//! with (1+ρ)/((1-ρ)K), ρ measured across all the group's VMs at once, and
//! VMs compared with the same control share that median's error, which
//! does not shrink as the group grows.

use crate::peers::PeerControl;
use arrow::array::{Array, Float64Array};
use bellwether_schemas::power::common_share;
use std::collections::HashMap;
use std::sync::Arc;

/// The most one VM's window adds to its group, in sigmas, and its mean,
/// in sigmas of that mean.
pub const CLIP_SIGMA: f64 = 3.0;

/// What a window adds to a pool.
#[derive(Debug, Clone, Copy)]
pub struct WaveInputs<'a> {
    /// The window's peer control.
    pub peers: &'a PeerControl,
    /// Per VM: the cohort its control was drawn from (None: the whole fleet).
    pub cohorts: &'a [Option<Arc<str>>],
    /// Per series: the baseline level (for a change relative to it).
    pub baseline_mean: &'a Float64Array,
    /// Metrics per VM.
    pub metrics: usize,
}

/// One VM's windows in a pool.
#[derive(Debug, Clone)]
struct VmWindows {
    /// Sum of its clipped deviations against peers, in sigmas.
    deviation: f64,
    /// Their sum of squares, and of products of consecutive ones.
    squares: f64,
    lagged: f64,
    /// The first and the latest.
    first: f64,
    last: f64,
    /// Sum of its changes against peers, in the metric's unit.
    change: f64,
    /// Sum of its baseline levels.
    baseline: f64,
    windows: u32,
    /// Its (last) control: cohort and control VMs.
    control: (Option<Arc<str>>, u32),
}

/// One group's evidence on one metric: per VM, its windows so far.
#[derive(Debug, Clone, Default)]
pub struct WavePool {
    vms: HashMap<Arc<str>, VmWindows>,
}

/// A pool's test.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveTest {
    /// VMs tested.
    pub vms: usize,
    /// The most windows any of them was judged in.
    pub windows: u32,
    /// The VMs' mean deviations against peers, weighed by their windows,
    /// summed, over the spread that sum has by chance (signed): about 1
    /// apart for a good patch.
    pub z: f64,
    /// The windows' lag-1 correlation allowed for.
    pub rho: f64,
    /// The mean change against peers, in the metric's unit.
    pub mean_change: f64,
    /// The mean baseline level.
    pub mean_baseline: f64,
}

impl WaveTest {
    /// The mean change relative to the baseline level (0.05 = 5%), where the level is positive.
    pub fn relative_change(&self) -> Option<f64> {
        (self.mean_baseline > 0.0).then(|| self.mean_change / self.mean_baseline)
    }
}

impl WavePool {
    /// Adds VM slot `vm` (named `vm_id`) on `metric` in this window, where
    /// it has a deviation against peers.
    pub fn add(&mut self, inputs: &WaveInputs<'_>, vm: usize, vm_id: &Arc<str>, metric: usize) {
        let peers = inputs.peers;
        let i = vm * inputs.metrics.max(1) + metric;
        if i >= peers.vs_peers.len() || peers.vs_peers.is_null(i) {
            return;
        }
        let control = (
            inputs.cohorts.get(vm).cloned().flatten(),
            peers.control_vms.get(vm).copied().unwrap_or(1),
        );
        let baseline = if inputs.baseline_mean.is_valid(i) {
            inputs.baseline_mean.value(i)
        } else {
            0.0
        };
        let x = peers.vs_peers.value(i).clamp(-CLIP_SIGMA, CLIP_SIGMA);
        let entry = self.vms.entry(vm_id.clone()).or_insert_with(|| VmWindows {
            deviation: 0.0,
            squares: 0.0,
            lagged: 0.0,
            first: x,
            last: 0.0,
            change: 0.0,
            baseline: 0.0,
            windows: 0,
            control: (None, 1),
        });
        entry.deviation += x;
        entry.squares += x * x;
        entry.lagged += x * entry.last;
        entry.last = x;
        entry.change += peers.vs_peers_residual.value(i);
        entry.baseline += baseline;
        entry.windows += 1;
        entry.control = control;
    }

    /// The test of the VMs' mean deviations (None under `min_vms` VMs).
    ///
    /// ```
    /// use bellwether_operators::peers::{peer_control, PeerInputs};
    /// use bellwether_operators::wave::{WaveInputs, WavePool};
    /// use arrow::array::Float64Array;
    /// use std::sync::Arc;
    ///
    /// // 40 unpatched VMs around 100 (spread 5), 10 patched ones 6% up,
    /// // each 1.2σ off, well inside its own noise: the ten together are not.
    /// let mut pool = WavePool::default();
    /// let ids: Vec<Arc<str>> = (0..50).map(|vm| Arc::from(format!("vm-{vm}"))).collect();
    /// for window in 0..6 {
    ///     let observed: Float64Array = (0..50)
    ///         .map(|vm| if vm < 10 { 106.0 } else { 100.0 } + ((vm * 7 + window * 3) % 9) as f64 - 4.0)
    ///         .collect::<Vec<f64>>()
    ///         .into();
    ///     let forecast = Float64Array::from(vec![100.0; 50]);
    ///     let spread = Float64Array::from(vec![5.0; 50]);
    ///     let inputs = PeerInputs { observed: &observed, reference: &forecast, spread: &spread, metrics: 1 };
    ///     let judged: Vec<bool> = (0..50).map(|vm| vm < 10).collect();
    ///     let control: Vec<bool> = judged.iter().map(|j| !j).collect();
    ///     let peers = peer_control(&inputs, &control, &judged, &[], 0, 5);
    ///     let cohorts = vec![None; 50];
    ///     let waves = WaveInputs { peers: &peers, cohorts: &cohorts, baseline_mean: &forecast, metrics: 1 };
    ///     for vm in 0..10 {
    ///         pool.add(&waves, vm, &ids[vm], 0);
    ///     }
    /// }
    /// let test = pool.test(3).unwrap();
    /// assert_eq!((test.vms, test.windows), (10, 6));
    /// assert!(test.z > 4.0, "{test:?}");
    /// assert!((test.relative_change().unwrap() - 0.06).abs() < 0.015, "{test:?}");
    /// ```
    pub fn test(&self, min_vms: usize) -> Option<WaveTest> {
        let counted: Vec<&VmWindows> = self
            .vms
            .values()
            .filter(|v| v.windows >= MIN_WINDOWS)
            .collect();
        let n = counted.len();
        if n < min_vms.max(1) {
            return None;
        }
        let (rho, variance) = correlation_and_variance(&counted);
        let inflation = (1.0 + rho) / (1.0 - rho);
        // Each VM's mean weighs by its precision (its windows); its
        // variance is the window's variance, inflated by the correlation,
        // over its windows. Per control, the weighted spreads of its VMs
        // add up, and the share they have in common counts for every pair.
        let var_of = |v: &VmWindows| variance * inflation / v.windows as f64;
        let mut own = 0.0;
        let mut pairs_less = 0.0;
        let mut by_control: HashMap<&(Option<Arc<str>>, u32), f64> = HashMap::new();
        for v in &counted {
            let w = v.windows as f64;
            own += w * w * var_of(v);
            pairs_less += w * w * var_of(v) * common_share(v.control.1);
            *by_control.entry(&v.control).or_default() += w * var_of(v).sqrt();
        }
        let shared: f64 = by_control
            .iter()
            .map(|((_, control_vms), sd)| sd * sd * common_share(*control_vms))
            .sum::<f64>()
            - pairs_less;
        // A VM's mean counts up to CLIP_SIGMA of its own spread: one VM's
        // steady offset is one VM's evidence, however long it lasts.
        let sum: f64 = counted
            .iter()
            .map(|v| {
                let most = CLIP_SIGMA * var_of(v).sqrt();
                v.windows as f64 * (v.deviation / v.windows as f64).clamp(-most, most)
            })
            .sum();
        let spread = (own + shared).sqrt();
        let nf = n as f64;
        let per_vm = |f: fn(&VmWindows) -> f64| {
            counted.iter().map(|v| f(v) / v.windows as f64).sum::<f64>() / nf
        };
        Some(WaveTest {
            vms: n,
            windows: counted.iter().map(|v| v.windows).max().unwrap_or(0),
            z: if spread > 0.0 { sum / spread } else { 0.0 },
            rho,
            mean_change: per_vm(|v| v.change),
            mean_baseline: per_vm(|v| v.baseline),
        })
    }
}

/// The windows' lag-1 correlation and a window's variance, measured
/// across `vms` (each about its own mean): ρ less the bias of short
/// series ((1+4ρ)/K, Kendall), between 0 and 0.95, and taken as
/// [`ASSUMED_CORRELATION`] under [`MEASURED_FROM`] points; the variance
/// at least 1 (what the deviations are scaled to).
fn correlation_and_variance(vms: &[&VmWindows]) -> (f64, f64) {
    let (mut lag, mut var, mut points, mut dof) = (0.0, 0.0, 0.0, 0.0);
    for v in vms {
        let k = v.windows as f64;
        let m = v.deviation / k;
        var += v.squares - k * m * m;
        if v.windows >= 2 {
            // Σ (x_t - m)(x_{t-1} - m) over consecutive pairs.
            lag += v.lagged - m * (2.0 * v.deviation - v.first - v.last) + (k - 1.0) * m * m;
        }
        points += k;
        dof += k - 1.0;
    }
    let windows = points / vms.len().max(1) as f64;
    let rho = if points < MEASURED_FROM || var <= 0.0 {
        ASSUMED_CORRELATION
    } else {
        let r = lag / var;
        (r + (1.0 + 4.0 * r) / windows).clamp(0.0, 0.95)
    };
    // Centring each VM on its own mean takes (1+ρ)/(1-ρ) windows' worth
    // of variance out of its K.
    let kept = (1.0 - (1.0 + rho) / ((1.0 - rho) * windows)).max(0.3);
    let variance = if dof > 0.0 { var / dof / kept } else { 1.0 };
    (rho, variance.max(1.0))
}

pub use bellwether_schemas::power::{ASSUMED_CORRELATION, MEASURED_FROM, MIN_WINDOWS};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::peers::{PeerInputs, peer_control};

    /// Seeded standard normals (sums of 12 uniforms less 6).
    pub(crate) struct Noise(pub(crate) u64);

    impl Noise {
        pub(crate) fn normal(&mut self) -> f64 {
            (0..12)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    (self.0 >> 11) as f64 / (1u64 << 53) as f64
                })
                .sum::<f64>()
                - 6.0
        }
    }

    /// VMs of one metric around 100 (spread 5) whose noise (sd 5) follows
    /// an AR(1) of correlation `phi` from window to window.
    pub(crate) struct Fleet {
        noise: Noise,
        state: Vec<f64>,
        phi: f64,
    }

    impl Fleet {
        pub(crate) fn new(vms: usize, phi: f64, mut noise: Noise) -> Fleet {
            let state = (0..vms).map(|_| noise.normal()).collect();
            Fleet { noise, state, phi }
        }

        /// The next window's values: every VM moved by `world`, and by
        /// `extra(vm)` more.
        pub(crate) fn window(&mut self, world: f64, extra: impl Fn(usize) -> f64) -> Float64Array {
            let phi = self.phi;
            for s in self.state.iter_mut() {
                *s = phi * *s + (1.0 - phi * phi).sqrt() * self.noise.normal();
            }
            (0..self.state.len())
                .map(|vm| 100.0 + world + 5.0 * self.state[vm] + extra(vm))
                .collect::<Vec<f64>>()
                .into()
        }
    }

    /// The window `observed` of a [`Fleet`] against its forecast (100,
    /// spread 5): the `compared` VMs set against the `control`.
    pub(crate) fn compare(
        observed: &Float64Array,
        control: &[bool],
        compared: &[bool],
    ) -> PeerControl {
        let n = observed.len();
        let forecast = Float64Array::from(vec![100.0; n]);
        let spread = Float64Array::from(vec![5.0; n]);
        let inputs = PeerInputs {
            observed,
            reference: &forecast,
            spread: &spread,
            metrics: 1,
        };
        peer_control(&inputs, control, compared, &[], 0, 5)
    }

    /// `windows` windows of 300 VMs of a [`Fleet`]; the first `patched`
    /// VMs get `shift(vm)` more; every VM moves by `world` in every window.
    fn pool(
        patched: usize,
        shift: impl Fn(usize) -> f64,
        world: f64,
        phi: f64,
        windows: usize,
        seed: u64,
    ) -> Option<WaveTest> {
        let n = 300;
        let mut fleet = Fleet::new(n, phi, Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1));
        let ids: Vec<Arc<str>> = (0..n).map(|vm| Arc::from(format!("vm-{vm}"))).collect();
        let mut pool = WavePool::default();
        let level = Float64Array::from(vec![100.0; n]);
        let judged: Vec<bool> = (0..n).map(|vm| vm < patched).collect();
        let control: Vec<bool> = judged.iter().map(|j| !j).collect();
        let cohorts = vec![None; n];
        for _ in 0..windows {
            let observed = fleet.window(world, |vm| if vm < patched { shift(vm) } else { 0.0 });
            let peers = compare(&observed, &control, &judged);
            let waves = WaveInputs {
                peers: &peers,
                cohorts: &cohorts,
                baseline_mean: &level,
                metrics: 1,
            };
            for (vm, id) in ids.iter().enumerate().take(patched) {
                pool.add(&waves, vm, id, 0);
            }
        }
        pool.test(3)
    }

    #[test]
    fn chance_stays_near_one_sigma_however_correlated_the_windows() {
        // 300 good groups of 15 VMs over 12 windows, their noise
        // uncorrelated in time and correlated by 0.9 window to window.
        for phi in [0.0, 0.9] {
            let z: Vec<f64> = (0..300)
                .map(|s| pool(15, |_| 0.0, 0.0, phi, 12, s).unwrap().z)
                .collect();
            let sd = (z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64).sqrt();
            assert!((0.6..1.2).contains(&sd), "ρ {phi}: sd {sd}");
            assert!(z.iter().all(|v| v.abs() < 4.0), "ρ {phi}: {z:?}");
        }
    }

    #[test]
    fn a_small_shift_on_every_patched_vm_stands_out_together() {
        // +0.7σ on each of 15 VMs for 12 windows (about 8σ together).
        for seed in 0..20 {
            let test = pool(15, |_| 3.5, 0.0, 0.0, 12, seed).unwrap();
            assert!(test.z > 5.0, "{test:?}");
            assert!(
                (test.relative_change().unwrap() - 0.035).abs() < 0.012,
                "{test:?}"
            );
        }
    }

    #[test]
    fn a_fleet_wide_move_is_not_the_group() {
        let test = pool(15, |_| 0.0, 40.0, 0.5, 12, 7).unwrap();
        assert!(test.z.abs() < 3.0, "{test:?}");
        assert!(test.mean_change.abs() < 3.0, "{test:?}");
    }

    #[test]
    fn one_vm_in_trouble_does_not_stop_its_group() {
        // Fourteen quiet VMs and one 40σ off in every window.
        for seed in 0..20 {
            let test = pool(
                15,
                |vm| if vm == 0 { 200.0 } else { 0.0 },
                0.0,
                0.0,
                12,
                seed,
            );
            let test = test.unwrap();
            assert!(test.z < 3.0, "{test:?}");
        }
    }

    #[test]
    fn too_few_vms_are_not_tested_and_correlation_is_measured() {
        assert!(pool(2, |_| 50.0, 0.0, 0.0, 12, 1).is_none());
        let independent = pool(15, |_| 0.0, 0.0, 0.0, 12, 1).unwrap();
        let slow = pool(15, |_| 0.0, 0.0, 0.8, 12, 1).unwrap();
        assert!(independent.rho < 0.3, "{independent:?}");
        assert!((0.55..0.95).contains(&slow.rho), "{slow:?}");
    }
}
