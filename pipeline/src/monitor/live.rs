//! `GET /api/events`: the dashboard's live feed. A `snapshot` event at
//! once, then `delta` events, at most four a second: the fleet line, the
//! rollouts' order, and only the rollouts that changed, each with only the
//! anomaly points it has not sent yet (the last one again when its window
//! is still open) and only the rollbacks that are new or were carried out
//! since. A page merges them (`app.js`).

use super::Monitor;
use super::view::{RolloutSnapshot, Snapshot};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

/// Events a second, at most.
const MAX_UPDATES_PER_SEC: u64 = 4;

/// What one connection sent so far, per rollout.
#[derive(Debug, Default)]
pub struct Sent {
    /// The rollout without its anomaly points, as last sent.
    body: HashMap<String, String>,
    /// The last anomaly point sent: time, highest, mean.
    anomaly_last: HashMap<String, (i64, f64, f64)>,
    /// Per rollout and VM: the rollback sent, and whether as carried out.
    rollbacks: HashMap<(String, String), bool>,
}

/// A `delta` event's data.
#[derive(Debug, Serialize)]
pub struct Delta {
    fleet_size: usize,
    #[serde(with = "bellwether_schemas::time::rfc3339::option")]
    fleet_time: Option<bellwether_schemas::EventTime>,
    vms_scored: usize,
    forecaster: String,
    /// Every rollout's id, newest first.
    order: Vec<String>,
    /// The rollouts that changed; `anomaly` holds the new points only,
    /// `rollbacks` the new or newly carried-out ones (by `vm`).
    rollouts: Vec<RolloutSnapshot>,
}

impl Sent {
    /// Notes `snapshot` as sent whole.
    pub fn all(&mut self, snapshot: &Snapshot) {
        for r in &snapshot.rollouts {
            self.changed(r.clone());
        }
    }

    /// What changed since the last call, as a delta.
    pub fn delta(&mut self, snapshot: Snapshot) -> Delta {
        let order = snapshot.rollouts.iter().map(|r| r.id.clone()).collect();
        let rollouts: Vec<RolloutSnapshot> = snapshot
            .rollouts
            .into_iter()
            .filter_map(|r| self.changed(r))
            .collect();
        Delta {
            fleet_size: snapshot.fleet_size,
            fleet_time: snapshot.fleet_time,
            vms_scored: snapshot.vms_scored,
            forecaster: snapshot.forecaster,
            order,
            rollouts,
        }
    }

    /// `r` with only its unsent anomaly points, if anything of it changed.
    fn changed(&mut self, mut r: RolloutSnapshot) -> Option<RolloutSnapshot> {
        let anomaly = std::mem::take(&mut r.anomaly);
        let rollbacks: Vec<_> = std::mem::take(&mut r.rollbacks)
            .into_iter()
            .filter(|b| {
                let key = (r.id.clone(), b.vm.clone());
                let done = b.executed_at.is_some();
                self.rollbacks.insert(key, done) != Some(done)
            })
            .collect();
        let body = serde_json::to_string(&r).unwrap_or_default();
        let last = self.anomaly_last.get(&r.id).copied();
        // Points after the last sent, and the last sent again if its window
        // filled since.
        let fresh: Vec<_> = anomaly
            .into_iter()
            .filter(|p| match last {
                None => true,
                Some((t, max, mean)) => p.t > t || (p.t == t && (p.max, p.mean) != (max, mean)),
            })
            .collect();
        if self.body.get(&r.id) == Some(&body) && fresh.is_empty() && rollbacks.is_empty() {
            return None;
        }
        if let Some(p) = fresh.last() {
            self.anomaly_last.insert(r.id.clone(), (p.t, p.max, p.mean));
        }
        self.body.insert(r.id.clone(), body);
        r.anomaly = fresh;
        r.rollbacks = rollbacks;
        Some(r)
    }
}

/// The handler.
pub async fn events(
    State(monitor): State<Monitor>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = monitor.subscribe();
    let stream = stream::unfold(
        (monitor, updates, None::<Sent>),
        |(monitor, mut updates, sent)| async move {
            let Some(mut sent) = sent else {
                let snapshot = monitor.snapshot();
                let mut sent = Sent::default();
                sent.all(&snapshot);
                let json = serde_json::to_string(&snapshot).unwrap_or_default();
                let event = Event::default().event("snapshot").data(json);
                return Some((Ok(event), (monitor, updates, Some(sent))));
            };
            updates.changed().await.ok()?;
            tokio::time::sleep(Duration::from_millis(1000 / MAX_UPDATES_PER_SEC)).await;
            updates.mark_unchanged();
            let delta = sent.delta(monitor.snapshot());
            let json = serde_json::to_string(&delta).unwrap_or_default();
            let event = Event::default().event("delta").data(json);
            Some((Ok(event), (monitor, updates, Some(sent))))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::view::ScorePoint;

    fn rollout(points: &[(i64, f64)], state: &str) -> RolloutSnapshot {
        serde_json::from_value(serde_json::json!({
            "id": "r", "patch_id": "KB", "patch_title": "", "approved_by": "", "approval": "",
            "state": state, "patched": 1, "patched_percent": 1.0, "waves": [], "waves_planned": null,
            "groups": [], "anomaly": points.iter().map(|(t, m)| ScorePoint { t: *t, max: *m, mean: *m })
                .map(|p| serde_json::json!({"t": p.t, "max": p.max, "mean": p.mean})).collect::<Vec<_>>(),
            "top_vms": [], "failure_risk": null, "rollbacks": []
        }))
        .unwrap()
    }

    fn snapshot(r: RolloutSnapshot) -> Snapshot {
        Snapshot {
            fleet_size: 300,
            fleet_time: None,
            vms_scored: 300,
            forecaster: "f".into(),
            rollouts: vec![r],
        }
    }

    #[test]
    fn a_delta_carries_only_what_changed() {
        let mut sent = Sent::default();
        sent.all(&snapshot(rollout(&[(1, 0.1), (2, 0.2)], "baking")));
        // Nothing new: no rollout in the delta.
        let d = sent.delta(snapshot(rollout(&[(1, 0.1), (2, 0.2)], "baking")));
        assert!(d.rollouts.is_empty());
        assert_eq!(d.order, vec!["r".to_string()]);
        // The open window moved, and a new one: those two points only.
        let d = sent.delta(snapshot(rollout(&[(1, 0.1), (2, 0.3), (3, 0.4)], "baking")));
        let t: Vec<i64> = d.rollouts[0].anomaly.iter().map(|p| p.t).collect();
        assert_eq!(t, vec![2, 3]);
        // A state change alone: the rollout again, no old points.
        let d = sent.delta(snapshot(rollout(&[(1, 0.1), (2, 0.3), (3, 0.4)], "halted")));
        assert_eq!(d.rollouts[0].state, "halted");
        assert!(d.rollouts[0].anomaly.is_empty());
        // A rollback is sent when decided and when carried out, not after.
        let points = [(1, 0.1), (2, 0.3), (3, 0.4)];
        let with = |executed: bool| {
            let mut r = rollout(&points, "halted");
            r.rollbacks = serde_json::from_value(serde_json::json!([{
                "vm": "vm-1", "critical": false, "reason": "x", "evidence": [],
                "decided_at": "2026-11-03T06:00:00Z",
                "executed_at": if executed { serde_json::json!("2026-11-03T06:05:00Z") } else { serde_json::Value::Null }
            }]))
            .unwrap();
            snapshot(r)
        };
        assert_eq!(sent.delta(with(false)).rollouts[0].rollbacks.len(), 1);
        assert!(sent.delta(with(false)).rollouts.is_empty());
        assert_eq!(sent.delta(with(true)).rollouts[0].rollbacks.len(), 1);
        assert!(sent.delta(with(true)).rollouts.is_empty());
    }
}
