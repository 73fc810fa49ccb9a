//! The second opinion: a patched VM's windows since it was judged, ranked
//! against its control's windows over the same time (Kayenta's
//! Mann-Whitney test), with the Hodges-Lehmann shift as the effect size.
//!
//! Every series keeps its last few windows' deviations from the open-loop
//! forecast, in its own sigmas. A patched VM's metric that looks bad
//! against its peers is tested: its windows since it was judged against
//! the same windows of every control VM of its cohort.

use crate::mann_whitney::{hodges_lehmann, mann_whitney};
use crate::peers::{NO_COHORT, PeerControl};
use std::collections::HashMap;

/// The last `width` windows of every series, as deviations in sigmas.
#[derive(Debug, Clone)]
pub struct RecentWindows {
    width: usize,
    values: Vec<f32>,
    /// Ring position the next window goes to.
    next: usize,
}

impl RecentWindows {
    /// Room for `width` windows per series.
    pub fn new(width: usize) -> RecentWindows {
        RecentWindows {
            width: width.max(1),
            values: Vec::new(),
            next: 0,
        }
    }

    /// Windows kept per series.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Records one window: `deviation(i)` for every series slot (None: no data).
    pub fn push(&mut self, series: usize, deviation: impl Fn(usize) -> Option<f64>) {
        self.values.resize(series * self.width, f32::NAN);
        for i in 0..series {
            self.values[i * self.width + self.next] = deviation(i).map_or(f32::NAN, |d| d as f32);
        }
        self.next = (self.next + 1) % self.width;
    }

    /// The last `k` windows of series `i` that had data, newest first.
    fn last(&self, i: usize, k: usize) -> impl Iterator<Item = f64> + '_ {
        let w = self.width;
        (1..=k.min(w))
            .map(move |back| self.values[i * w + (self.next + w - back) % w])
            .filter(|v| !v.is_nan())
            .map(f64::from)
    }
}

/// What a series needs to be tested.
#[derive(Debug, Clone, Copy)]
pub struct PeerTestInputs<'a> {
    /// Per VM: a control VM (unpatched, learning, reporting).
    pub control: &'a [bool],
    /// Per VM: windows since it was judged (0: not judged).
    pub judged_windows: &'a [u16],
    /// Per VM and level: cohort ids, as given to the peer control.
    pub cohorts: &'a [u32],
    /// Cohort levels (the whole fleet is the implicit last).
    pub levels: usize,
    /// Metrics per VM.
    pub metrics: usize,
}

/// Tests every series `candidate` picks, writing each one's p-value (in the
/// direction of its deviation against peers), Hodges-Lehmann shift and
/// canary windows into `peers`.
pub fn peer_test(
    recent: &RecentWindows,
    inputs: &PeerTestInputs<'_>,
    peers: &mut PeerControl,
    candidate: impl Fn(usize) -> bool,
) {
    let m = inputs.metrics;
    let vms = inputs.judged_windows.len();
    let cohort = |vm: usize, level: usize| {
        if level == inputs.levels {
            0
        } else {
            inputs
                .cohorts
                .get(vm * inputs.levels + level)
                .copied()
                .unwrap_or(NO_COHORT)
        }
    };
    let mut members: HashMap<(usize, u32), Vec<usize>> = HashMap::new();
    let mut p = vec![None; peers.vs_peers.len()];
    let mut shift = vec![None; peers.vs_peers.len()];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for vm in 0..vms {
        let k = inputs.judged_windows[vm] as usize;
        if k == 0 || peers.control_vms[vm] == 0 {
            continue;
        }
        let level = peers.level[vm] as usize;
        let key = (level, cohort(vm, level));
        for metric in 0..m {
            let i = vm * m + metric;
            if i >= p.len() || arrow::array::Array::is_null(&peers.vs_peers, i) || !candidate(i) {
                continue;
            }
            let group = members.entry(key).or_insert_with(|| {
                (0..vms)
                    .filter(|&c| inputs.control[c] && cohort(c, level) == key.1)
                    .collect()
            });
            a.clear();
            a.extend(recent.last(i, k));
            b.clear();
            for &c in group.iter() {
                b.extend(recent.last(c * m + metric, k));
            }
            let Some(test) = mann_whitney(&a, &b) else {
                continue;
            };
            let up = peers.vs_peers.value(i) >= 0.0;
            p[i] = Some(if up { test.p_greater } else { test.p_less });
            shift[i] = Some(hodges_lehmann(&a, &b));
        }
    }
    peers.test_p = p.into();
    peers.test_shift = shift.into();
    peers.test_windows = inputs
        .judged_windows
        .iter()
        .map(|&k| (k as usize).min(recent.width()) as u16)
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array};

    #[test]
    fn a_canary_above_its_peers_for_every_window_tests_significant() {
        // Six VMs, one metric: VM 0 patched and judged for 4 windows at
        // +6σ, VMs 1-5 controls around 0.
        let mut recent = RecentWindows::new(6);
        for w in 0..4 {
            recent.push(6, |i| {
                Some(if i == 0 {
                    6.0
                } else {
                    (i as f64 - 3.0) * 0.3 + w as f64 * 0.01
                })
            });
        }
        let mut peers = PeerControl {
            peer_deviation: Float64Array::from(vec![Some(0.0), None, None, None, None, None]),
            vs_peers: Float64Array::from(vec![Some(6.0), None, None, None, None, None]),
            vs_peers_residual: Float64Array::from(vec![Some(6.0), None, None, None, None, None]),
            control_vms: vec![5, 0, 0, 0, 0, 0],
            level: vec![0; 6],
            test_p: Float64Array::new_null(6),
            test_shift: Float64Array::new_null(6),
            test_windows: vec![0; 6],
        };
        let inputs = PeerTestInputs {
            control: &[false, true, true, true, true, true],
            judged_windows: &[4, 0, 0, 0, 0, 0],
            cohorts: &[],
            levels: 0,
            metrics: 1,
        };
        peer_test(&recent, &inputs, &mut peers, |_| true);
        // Every canary window above all 20 control windows: U = 80 of 80,
        // z = (80 - 40 - 0.5) / sqrt(4·20·25/12) = 3.06, p = 0.0011.
        assert!(
            (peers.test_p.value(0) - 0.0011).abs() < 1e-4,
            "{}",
            peers.test_p.value(0)
        );
        assert!((peers.test_shift.value(0) - 6.0).abs() < 1.0);
        assert_eq!(peers.test_windows[0], 4);
        assert!(peers.test_p.is_null(1), "controls are not tested");
    }
}
