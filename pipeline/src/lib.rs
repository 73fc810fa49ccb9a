//! Bellwether: automated patch canarying with predictive failure analysis.
//!
//! This crate is the runtime around the pure operators of
//! `bellwether-operators`: configuration, the simulated fleet, the
//! in-process bus and the connector traits, the scoring stage, the rollout
//! actor, the embedded demo and the command line.

#![warn(missing_docs)]

pub use bellwether_control::approval;
pub(crate) mod bus;
pub mod cli;
pub mod config;
pub mod connector;
pub mod demo;
pub mod eval;
pub use bellwether_control::inventory;
pub use bellwether_history as history;
pub mod kafka;
pub mod model;
pub mod monitor;
pub mod remote_write;
pub use bellwether_control::rollout;
pub mod scoring;
pub mod service;
pub use bellwether_simulator as simulator;
pub mod summary;
pub mod table;

/// The message a panic carried (`panic!("...")`'s text), or "no message".
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}
