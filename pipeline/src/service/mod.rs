//! The long-running commands on Kafka: `run` (the scoring pipeline, with
//! the rollout actor in the same process unless told otherwise), `actor`
//! (the rollout actor alone), `simulate` (a simulated fleet publishing its
//! metrics and obeying executed commands), `approve`, and `gateway` (Prometheus
//! remote write into Kafka).

pub(crate) mod actor;
pub(crate) mod approve;
pub(crate) mod gateway;
pub(crate) mod inventory;
pub(crate) mod run;
pub mod simulate;

use crate::config::Config;
use crate::inventory::Inventory;
use crate::simulator::{FleetSimulator, PatchQuality};
use anyhow::{Context, Result};
use bellwether_schemas::VmRecord;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when SIGINT or SIGTERM arrives: loops finish their turn, flush and
/// commit, then return.
pub fn shutdown_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone()).context("installing signal handlers")?;
    }
    Ok(flag)
}

/// Waits for Kafka, then creates missing topics (with
/// `kafka.create_topics`): true once done, false when shutdown was asked
/// for before Kafka answered.
pub fn connect(kafka: &crate::config::KafkaConfig, stop: &AtomicBool) -> Result<bool> {
    if !crate::kafka::admin::wait_for_broker(kafka, None, Some(stop))? {
        return Ok(false);
    }
    if kafka.create_topics {
        crate::kafka::admin::ensure_topics(kafka)?;
    }
    Ok(true)
}

/// True once shutdown was asked for.
pub fn stopping(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// The fleet's inventory: `actor.inventory_file`, or the simulated fleet.
pub fn load_inventory(config: &Config) -> Result<Arc<Inventory>> {
    let vms: Vec<VmRecord> = match &config.actor.inventory_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("actor.inventory_file: reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "actor.inventory_file: {} is not a JSON array of VM records",
                    path.display()
                )
            })?
        }
        None => {
            FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good).inventory()
        }
    };
    let inventory = Inventory::with_groups(vms, &config.canary.groups)
        .map_err(|(group, e)| anyhow::anyhow!("canary group `{group}`: {}", e.reason))?;
    Ok(Arc::new(inventory))
}
