//! Config of the simulated fleet: `[fleet]` and `[simulation]`.

use bellwether_schemas::check::{Problem, at_most, hours, non_empty, positive, share};
use serde::{Deserialize, Serialize};

/// The simulated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// VMs in the fleet.
    pub vms: usize,
    /// Share of VMs that are critical systems (payments, auth, primary
    /// databases).
    pub critical_share: f64,
    /// Share of VMs tagged ring = "canary": the default canary group.
    pub canary_ring_share: f64,
    /// Regions VMs are spread over.
    pub regions: Vec<String>,
    /// Instance types VMs are spread over.
    pub instance_types: Vec<String>,
    /// Roles (tag `role`) VMs are spread over.
    pub roles: Vec<String>,
    /// Seconds between two metric samples of one VM.
    pub sample_interval_secs: u64,
}

/// The demo scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// Seed of everything random in the fleet: same seed, same run.
    pub seed: u64,
    /// Hours of fleet history before the patch; baselines and forecasts learn
    /// from it.
    pub warmup_hours: f64,
    /// Share of the VMs a bad patch touches that it breaks.
    pub affected_share: f64,
    /// Longest the rollout may run, in hours of fleet time.
    pub max_rollout_hours: f64,
    /// Minutes of fleet time the demo keeps watching after the rollout stops
    /// moving, so anomalies still building up surface and rollbacks finish.
    pub drain_minutes: u32,
    /// Metric partitions of the embedded bus (each has its own watermark).
    pub partitions: usize,
    /// Share of VMs whose memory sits at 82-90% all day (caches sized to their
    /// RAM): healthy, but where the built-in failure model, trained on fleets
    /// without them, sees danger. `bellwether eval retraining` uses it.
    #[serde(default)]
    pub high_memory_share: f64,
    /// Fleet-wide events (surge, slow dependency, regional incident, late
    /// batch job) that hit patched and unpatched VMs alike; none by default
    /// (`bellwether demo --event surge` adds one).
    #[serde(default)]
    pub events: Vec<crate::FleetEvent>,
    /// How big a bad patch's fault is, in its kind's unit: latency-regression
    /// in % of response time, error-rate-rise and cpu-spike in points,
    /// memory-leak in points of memory per minute, slow-drift in % of
    /// response time per hour (`bellwether demo --fault K --size 5%` sets
    /// it). Unset: each fault's own size (+60% and 30 ms, 4 points, 35
    /// points, 1.5 points a minute, 25% an hour). It is one number for
    /// whichever fault runs, so set it for one fault at a time (`eval
    /// rollouts` would run every fault with it).
    #[serde(default)]
    pub fault_size: Option<f64>,
}

impl FleetConfig {
    /// Checks sizes and shares: the error names the key.
    pub fn check(&self) -> Result<(), Problem> {
        if self.vms == 0 {
            return Err(Problem::new("fleet.vms", "a fleet needs at least one VM"));
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
    pub fn check(&self) -> Result<(), Problem> {
        share("simulation.affected_share", self.affected_share)?;
        if self.events.len() > crate::MAX_EVENTS {
            return Err(Problem::new(
                "simulation.events",
                format!(
                    "{} events; at most {}",
                    self.events.len(),
                    crate::MAX_EVENTS
                ),
            ));
        }
        for (i, event) in self.events.iter().enumerate() {
            if let Some((key, why)) = event.problem(&format!("simulation.events[{i}]")) {
                return Err(Problem::new(key, why));
            }
        }
        share("simulation.high_memory_share", self.high_memory_share)?;
        if let Some(size) = self.fault_size {
            positive("simulation.fault_size", size)?;
            if size > crate::fault::MAX_FAULT_SIZE {
                return Err(Problem::new(
                    "simulation.fault_size",
                    format!(
                        "{size} is above any fault's largest size ({})",
                        crate::fault::MAX_FAULT_SIZE
                    ),
                ));
            }
        }
        at_most("simulation.partitions", self.partitions as u64, 1, 1024)?;
        hours("simulation.warmup_hours", self.warmup_hours)?;
        hours("simulation.max_rollout_hours", self.max_rollout_hours)?;
        positive("simulation.warmup_hours", self.warmup_hours)?;
        positive("simulation.max_rollout_hours", self.max_rollout_hours)?;
        if self.partitions == 0 {
            return Err(Problem::new(
                "simulation.partitions",
                "needs at least one partition",
            ));
        }

        Ok(())
    }
}

/// `[fleet]` and `[simulation]` of the built-in config (`config/default.toml`).
#[cfg(test)]
pub(crate) fn defaults() -> (FleetConfig, SimulationConfig) {
    #[derive(Deserialize)]
    struct Sections {
        fleet: FleetConfig,
        simulation: SimulationConfig,
    }
    let s: Sections =
        toml::from_str(include_str!("../../../config/default.toml")).expect("config/default.toml");
    (s.fleet, s.simulation)
}
