//! Commands and reports on the control topic.
//!
//! The scoring pipeline writes rollback commands and window reports; the
//! rollout actor writes patch commands; the rollout actor (and, in the
//! embedded demo, the simulated fleet) reads them all. Every command has an
//! id that is derived from what it does, so a command decided twice (after a
//! crash and replay) has the same id and is executed once.

use crate::{score::MetricVerdict, time::EventTime};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A command's unique id; executing the same id twice is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(pub String);

impl CommandId {
    /// The id of the patch command for `vm_id` in `rollout_id`.
    pub fn patch(rollout_id: &str, vm_id: &str) -> CommandId {
        CommandId(format!("{rollout_id}/patch/{vm_id}"))
    }

    /// The id of the rollback command for `vm_id` in `rollout_id`: one VM is
    /// rolled back at most once per rollout, whoever asks and however often.
    pub fn rollback(rollout_id: &str, vm_id: &str) -> CommandId {
        CommandId(format!("{rollout_id}/rollback/{vm_id}"))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Evidence for a rollback: the verdicts of the metrics that went wrong.
pub type MetricEvidence = MetricVerdict;

/// Deploy the rollout's patch to one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchCommand {
    /// Idempotency key.
    pub command_id: CommandId,
    /// The rollout.
    pub rollout_id: String,
    /// The patch.
    pub patch_id: String,
    /// The VM.
    pub vm_id: String,
    /// The wave, its index from 0 (its number from 1 in JSON:
    /// [`crate::wave::number`]).
    #[serde(with = "crate::wave::number")]
    pub wave: usize,
    /// When it was decided.
    pub issued_at: EventTime,
}

/// What set off a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTrigger {
    /// The VM's metrics left their forecast.
    Anomaly,
    /// The failure model expects the VM to fail soon.
    PredictedFailure,
    /// An operator asked for it.
    Operator,
    /// The rollback policy widened a rollback to this VM.
    Policy,
    /// The VM did not report again after its patch (a reboot it did not
    /// come back from): the command's status is not trusted.
    Recheck,
    /// The patched VMs of its wave, taken together, moved against their
    /// unpatched peers (each may be within its own noise).
    Wave,
}

impl RollbackTrigger {
    /// Its name on the wire (`predicted_failure`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackTrigger::Anomaly => "anomaly",
            RollbackTrigger::PredictedFailure => "predicted_failure",
            RollbackTrigger::Operator => "operator",
            RollbackTrigger::Policy => "policy",
            RollbackTrigger::Recheck => "recheck",
            RollbackTrigger::Wave => "wave",
        }
    }
}

/// Why a VM is rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackReason {
    /// What set it off.
    pub trigger: RollbackTrigger,
    /// One line for humans, e.g. `response_time_ms 212 vs 131 expected (+9.8σ)`.
    pub summary: String,
    /// The metrics that went wrong.
    pub evidence: Vec<MetricEvidence>,
    /// The predicted failure risk when the VM was rolled back, with the
    /// features that drove it (when a failure model is loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<crate::FailureRisk>,
    /// The wave's test that stopped it, when the trigger is
    /// [`RollbackTrigger::Wave`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<WaveEvidence>,
}

/// A wave's patched VMs, together, against their unpatched peers on one
/// metric: what stopped a rollout at the wave level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveEvidence {
    /// The wave, its index from 0 (its number from 1 in JSON and text).
    #[serde(with = "crate::wave::number")]
    pub wave: usize,
    /// The metric.
    pub metric: String,
    /// Patched VMs of the wave tested together.
    pub vms: usize,
    /// Their deviation against peers together, in sigmas of what chance
    /// gives a wave of that size.
    pub z: f64,
    /// The threshold it passed, in the same sigmas.
    pub threshold: f64,
    /// Their mean change against peers, in the metric's unit.
    pub mean_change: f64,
    /// That change relative to their mean baseline level (0.05 = 5%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_change: Option<f64>,
    /// The most windows any of those VMs was judged in.
    pub windows: u16,
}

impl fmt::Display for WaveEvidence {
    /// `wave 1 (15 VMs together): response_time_ms +6.20 (+4.8%) against
    /// unpatched peers, +7.1σ for a wave of that size (threshold 5.0σ), over 12 window(s)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let relative = self
            .relative_change
            .map(|r| format!(" ({:+.1}%)", 100.0 * r))
            .unwrap_or_default();
        write!(
            f,
            "wave {} ({} VMs together): {} {:+.2}{relative} against unpatched peers, \
             {:+.1}σ for a wave of that size (threshold {:.1}σ), over {} window(s)",
            self.wave + 1,
            self.vms,
            self.metric,
            self.mean_change,
            self.z,
            self.threshold,
            self.windows
        )
    }
}

/// Undo the rollout's patch on one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackCommand {
    /// Idempotency key.
    pub command_id: CommandId,
    /// The rollout.
    pub rollout_id: String,
    /// The VM.
    pub vm_id: String,
    /// True when the VM is critical.
    pub critical: bool,
    /// Higher goes first: critical VMs outrank the rest, then the worse anomaly.
    pub priority: u32,
    /// Why.
    pub reason: RollbackReason,
    /// When it was decided.
    pub issued_at: EventTime,
}

/// The scoring pipeline's account of one closed window, for the rollout
/// actor: the actor's clock, and what it needs to judge a baking wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Window start.
    pub window_start: EventTime,
    /// Window end; the actor's clock advances to it.
    pub window_end: EventTime,
    /// VMs scored in the window.
    pub vms_scored: usize,
    /// Patched VMs scored in the window.
    pub patched_scored: usize,
    /// Patched VMs judged anomalous in the window.
    pub anomalous: Vec<String>,
    /// Patched VMs that sent no data for the window.
    pub missing: Vec<String>,
    /// Patched VMs that sent data for the window (the rollout actor
    /// re-checks each VM after its patch with it).
    #[serde(default)]
    pub reported: Vec<String>,
    /// Rows that arrived after their window closed (counted, not merged), so far.
    pub late_rows_total: u64,
    /// The fleet's noise as measured so far, for planning canary stages
    /// (`rollout.detect`); absent before the baselines are learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<crate::FleetNoise>,
}

/// An operator (or an approval rule) approved a patch: roll it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The rollout this approval starts (one rollout per id, ever).
    pub rollout_id: String,
    /// The patch.
    pub patch: crate::Patch,
    /// Who approved it.
    pub approved_by: String,
    /// When (event time): the rollout starts then, and its first wave bakes
    /// from then on, however far behind the pipeline is.
    pub approved_at: EventTime,
}

/// What an executed command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deployed the patch.
    Patch,
    /// Rolled the patch back.
    Rollback,
}

/// The rollout actor executed a command: the record agents on the VMs obey
/// (with the `agents` actuator) and operators audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The command executed.
    pub command_id: CommandId,
    /// The rollout.
    pub rollout_id: String,
    /// The VM.
    pub vm_id: String,
    /// What was done.
    pub action: Action,
    /// When (the actor's clock).
    pub executed_at: EventTime,
    /// 1 for the actor's first execution in this rollout, and so on.
    pub sequence: usize,
}

/// What became of a VM: the labels failure prediction and thresholds
/// learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The VM failed: crashed, lost its health check, or collapsed in errors.
    Failed,
    /// A rollback was a false alarm: the VM was fine.
    FalseAlarm,
}

impl std::str::FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<OutcomeKind, String> {
        match s {
            "failed" => Ok(OutcomeKind::Failed),
            "false_alarm" | "false-alarm" => Ok(OutcomeKind::FalseAlarm),
            other => Err(format!("`{other}` is not one of failed, false_alarm")),
        }
    }
}

/// Who reported an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeSource {
    /// An operator (`bellwether mark`).
    Operator,
    /// A health check.
    HealthCheck,
    /// The simulated fleet (its crashes are ground truth).
    Simulator,
}

/// A VM's outcome, reported after the fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The VM.
    pub vm_id: String,
    /// The rollout it concerns, if known.
    pub rollout_id: Option<String>,
    /// What happened.
    pub kind: OutcomeKind,
    /// Who says so.
    pub source: OutcomeSource,
    /// When it happened (event time).
    pub at: EventTime,
    /// The rollback it judges, for a false alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    /// Free text.
    #[serde(default)]
    pub note: String,
}

impl Outcome {
    /// An operator's mark. A false alarm names the rollback it judges:
    /// `command_id`, or by default with a rollout `<rollout>/rollback/<vm>`;
    /// without either it is refused (the error says so).
    pub fn operator_mark(
        vm_id: String,
        kind: OutcomeKind,
        rollout_id: Option<String>,
        command_id: Option<String>,
        at: EventTime,
        note: String,
    ) -> Result<Outcome, String> {
        let command_id = match (command_id, &rollout_id) {
            (Some(id), _) => Some(CommandId(id)),
            (None, Some(rollout)) if kind == OutcomeKind::FalseAlarm => {
                Some(CommandId::rollback(rollout, &vm_id))
            }
            _ => None,
        };
        if kind == OutcomeKind::FalseAlarm && command_id.is_none() {
            return Err(
                "a false alarm names the rollback it judges: give its rollout or command id".into(),
            );
        }
        Ok(Outcome {
            vm_id,
            rollout_id,
            kind,
            source: OutcomeSource::Operator,
            at,
            command_id,
            note,
        })
    }
}

/// A message on the control topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Start a rollout.
    Approval(Approval),
    /// Patch a VM.
    Patch(PatchCommand),
    /// Roll a VM back.
    Rollback(RollbackCommand),
    /// A window closed.
    WindowReport(WindowReport),
    /// A command was executed.
    Execution(Execution),
    /// A VM's outcome (a failure, a false alarm), for learning.
    Outcome(Outcome),
    /// An operator's control of a rollout (pause, resume, promote, abort,
    /// emergency rollback, approval of a waiting patch).
    Manual(ManualCommand),
    /// A patch submitted with the approval rules' decision.
    Submission(crate::PatchSubmission),
    /// A VM registered or removed, a canary group defined or removed.
    Inventory(crate::InventoryUpdate),
    /// A new set of approval rules in force.
    ApprovalRules(crate::ApprovalRulesUpdate),
}

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualAction {
    /// Stop advancing: the current wave keeps baking, no next wave starts.
    Pause,
    /// Advance again.
    Resume,
    /// End the current wave's bake now and deploy the next wave.
    Promote,
    /// Stop the rollout for good; patched VMs keep the patch.
    Abort,
    /// Roll every patched VM back now (critical first), without analysis.
    Rollback,
    /// Approve a submitted patch that waits for a human (or for its
    /// rule's delay): its rollout starts.
    Approve,
}

impl ManualAction {
    /// Its name on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ManualAction::Pause => "pause",
            ManualAction::Resume => "resume",
            ManualAction::Promote => "promote",
            ManualAction::Abort => "abort",
            ManualAction::Rollback => "rollback",
            ManualAction::Approve => "approve",
        }
    }
}

impl std::str::FromStr for ManualAction {
    type Err = String;
    fn from_str(s: &str) -> Result<ManualAction, String> {
        [
            ManualAction::Pause,
            ManualAction::Resume,
            ManualAction::Promote,
            ManualAction::Abort,
            ManualAction::Rollback,
            ManualAction::Approve,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        // To `start` a submitted patch's rollout is to approve it.
        .or((s == "start").then_some(ManualAction::Approve))
        .ok_or_else(|| {
            format!(
                "`{s}` is not one of pause, resume, promote, abort, rollback, approve (or start)"
            )
        })
    }
}

/// An operator's control of a rollout, on the control topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualCommand {
    /// The rollout.
    pub rollout_id: String,
    /// What to do.
    pub action: ManualAction,
    /// Who asks.
    pub by: String,
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: String,
    /// When (wall-clock time of the request).
    pub at: EventTime,
}

impl ControlMessage {
    /// The message key: the rollout id for commands (so one rollout's
    /// commands stay in order on one partition), `windows` for reports.
    pub fn key(&self) -> &str {
        match self {
            ControlMessage::Approval(a) => &a.rollout_id,
            ControlMessage::Patch(c) => &c.rollout_id,
            ControlMessage::Rollback(c) => &c.rollout_id,
            ControlMessage::Execution(e) => &e.rollout_id,
            ControlMessage::WindowReport(_) => "windows",
            ControlMessage::Outcome(o) => o.rollout_id.as_deref().unwrap_or("outcomes"),
            ControlMessage::Manual(m) => &m.rollout_id,
            ControlMessage::Submission(s) => &s.rollout_id,
            ControlMessage::Inventory(_) => "inventory",
            ControlMessage::ApprovalRules(_) => "approval_rules",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_s_name_is_its_wire_name() {
        use RollbackTrigger::*;
        for t in [Anomaly, PredictedFailure, Operator, Policy, Recheck] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }

    #[test]
    fn command_ids_are_derived_from_what_they_do() {
        assert_eq!(
            CommandId::rollback("r1", "vm-3"),
            CommandId::rollback("r1", "vm-3")
        );
        assert_ne!(
            CommandId::rollback("r1", "vm-3"),
            CommandId::patch("r1", "vm-3")
        );
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let msg = ControlMessage::Patch(PatchCommand {
            command_id: CommandId::patch("r1", "vm-1"),
            rollout_id: "r1".into(),
            patch_id: "p".into(),
            vm_id: "vm-1".into(),
            wave: 0,
            issued_at: EventTime(5),
        });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.starts_with(r#"{"type":"patch""#), "{json}");
        assert_eq!(serde_json::from_str::<ControlMessage>(&json).unwrap(), msg);
        assert_eq!(msg.key(), "r1");
    }
}
