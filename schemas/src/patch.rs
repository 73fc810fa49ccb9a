//! Patches and the rollouts that carry them across the fleet.

use crate::{time::EventTime, wave::WavePlan};
use serde::{Deserialize, Serialize};

/// A patch an operator (or an approval rule) approved for rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// Unique id, e.g. `KB5031356` or `openssl-3.0.13-1`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Classification, e.g. `security`, `bugfix`, `feature`.
    pub classification: String,
    /// Severity, e.g. `critical`, `important`, `moderate`, `low`.
    pub severity: String,
    /// Product the patch applies to, e.g. `linux-kernel`.
    pub product: String,
}

/// What the approval rules decided for a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Approved from `at` on (the release time plus the rule's days).
    Approve {
        /// When the approval takes effect.
        at: EventTime,
        /// Which rule or list decided.
        by: String,
    },
    /// Left to a human.
    Manual {
        /// Which rule decided, or why no rule applied.
        by: String,
    },
    /// Never rolled out.
    Reject {
        /// Which rule or list decided.
        by: String,
    },
}

/// A patch submitted to bellwether, on the control topic. The rollout actor
/// decides it with the approval rules in force (unless `decision` is given)
/// and keeps it: it starts the rollout once the approval takes effect (at
/// once, or N days after the release), waits for a human's `approve`, or
/// never starts a rejected one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchSubmission {
    /// The rollout that will carry it.
    pub rollout_id: String,
    /// The patch.
    pub patch: Patch,
    /// The decision; none: the rollout actor decides with the rules in
    /// force when it reads the submission (and publishes it decided).
    #[serde(default)]
    pub decision: Option<ApprovalDecision>,
    /// When the patch was released (an approval rule's days count from
    /// here); none: when it was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<EventTime>,
    /// Who submitted it.
    pub submitted_by: String,
    /// When (wall-clock time of the submission): an approval's delay is
    /// counted from here on the actor's clock.
    pub submitted_at: EventTime,
    /// Canary groups for this rollout (none: `rollout.canary_groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_groups: Option<Vec<String>>,
}

/// Where a rollout is in its life. Transitions are made only by the rollout
/// actor; its state machine (`rollout/actor/phase.rs` in
/// `bellwether-control`) holds the allowed moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Created, nothing deployed yet.
    Pending,
    /// Deploying a wave of the canary stage.
    Canary,
    /// A deployed wave is baking: its VMs are watched for the bake time.
    Baking,
    /// The baked wave was healthy; the next wave is being deployed.
    Advancing,
    /// Stopped by an anomaly or an operator; nothing more is deployed.
    Halted,
    /// Rolling VMs back.
    RollingBack,
    /// Every wave deployed and baked healthy.
    Completed,
    /// Every patched VM was rolled back.
    RolledBack,
}

impl RolloutState {
    /// True once the rollout can no longer move on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RolloutState::Completed | RolloutState::RolledBack | RolloutState::Halted
        )
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Pending => "pending",
            RolloutState::Canary => "canary",
            RolloutState::Baking => "baking",
            RolloutState::Advancing => "advancing",
            RolloutState::Halted => "halted",
            RolloutState::RollingBack => "rolling_back",
            RolloutState::Completed => "completed",
            RolloutState::RolledBack => "rolled_back",
        }
    }
}

/// A patch on its way across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Unique id.
    pub id: String,
    /// The patch being rolled out.
    pub patch: Patch,
    /// Canary groups whose VMs go first.
    pub canary_groups: Vec<String>,
    /// The waves.
    pub plan: WavePlan,
    /// Current state.
    pub state: RolloutState,
    /// When it was created.
    pub created_at: EventTime,
}
