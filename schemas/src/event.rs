//! Rollout events: the audit trail of everything a rollout did and why.

use crate::{
    command::{CommandId, RollbackReason},
    patch::RolloutState,
    time::EventTime,
};
use serde::{Deserialize, Serialize};

/// Something that happened to a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// The rollout.
    pub rollout_id: String,
    /// When (event time).
    pub time: EventTime,
    /// What.
    pub kind: RolloutEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RolloutEventKind {
    /// The rollout moved from one state to another.
    StateChanged {
        /// Before.
        from: RolloutState,
        /// After.
        to: RolloutState,
        /// Why, for humans.
        why: String,
    },
    /// A wave's patch commands were issued.
    WaveStarted {
        /// Wave index, from 0 (its number from 1 in JSON).
        #[serde(with = "crate::wave::number")]
        wave: usize,
        /// Its VMs.
        vms: Vec<String>,
        /// Part of the canary stage.
        canary: bool,
    },
    /// A wave baked for its full bake time with no anomaly.
    WaveBaked {
        /// Wave index, from 0 (its number from 1 in JSON).
        #[serde(with = "crate::wave::number")]
        wave: usize,
    },
    /// A VM was rolled back.
    VmRolledBack {
        /// The VM.
        vm_id: String,
        /// The command that did it.
        command_id: CommandId,
        /// True when the VM is critical.
        critical: bool,
        /// Why.
        reason: RollbackReason,
        /// True when the actuator reported success.
        succeeded: bool,
    },
    /// The actuator could not carry out a command (after its own retries).
    ActuationFailed {
        /// The VM.
        vm_id: String,
        /// The command.
        command_id: CommandId,
        /// `patch` or `rollback`.
        action: String,
        /// What the actuator said.
        reason: String,
    },
    /// An operator controlled the rollout.
    ManualControl {
        /// `pause`, `resume`, `promote`, `abort` or `rollback`.
        action: String,
        /// Who.
        by: String,
        /// Why.
        reason: String,
        /// False when the rollout's state did not allow it (e.g. promote
        /// while nothing bakes).
        applied: bool,
    },
    /// A wave is due, but the maintenance window is closed: it starts when
    /// the window opens.
    WaitingForWindow {
        /// The wave that waits, its index from 0 (its number from 1 in JSON).
        #[serde(with = "crate::wave::number")]
        wave: usize,
        /// When the window opens next (none if the expression never fires again).
        opens_at: Option<EventTime>,
        /// The window, for humans.
        window: String,
    },
    /// The canary stage was sized from `rollout.detect` and the fleet's
    /// measured noise when the rollout started.
    CanaryStagePlanned {
        /// VMs the canary stage patches.
        canary_vms: usize,
        /// Minutes its last wave bakes.
        bake_minutes: u32,
        /// What it can catch, for humans.
        detects: String,
    },
    /// A command whose id was executed before arrived again and was skipped.
    DuplicateCommandSkipped {
        /// The repeated id.
        command_id: CommandId,
    },
}
