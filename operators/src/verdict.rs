//! Verdicts: is this metric, and this VM, anomalous?
//!
//! A metric is *bad* in a window when its deviation goes past its threshold
//! in its bad direction and the change is larger than the metric's minimum
//! meaningful change; where the VM has a peer control, its deviation
//! against its peers must pass the same tests (the VM left its own forecast
//! *and* its peers did not move the same way). With a false-discovery rate
//! set, a VM's metrics count as bad only when the VM is a discovery of the
//! Benjamini-Hochberg procedure over every VM judged in the window, so a
//! good patch on 10,000 VMs is as safe as on 300. A metric is *anomalous*
//! when it has been bad for `consecutive_windows` windows in a row, which
//! keeps one noisy window from rolling a VM back. A VM is anomalous when any
//! of its metrics is.

use crate::column::f64_column;
use crate::peers::PeerControl;
use arrow::array::{Array, BooleanArray, Float64Array};
use bellwether_schemas::Direction;

/// How one metric is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricRule {
    /// Which way is bad.
    pub direction: Direction,
    /// Deviation, in sigmas of the baseline's residual spread, past which the metric is bad.
    pub threshold_sigma: f64,
    /// Smallest change (in the metric's unit) worth acting on.
    pub min_change: f64,
}

/// How every metric is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRules {
    /// One rule per scored metric, in slot order.
    pub metrics: Vec<MetricRule>,
    /// Bad windows in a row that make a metric anomalous.
    pub consecutive_windows: u16,
    /// False-discovery rate controlled across the VMs judged in one window
    /// (None: every VM is judged on its own).
    pub false_discovery_rate: Option<f64>,
    /// The second opinion must agree: a metric with a Mann-Whitney test of
    /// at least [`MIN_TEST_WINDOWS`] canary windows is bad only when its
    /// p-value is under this (None: the test is evidence only).
    pub peer_test_p: Option<f64>,
}

/// Canary windows the second opinion needs before it has a say.
pub const MIN_TEST_WINDOWS: u16 = 4;

/// Verdicts of one window.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// Per series: bad in this window.
    pub bad: BooleanArray,
    /// Per series: anomalous (bad for enough windows in a row).
    pub anomalous: BooleanArray,
    /// Per VM: any metric anomalous.
    pub vm_anomalous: BooleanArray,
    /// Per VM: root mean square of the metric deviations (null without any).
    pub vm_rmse: Float64Array,
    /// Per VM: anomaly score in [0, 1]; 0.5 means the worst metric sits at
    /// its threshold (against its own forecast, or its peers where that is less).
    pub vm_score: Float64Array,
    /// Per VM: p-value of its worst metric, corrected for the number of
    /// metrics (null where not judged).
    pub vm_p_value: Float64Array,
}

/// The anomaly score of a deviation `w` thresholds past zero: 0.5 at the
/// threshold (`w = 1`), towards 1 beyond it.
pub fn score_of(w: f64) -> f64 {
    w * w / (1.0 + w * w)
}

pub use bellwether_schemas::power::normal_tail;

/// Benjamini-Hochberg: which of `p` are discoveries at false-discovery rate `q`.
///
/// ```
/// use bellwether_operators::verdict::benjamini_hochberg;
///
/// // Of 4 VMs' p-values, at a false-discovery rate of 5%:
/// let flagged = benjamini_hochberg(&[0.001, 0.04, 0.2, 0.012], 0.05);
/// assert_eq!(flagged, [true, false, false, true]);
/// ```
pub fn benjamini_hochberg(p: &[f64], q: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let n = p.len() as f64;
    let cut = order
        .iter()
        .enumerate()
        .filter(|(rank, i)| p[**i] <= (*rank + 1) as f64 * q / n)
        .map(|(rank, _)| rank + 1)
        .next_back()
        .unwrap_or(0);
    let mut out = vec![false; p.len()];
    for &i in &order[..cut] {
        out[i] = true;
    }
    out
}

/// Judges one window. `deviation` and `residual` are per series slot;
/// `peers`, where given, the peer control of the judged VMs;
/// `judged[vm]` says which VMs are under judgement (patched and settled);
/// `streak` (per series) carries bad-window runs between windows.
pub fn judge(
    rules: &VerdictRules,
    deviation: &Float64Array,
    residual: &Float64Array,
    peers: Option<&PeerControl>,
    judged: &[bool],
    streak: &mut [u16],
) -> Verdicts {
    let metric_count = rules.metrics.len().max(1);
    let series = deviation.len();
    let vms = series / metric_count;
    // Per series: bad before the false-discovery gate, and the strength of
    // the evidence (the lesser of the two views), in sigmas past zero.
    let mut bad = vec![false; series];
    let mut strength = vec![f64::NAN; series];
    for i in 0..series {
        let vm = i / metric_count;
        let rule = &rules.metrics[i % metric_count];
        if !judged[vm] || deviation.is_null(i) {
            continue;
        }
        let passes = |z: f64, change: f64| {
            rule.direction.badness(z) > rule.threshold_sigma
                && rule.direction.badness(change) > rule.min_change
        };
        let mut z = rule.direction.badness(deviation.value(i));
        let mut is_bad = passes(deviation.value(i), residual.value(i));
        if let Some(p) = peers.filter(|p| p.vs_peers.is_valid(i)) {
            z = z.min(rule.direction.badness(p.vs_peers.value(i)));
            is_bad &= passes(p.vs_peers.value(i), p.vs_peers_residual.value(i));
            if let Some(alpha) = rules.peer_test_p
                && p.test_p.is_valid(i)
                && p.test_windows[vm] >= MIN_TEST_WINDOWS
            {
                is_bad &= p.test_p.value(i) < alpha;
            }
        }
        bad[i] = is_bad;
        strength[i] = z;
    }

    let mut vm_p_value = vec![None; vms];
    for (vm, p) in vm_p_value.iter_mut().enumerate() {
        let slots = vm * metric_count..(vm + 1) * metric_count;
        let worst = strength[slots]
            .iter()
            .copied()
            .filter(|z| !z.is_nan())
            .fold(f64::NAN, f64::max);
        if !worst.is_nan() {
            *p = Some((normal_tail(worst) * metric_count as f64).min(1.0));
        }
    }
    if let Some(q) = rules.false_discovery_rate {
        let tested: Vec<usize> = (0..vms).filter(|&vm| vm_p_value[vm].is_some()).collect();
        let p: Vec<f64> = tested
            .iter()
            .map(|&vm| vm_p_value[vm].unwrap_or(1.0))
            .collect();
        let found = benjamini_hochberg(&p, q);
        for (&vm, found) in tested.iter().zip(found) {
            if !found {
                bad[vm * metric_count..(vm + 1) * metric_count].fill(false);
            }
        }
    }

    let mut anomalous = Vec::with_capacity(series);
    for (i, run) in streak.iter_mut().enumerate().take(series) {
        if !judged[i / metric_count] {
            *run = 0;
            anomalous.push(false);
        } else if deviation.is_null(i) {
            // No data this window: neither worse nor better; the run waits.
            anomalous.push(*run >= rules.consecutive_windows);
        } else {
            *run = if bad[i] { run.saturating_add(1) } else { 0 };
            anomalous.push(bad[i] && *run >= rules.consecutive_windows);
        }
    }

    let mut vm_anomalous = Vec::with_capacity(vms);
    let mut vm_rmse = Vec::with_capacity(vms);
    let mut vm_score = Vec::with_capacity(vms);
    for vm in 0..vms {
        let slots = vm * metric_count..(vm + 1) * metric_count;
        vm_anomalous.push(anomalous[slots.clone()].iter().any(|a| *a));
        let (mut sum_sq, mut n, mut worst) = (0.0, 0usize, 0.0f64);
        for (m, i) in slots.enumerate() {
            if deviation.is_valid(i) {
                let d = deviation.value(i);
                sum_sq += d * d;
                n += 1;
                let rule = &rules.metrics[m];
                let z = if strength[i].is_nan() {
                    rule.direction.badness(d)
                } else {
                    strength[i]
                };
                worst = worst.max(z / rule.threshold_sigma);
            }
        }
        vm_rmse.push((n > 0).then(|| (sum_sq / n as f64).sqrt()));
        vm_score.push((n > 0).then(|| score_of(worst)));
    }
    Verdicts {
        bad: BooleanArray::from(bad),
        anomalous: BooleanArray::from(anomalous),
        vm_anomalous: BooleanArray::from(vm_anomalous),
        vm_rmse: Float64Array::from(vm_rmse),
        vm_score: Float64Array::from(vm_score),
        vm_p_value: Float64Array::from(vm_p_value),
    }
}

/// Each VM's anomaly score as the least over its last windows (as many as
/// a verdict needs in a row), so that a score passes 0.5 only where the VM
/// has been past its threshold long enough to be anomalous: one noisy
/// window scores as what it is.
#[derive(Debug, Clone)]
///
/// ```
/// use arrow::array::Float64Array;
/// use bellwether_operators::verdict::ScoreRuns;
///
/// // A VM counts as anomalous over a run of 2 windows: its score is the
/// // least of the last two.
/// let mut runs = ScoreRuns::new(2);
/// let first = runs.least(&Float64Array::from(vec![0.9, 0.2]));
/// assert_eq!(first.values(), &[0.0, 0.0], "no window before the first");
/// let second = runs.least(&Float64Array::from(vec![0.8, 0.9]));
/// assert!((second.value(0) - 0.8).abs() < 1e-6);
/// assert!((second.value(1) - 0.2).abs() < 1e-6, "one high window is not a run");
/// ```
pub struct ScoreRuns {
    /// Windows before the current one that count.
    before: usize,
    /// Per VM, its last `before` scores (0 where it had none).
    recent: Vec<f32>,
    next: usize,
}

impl ScoreRuns {
    /// Runs of `windows` windows (at least 1).
    pub fn new(windows: u16) -> ScoreRuns {
        ScoreRuns {
            before: (windows.max(1) - 1) as usize,
            recent: Vec::new(),
            next: 0,
        }
    }

    /// This window's scores (per VM) as the least over the run ending
    /// here; remembers them for the next windows.
    pub fn least(&mut self, score: &Float64Array) -> Float64Array {
        let k = self.before;
        if k == 0 {
            return score.clone();
        }
        if self.recent.len() < score.len() * k {
            self.recent.resize(score.len() * k, 0.0);
        }
        let out = f64_column(score.len(), |vm| {
            let before = &self.recent[vm * k..(vm + 1) * k];
            score.is_valid(vm).then(|| {
                before
                    .iter()
                    .fold(score.value(vm), |least, &s| least.min(s as f64))
            })
        });
        for vm in 0..score.len() {
            self.recent[vm * k + self.next] = if score.is_valid(vm) {
                score.value(vm) as f32
            } else {
                0.0
            };
        }
        self.next = (self.next + 1) % k;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> VerdictRules {
        VerdictRules {
            metrics: vec![
                MetricRule {
                    direction: Direction::Increase,
                    threshold_sigma: 4.0,
                    min_change: 1.0,
                },
                MetricRule {
                    direction: Direction::Decrease,
                    threshold_sigma: 4.0,
                    min_change: 1.0,
                },
            ],
            consecutive_windows: 2,
            false_discovery_rate: None,
            peer_test_p: None,
        }
    }

    #[test]
    fn a_metric_must_stay_bad_for_consecutive_windows() {
        let mut streak = vec![0; 2];
        let dev = Float64Array::from(vec![5.0, 0.0]);
        let res = Float64Array::from(vec![10.0, 0.0]);
        let first = judge(&rules(), &dev, &res, None, &[true], &mut streak);
        assert!(first.bad.value(0) && !first.anomalous.value(0));
        let second = judge(&rules(), &dev, &res, None, &[true], &mut streak);
        assert!(second.anomalous.value(0) && second.vm_anomalous.value(0));
        assert!(second.vm_score.value(0) > 0.5);
    }

    #[test]
    fn direction_threshold_and_minimum_change_all_apply() {
        let mut streak = vec![5; 2];
        // Metric 0 rose 5σ but by only 0.5 units: below the minimum change.
        // Metric 1 rose 9σ: its bad direction is down.
        let v = judge(
            &rules(),
            &Float64Array::from(vec![5.0, 9.0]),
            &Float64Array::from(vec![0.5, 9.0]),
            None,
            &[true],
            &mut streak,
        );
        assert!(!v.bad.value(0) && !v.bad.value(1));
        assert_eq!(streak, vec![0, 0]);
    }

    #[test]
    fn vms_not_under_judgement_are_never_anomalous() {
        let mut streak = vec![9; 2];
        let v = judge(
            &rules(),
            &Float64Array::from(vec![50.0, -50.0]),
            &Float64Array::from(vec![50.0, -50.0]),
            None,
            &[false],
            &mut streak,
        );
        assert!(!v.vm_anomalous.value(0));
        assert!(v.vm_rmse.value(0) > 49.0, "scores are still reported");
    }

    #[test]
    fn a_metric_is_bad_only_when_its_peers_did_not_move_the_same_way() {
        let mut streak = vec![1; 4];
        // Two VMs, both +8σ on metric 0 against their own forecast; VM 0's
        // peers moved as much (+0.5σ vs peers), VM 1's did not (+7.5σ).
        let peers = PeerControl {
            peer_deviation: Float64Array::from(vec![Some(7.5), None, Some(0.5), None]),
            vs_peers: Float64Array::from(vec![Some(0.5), None, Some(7.5), None]),
            vs_peers_residual: Float64Array::from(vec![Some(0.5), None, Some(7.5), None]),
            control_vms: vec![30, 30],
            level: vec![0, 0],
            test_p: Float64Array::new_null(4),
            test_shift: Float64Array::new_null(4),
            test_windows: vec![0, 0],
        };
        let dev = Float64Array::from(vec![8.0, 0.0, 8.0, 0.0]);
        let v = judge(
            &rules(),
            &dev,
            &dev,
            Some(&peers),
            &[true, true],
            &mut streak,
        );
        assert!(!v.bad.value(0), "the fleet moved");
        assert!(
            v.bad.value(2) && v.vm_anomalous.value(1),
            "only this VM moved"
        );
        assert!(
            v.vm_score.value(0) < 0.5,
            "the score follows the lesser view"
        );
    }

    #[test]
    fn benjamini_hochberg_matches_a_worked_example() {
        // Sorted p: 0.01 ≤ 0.0125 (1·0.05/4), 0.02 ≤ 0.025, 0.04 > 0.0375,
        // 0.045 ≤ 0.05: the largest passing rank is 4, so all four are found.
        assert_eq!(
            benjamini_hochberg(&[0.04, 0.01, 0.045, 0.02], 0.05),
            vec![true; 4]
        );
        assert_eq!(
            benjamini_hochberg(&[0.04, 0.01, 0.3, 0.02], 0.05),
            vec![false, true, false, true]
        );
        assert!(benjamini_hochberg(&[], 0.05).is_empty());
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_tail(3.0) - 0.001_349_898).abs() < 1e-9);
    }

    #[test]
    fn more_vms_judged_need_stronger_evidence_for_one_of_them() {
        // One VM at +4.3σ among N quiet ones: found among 10, not among
        // 10,000 (its p-value 8.5e-6 is over 0.05 / 10,000).
        let threshold_at = |n: usize| {
            let mut dev = vec![0.0; n];
            dev[0] = 4.3;
            let rules = VerdictRules {
                metrics: vec![rules().metrics[0]],
                consecutive_windows: 1,
                false_discovery_rate: Some(0.05),
                peer_test_p: None,
            };
            let dev = Float64Array::from(dev);
            let res = Float64Array::from(vec![10.0; n]);
            judge(&rules, &dev, &res, None, &vec![true; n], &mut vec![0; n])
                .bad
                .value(0)
        };
        assert!(threshold_at(10));
        assert!(!threshold_at(10_000));
    }

    #[test]
    fn a_score_passes_one_half_only_after_a_run_of_windows() {
        let mut runs = ScoreRuns::new(2);
        let score = |runs: &mut ScoreRuns, v: Vec<Option<f64>>| {
            let out = runs.least(&Float64Array::from(v));
            (0..out.len())
                .map(|i| out.is_valid(i).then(|| out.value(i)))
                .collect::<Vec<_>>()
        };
        // The first high window is held to the one before it (none: 0).
        // (Values exact in f32, as the runs keep them.)
        assert_eq!(score(&mut runs, vec![Some(0.875), None]), [Some(0.0), None]);
        assert_eq!(
            score(&mut runs, vec![Some(0.75), Some(0.625)]),
            [Some(0.75), Some(0.0)]
        );
        assert_eq!(
            score(&mut runs, vec![Some(0.125), Some(0.625)]),
            [Some(0.125), Some(0.625)]
        );
        // A third VM seen for the first time has no run yet.
        assert_eq!(
            score(&mut runs, vec![Some(0.5), Some(0.25), Some(0.875)]),
            [Some(0.125), Some(0.25), Some(0.0)]
        );
        assert_eq!(
            ScoreRuns::new(1)
                .least(&Float64Array::from(vec![0.9]))
                .value(0),
            0.9
        );
    }
}
