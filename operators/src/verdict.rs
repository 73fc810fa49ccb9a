//! Verdicts: is this metric, and this VM, anomalous?
//!
//! A metric is *bad* in a window when its deviation goes past its threshold
//! in its bad direction and the change is larger than the metric's minimum
//! meaningful change. It is *anomalous* when it has been bad for
//! `consecutive_windows` windows in a row, which keeps one noisy window from
//! rolling a VM back. A VM is anomalous when any of its metrics is.

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
}

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
    /// Per VM: anomaly score in [0, 1]; 0.5 means the worst metric sits at its threshold.
    pub vm_score: Float64Array,
}

/// Judges one window. `deviation` and `residual` are per series slot;
/// `judged[vm]` says which VMs are under judgement (patched and settled);
/// `streak` (per series) carries bad-window runs between windows.
pub fn judge(
    rules: &VerdictRules,
    deviation: &Float64Array,
    residual: &Float64Array,
    judged: &[bool],
    streak: &mut [u16],
) -> Verdicts {
    let metric_count = rules.metrics.len();
    let series = deviation.len();
    let mut bad = Vec::with_capacity(series);
    let mut anomalous = Vec::with_capacity(series);
    for (i, run) in streak.iter_mut().enumerate().take(series) {
        let vm = i / metric_count;
        let rule = &rules.metrics[i % metric_count];
        if !judged[vm] {
            *run = 0;
            bad.push(false);
            anomalous.push(false);
            continue;
        }
        if deviation.is_null(i) {
            // No data this window: neither worse nor better; the run waits.
            bad.push(false);
            anomalous.push(*run >= rules.consecutive_windows);
            continue;
        }
        let is_bad = rule.direction.badness(deviation.value(i)) > rule.threshold_sigma
            && rule.direction.badness(residual.value(i)) > rule.min_change;
        *run = if is_bad { run.saturating_add(1) } else { 0 };
        bad.push(is_bad);
        anomalous.push(is_bad && *run >= rules.consecutive_windows);
    }

    let vms = series / metric_count.max(1);
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
                worst = worst.max(rule.direction.badness(d) / rule.threshold_sigma);
            }
        }
        vm_rmse.push((n > 0).then(|| (sum_sq / n as f64).sqrt()));
        vm_score.push((n > 0).then(|| worst * worst / (1.0 + worst * worst)));
    }
    Verdicts {
        bad: BooleanArray::from(bad),
        anomalous: BooleanArray::from(anomalous),
        vm_anomalous: BooleanArray::from(vm_anomalous),
        vm_rmse: Float64Array::from(vm_rmse),
        vm_score: Float64Array::from(vm_score),
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
        }
    }

    #[test]
    fn a_metric_must_stay_bad_for_consecutive_windows() {
        let mut streak = vec![0; 2];
        let dev = Float64Array::from(vec![5.0, 0.0]);
        let res = Float64Array::from(vec![10.0, 0.0]);
        let first = judge(&rules(), &dev, &res, &[true], &mut streak);
        assert!(first.bad.value(0) && !first.anomalous.value(0));
        let second = judge(&rules(), &dev, &res, &[true], &mut streak);
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
            &[false],
            &mut streak,
        );
        assert!(!v.vm_anomalous.value(0));
        assert!(v.vm_rmse.value(0) > 49.0, "scores are still reported");
    }
}
