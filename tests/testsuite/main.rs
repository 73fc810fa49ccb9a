//! The self-contained tests: everything that needs no broker, browser,
//! Prometheus or Python (those are in `tests/services`). One binary with a
//! module per area, so the tests link once.

#[path = "../common/mod.rs"]
mod common;

mod actuators;
mod cli_demo;
mod cli_flags;
mod cli_read;
mod config_errors;
mod demo_scenarios;
mod eval_nab;
mod eval_rollouts;
mod grafana;
mod groups;
mod history;
mod late_rows;
mod predicted_failure;
mod retrain;
mod rollout_actor;
mod train;
