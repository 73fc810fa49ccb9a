//! What the dashboard shows, built from what crosses the control topic
//! (approvals, patch and rollback commands, execution records, window
//! reports), the scores of patched VMs and, when the rollout actor runs in
//! the same process, its state.

use crate::inventory::Inventory;
use bellwether_schemas::{Action, ControlMessage, EventTime, RolloutState, ScoreRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A VM whose last anomaly score reaches this is shown yellow.
pub const YELLOW_SCORE: f64 = 0.5;
/// Every state a rollout's page and `bellwether_rollout_state` name: the
/// actor's, and those told from the commands alone.
pub const STATES: [&str; 12] = [
    "waiting_for_approval",
    "rejected",
    "approved",
    "pending",
    "canary",
    "baking",
    "advancing",
    "deploying",
    "halted",
    "rolling_back",
    "completed",
    "rolled_back",
];

/// Anomaly-score points kept per rollout (a day of five-minute windows).
const SCORE_POINTS: usize = 288;

/// Health of a canary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every patched VM of the group looks as forecast.
    Green,
    /// A patched VM is drifting (anomaly score at least 0.5).
    Yellow,
    /// A VM of the group was found anomalous or rolled back.
    Red,
}

impl Health {
    /// 0 green, 1 yellow, 2 red (the Prometheus value).
    pub fn level(self) -> i64 {
        self as i64
    }
}

/// The fleet and its rollouts as the dashboard shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// VMs in the fleet.
    pub fleet_size: usize,
    /// Event time of the last scored window (RFC 3339).
    #[serde(with = "bellwether_schemas::time::rfc3339::option")]
    pub fleet_time: Option<EventTime>,
    /// VMs scored in that window.
    pub vms_scored: usize,
    /// Forecaster in use.
    pub forecaster: String,
    /// Rollouts, newest first.
    pub rollouts: Vec<RolloutSnapshot>,
}

/// One rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutSnapshot {
    /// Rollout id.
    pub id: String,
    /// Patch id.
    pub patch_id: String,
    /// Patch title.
    pub patch_title: String,
    /// Who approved it.
    pub approved_by: String,
    /// The approval: who approved it, or what the submitted patch waits
    /// for (a human, its rule's delay), or who rejected it.
    pub approval: String,
    /// State (from the actor when it runs here, else from the commands seen).
    pub state: String,
    /// Why the rollout is in its state, as the actor said (when it runs
    /// here), e.g. what halted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// True while an operator has it paused (no next wave starts).
    #[serde(default)]
    pub paused: bool,
    /// When the wave baking now has baked (RFC 3339; when the actor runs
    /// here and a wave bakes).
    #[serde(default, with = "bellwether_schemas::time::rfc3339::option")]
    pub bake_ends_at: Option<EventTime>,
    /// VMs running the patch now.
    pub patched: usize,
    /// Percent of the fleet running the patch now.
    pub patched_percent: f64,
    /// Waves: VMs commanded and VMs running the patch.
    pub waves: Vec<WaveSnapshot>,
    /// Waves the plan has (when the actor runs here).
    pub waves_planned: Option<usize>,
    /// Canary groups and their health.
    pub groups: Vec<GroupSnapshot>,
    /// Anomaly score of the patched VMs over time.
    pub anomaly: Vec<ScorePoint>,
    /// The patched VMs with the highest last score.
    pub top_vms: Vec<VmScore>,
    /// Predicted failure risk; None until a failure model is loaded.
    pub failure_risk: Option<f64>,
    /// Rolled-back VMs, in the order the rollbacks were decided.
    pub rollbacks: Vec<RollbackSnapshot>,
    /// What operators asked of the rollout (pause, resume, ...), oldest first.
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
}

/// One operator's command, as the control topic carried it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it was asked (RFC 3339, the operator's clock).
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub at: EventTime,
    /// Who.
    pub by: String,
    /// `pause`, `resume`, `promote`, `abort`, `rollback` or `approve`.
    pub action: String,
    /// Why, as they said.
    pub reason: String,
    /// Whether the actor applied it (None: not known here yet); a pause of
    /// a halted rollout, say, is not applied.
    #[serde(default)]
    pub applied: Option<bool>,
}

/// One wave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaveSnapshot {
    /// Wave number, from 1.
    pub wave: usize,
    /// VMs it was to patch.
    pub vms: usize,
    /// Of those, running the patch now.
    pub patched: usize,
    /// Of those on the patch, looking as forecast (not anomalous, last
    /// anomaly score under 0.5).
    #[serde(default)]
    pub healthy: usize,
    /// Of those, rolled back (patched, then returned to the old version).
    pub rolled_back: usize,
    /// Of those, the actuator could not patch (after its retries):
    /// `vms - patched - rolled_back - failed` are still to be patched.
    #[serde(default)]
    pub failed: usize,
    /// When its first patch command was issued (RFC 3339).
    #[serde(default, with = "bellwether_schemas::time::rfc3339::option")]
    pub started_at: Option<EventTime>,
}

/// One canary group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// Group name.
    pub name: String,
    /// VMs in the group.
    pub vms: usize,
    /// Of those, patched in this rollout (now or before a rollback).
    pub reached: usize,
    /// Health.
    pub health: Health,
}

/// Anomaly scores of one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScorePoint {
    /// Window end.
    pub t: i64,
    /// Highest score.
    pub max: f64,
    /// Mean score.
    pub mean: f64,
}

/// A VM's last score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmScore {
    /// VM.
    pub vm: String,
    /// Anomaly score.
    pub score: f64,
}

/// One rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackSnapshot {
    /// VM.
    pub vm: String,
    /// Critical VM.
    pub critical: bool,
    /// What set it off: `anomaly`, `predicted_failure`, `wave`, `operator`, ...
    #[serde(default)]
    pub trigger: String,
    /// One-line reason.
    pub reason: String,
    /// Per-metric evidence.
    pub evidence: Vec<Evidence>,
    /// When it was decided (RFC 3339).
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub decided_at: EventTime,
    /// When it was carried out (RFC 3339; None: not yet).
    #[serde(with = "bellwether_schemas::time::rfc3339::option")]
    pub executed_at: Option<EventTime>,
}

/// One metric's evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// Metric.
    pub metric: String,
    /// Observed value.
    pub observed: f64,
    /// Forecast.
    pub forecast: f64,
    /// Deviation in sigmas.
    pub deviation: f64,
    /// Threshold in sigmas.
    pub threshold: f64,
}

#[derive(Debug, Default)]
struct Rollout {
    id: String,
    patch_id: String,
    patch_title: String,
    approved_by: String,
    approval: String,
    state: Option<RolloutState>,
    state_reason: Option<String>,
    bake_ends: Option<EventTime>,
    failed: BTreeSet<String>,
    paused: bool,
    waves_planned: Option<usize>,
    wave_of: HashMap<String, usize>,
    wave_started: BTreeMap<usize, EventTime>,
    patched: BTreeSet<String>,
    reached: BTreeSet<String>,
    anomalous: BTreeSet<String>,
    last_score: HashMap<String, f64>,
    /// Per VM: its last predicted failure risk.
    last_risk: HashMap<String, f64>,
    window: Option<(i64, f64, f64, usize)>,
    anomaly: VecDeque<ScorePoint>,
    rollbacks: Vec<RollbackSnapshot>,
    audit: Vec<AuditEntry>,
    report: super::report::CanaryReport,
    started: u64,
}

/// The dashboard's model of the fleet.
pub struct FleetView {
    inventory: Arc<Inventory>,
    /// The approval rules last put in force on the control topic.
    rules: Option<crate::approval::rules::ApprovalConfig>,
    fleet_size: usize,
    groups: Vec<(String, BTreeSet<String>)>,
    rollouts: BTreeMap<String, Rollout>,
    fleet_time: Option<EventTime>,
    vms_scored: usize,
    forecaster: String,
    arrivals: u64,
    /// The fleet's noise as the scoring stage last reported it.
    noise: Option<bellwether_schemas::FleetNoise>,
    /// Patched VMs' recent windows, for their drill-down.
    trails: super::drilldown::Trails,
    /// The failure risk the scoring stage acts at.
    risk_threshold: Option<f64>,
}

impl FleetView {
    /// A view of `inventory`'s fleet and canary groups.
    pub fn new(inventory: &Inventory, forecaster: &str) -> FleetView {
        FleetView {
            inventory: Arc::new(inventory.clone()),
            rules: None,
            fleet_size: inventory.vms().len(),
            groups: group_members(inventory),
            rollouts: BTreeMap::new(),
            fleet_time: None,
            vms_scored: 0,
            forecaster: forecaster.to_string(),
            arrivals: 0,
            noise: None,
            trails: super::drilldown::Trails::default(),
            risk_threshold: None,
        }
    }

    /// The inventory as the control topic changed it so far.
    pub fn inventory(&self) -> Arc<Inventory> {
        self.inventory.clone()
    }

    /// The approval rules last put in force on the control topic (none:
    /// the config's are in force).
    pub fn rules(&self) -> Option<crate::approval::rules::ApprovalConfig> {
        self.rules.clone()
    }

    /// The fleet's noise as last reported on the control topic.
    pub fn noise(&self) -> Option<bellwether_schemas::FleetNoise> {
        self.noise.clone()
    }

    /// The canary report of rollout `id` (see [`super::report`]).
    pub fn report(&self, id: &str) -> Option<super::report::Report> {
        self.rollouts.get(id).map(|r| r.report.snapshot(id))
    }

    /// The drill-down of a patched VM (see [`super::drilldown`]).
    pub fn drill_down(
        &self,
        rollout_id: &str,
        vm_id: &str,
    ) -> Option<super::drilldown::VmDrillDown> {
        let mut d = self.trails.get(rollout_id, vm_id)?;
        d.risk_threshold = self.risk_threshold;
        if let Some(r) = self.rollouts.get(rollout_id)
            && let Some(wave) = r.wave_of.get(vm_id)
        {
            d.wave = Some(wave + 1);
            d.wave_started_at = r.wave_started.get(wave).copied();
        }
        Some(d)
    }

    /// Takes in when rollout `rollout_id`'s baking wave has baked; true
    /// when it changed.
    pub fn on_bake(&mut self, rollout_id: &str, ends: Option<EventTime>) -> bool {
        let r = self.rollout(rollout_id);
        let changed = r.bake_ends != ends;
        r.bake_ends = ends;
        changed
    }

    /// Takes in the failure risk the scoring stage acts at.
    pub fn set_risk_threshold(&mut self, at: Option<f64>) {
        self.risk_threshold = at;
    }

    /// True when the control topic (or the scores) named rollout `id`.
    pub fn has_rollout(&self, id: &str) -> bool {
        self.rollouts.contains_key(id)
    }

    fn rollout(&mut self, id: &str) -> &mut Rollout {
        let arrivals = &mut self.arrivals;
        self.rollouts.entry(id.to_string()).or_insert_with(|| {
            *arrivals += 1;
            Rollout {
                id: id.to_string(),
                started: *arrivals,
                ..Rollout::default()
            }
        })
    }

    /// Takes in one control-topic message.
    pub fn on_control(&mut self, message: &ControlMessage) {
        match message {
            ControlMessage::Approval(a) => {
                let r = self.rollout(&a.rollout_id);
                r.patch_id = a.patch.id.clone();
                r.patch_title = a.patch.title.clone();
                r.approved_by = a.approved_by.clone();
                r.approval = format!("approved by {}", a.approved_by);
            }
            ControlMessage::Submission(s) => {
                let r = self.rollout(&s.rollout_id);
                r.patch_id = s.patch.id.clone();
                r.patch_title = s.patch.title.clone();
                if r.approved_by.is_empty() {
                    r.approval = s.decision.as_ref().map_or_else(
                        || "submitted: the rules decide".into(),
                        crate::approval::rules::describe,
                    );
                }
            }
            ControlMessage::ApprovalRules(u) => self.rules = Some(u.rules.clone()),
            ControlMessage::Patch(p) => {
                let r = self.rollout(&p.rollout_id);
                if r.patch_id.is_empty() {
                    r.patch_id = p.patch_id.clone();
                }
                r.wave_of.insert(p.vm_id.clone(), p.wave);
                let started = r.wave_started.entry(p.wave).or_insert(p.issued_at);
                *started = (*started).min(p.issued_at);
            }
            ControlMessage::Rollback(c) => {
                let r = self.rollout(&c.rollout_id);
                if r.rollbacks.iter().any(|b| b.vm == c.vm_id) {
                    return;
                }
                r.anomalous.insert(c.vm_id.clone());
                r.rollbacks.push(RollbackSnapshot {
                    vm: c.vm_id.clone(),
                    critical: c.critical,
                    trigger: c.reason.trigger.as_str().to_string(),
                    reason: c.reason.summary.clone(),
                    evidence: c
                        .reason
                        .evidence
                        .iter()
                        .map(|v| Evidence {
                            metric: v.metric.clone(),
                            observed: v.observed,
                            forecast: v.forecast,
                            deviation: v.deviation,
                            threshold: v.threshold,
                        })
                        .collect(),
                    decided_at: c.issued_at,
                    executed_at: None,
                });
            }
            ControlMessage::Execution(e) => {
                let r = self.rollout(&e.rollout_id);
                match e.action {
                    Action::Patch => {
                        r.patched.insert(e.vm_id.clone());
                        r.reached.insert(e.vm_id.clone());
                    }
                    Action::Rollback => {
                        r.patched.remove(&e.vm_id);
                        if let Some(b) = r.rollbacks.iter_mut().find(|b| b.vm == e.vm_id) {
                            b.executed_at.get_or_insert(e.executed_at);
                        }
                    }
                }
            }
            ControlMessage::WindowReport(w) => {
                if self.fleet_time.is_none_or(|t| w.window_end >= t) {
                    self.fleet_time = Some(w.window_end);
                    self.vms_scored = w.vms_scored;
                    if w.noise.is_some() {
                        self.noise = w.noise.clone();
                    }
                }
            }
            ControlMessage::Manual(m) => {
                let r = self.rollout(&m.rollout_id);
                r.audit.push(AuditEntry {
                    at: m.at,
                    by: m.by.clone(),
                    action: m.action.as_str().to_string(),
                    reason: m.reason.clone(),
                    applied: None,
                });
                // A long-lived rollout keeps its latest 100.
                if r.audit.len() > 100 {
                    r.audit.remove(0);
                }
            }
            ControlMessage::Outcome(_) => {}
            ControlMessage::Inventory(u) => {
                if Arc::make_mut(&mut self.inventory).apply(&u.change).is_ok() {
                    self.fleet_size = self.inventory.vms().len();
                    self.groups = group_members(&self.inventory);
                }
            }
        }
    }

    /// Takes in the score of one patched VM in one window.
    pub fn on_score(&mut self, score: &ScoreRecord) {
        let Some(id) = &score.rollout_id else {
            return;
        };
        self.trails.add(id, score);
        let r = self.rollout(id);
        r.report.add(score);
        r.last_score
            .insert(score.vm_id.clone(), score.anomaly_score);
        if let Some(f) = &score.failure {
            r.last_risk.insert(score.vm_id.clone(), f.risk);
        }
        if score.anomalous {
            r.anomalous.insert(score.vm_id.clone());
        }
        let t = score.window_end.0;
        match &mut r.window {
            Some((wt, max, sum, n)) if *wt == t => {
                *max = max.max(score.anomaly_score);
                *sum += score.anomaly_score;
                *n += 1;
            }
            window => {
                if let Some((wt, max, sum, n)) = window.take() {
                    push_point(&mut r.anomaly, wt, max, sum, n);
                }
                *window = Some((t, score.anomaly_score, score.anomaly_score, 1));
            }
        }
    }

    /// Takes in the state of the rollout actor running in this process;
    /// true when it changed.
    pub fn on_actor(
        &mut self,
        rollout_id: &str,
        state: RolloutState,
        waves_planned: usize,
        paused: bool,
    ) -> bool {
        let r = self.rollout(rollout_id);
        let changed =
            r.state != Some(state) || r.waves_planned != Some(waves_planned) || r.paused != paused;
        r.state = Some(state);
        r.waves_planned = Some(waves_planned);
        r.paused = paused;
        changed
    }

    /// Takes in a command the actuator could not carry out.
    pub fn on_actuation_failed(&mut self, rollout_id: &str, vm_id: &str, action: &str) {
        if action == "patch" {
            self.rollout(rollout_id).failed.insert(vm_id.to_string());
        }
    }

    /// Takes in whether the actor applied an operator's `action`: the
    /// oldest audit entry of that action not yet settled.
    pub fn on_manual_applied(&mut self, rollout_id: &str, action: &str, applied: bool) {
        let r = self.rollout(rollout_id);
        if let Some(entry) = r
            .audit
            .iter_mut()
            .find(|a| a.action == action && a.applied.is_none())
        {
            entry.applied = Some(applied);
        }
    }

    /// Takes in why the in-process actor moved rollout `rollout_id` to `state`.
    pub fn on_state_reason(&mut self, rollout_id: &str, state: RolloutState, why: &str) {
        let r = self.rollout(rollout_id);
        r.state = Some(state);
        r.state_reason = Some(why.to_string());
    }

    /// What the dashboard shows now.
    pub fn snapshot(&self) -> Snapshot {
        let mut rollouts: Vec<&Rollout> = self.rollouts.values().collect();
        rollouts.sort_by_key(|r| std::cmp::Reverse(r.started));
        Snapshot {
            fleet_size: self.fleet_size,
            fleet_time: self.fleet_time,
            vms_scored: self.vms_scored,
            forecaster: self.forecaster.clone(),
            rollouts: rollouts
                .into_iter()
                .map(|r| self.rollout_snapshot(r))
                .collect(),
        }
    }

    fn rollout_snapshot(&self, r: &Rollout) -> RolloutSnapshot {
        let rolled_back: BTreeSet<&str> = r
            .rollbacks
            .iter()
            .filter(|b| b.executed_at.is_some())
            .map(|b| b.vm.as_str())
            .collect();
        let mut waves: BTreeMap<usize, (usize, usize, usize, usize, usize)> = BTreeMap::new();
        for (vm, wave) in &r.wave_of {
            let w = waves.entry(*wave).or_default();
            let on = r.patched.contains(vm);
            w.0 += 1;
            w.1 += on as usize;
            w.2 += (!on && rolled_back.contains(vm.as_str())) as usize;
            w.3 += (!on && !r.reached.contains(vm) && r.failed.contains(vm)) as usize;
            w.4 += (on
                && !r.anomalous.contains(vm)
                && r.last_score.get(vm).is_none_or(|s| *s < YELLOW_SCORE))
                as usize;
        }
        let groups = self
            .groups
            .iter()
            .map(|(name, members)| {
                let reached: Vec<&String> = members.intersection(&r.reached).collect();
                let health = reached
                    .iter()
                    .map(|vm| {
                        if r.anomalous.contains(*vm) {
                            Health::Red
                        } else if r.last_score.get(*vm).is_some_and(|s| *s >= YELLOW_SCORE) {
                            Health::Yellow
                        } else {
                            Health::Green
                        }
                    })
                    .max()
                    .unwrap_or(Health::Green);
                GroupSnapshot {
                    name: name.clone(),
                    vms: members.len(),
                    reached: reached.len(),
                    health,
                }
            })
            .collect();
        let mut anomaly: Vec<ScorePoint> = r.anomaly.iter().cloned().collect();
        if let Some((t, max, sum, n)) = r.window {
            anomaly.push(ScorePoint {
                t,
                max,
                mean: sum / n as f64,
            });
        }
        let mut top: Vec<VmScore> = r
            .last_score
            .iter()
            .filter(|(vm, _)| r.patched.contains(*vm))
            .map(|(vm, s)| VmScore {
                vm: vm.clone(),
                score: *s,
            })
            .collect();
        top.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.vm.cmp(&b.vm)));
        top.truncate(5);
        RolloutSnapshot {
            id: r.id.clone(),
            patch_id: r.patch_id.clone(),
            patch_title: r.patch_title.clone(),
            approved_by: r.approved_by.clone(),
            approval: r.approval.clone(),
            state: r
                .state
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| derived_state(r)),
            state_reason: r.state_reason.clone(),
            paused: r.paused,
            bake_ends_at: r.bake_ends,
            patched: r.patched.len(),
            patched_percent: 100.0 * r.patched.len() as f64 / self.fleet_size.max(1) as f64,
            waves: waves
                .into_iter()
                .map(
                    |(wave, (vms, patched, rolled_back, failed, healthy))| WaveSnapshot {
                        wave: wave + 1,
                        vms,
                        patched,
                        healthy,
                        rolled_back,
                        failed,
                        started_at: r.wave_started.get(&wave).copied(),
                    },
                )
                .collect(),
            waves_planned: r.waves_planned,
            groups,
            anomaly,
            top_vms: top,
            failure_risk: r
                .last_risk
                .iter()
                .filter(|(vm, _)| r.patched.contains(*vm))
                .map(|(_, risk)| *risk)
                .reduce(f64::max)
                .or((!r.last_risk.is_empty()).then_some(0.0)),
            rollbacks: r.rollbacks.clone(),
            audit: r.audit.clone(),
        }
    }
}

fn push_point(points: &mut VecDeque<ScorePoint>, t: i64, max: f64, sum: f64, n: usize) {
    if points.len() == SCORE_POINTS {
        points.pop_front();
    }
    points.push_back(ScorePoint {
        t,
        max,
        mean: sum / n.max(1) as f64,
    });
}

/// The state as far as the commands tell (no actor in this process).
/// Each group's name and member ids.
fn group_members(inventory: &Inventory) -> Vec<(String, BTreeSet<String>)> {
    inventory
        .group_names()
        .into_iter()
        .map(|name| {
            let members = inventory
                .members(name)
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.id.clone())
                .collect();
            (name.to_string(), members)
        })
        .collect()
}

fn derived_state(r: &Rollout) -> String {
    if r.approved_by.is_empty() && r.wave_of.is_empty() && !r.approval.is_empty() {
        if r.approval.starts_with("rejected") {
            "rejected".into()
        } else {
            "waiting_for_approval".into()
        }
    } else if !r.rollbacks.is_empty() {
        "rolling_back".into()
    } else if !r.wave_of.is_empty() {
        "deploying".into()
    } else {
        "approved".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::simulator::{FleetSimulator, PatchQuality};
    use bellwether_schemas::{
        CommandId, Execution, PatchCommand, RollbackCommand, RollbackReason, RollbackTrigger,
    };

    fn view() -> (FleetView, Vec<String>, Vec<String>) {
        let config = Config::default_config();
        let vms =
            FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good).inventory();
        let inventory = Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let ring: Vec<String> = inventory
            .members("canary-ring")
            .unwrap()
            .iter()
            .map(|v| v.id.clone())
            .collect();
        let critical: Vec<String> = inventory
            .members("critical-systems")
            .unwrap()
            .iter()
            .map(|v| v.id.clone())
            .collect();
        (FleetView::new(&inventory, "test"), ring, critical)
    }

    fn patch(vm: &str, wave: usize) -> [ControlMessage; 2] {
        [
            ControlMessage::Patch(PatchCommand {
                command_id: CommandId::patch("r", vm),
                rollout_id: "r".into(),
                patch_id: "KB".into(),
                vm_id: vm.into(),
                wave,
                issued_at: EventTime(0),
            }),
            ControlMessage::Execution(Execution {
                command_id: CommandId::patch("r", vm),
                rollout_id: "r".into(),
                vm_id: vm.into(),
                action: Action::Patch,
                executed_at: EventTime(1),
                sequence: 0,
            }),
        ]
    }

    fn score(vm: &str, t: i64, s: f64) -> ScoreRecord {
        ScoreRecord {
            vm_id: vm.into(),
            window_start: EventTime(t - 300_000),
            window_end: EventTime(t),
            rollout_id: Some("r".into()),
            forecaster: "test".into(),
            residual_rmse: 0.0,
            anomaly_score: s,
            anomalous: false,
            verdicts: Vec::new(),
            failure: None,
        }
    }

    #[test]
    fn groups_turn_yellow_then_red_and_rollbacks_count_once() {
        let (mut v, ring, critical) = view();
        for m in patch(&ring[0], 0).iter().chain(&patch(&ring[1], 0)) {
            v.on_control(m);
        }
        v.on_score(&score(&ring[0], 600_000, 0.2));
        let s = v.snapshot();
        let r = &s.rollouts[0];
        assert_eq!(r.patched, 2);
        assert!((r.patched_percent - 200.0 / s.fleet_size as f64).abs() < 1e-9);
        let health = |r: &RolloutSnapshot, name: &str| {
            r.groups.iter().find(|g| g.name == name).unwrap().health
        };
        assert_eq!(health(r, "canary-ring"), Health::Green);
        assert!(!critical.contains(&ring[0]));

        v.on_score(&score(&ring[0], 900_000, 0.7));
        assert_eq!(
            health(&v.snapshot().rollouts[0], "canary-ring"),
            Health::Yellow
        );

        let rollback = ControlMessage::Rollback(RollbackCommand {
            command_id: CommandId::rollback("r", &ring[0]),
            rollout_id: "r".into(),
            vm_id: ring[0].clone(),
            critical: false,
            priority: 1,
            reason: RollbackReason {
                trigger: RollbackTrigger::Anomaly,
                summary: "response_time_ms 200 vs 100 expected".into(),
                evidence: Vec::new(),
                failure: None,
                wave: None,
            },
            issued_at: EventTime(900_000),
        });
        v.on_control(&rollback);
        v.on_control(&rollback);
        let s = v.snapshot();
        let r = &s.rollouts[0];
        assert_eq!(health(r, "canary-ring"), Health::Red);
        assert_eq!(r.rollbacks.len(), 1);
        assert_eq!(r.rollbacks[0].trigger, "anomaly");
        assert_eq!(r.rollbacks[0].executed_at, None);
        assert_eq!(r.waves[0].vms, 2);
        // Two windows of scores: one closed point and the open one.
        assert_eq!(r.anomaly.len(), 2);
        assert_eq!(r.anomaly[1].max, 0.7);
    }

    #[test]
    fn a_wave_counts_its_vms_on_the_patch_rolled_back_and_failed_to_patch() {
        let (mut v, ring, _) = view();
        for m in patch(&ring[0], 0).iter().chain(&patch(&ring[1], 0)) {
            v.on_control(m);
        }
        // A third VM's patch command, which the actuator could not carry out.
        v.on_control(&patch(&ring[2], 0)[0]);
        v.on_actuation_failed("r", &ring[2], "patch");
        v.on_bake("r", Some(EventTime(7_200_000)));
        let s = v.snapshot();
        let w = &s.rollouts[0].waves[0];
        assert_eq!((w.vms, w.patched, w.rolled_back, w.failed), (3, 2, 0, 1));
        assert_eq!(w.healthy, 2);
        // A drifting VM on the patch is not counted healthy.
        v.on_score(&score(&ring[0], 600_000, 0.7));
        assert_eq!(v.snapshot().rollouts[0].waves[0].healthy, 1);
        let d = v.drill_down("r", &ring[0]).unwrap();
        assert_eq!((d.wave, d.wave_started_at), (Some(1), Some(EventTime(0))));
        assert_eq!(s.rollouts[0].bake_ends_at, Some(EventTime(7_200_000)));
        let json = serde_json::to_value(&s.rollouts[0]).unwrap();
        assert_eq!(json["bake_ends_at"], "1970-01-01T02:00:00Z");
    }
}
