//! Bellwether's data contracts.
//!
//! Everything that crosses a boundary between bellwether's parts, or between
//! bellwether and the outside world, is defined here: the Arrow schemas of the
//! batches the operators compute on, and the serde types of the messages on
//! the metrics, control and event topics. Each contract carries a version
//! ([`SCHEMA_VERSION`]) so readers can refuse data they do not understand.

#![warn(missing_docs)]

pub mod approval;
pub mod check;
pub mod command;
pub mod error;
pub mod event;
pub mod inventory;
pub mod metric;
pub mod noise;
pub mod patch;
pub mod power;
pub mod score;
pub mod time;
pub mod wave;
pub mod wire;

pub use approval::{ApprovalConfig, ApprovalRule, ApprovalRulesUpdate, RuleAction};
pub use command::{
    Action, Approval, CommandId, ControlMessage, Execution, ManualAction, ManualCommand,
    MetricEvidence, Outcome, OutcomeKind, OutcomeSource, PatchCommand, RollbackCommand,
    RollbackReason, RollbackTrigger, WaveEvidence, WindowReport,
};
pub use error::SchemaError;
pub use event::{RolloutEvent, RolloutEventKind};
pub use inventory::{
    Criticality, GroupConfig, InventoryChange, InventoryRecord, InventoryUpdate, TagMatch, VmRecord,
};
pub use metric::{Direction, MetricSample, VmSnapshot};
pub use noise::{FleetNoise, MetricNoise};
pub use patch::{ApprovalDecision, Patch, PatchSubmission, Rollout, RolloutState};
pub use score::{FailureRisk, MetricVerdict, PeerEvidence, RiskDriver, ScoreRecord};
pub use time::EventTime;
pub use wave::{Wave, WavePlan, WaveSize, WaveSpec};

/// Version of every schema and wire format in this crate. Bumped when a
/// field changes meaning or disappears; adding an optional field does not.
pub const SCHEMA_VERSION: u32 = 1;

/// Arrow schema metadata key naming the contract a batch follows.
pub const SCHEMA_NAME_KEY: &str = "bellwether.schema";
/// Arrow schema metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "bellwether.version";

/// Stable FNV-1a hash of a key: the same on every machine and every run
/// (std's hasher is randomly seeded), for partitioning and seeding.
///
/// ```
/// assert_eq!(bellwether_schemas::stable_hash(""), 0xcbf2_9ce4_8422_2325);
/// assert_ne!(bellwether_schemas::stable_hash("vm-1"), bellwether_schemas::stable_hash("vm-2"));
/// ```
pub fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Schema metadata that names a contract and its version.
pub(crate) fn contract_metadata(name: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (SCHEMA_NAME_KEY.to_string(), name.to_string()),
        (SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
    ])
}
