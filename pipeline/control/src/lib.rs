//! Bellwether's control plane: which VMs get a patch, when, and what
//! happens when one goes bad.
//!
//! The [`inventory`] and its canary groups, [`approval`] rules, the
//! [`rollout`] planner and actor with the actuators that patch and roll
//! back VMs, and the [`judge`]'s control cohorts the planner holds back.
//! It acts on messages (`bellwether_schemas::ControlMessage`) and never
//! reads Kafka, history or models itself: the composition root wires it
//! to them.

#![warn(missing_docs)]

pub mod approval;
pub mod inventory;
pub mod judge;
pub mod rollout;
#[cfg(test)]
mod testkit;

pub use judge::JudgeConfig;

use approval::rules::ApprovalConfig;
use inventory::config::CanaryConfig;
use rollout::config::{RollbackConfig, RolloutConfig};
use serde::Deserialize;

/// The config sections the control plane acts on, taken from the whole
/// configuration (which checks them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ControlConfig {
    /// Canary groups.
    pub canary: CanaryConfig,
    /// Waves and bake times.
    pub rollout: RolloutConfig,
    /// Rollback policy.
    pub rollback: RollbackConfig,
    /// Approval rules.
    #[serde(default)]
    pub approval: ApprovalConfig,
    /// Control cohorts, for the holdback.
    #[serde(default)]
    pub judge: JudgeConfig,
}
