//! `bellwether rollout`: start, pause, resume, promote, abort or roll back a
//! rollout, published on the control topic.

use super::{Global, ServiceArgs};
use anyhow::Result;
use clap::Args;

/// `bellwether rollout` flags.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// pause, resume, promote (end the bake, next wave now),
    /// abort, or rollback (every patched VM, critical first, without
    /// analysis). `start` and `approve` still approve a submitted patch
    /// but are deprecated: use `bellwether patch approve`.
    #[arg(value_parser = |s: &str| s.parse::<bellwether_schemas::ManualAction>())]
    pub action: bellwether_schemas::ManualAction,
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The rollout, e.g. rollout-kb-2026-1201.
    #[arg(long)]
    pub rollout_id: String,
    /// Who asks (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Why (recorded).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Publishes the operator's command.
pub fn exec(args: RolloutArgs, global: &Global) -> Result<()> {
    let config = args.service.load(global)?;
    let action = args.action;
    if action == bellwether_schemas::ManualAction::Approve {
        eprintln!(
            "note: `bellwether rollout start` is deprecated and goes in the next release; \
             use `bellwether patch approve --id PATCH`"
        );
    }
    crate::service::approve::publish(
        &config,
        bellwether_schemas::ControlMessage::Manual(bellwether_schemas::ManualCommand {
            rollout_id: args.rollout_id.clone(),
            action,
            by: args.by,
            reason: args.reason,
            at: bellwether_schemas::EventTime::now(),
        }),
    )?;
    println!("{}: {}", action.as_str(), args.rollout_id);
    Ok(())
}
