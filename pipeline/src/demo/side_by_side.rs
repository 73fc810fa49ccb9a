//! `bellwether demo --rollouts N`: further patches rolled out beside the
//! scenario's, each a good one with its own canary group, through the
//! actor's approvals as an operator's would be.

use crate::config::Config;
use crate::inventory::Inventory;
use crate::simulator::PatchQuality;
use bellwether_schemas::{ApprovalDecision, ControlMessage, EventTime, Patch, PatchSubmission};

/// A rollout beside the scenario's.
#[derive(Debug, Clone)]
pub struct ExtraRollout {
    /// Its id (`rollout-kb-2026-1102-2`, ...).
    pub id: String,
    /// Its patch.
    pub patch: Patch,
    /// How its patch behaves on the simulated fleet.
    pub quality: PatchQuality,
    /// The groups its canary stage patches first.
    pub canary_groups: Vec<String>,
}

/// Rollouts 2 to `rollouts` of a demo whose first rolls `first` out: each
/// canaries on a group of the inventory the first does not (the built-in
/// `critical-systems` if no other), in turn.
pub fn extra_rollouts(
    rollouts: usize,
    first: &Patch,
    inventory: &Inventory,
    config: &Config,
) -> Vec<ExtraRollout> {
    let taken = &config.rollout.canary_groups;
    let mut groups: Vec<String> = inventory
        .group_names()
        .into_iter()
        .filter(|g| !taken.iter().any(|t| t == g))
        .map(String::from)
        .collect();
    if groups.is_empty() {
        groups = taken.clone();
    }
    (2..=rollouts)
        .map(|n| {
            let patch = Patch {
                id: format!("{}-{n}", first.id),
                title: format!("{} (rollout {n})", first.title),
                ..first.clone()
            };
            ExtraRollout {
                id: format!("rollout-{}", patch.id.to_lowercase()),
                patch,
                quality: PatchQuality::Good,
                canary_groups: groups
                    .get((n - 2) % groups.len().max(1))
                    .cloned()
                    .into_iter()
                    .collect(),
            }
        })
        .collect()
}

impl ExtraRollout {
    /// Its submission, approved at `now` by the demo.
    pub fn submission(&self, now: EventTime) -> ControlMessage {
        ControlMessage::Submission(PatchSubmission {
            rollout_id: self.id.clone(),
            patch: self.patch.clone(),
            decision: Some(ApprovalDecision::Approve {
                at: now,
                by: "bellwether demo".into(),
            }),
            released_at: None,
            submitted_by: "bellwether demo".into(),
            submitted_at: now,
            canary_groups: Some(self.canary_groups.clone()),
        })
    }
}
