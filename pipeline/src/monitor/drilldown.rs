//! A patched VM's drill-down: its recent windows metric by metric (observed,
//! its forecast interval, what its unpatched cohort moved it to) and its
//! failure risk, served on demand by `GET /api/rollouts/{rollout_id}/vms/{vm_id}`
//! (never pushed on the live feed).
//!
//! Kept for the first [`MAX_VMS`] patched VMs of each rollout (the canary
//! stage and the early waves, which an operator drills into), the last
//! [`WINDOWS`] windows each: by its layout (28 bytes per metric and
//! window) about 20 KB per VM of 7 metrics, so up to about 20 MB per
//! rollout. Kept for the life of the process, as the view's rollouts are.

use super::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bellwether_schemas::{RiskDriver, ScoreRecord};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Windows kept per VM (eight hours of five-minute windows).
pub const WINDOWS: usize = 96;
/// VMs kept per rollout.
pub const MAX_VMS: usize = 1000;

/// One metric's window: observed, forecast, the sigma it is judged in, the
/// cohort's concurrent move (in those sigmas) and the threshold.
#[derive(Debug, Clone, Copy)]
struct MetricPoint {
    observed: f32,
    forecast: f32,
    sigma: f32,
    peer_deviation: Option<f32>,
    threshold: f32,
}

#[derive(Debug, Default)]
struct Trail {
    metrics: Vec<String>,
    times: VecDeque<i64>,
    /// Per window, per metric of `metrics` (None: not scored that window).
    points: VecDeque<Vec<Option<MetricPoint>>>,
    risk: VecDeque<Option<f32>>,
    drivers: Vec<RiskDriver>,
}

/// Every kept VM's trail, per rollout.
#[derive(Debug, Default)]
pub struct Trails {
    by_rollout: HashMap<String, HashMap<String, Trail>>,
}

impl Trails {
    /// Takes in a patched VM's score.
    pub fn add(&mut self, rollout_id: &str, score: &ScoreRecord) {
        let vms = self.by_rollout.entry(rollout_id.to_string()).or_default();
        if !vms.contains_key(&score.vm_id) && vms.len() >= MAX_VMS {
            return;
        }
        let trail = vms.entry(score.vm_id.clone()).or_default();
        let mut window = vec![None; trail.metrics.len()];
        for v in &score.verdicts {
            let i = match trail.metrics.iter().position(|m| *m == v.metric) {
                Some(i) => i,
                None => {
                    trail.metrics.push(v.metric.clone());
                    for w in &mut trail.points {
                        w.push(None);
                    }
                    window.push(None);
                    trail.metrics.len() - 1
                }
            };
            // deviation = (observed - forecast) / sigma.
            let sigma = if v.deviation.abs() > 1e-9 {
                ((v.observed - v.forecast) / v.deviation).abs()
            } else {
                v.residual_rmse
            };
            window[i] = Some(MetricPoint {
                observed: v.observed as f32,
                forecast: v.forecast as f32,
                sigma: sigma as f32,
                peer_deviation: v.peers.as_ref().map(|p| p.peer_deviation as f32),
                threshold: v.threshold as f32,
            });
        }
        if trail.times.len() == WINDOWS {
            trail.times.pop_front();
            trail.points.pop_front();
            trail.risk.pop_front();
        }
        trail.times.push_back(score.window_end.0);
        trail.points.push_back(window);
        trail
            .risk
            .push_back(score.failure.as_ref().map(|f| f.risk as f32));
        if let Some(f) = &score.failure {
            trail.drivers.clone_from(&f.drivers);
        }
    }

    /// The drill-down of `vm_id` in `rollout_id`, if kept.
    pub fn get(&self, rollout_id: &str, vm_id: &str) -> Option<VmDrillDown> {
        let trail = self.by_rollout.get(rollout_id)?.get(vm_id)?;
        let column = |i: usize, f: &dyn Fn(&MetricPoint) -> Option<f64>| -> Vec<Option<f64>> {
            trail
                .points
                .iter()
                .map(|w| w.get(i).copied().flatten().as_ref().and_then(f))
                .collect()
        };
        let metrics = trail
            .metrics
            .iter()
            .enumerate()
            .map(|(i, metric)| {
                let band = |sign: f32| {
                    move |p: &MetricPoint| Some((p.forecast + sign * p.threshold * p.sigma) as f64)
                };
                let cohort = |sign: f32| {
                    move |p: &MetricPoint| {
                        p.peer_deviation.map(|d| {
                            (p.forecast + d * p.sigma + sign * p.threshold * p.sigma) as f64
                        })
                    }
                };
                MetricTrail {
                    metric: metric.clone(),
                    observed: column(i, &|p| Some(p.observed as f64)),
                    forecast: column(i, &|p| Some(p.forecast as f64)),
                    forecast_low: column(i, &band(-1.0)),
                    forecast_high: column(i, &band(1.0)),
                    cohort_low: column(i, &cohort(-1.0)),
                    cohort_high: column(i, &cohort(1.0)),
                    threshold: trail
                        .points
                        .iter()
                        .rev()
                        .find_map(|w| w.get(i).copied().flatten())
                        .map_or(0.0, |p| p.threshold as f64),
                }
            })
            .collect();
        Some(VmDrillDown {
            rollout_id: rollout_id.to_string(),
            vm_id: vm_id.to_string(),
            t_ms: trail.times.iter().copied().collect(),
            metrics,
            failure_risk: trail.risk.iter().map(|r| r.map(f64::from)).collect(),
            drivers: trail.drivers.clone(),
            risk_threshold: None,
            wave: None,
            wave_started_at: None,
        })
    }
}

/// `GET /api/rollouts/{rollout_id}/vms/{vm_id}`: chart columns, one value
/// per window in `t_ms` (window ends, milliseconds since the epoch, for
/// plotting), `null` where the VM was not scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmDrillDown {
    /// The rollout.
    pub rollout_id: String,
    /// The VM.
    pub vm_id: String,
    /// Window ends, milliseconds since the epoch.
    pub t_ms: Vec<i64>,
    /// Each metric's columns.
    pub metrics: Vec<MetricTrail>,
    /// The predicted failure risk per window (null: no failure model).
    pub failure_risk: Vec<Option<f64>>,
    /// What drove the latest risk, largest first.
    pub drivers: Vec<RiskDriver>,
    /// The risk at which bellwether rolls a VM back (null: not acted on).
    pub risk_threshold: Option<f64>,
    /// The wave that patched it, from 1.
    pub wave: Option<usize>,
    /// When that wave's patch commands were issued (RFC 3339).
    #[serde(default, with = "bellwether_schemas::time::rfc3339::option")]
    pub wave_started_at: Option<bellwether_schemas::EventTime>,
}

/// One metric of a [`VmDrillDown`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricTrail {
    /// The metric.
    pub metric: String,
    /// Mean observed per window.
    pub observed: Vec<Option<f64>>,
    /// The VM's own forecast.
    pub forecast: Vec<Option<f64>>,
    /// The forecast interval: forecast minus and plus the threshold in sigmas.
    pub forecast_low: Vec<Option<f64>>,
    /// Its upper edge.
    pub forecast_high: Vec<Option<f64>>,
    /// The cohort's band: where the unpatched peers' concurrent move puts
    /// this VM, plus and minus the threshold (null: no control that window).
    pub cohort_low: Vec<Option<f64>>,
    /// Its upper edge.
    pub cohort_high: Vec<Option<f64>>,
    /// The latest threshold, in sigmas.
    pub threshold: f64,
}

/// The handler.
pub async fn get(
    State(state): State<AppState>,
    Path((rollout_id, vm_id)): Path<(String, String)>,
) -> Response {
    match state.monitor.drill_down(&rollout_id, &vm_id) {
        Some(d) => axum::Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!(
                "no drill-down of `{vm_id}` in rollout `{rollout_id}`: not a patched VM of it, \
                 or past the first {MAX_VMS} patched VMs kept"
            ) })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(t: i64, observed: f64, peers: Option<f64>) -> ScoreRecord {
        let deviation = (observed - 100.0) / 10.0;
        crate::monitor::test_support::score(
            "vm-1",
            t,
            "response_time_ms",
            (observed, deviation),
            peers.map(|d| (d, None)),
        )
    }

    #[test]
    fn the_forecast_interval_and_cohort_band_come_from_the_verdicts() {
        let mut trails = Trails::default();
        trails.add("r", &score(300_000, 150.0, Some(2.0)));
        trails.add("r", &score(600_000, 100.0, None));
        let d = trails.get("r", "vm-1").unwrap();
        assert_eq!(d.t_ms, vec![300_000, 600_000]);
        let m = &d.metrics[0];
        // sigma 10 (deviation 5 for 50 over forecast), threshold 4.
        assert_eq!(m.forecast_low[0], Some(60.0));
        assert_eq!(m.forecast_high[0], Some(140.0));
        // Peers moved +2 sigmas: the cohort's band is centred on 120.
        assert_eq!(
            (m.cohort_low[0], m.cohort_high[0]),
            (Some(80.0), Some(160.0))
        );
        assert_eq!(m.cohort_low[1], None);
        // At deviation 0 the residual RMSE is the sigma.
        assert_eq!(m.forecast_high[1], Some(120.0));
        assert!(trails.get("r", "vm-2").is_none());
    }

    #[test]
    fn it_keeps_the_last_windows_of_the_first_vms() {
        let mut trails = Trails::default();
        for w in 0..(WINDOWS as i64 + 10) {
            trails.add("r", &score(w * 300_000, 100.0, None));
        }
        assert_eq!(trails.get("r", "vm-1").unwrap().t_ms.len(), WINDOWS);
        for i in 0..MAX_VMS + 5 {
            let mut s = score(0, 100.0, None);
            s.vm_id = format!("vm-x{i}");
            trails.add("r", &s);
        }
        assert!(trails.get("r", "vm-x0").is_some());
        assert!(trails.get("r", &format!("vm-x{}", MAX_VMS + 2)).is_none());
    }
}
