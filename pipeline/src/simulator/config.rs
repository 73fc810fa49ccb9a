//! Config of the simulated fleet: `[fleet]` and `[simulation]`.

use crate::config::ConfigError;
use crate::config::validate::{at_most, hours, invalid, non_empty, positive, share};
use serde::{Deserialize, Serialize};

/// The simulated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// VMs in the fleet.
    pub vms: usize,
    /// Share of critical VMs.
    pub critical_share: f64,
    /// Share of VMs tagged `ring = "canary"`.
    pub canary_ring_share: f64,
    /// Regions VMs are spread over.
    pub regions: Vec<String>,
    /// Instance types VMs are spread over.
    pub instance_types: Vec<String>,
    /// Roles (tag `role`) VMs are spread over.
    pub roles: Vec<String>,
    /// Seconds between two samples of one VM.
    pub sample_interval_secs: u64,
}

/// The demo scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// Seed of everything random.
    pub seed: u64,
    /// Hours of history before the patch.
    pub warmup_hours: f64,
    /// Share of touched VMs a bad patch breaks.
    pub affected_share: f64,
    /// Longest rollout, hours of fleet time.
    pub max_rollout_hours: f64,
    /// Minutes watched after the rollout stops moving.
    pub drain_minutes: u32,
    /// Metric partitions of the embedded bus.
    pub partitions: usize,
    /// Share of VMs whose memory sits high all day (82-90%, e.g. caches
    /// sized to their RAM): healthy, yet near where a leak crashes.
    #[serde(default)]
    pub high_memory_share: f64,
    /// Fleet-wide events (surge, slow dependency, regional incident, late
    /// batch job) that hit patched and unpatched VMs alike.
    #[serde(default)]
    pub events: Vec<crate::simulator::FleetEvent>,
}

impl FleetConfig {
    /// Checks sizes and shares: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.vms == 0 {
            return Err(invalid("fleet.vms", "a fleet needs at least one VM"));
        }
        share("fleet.critical_share", self.critical_share)?;
        share("fleet.canary_ring_share", self.canary_ring_share)?;
        at_most("fleet.vms", self.vms as u64, 1, 1_000_000)?;
        non_empty("fleet.regions", &self.regions)?;
        non_empty("fleet.instance_types", &self.instance_types)?;
        non_empty("fleet.roles", &self.roles)?;
        Ok(())
    }
}

impl SimulationConfig {
    /// Checks the scenario: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        share("simulation.affected_share", self.affected_share)?;
        if self.events.len() > crate::simulator::MAX_EVENTS {
            return Err(invalid(
                "simulation.events",
                format!(
                    "{} events; at most {}",
                    self.events.len(),
                    crate::simulator::MAX_EVENTS
                ),
            ));
        }
        for (i, event) in self.events.iter().enumerate() {
            if let Some((key, why)) = event.problem(&format!("simulation.events[{i}]")) {
                return Err(invalid(key, why));
            }
        }
        share("simulation.high_memory_share", self.high_memory_share)?;
        at_most("simulation.partitions", self.partitions as u64, 1, 1024)?;
        hours("simulation.warmup_hours", self.warmup_hours)?;
        hours("simulation.max_rollout_hours", self.max_rollout_hours)?;
        positive("simulation.warmup_hours", self.warmup_hours)?;
        positive("simulation.max_rollout_hours", self.max_rollout_hours)?;
        if self.partitions == 0 {
            return Err(invalid(
                "simulation.partitions",
                "needs at least one partition",
            ));
        }

        Ok(())
    }
}
