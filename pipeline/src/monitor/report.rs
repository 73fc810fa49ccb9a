//! The canary report: per metric, the rollout's patched VMs against their
//! unpatched control cohorts window by window, as Kayenta's canary
//! analysis shows a canary against its baseline. Both sides are in the
//! patched VMs' own sigmas: the canary is each patched VM's deviation from
//! its forecast, the control is its cohort's concurrent move
//! (`PeerEvidence::peer_deviation`). Served on demand by
//! `GET /api/rollouts/{rollout_id}/report`.

use super::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bellwether_schemas::ScoreRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Windows kept per metric (a day of five-minute windows).
pub const WINDOWS: usize = 288;

/// The middle half and the median of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
}

impl Spread {
    fn of(values: &mut [f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Some(Spread {
            p25: at(0.25),
            p50: at(0.5),
            p75: at(0.75),
        })
    }
}

/// What one window's scores of one metric held.
#[derive(Debug, Default, Clone)]
struct Pending {
    canary: Vec<f64>,
    control: Vec<f64>,
    vs_peers: Vec<f64>,
    p_values: Vec<f64>,
    anomalous: usize,
}

/// One metric over the windows.
#[derive(Debug, Default, Clone)]
struct Series {
    times: VecDeque<i64>,
    canary: VecDeque<Option<Spread>>,
    control: VecDeque<Option<Spread>>,
    last: Option<MetricVerdictSummary>,
}

/// A rollout's report as it fills.
#[derive(Debug, Default)]
pub struct CanaryReport {
    window: Option<i64>,
    pending: BTreeMap<String, Pending>,
    series: BTreeMap<String, Series>,
}

impl CanaryReport {
    /// Takes in a patched VM's score; a score of a later window closes the
    /// window before it.
    pub fn add(&mut self, score: &ScoreRecord) {
        let t = score.window_end.0;
        match self.window {
            Some(w) if w == t => {}
            Some(w) if t < w => return,
            _ => {
                self.close();
                self.window = Some(t);
            }
        }
        for v in &score.verdicts {
            let p = self.pending.entry(v.metric.clone()).or_default();
            p.canary.push(v.deviation);
            p.anomalous += usize::from(v.anomalous);
            if let Some(peers) = &v.peers {
                p.control.push(peers.peer_deviation);
                p.vs_peers.push(peers.vs_peers);
                p.p_values.extend(peers.mann_whitney_p);
            }
        }
    }

    fn close(&mut self) {
        let Some(t) = self.window else {
            return;
        };
        for (metric, mut p) in std::mem::take(&mut self.pending) {
            let s = self.series.entry(metric).or_default();
            if s.times.len() == WINDOWS {
                s.times.pop_front();
                s.canary.pop_front();
                s.control.pop_front();
            }
            s.times.push_back(t);
            let canary = Spread::of(&mut p.canary);
            let control = Spread::of(&mut p.control);
            s.canary.push_back(canary);
            s.control.push_back(control);
            s.last = Some(MetricVerdictSummary {
                vms: p.canary.len(),
                anomalous: p.anomalous,
                canary_median: canary.map_or(0.0, |c| c.p50),
                control_median: control.map(|c| c.p50),
                vs_peers_median: Spread::of(&mut p.vs_peers).map(|s| s.p50),
                mann_whitney_p_min: p.p_values.iter().copied().reduce(f64::min),
            });
        }
    }

    /// The report so far (the open window included).
    pub fn snapshot(&self, rollout_id: &str) -> Report {
        // The open window closed in a copy.
        let mut closed = CanaryReport {
            window: self.window,
            pending: self.pending.clone(),
            series: self.series.clone(),
        };
        closed.close();
        Report {
            rollout_id: rollout_id.to_string(),
            metrics: closed
                .series
                .into_iter()
                .map(|(metric, s)| MetricReport {
                    metric,
                    t_ms: s.times.into_iter().collect(),
                    canary: s.canary.into_iter().collect(),
                    control: s.control.into_iter().collect(),
                    verdict: s.last.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// `GET /api/rollouts/{rollout_id}/report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The rollout.
    pub rollout_id: String,
    /// Per metric.
    pub metrics: Vec<MetricReport>,
}

/// One metric of a [`Report`]: chart columns per window (`t_ms`: window
/// ends in epoch milliseconds), and the latest window's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricReport {
    /// The metric.
    pub metric: String,
    /// Window ends, milliseconds since the epoch.
    pub t_ms: Vec<i64>,
    /// The patched VMs' deviations from their forecasts, in sigmas.
    pub canary: Vec<Option<Spread>>,
    /// Their control cohorts' concurrent moves, in the same sigmas (null:
    /// no patched VM had a control that window).
    pub control: Vec<Option<Spread>>,
    /// The latest window.
    pub verdict: MetricVerdictSummary,
}

/// One metric's latest window over the patched VMs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdictSummary {
    /// Patched VMs scored.
    pub vms: usize,
    /// Of those, judged anomalous on this metric.
    pub anomalous: usize,
    /// Median deviation from their forecasts, sigmas.
    pub canary_median: f64,
    /// Median concurrent move of their controls, sigmas.
    pub control_median: Option<f64>,
    /// Median of each VM's deviation against its peers, sigmas.
    pub vs_peers_median: Option<f64>,
    /// The smallest Mann-Whitney p-value among them (the strongest evidence
    /// of a shift against peers).
    pub mann_whitney_p_min: Option<f64>,
}

/// The handler.
pub async fn get(State(state): State<AppState>, Path(rollout_id): Path<String>) -> Response {
    match state.monitor.report(&rollout_id) {
        Some(r) => axum::Json(r).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!(
                "no rollout `{rollout_id}` is known here (GET /api/rollouts lists the rollouts)"
            ) })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(vm: &str, t: i64, deviation: f64, peer: f64, p: f64) -> ScoreRecord {
        crate::monitor::test_support::score(
            vm,
            t,
            "cpu_percent",
            (0.0, deviation),
            Some((peer, Some(p))),
        )
    }

    #[test]
    fn each_window_holds_the_canary_and_control_spreads_and_the_verdict() {
        let mut report = CanaryReport::default();
        for (vm, d) in [("a", 1.0), ("b", 2.0), ("c", 6.0)] {
            report.add(&score(vm, 300_000, d, 0.5, 0.2));
        }
        // A score of the next window closes the first.
        report.add(&score("a", 600_000, 0.0, 0.0, 0.01));
        let r = report.snapshot("r");
        let m = &r.metrics[0];
        assert_eq!(m.t_ms, vec![300_000, 600_000]);
        let first = m.canary[0].unwrap();
        // Of 1, 2 and 6 (nearest rank): p25 2, median 2, p75 6.
        assert_eq!((first.p25, first.p50, first.p75), (2.0, 2.0, 6.0));
        assert_eq!(m.control[0].unwrap().p50, 0.5);
        // The open window is the latest verdict.
        assert_eq!(m.verdict.vms, 1);
        assert_eq!(m.verdict.mann_whitney_p_min, Some(0.01));
        // A late score of a closed window is left out.
        report.add(&score("z", 300_000, 9.0, 0.0, 0.5));
        assert_eq!(report.snapshot("r").metrics[0].canary[0], m.canary[0]);
    }
}
