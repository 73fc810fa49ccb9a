//! `bellwether run`, `actor` and `gateway`: the long-running Kafka services.

use super::{Global, ServiceArgs};
use anyhow::Result;
use clap::Args;

/// `bellwether run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Score only; run the rollout actor separately (`bellwether actor`).
    #[arg(long)]
    pub no_actor: bool,
}

/// `bellwether gateway` flags.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Where to listen (overrides remote_write.gateway_listen).
    #[arg(long)]
    pub listen: Option<String>,
}

/// Runs the scoring pipeline (and the rollout actor, unless `--no-actor`).
pub fn exec(args: RunArgs, global: &Global) -> Result<()> {
    let config = args.service.load(global)?;
    crate::service::run::run(
        &config,
        crate::service::run::RunOptions {
            no_actor: args.no_actor,
        },
    )
}

/// Runs the rollout actor alone.
pub fn exec_actor(args: ServiceArgs, global: &Global) -> Result<()> {
    crate::service::actor::run_actor(&args.load(global)?)
}

/// Runs the Prometheus remote-write gateway.
pub fn exec_gateway(args: GatewayArgs, global: &Global) -> Result<()> {
    let mut config = args.service.load(global)?;
    if let Some(listen) = &args.listen {
        config.remote_write.gateway_listen = listen.clone();
    }
    crate::service::gateway::run_gateway(&config)
}
