//! `bellwether simulate`: a simulated fleet publishing its metrics (and its
//! approval) to Kafka, for the services to score.

use super::demo::ScenarioArgs;
use super::{Global, ServiceArgs};
use anyhow::Result;
use bellwether_schemas::wire::InputFormat;
use clap::Args;

/// `bellwether simulate` flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Metrics topic (default: the first of kafka.metrics_topics).
    #[arg(long)]
    pub topic: Option<String>,
    /// How the metrics are written on the topic: `json` or `line-protocol`.
    #[arg(long, default_value = "json", value_parser = parse_encoding)]
    pub encoding: InputFormat,
    /// The scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Fleet seconds per real second after the warm-up history.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Fleet hours before the patch is approved (default: simulation.warmup_hours).
    #[arg(long)]
    pub approve_after_hours: Option<f64>,
    /// Never approve the patch (publish metrics only; an operator approves
    /// one with `bellwether patch submit` or the API). The warm-up history
    /// is still published as fast as the broker takes it.
    #[arg(long, conflicts_with = "approve_after_hours")]
    pub no_approval: bool,
    /// Fleet hours to simulate (default: warm-up + simulation.max_rollout_hours).
    #[arg(long)]
    pub hours: Option<f64>,
}

fn parse_encoding(s: &str) -> Result<InputFormat, String> {
    match s {
        "json" => Ok(InputFormat::Json),
        "line-protocol" | "line_protocol" | "influx" => Ok(InputFormat::LineProtocol),
        other => Err(format!(
            "unknown encoding `{other}`; use json or line-protocol"
        )),
    }
}

/// Publishes the simulated fleet and prints its report as JSON.
pub fn exec(args: SimulateArgs, global: &Global) -> Result<()> {
    let mut config = args.service.load(global)?;
    let quality = args.scenario.apply(&mut config)?;
    let warmup = config.simulation.warmup_hours;
    let options = crate::service::simulate::SimulateOptions {
        quality,
        topic: args.topic,
        format: args.encoding,
        speed: args.speed,
        approve_after_hours: if args.no_approval {
            None
        } else {
            Some(args.approve_after_hours.unwrap_or(warmup))
        },
        hours: args
            .hours
            .unwrap_or(warmup + config.simulation.max_rollout_hours),
    };
    let report = crate::service::simulate::simulate(&config, &options)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
