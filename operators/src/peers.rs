//! Peer control: what the unpatched VMs like a patched one did in the same window.
//!
//! A VM's own forecast says how far it left its usual behaviour; that alone
//! blames a patch for a traffic surge or a slow dependency that moved the
//! whole fleet. Each window, every patched VM under judgement is set against
//! a *control*: the unpatched VMs of its cohort (VMs alike by inventory
//! fields, e.g. role and region), widened level by level to the whole fleet
//! while a cohort has fewer than `min_control` control VMs reporting.
//!
//! The control's concurrent move is estimated robustly (medians) under two
//! models of how the world moves a metric: a shift in the metric's unit
//! (CPU points), and a ratio (a slowdown that multiplies response times).
//! For each patched VM the model that leaves the least spread among the
//! control, measured in that VM's own sigmas, is used; that spread (never
//! taken below 1σ) and the uncertainty of the median itself scale the
//! result. Nothing depends on the control VMs' own spreads, which a
//! fleet-wide event inflates while the patched VM's stay frozen. What is
//! left, the patched VM's deviation *against its peers*, is a difference in
//! differences: it is large only when the VM left its own forecast and its
//! peers did not move the same way in the same window.

use crate::column::Validity;
use arrow::array::{Array, Float64Array};
use arrow::buffer::ScalarBuffer;
use std::f64::consts::PI;

/// Cohort id meaning "no cohort at this level" (the VM is not in the inventory).
pub const NO_COHORT: u32 = u32::MAX;

/// One window's series quantities the control is computed from, per series
/// slot (`vm * metrics + metric`).
#[derive(Debug, Clone, Copy)]
pub struct PeerInputs<'a> {
    /// Observed window means (null: no data).
    pub observed: &'a Float64Array,
    /// The open-loop forecast every VM is compared with (null: none yet).
    pub reference: &'a Float64Array,
    /// Residual spread, uncertainty included (null: baseline not ready).
    pub spread: &'a Float64Array,
    /// Metrics per VM.
    pub metrics: usize,
}

/// The control of one window, per series slot (null where a VM is not
/// judged, or has no control).
#[derive(Debug, Clone)]
pub struct PeerControl {
    /// The control's concurrent move, in this VM's sigmas.
    pub peer_deviation: Float64Array,
    /// The VM's deviation against its peers, in sigmas (difference in differences).
    pub vs_peers: Float64Array,
    /// Observed minus the forecast moved as the peers moved, in the metric's unit.
    pub vs_peers_residual: Float64Array,
    /// Per VM: control VMs its comparison used (0: no control).
    pub control_vms: Vec<u32>,
    /// Per VM: the cohort level used (`levels` = the whole fleet).
    pub level: Vec<u8>,
    /// Per series: the second opinion's one-sided p-value (Mann-Whitney of
    /// the VM's windows since judged against its control's), where tested.
    pub test_p: Float64Array,
    /// Per series: the Hodges-Lehmann shift of those windows, in sigmas.
    pub test_shift: Float64Array,
    /// Per VM: canary windows the test used.
    pub test_windows: Vec<u16>,
}

/// The control's move on one metric.
#[derive(Debug, Clone, Copy)]
struct World {
    /// Median residual, in the metric's unit, and its robust spread.
    shift: f64,
    shift_spread: f64,
    /// Median log ratio of observed to forecast, and its robust spread
    /// (None where a value was not positive).
    ratio: Option<(f64, f64)>,
    /// Control VMs.
    n: usize,
}

impl World {
    /// The forecast `reference` of a VM of `spread` moved as the control
    /// moved, and how many of its sigmas the control's own disagreement is
    /// (at least 1), under the better-fitting model.
    fn expected(&self, reference: f64, spread: f64) -> (f64, f64) {
        let shift = (
            reference + self.shift,
            (self.shift_spread / spread).max(1.0),
        );
        let ratio = self.ratio.filter(|_| reference > 0.0).map(|(l, s)| {
            (
                reference * l.exp(),
                (s * reference * l.exp() / spread).max(1.0),
            )
        });
        match ratio {
            Some(r) if r.1 < shift.1 => r,
            _ => shift,
        }
    }
}

/// Median of `values` (reordered in place); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..n / 2].iter().copied().fold(f64::MIN, f64::max);
    (lower + upper) / 2.0
}

/// Median and median absolute deviation of `values` (reordered), with
/// `scratch` as working space.
///
/// ```
/// use bellwether_operators::peers::median_mad;
///
/// let mut latencies = vec![10.0, 12.0, 11.0, 300.0, 9.0];
/// let (median, mad) = median_mad(&mut latencies, &mut Vec::new());
/// assert_eq!((median, mad), (11.0, 1.0), "one outlier moves neither");
/// ```
pub fn median_mad(values: &mut [f64], scratch: &mut Vec<f64>) -> (f64, f64) {
    let m = median(values);
    scratch.clear();
    scratch.extend(values.iter().map(|v| (v - m).abs()));
    (m, median(scratch))
}

/// Consistency factor: MAD × 1.4826 estimates a normal standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// The control's move on one metric, from control series slots `slots`.
fn world(inputs: &PeerInputs<'_>, slots: &[usize], buf: &mut [Vec<f64>; 2]) -> World {
    let [values, scratch] = buf;
    values.clear();
    values.extend(
        slots
            .iter()
            .map(|&i| inputs.observed.value(i) - inputs.reference.value(i)),
    );
    let (shift, mad) = median_mad(values, scratch);
    let shift_spread = MAD_TO_SIGMA * mad;
    values.clear();
    values.extend(slots.iter().map(|&i| {
        let (y, f) = (inputs.observed.value(i), inputs.reference.value(i));
        if y > 0.0 && f > 0.0 {
            (y / f).ln()
        } else {
            f64::NAN
        }
    }));
    let ratio = values.iter().all(|v| v.is_finite()).then(|| {
        let (l, mad) = median_mad(values, scratch);
        (l, MAD_TO_SIGMA * mad)
    });
    World {
        shift,
        shift_spread,
        ratio,
        n: slots.len(),
    }
}

/// Computes the control of one window.
///
/// `control[vm]`: the VM is unpatched, learning and reporting (a control
/// candidate); `judged[vm]`: the VM is patched and judged; `cohorts` holds
/// `levels` cohort ids per VM (`vm * levels + level`, narrowest first, or
/// [`NO_COHORT`]); the whole fleet is the implicit last level.
pub fn peer_control(
    inputs: &PeerInputs<'_>,
    control: &[bool],
    judged: &[bool],
    cohorts: &[u32],
    levels: usize,
    min_control: usize,
) -> PeerControl {
    let m = inputs.metrics;
    let vms = judged.len();
    let series = inputs.observed.len();
    // The three columns are set together: one validity for all of them,
    // values written in place (no Option per row, no second pass).
    let mut peer_deviation = vec![0.0; series];
    let mut vs_peers = vec![0.0; series];
    let mut vs_peers_residual = vec![0.0; series];
    let mut valid = Validity::new(series);
    let mut control_vms = vec![0u32; vms];
    let mut level_used = vec![levels as u8; vms];
    let cohort = |vm: usize, level: usize| -> u32 {
        if level == levels {
            0
        } else {
            cohorts
                .get(vm * levels + level)
                .copied()
                .unwrap_or(NO_COHORT)
        }
    };
    if judged.iter().any(|&j| j) {
        // Members of each cohort at each level, controls only.
        let mut members: Vec<std::collections::HashMap<u32, Vec<usize>>> =
            vec![std::collections::HashMap::new(); levels + 1];
        for vm in (0..vms).filter(|&vm| control.get(vm).copied().unwrap_or(false)) {
            for (level, groups) in members.iter_mut().enumerate() {
                let id = cohort(vm, level);
                if id != NO_COHORT {
                    groups.entry(id).or_default().push(vm);
                }
            }
        }
        let mut worlds: std::collections::HashMap<(usize, u32), Vec<Option<World>>> =
            std::collections::HashMap::new();
        let mut slots = Vec::new();
        let mut buf = [Vec::new(), Vec::new()];
        for vm in (0..vms).filter(|&vm| judged[vm]) {
            let Some((level, id, peers)) = (0..=levels).find_map(|level| {
                let id = cohort(vm, level);
                let peers = members[level].get(&id)?;
                (peers.len() >= min_control).then_some((level, id, peers))
            }) else {
                continue;
            };
            control_vms[vm] = peers.len() as u32;
            level_used[vm] = level as u8;
            let per_metric = worlds.entry((level, id)).or_insert_with(|| {
                (0..m)
                    .map(|metric| {
                        slots.clear();
                        slots.extend(peers.iter().map(|p| p * m + metric).filter(|&i| {
                            inputs.observed.is_valid(i)
                                && inputs.reference.is_valid(i)
                                && inputs.spread.is_valid(i)
                        }));
                        (slots.len() >= min_control).then(|| world(inputs, &slots, &mut buf))
                    })
                    .collect()
            });
            for (metric, world) in per_metric.iter().enumerate() {
                let i = vm * m + metric;
                let Some(world) = world else { continue };
                if inputs.observed.is_null(i)
                    || inputs.reference.is_null(i)
                    || inputs.spread.is_null(i)
                {
                    continue;
                }
                let (y, f, s) = (
                    inputs.observed.value(i),
                    inputs.reference.value(i),
                    inputs.spread.value(i),
                );
                let (expected, disagreement) = world.expected(f, s);
                // The median of n normal values varies with σ²·π/(2n).
                let scale = disagreement * (1.0 + PI / (2.0 * world.n as f64)).sqrt();
                peer_deviation[i] = (expected - f) / s;
                vs_peers_residual[i] = y - expected;
                vs_peers[i] = (y - expected) / s / scale;
                valid.set(i);
            }
        }
    }
    let nulls = valid.finish();
    let column = |values: Vec<f64>| Float64Array::new(ScalarBuffer::from(values), nulls.clone());
    PeerControl {
        peer_deviation: column(peer_deviation),
        vs_peers: column(vs_peers),
        vs_peers_residual: column(vs_peers_residual),
        control_vms,
        level: level_used,
        test_p: Float64Array::new_null(series),
        test_shift: Float64Array::new_null(series),
        test_windows: vec![0; vms],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let mut scratch = Vec::new();
        // Deviations from 3: 2, 1, 0, 1, 97 → MAD 1.
        assert_eq!(
            median_mad(&mut [1.0, 2.0, 3.0, 4.0, 100.0], &mut scratch),
            (3.0, 1.0)
        );
    }

    /// `vms` VMs of one metric: observed, reference and spread per VM.
    fn inputs(observed: Vec<f64>, reference: Vec<f64>, spread: Vec<f64>) -> [Float64Array; 3] {
        [observed.into(), reference.into(), spread.into()]
    }

    fn control_of(
        arrays: &[Float64Array; 3],
        control: &[bool],
        judged: &[bool],
        cohorts: &[u32],
        levels: usize,
        min: usize,
    ) -> PeerControl {
        let inputs = PeerInputs {
            observed: &arrays[0],
            reference: &arrays[1],
            spread: &arrays[2],
            metrics: 1,
        };
        peer_control(&inputs, control, judged, cohorts, levels, min)
    }

    #[test]
    fn a_fleet_wide_slowdown_is_taken_out_and_a_patch_on_top_of_it_is_not() {
        // 20 controls at 100 (spread 5) all doubled; VM 0 is patched and
        // doubled too (only the surge), VM 1 is patched and tripled.
        let n = 22;
        let mut observed = vec![200.0; n];
        observed[1] = 300.0;
        for (i, o) in observed.iter_mut().enumerate().skip(2) {
            *o += (i % 5) as f64 - 2.0; // a little noise
        }
        let arrays = inputs(observed, vec![100.0; n], vec![5.0; n]);
        let control: Vec<bool> = (0..n).map(|i| i >= 2).collect();
        let judged: Vec<bool> = (0..n).map(|i| i < 2).collect();
        let c = control_of(&arrays, &control, &judged, &[], 0, 5);
        assert_eq!(c.control_vms[0], 20);
        assert!(
            (c.peer_deviation.value(0) - 20.0).abs() < 1.0,
            "peers moved +20σ"
        );
        assert!(
            c.vs_peers.value(0).abs() < 1.0,
            "the surge alone: {}",
            c.vs_peers.value(0)
        );
        assert!(
            c.vs_peers.value(1) > 15.0,
            "the patch on top: {}",
            c.vs_peers.value(1)
        );
        assert!(c.vs_peers.is_null(2), "controls are not judged");
    }

    #[test]
    fn a_ratio_fits_a_multiplicative_surge_on_vms_of_different_levels() {
        // Controls at 50..250 all ×2: in sigmas (spread 5) they moved from
        // +10σ to +50σ, as a ratio all the same. The patched VM at 80 went
        // to 160: the surge. Its twin at 80 went to 240: the patch.
        let mut reference = vec![80.0, 80.0];
        reference.extend((0..20).map(|i| 50.0 + 10.0 * i as f64));
        let mut observed = vec![160.0, 240.0];
        observed.extend(reference[2..].iter().map(|r| 2.0 * r));
        let n = reference.len();
        let arrays = inputs(observed, reference, vec![5.0; n]);
        let control: Vec<bool> = (0..n).map(|i| i >= 2).collect();
        let judged: Vec<bool> = (0..n).map(|i| i < 2).collect();
        let c = control_of(&arrays, &control, &judged, &[], 0, 5);
        assert!(c.vs_peers.value(0).abs() < 1.0, "{}", c.vs_peers.value(0));
        assert!(c.vs_peers.value(1) > 10.0, "{}", c.vs_peers.value(1));
    }

    #[test]
    fn cohorts_widen_until_the_control_is_large_enough() {
        // Level 0: role (VM 0's cohort 7 has 2 controls, too few), level 1:
        // region (cohort 3 has 6), then the fleet.
        let n = 10;
        let arrays = inputs(vec![10.0; n], vec![10.0; n], vec![1.0; n]);
        let control: Vec<bool> = (0..n).map(|i| i > 0).collect();
        let judged: Vec<bool> = (0..n).map(|i| i == 0).collect();
        let mut cohorts = vec![NO_COHORT; n * 2];
        for vm in 0..n {
            cohorts[vm * 2] = if vm < 3 { 7 } else { 8 };
            cohorts[vm * 2 + 1] = if vm < 7 { 3 } else { 4 };
        }
        let c = control_of(&arrays, &control, &judged, &cohorts, 2, 5);
        assert_eq!((c.level[0], c.control_vms[0]), (1, 6));
        let c = control_of(&arrays, &control, &judged, &cohorts, 2, 8);
        assert_eq!((c.level[0], c.control_vms[0]), (2, 9), "the whole fleet");
        let c = control_of(&arrays, &control, &judged, &cohorts, 2, 10);
        assert_eq!(c.control_vms[0], 0, "no control at all");
        assert!(c.vs_peers.is_null(0));
    }

    #[test]
    fn peers_that_disagree_widen_the_scale_never_below_one_sigma() {
        // Controls moved anywhere from -30σ to +30σ: their median is ~0 but
        // they say little, so a +20σ patched VM is only a few sigmas vs peers.
        let n = 21;
        let mut observed: Vec<f64> = (0..n).map(|i| 100.0 + 15.0 * (i as f64 - 10.0)).collect();
        observed[0] = 200.0;
        let arrays = inputs(observed, vec![100.0; n], vec![5.0; n]);
        let control: Vec<bool> = (0..n).map(|i| i > 0).collect();
        let judged: Vec<bool> = (0..n).map(|i| i == 0).collect();
        let c = control_of(&arrays, &control, &judged, &[], 0, 5);
        assert!(c.vs_peers.value(0) < 5.0, "{}", c.vs_peers.value(0));
        // Identical peers: the scale floor keeps the VM's own sigmas.
        let arrays = inputs(
            vec![110.0, 100.0, 100.0, 100.0, 100.0, 100.0],
            vec![100.0; 6],
            vec![1.0; 6],
        );
        let c = control_of(
            &arrays,
            &[false, true, true, true, true, true],
            &[true, false, false, false, false, false],
            &[],
            0,
            5,
        );
        let expected = 10.0 / (1.0 + PI / 10.0).sqrt();
        assert!(
            (c.vs_peers.value(0) - expected).abs() < 1e-9,
            "{}",
            c.vs_peers.value(0)
        );
    }
}
