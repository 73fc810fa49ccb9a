//! Watching bellwether: Prometheus series ([`telemetry`]), the dashboard's
//! model of the fleet ([`view`]) and the HTTP server that serves both
//! ([`server`]).
//!
//! A [`Monitor`] is shared by the pipeline (which feeds it what crosses the
//! control topic, the scores and the actor's state) and the server (which
//! reads it). Feeding it costs a lock and a few map updates per message.

pub(crate) mod api_reference;
pub(crate) mod config;
pub(crate) mod content;
pub(crate) mod drilldown;
pub(crate) mod groups;
pub(crate) mod guard;
pub(crate) mod inventory;
pub(crate) mod listener;
pub(crate) mod live;
pub(crate) mod openapi;
pub(crate) mod outcomes;
pub(crate) mod patches;
pub(crate) mod report;
pub(crate) mod rollouts;
pub mod server;
pub mod telemetry;
pub(crate) mod view;
pub(crate) mod waves;

use crate::inventory::Inventory;
use bellwether_schemas::{ControlMessage, RolloutState, ScoreRecord};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use telemetry::Telemetry;
use tokio::sync::watch;
use view::{FleetView, Snapshot};

/// The shared handle.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Inner>,
}

struct Inner {
    view: Mutex<FleetView>,
    telemetry: Telemetry,
    dirty: AtomicBool,
    version: watch::Sender<u64>,
}

impl Monitor {
    /// A monitor of `inventory`'s fleet, scored by `forecaster`.
    pub fn new(inventory: &Inventory, forecaster: &str) -> Monitor {
        let telemetry = Telemetry::new();
        telemetry.model_in_use(forecaster, env!("CARGO_PKG_VERSION"));
        Monitor {
            inner: Arc::new(Inner {
                view: Mutex::new(FleetView::new(inventory, forecaster)),
                telemetry,
                dirty: AtomicBool::new(false),
                version: watch::Sender::new(0),
            }),
        }
    }

    /// The Prometheus series.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    fn view(&self) -> MutexGuard<'_, FleetView> {
        self.inner.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one control-topic message.
    pub fn on_control(&self, message: &ControlMessage) {
        if let ControlMessage::WindowReport(w) = message {
            self.inner
                .telemetry
                .patched_vms_silent
                .set(w.missing.len() as i64);
        }
        self.view().on_control(message);
        self.inner.dirty.store(true, Ordering::Relaxed);
    }

    /// Takes in the in-process rollout actor's new events: failed
    /// actuations are counted, and a state change's reason is kept for the
    /// rollout's page (why it halted, what next).
    pub fn on_actor_events(&self, events: &[bellwether_schemas::RolloutEvent]) {
        use bellwether_schemas::RolloutEventKind;
        for e in events {
            match &e.kind {
                RolloutEventKind::ActuationFailed { action, vm_id, .. } => {
                    self.inner
                        .telemetry
                        .actuations_failed
                        .with_label_values(&[action.as_str()])
                        .inc();
                    self.view()
                        .on_actuation_failed(&e.rollout_id, vm_id, action);
                    self.inner.dirty.store(true, Ordering::Relaxed);
                }
                RolloutEventKind::ManualControl {
                    action, applied, ..
                } => {
                    self.view()
                        .on_manual_applied(&e.rollout_id, action, *applied);
                    self.inner.dirty.store(true, Ordering::Relaxed);
                }
                RolloutEventKind::StateChanged { to, why, .. } => {
                    self.view().on_state_reason(&e.rollout_id, *to, why);
                    self.inner.dirty.store(true, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    /// Rollout `id`'s canary report (see [`report`]).
    pub fn report(&self, id: &str) -> Option<report::Report> {
        self.view().report(id)
    }

    /// When the in-process actor's baking wave of `rollout_id` has baked
    /// (None: nothing bakes), for the page's bake timer.
    pub fn on_bake(&self, rollout_id: &str, ends: Option<bellwether_schemas::EventTime>) {
        if self.view().on_bake(rollout_id, ends) {
            self.inner.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The failure risk at which the scoring stage rolls a VM back (None:
    /// risks are not acted on), drawn on the drill-down's risk chart.
    pub fn set_risk_threshold(&self, at: Option<f64>) {
        self.view().set_risk_threshold(at);
    }

    /// A patched VM's recent windows (see [`drilldown`]).
    pub fn drill_down(&self, rollout_id: &str, vm_id: &str) -> Option<drilldown::VmDrillDown> {
        self.view().drill_down(rollout_id, vm_id)
    }

    /// True when rollout `id` was approved, submitted or reported so far.
    pub fn has_rollout(&self, id: &str) -> bool {
        self.view().has_rollout(id)
    }

    /// The inventory as the control topic changed it so far.
    pub fn inventory(&self) -> Arc<Inventory> {
        self.view().inventory()
    }

    /// The approval rules last put in force on the control topic (none:
    /// the config's are in force).
    pub fn rules(&self) -> Option<crate::approval::rules::ApprovalConfig> {
        self.view().rules()
    }

    /// The fleet's noise as the scoring stage last reported it (for
    /// planning canary stages: `rollout.detect`).
    pub fn noise(&self) -> Option<bellwether_schemas::FleetNoise> {
        self.view().noise()
    }

    /// Takes in one score.
    pub fn on_score(&self, score: &ScoreRecord) {
        self.view().on_score(score);
        self.inner.dirty.store(true, Ordering::Relaxed);
    }

    /// Takes in the in-process rollout actor's state (called every turn;
    /// only a change is published).
    pub fn on_actor(
        &self,
        rollout_id: &str,
        state: RolloutState,
        waves_planned: usize,
        paused: bool,
    ) {
        if self
            .view()
            .on_actor(rollout_id, state, waves_planned, paused)
        {
            self.inner.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Publishes what changed since the last call: the rollout series are
    /// updated and the dashboards told. Called once per pipeline turn.
    pub fn publish(&self) {
        if !self.inner.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let snapshot = self.snapshot();
        let t = &self.inner.telemetry;
        for r in &snapshot.rollouts {
            for state in view::STATES.iter().chain([&r.state.as_str()]) {
                t.rollout_state
                    .with_label_values(&[r.id.as_str(), state])
                    .set(i64::from(*state == r.state));
            }
            t.patched_ratio
                .with_label_values(&[&r.id])
                .set(r.patched_percent / 100.0);
            t.rolled_back
                .with_label_values(&[&r.id])
                .set(r.rollbacks.len() as i64);
            let last = r.anomaly.last().map_or(0.0, |p| p.max);
            t.anomaly_score.with_label_values(&[&r.id]).set(last);
            if let Some(risk) = r.failure_risk {
                t.failure_risk.with_label_values(&[&r.id]).set(risk);
            }
            for g in &r.groups {
                t.group_health
                    .with_label_values(&[&r.id, &g.name])
                    .set(g.health.level());
            }
            for w in &r.waves {
                t.wave_patched
                    .with_label_values(&[&r.id, &w.wave.to_string()])
                    .set(w.patched as i64);
            }
        }
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// What the dashboard shows now.
    pub fn snapshot(&self) -> Snapshot {
        self.view().snapshot()
    }

    /// Changes as they are published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }
}

/// Test support shared by the monitor's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use bellwether_schemas::{Direction, EventTime, MetricVerdict, PeerEvidence, ScoreRecord};

    /// A patched VM's score in rollout `r` for the window ending at `t`: one
    /// metric, `observed` against a forecast of 100 at `deviation` sigmas
    /// (threshold 4), its cohort moved `peer` sigmas (None: no control).
    pub(crate) fn score(
        vm: &str,
        t: i64,
        metric: &str,
        (observed, deviation): (f64, f64),
        peer: Option<(f64, Option<f64>)>,
    ) -> ScoreRecord {
        ScoreRecord {
            vm_id: vm.into(),
            window_start: EventTime(t - 300_000),
            window_end: EventTime(t),
            rollout_id: Some("r".into()),
            forecaster: "f".into(),
            residual_rmse: 0.0,
            anomaly_score: 0.0,
            anomalous: deviation > 4.0,
            verdicts: vec![MetricVerdict {
                metric: metric.into(),
                observed,
                forecast: 100.0,
                residual_rmse: 5.0,
                baseline_mean: 100.0,
                deviation,
                threshold: 4.0,
                direction: Direction::Increase,
                anomalous: deviation > 4.0,
                peers: peer.map(|(d, p)| PeerEvidence {
                    cohort: "whole fleet".into(),
                    control_vms: 20,
                    peer_deviation: d,
                    vs_peers: deviation - d,
                    mann_whitney_p: p,
                    shift_sigma: None,
                    test_windows: 3,
                }),
            }],
            failure: None,
        }
    }
}
