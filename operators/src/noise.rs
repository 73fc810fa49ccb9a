//! The fleet's noise, measured each window on the unpatched VMs.
//!
//! What a patch must stand out from is what a VM's change against its
//! peers does when nothing was patched: its spread in one window, in the
//! metric's unit and in the judge's sigmas, and how much consecutive
//! windows share. [`NoiseMeter`] measures both on the VMs that served as
//! controls, robustly within a window (median absolute deviation), and
//! averages the windows (the last [`MEMORY_WINDOWS`] or so). The rollout
//! planner sizes canary stages from it ([`bellwether_schemas::power`]).

use crate::peers::median;
use crate::scorer::ScoredWindow;
use crate::wave::WaveInputs;
use arrow::array::Array;
use bellwether_schemas::{FleetNoise, MetricNoise};

/// About how many windows the averages remember.
pub const MEMORY_WINDOWS: u32 = 60;

/// Consistency factor: MAD × 1.4826 estimates a normal standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Fewest unpatched VMs a window's measure is taken from.
const MIN_VMS: usize = 5;

/// Running averages of one metric.
#[derive(Debug, Clone, Default)]
struct Running {
    spread: f64,
    spread_sigmas: f64,
    level: f64,
    control_vms: f64,
    /// Sums of consecutive deviations' products and squares.
    lagged: f64,
    squares: f64,
    vms: usize,
    windows: u32,
}

/// Measures the fleet's noise window by window.
///
/// ```
/// use arrow::array::Float64Array;
/// use bellwether_operators::noise::NoiseMeter;
/// use bellwether_operators::peers::{peer_control, PeerInputs};
/// use bellwether_operators::wave::WaveInputs;
///
/// // 40 unpatched VMs forecast at 100 (spread 5), each window off by -4..4.
/// let mut meter = NoiseMeter::default();
/// assert!(meter.noise().is_none(), "nothing measured yet");
/// let metrics = vec!["response_time_ms".to_string()];
/// let (forecast, spread) = (Float64Array::from(vec![100.0; 40]), Float64Array::from(vec![5.0; 40]));
/// for window in 0..6i64 {
///     let observed: Float64Array = (0..40)
///         .map(|vm| 100.0 + ((vm * 7 + window * 3) % 9) as f64 - 4.0)
///         .collect::<Vec<f64>>()
///         .into();
///     let inputs = PeerInputs { observed: &observed, reference: &forecast, spread: &spread, metrics: 1 };
///     // Unpatched VMs are set against their peers too, as the scorer does.
///     let (control, judged) = (vec![true; 40], vec![false; 40]);
///     let peers = peer_control(&inputs, &control, &control, &[], 0, 5);
///     let cohorts = vec![None; 40];
///     let waves = WaveInputs { peers: &peers, cohorts: &cohorts, baseline_mean: &forecast, metrics: 1 };
///     let end = (window + 1) * 300_000;
///     meter.add_inputs(&metrics, &waves, &judged, end - 300_000, end);
/// }
/// let noise = meter.noise().unwrap();
/// let latency = noise.metric("response_time_ms").unwrap();
/// assert_eq!((noise.window_minutes, latency.level, latency.vms), (5.0, 100.0, 40));
/// // Values spread evenly over -4..4: a robust spread of about 3.
/// assert!((latency.spread - 2.97).abs() < 0.1, "{latency:?}");
/// ```
#[derive(Debug, Clone, Default)]
pub struct NoiseMeter {
    metrics: Vec<String>,
    running: Vec<Running>,
    /// Per series: the previous window's deviation against peers (NaN: none).
    previous: Vec<f64>,
    /// Minutes between windows, and the latest window's end.
    window_minutes: f64,
    last_end_ms: Option<i64>,
    scratch: Vec<f64>,
}

impl NoiseMeter {
    /// Takes in one scored window.
    pub fn add(&mut self, window: &ScoredWindow) {
        let Some(inputs) = window.wave_inputs() else {
            return;
        };
        let judged: Vec<bool> = (0..window.vm_count())
            .map(|vm| window.judged.value(vm))
            .collect();
        let (start, end) = (window.range.start_ms, window.range.end_ms);
        self.add_inputs(&window.metrics, &inputs, &judged, start, end);
    }

    /// Takes in one window's peer comparison: `judged` per VM (patched VMs
    /// are left out), the window spanning `start_ms..end_ms`.
    pub fn add_inputs(
        &mut self,
        metrics: &[String],
        inputs: &WaveInputs<'_>,
        judged: &[bool],
        start_ms: i64,
        end_ms: i64,
    ) {
        let m = metrics.len();
        let series = judged.len() * m;
        if self.metrics.as_slice() != metrics {
            self.metrics = metrics.to_vec();
            self.running = vec![Running::default(); m];
        }
        self.previous.resize(series, f64::NAN);
        let end = end_ms;
        let slide = self.last_end_ms.map_or(0, |last| end - last);
        if slide > 0 {
            self.window_minutes = slide as f64 / 60_000.0;
        } else if self.window_minutes == 0.0 {
            self.window_minutes = (end - start_ms) as f64 / 60_000.0;
        }
        self.last_end_ms = Some(self.last_end_ms.map_or(end, |last| last.max(end)));
        let peers = inputs.peers;
        let unpatched = |i: usize| !judged[i / m] && peers.vs_peers.is_valid(i);
        for metric in 0..m {
            let slots = || (metric..series).step_by(m).filter(|&i| unpatched(i));
            let mut change: Vec<f64> = slots().map(|i| peers.vs_peers_residual.value(i)).collect();
            let vms = change.len();
            let (mut lagged, mut squares) = (0.0, 0.0);
            for i in slots() {
                let (x, before) = (peers.vs_peers.value(i), self.previous[i]);
                if before.is_finite() {
                    lagged += x * before;
                    squares += before * before;
                }
            }
            if vms < MIN_VMS {
                continue;
            }
            let spread = robust_spread(&mut change, &mut self.scratch);
            let mut sigmas: Vec<f64> = slots().map(|i| peers.vs_peers.value(i)).collect();
            let spread_sigmas = robust_spread(&mut sigmas, &mut self.scratch);
            let mut levels: Vec<f64> = slots()
                .filter(|&i| inputs.baseline_mean.is_valid(i))
                .map(|i| inputs.baseline_mean.value(i))
                .collect();
            let mut controls: Vec<f64> = slots().map(|i| peers.control_vms[i / m] as f64).collect();
            let r = &mut self.running[metric];
            r.windows += 1;
            r.vms = vms;
            let weight = 1.0 / r.windows.min(MEMORY_WINDOWS) as f64;
            let mix = |old: &mut f64, new: f64| {
                if new.is_finite() {
                    *old += weight * (new - *old);
                }
            };
            mix(&mut r.spread, spread);
            mix(&mut r.spread_sigmas, spread_sigmas);
            mix(&mut r.level, median(&mut levels));
            mix(&mut r.control_vms, median(&mut controls));
            r.lagged = r.lagged * (1.0 - weight) + lagged;
            r.squares = r.squares * (1.0 - weight) + squares;
        }
        for (i, before) in self.previous.iter_mut().enumerate() {
            *before = if unpatched(i) {
                peers.vs_peers.value(i)
            } else {
                f64::NAN
            };
        }
    }

    /// The noise measured so far (None before any window had peers).
    pub fn noise(&self) -> Option<FleetNoise> {
        let metrics: Vec<MetricNoise> = self
            .metrics
            .iter()
            .zip(&self.running)
            .filter(|(_, r)| r.windows > 0)
            .map(|(metric, r)| MetricNoise {
                metric: metric.clone(),
                vms: r.vms,
                spread: r.spread,
                spread_sigmas: r.spread_sigmas,
                level: r.level,
                correlation: if r.squares > 0.0 {
                    (r.lagged / r.squares).clamp(0.0, 0.95)
                } else {
                    0.0
                },
                control_vms: r.control_vms.round() as usize,
            })
            .collect();
        (!metrics.is_empty()).then(|| FleetNoise {
            window_minutes: self.window_minutes,
            windows: self.running.iter().map(|r| r.windows).max().unwrap_or(0),
            metrics,
        })
    }
}

/// 1.4826 × the median absolute deviation of `values` (reordered).
fn robust_spread(values: &mut [f64], scratch: &mut Vec<f64>) -> f64 {
    let (_, mad) = crate::peers::median_mad(values, scratch);
    MAD_TO_SIGMA * mad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wave::tests::{Fleet, Noise, compare};
    use arrow::array::Float64Array;

    /// 120 windows 5 minutes apart of 300 VMs of one metric around 100
    /// whose noise (sd 5) follows an AR(1) of correlation `phi`, the whole
    /// fleet moving together by up to ±20; the first 20 VMs patched with
    /// +50 (never measured).
    fn measured(phi: f64) -> FleetNoise {
        let n = 300;
        let mut fleet = Fleet::new(n, phi, Noise(0x5EED_F00D));
        let metrics = vec!["response_time_ms".to_string()];
        let judged: Vec<bool> = (0..n).map(|vm| vm < 20).collect();
        let control: Vec<bool> = judged.iter().map(|j| !j).collect();
        // As the scorer does: unpatched VMs are set against peers too.
        let compared = vec![true; n];
        let level = Float64Array::from(vec![100.0; n]);
        let cohorts = vec![None; n];
        let mut meter = NoiseMeter::default();
        for w in 0..120i64 {
            let world = 20.0 * (w as f64 / 7.0).sin();
            let observed = fleet.window(world, |vm| if judged[vm] { 50.0 } else { 0.0 });
            let peers = compare(&observed, &control, &compared);
            let waves = WaveInputs {
                peers: &peers,
                cohorts: &cohorts,
                baseline_mean: &level,
                metrics: 1,
            };
            let end = (w + 1) * 300_000;
            meter.add_inputs(&metrics, &waves, &judged, end - 600_000, end);
        }
        meter.noise().expect("measured")
    }

    #[test]
    fn measures_the_spread_level_and_correlation_the_fleet_was_made_with() {
        for phi in [0.0, 0.6] {
            let fleet = measured(phi);
            assert_eq!(fleet.window_minutes, 5.0, "windows slide by 5 minutes");
            let m = fleet.metric("response_time_ms").unwrap();
            // The fleet's common move is taken out by the peers; what is
            // left is each VM's own noise (sd 5, sigma 5: 1 sigma).
            assert!(
                (m.spread - 5.0).abs() < 0.5,
                "phi {phi}: spread {}",
                m.spread
            );
            assert!((m.spread_sigmas - 1.0).abs() < 0.1, "{}", m.spread_sigmas);
            assert_eq!(m.level, 100.0);
            assert_eq!(m.vms, 280, "the patched VMs are not measured");
            assert!(m.control_vms >= 200, "{}", m.control_vms);
            assert!(
                (m.correlation - phi).abs() < 0.1,
                "phi {phi}: measured {}",
                m.correlation
            );
        }
    }
}
