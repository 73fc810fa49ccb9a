//! `bellwether mark`: an operator's verdict on a VM (a false alarm, a real
//! failure), published for retraining.

use super::{Global, ServiceArgs};
use anyhow::Result;
use clap::Args;

/// `bellwether mark` flags.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The VM.
    #[arg(long)]
    pub vm: String,
    /// What happened: `failed` or `false-alarm`.
    #[arg(long, value_parser = |s: &str| s.parse::<bellwether_schemas::OutcomeKind>())]
    pub outcome: bellwether_schemas::OutcomeKind,
    /// The rollout it concerns.
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// The rollback judged a false alarm (default with a rollout:
    /// `<rollout>/rollback/<vm>`).
    #[arg(long)]
    pub command_id: Option<String>,
    /// When it happened, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    /// Free text.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// Publishes the mark on the control topic.
pub fn exec(args: MarkArgs, global: &Global) -> Result<()> {
    let config = args.service.load(global)?;
    let at = bellwether_schemas::EventTime::parse_or_now(args.at.as_deref())
        .map_err(|e| anyhow::anyhow!("--at {e}"))?;
    let outcome = bellwether_schemas::Outcome::operator_mark(
        args.vm.clone(),
        args.outcome,
        args.rollout_id,
        args.command_id,
        at,
        args.note,
    )
    .map_err(|e| anyhow::anyhow!("--rollout-id or --command-id: {e}"))?;
    crate::service::approve::publish(
        &config,
        bellwether_schemas::ControlMessage::Outcome(outcome),
    )?;
    println!("marked: {}", args.vm);
    Ok(())
}
