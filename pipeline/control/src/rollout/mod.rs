//! Rollouts: which VMs get the patch when, and what happens on an anomaly.

mod actor;
pub mod actuator;
pub mod config;
pub mod detect;
pub mod ledger;
pub mod planner;
pub mod shell;
pub mod webhook;
pub mod window;

pub use actor::{RollbackRecord, RolloutActor, RolloutView, WaitingPatch};
pub use actuator::{Actuator, ActuatorError};
