//! Configuration: the embedded default, layered with a user file and the
//! environment, checked at start.
//!
//! The doc comments here mirror `config/default.toml`, which is the user's
//! reference. Every struct refuses unknown keys.

mod load;
mod validate;

pub use load::{ConfigError, DEFAULT_CONFIG, ENV_PREFIX, load};

use crate::inventory::selector::GroupConfig;
use bellwether_schemas::{Direction, WaveSize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything bellwether can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The simulated fleet.
    pub fleet: FleetConfig,
    /// The demo scenario.
    pub simulation: SimulationConfig,
    /// Canary groups.
    pub canary: CanaryConfig,
    /// Waves and bake times.
    pub rollout: RolloutConfig,
    /// Rollback policy.
    pub rollback: RollbackConfig,
    /// Scoring windows.
    pub window: WindowConfig,
    /// Baselines.
    pub baseline: BaselineSettings,
    /// The forecaster.
    pub forecast: ForecastConfig,
    /// Thresholds and metric directions.
    pub thresholds: ThresholdConfig,
}

/// The simulated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// Canary groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// User-defined groups (the built-in `critical-systems` is added).
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
}

/// Waves and bake times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Groups patched first.
    pub canary_groups: Vec<String>,
    /// Cumulative wave sizes.
    pub waves: Vec<WaveSize>,
    /// Waves in the canary stage.
    pub canary_waves: usize,
    /// Bake time of each wave after the first, minutes.
    pub bake_minutes: u32,
    /// Bake time of the first wave, minutes.
    pub first_bake_minutes: u32,
    /// Minutes after a patch or rollback before a VM is judged or learns again.
    pub settle_minutes: u32,
}

/// Order of waiting rollbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackOrder {
    /// Critical VMs first, then the worse anomaly.
    CriticalFirst,
    /// In the order they were detected.
    AsDetected,
}

/// What an anomaly does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnAnomaly {
    /// Roll back the affected VMs and deploy nothing more.
    Halt,
    /// Roll back the affected VMs and go on without them.
    Continue,
}

/// Rollback policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// Order of waiting rollbacks.
    pub order: RollbackOrder,
    /// What an anomaly does to the rollout.
    pub on_anomaly: OnAnomaly,
    /// Rollbacks carried out per scoring window at most.
    pub max_concurrent: usize,
}

/// Scoring windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, seconds.
    pub size_secs: u64,
    /// Distance between window starts, seconds.
    pub slide_secs: u64,
    /// Lateness still accepted, seconds.
    pub allowed_lateness_secs: u64,
}

/// Baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSettings {
    /// Half-life of the baseline's memory, hours.
    pub half_life_hours: f64,
    /// Hours of history before a VM is judged.
    pub min_hours: f64,
}

/// Forecaster kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForecastKind {
    /// Level + daily harmonics, recursive least squares.
    SeasonalRegression,
}

/// The forecaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// Which forecaster.
    pub kind: ForecastKind,
    /// Daily harmonics.
    pub harmonics: usize,
    /// Half-life of its memory, hours.
    pub forgetting_half_life_hours: f64,
}

/// Thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Metrics scored, in order.
    pub metrics: Vec<String>,
    /// Default threshold, sigmas.
    pub sigma: f64,
    /// Bad windows in a row that make an anomaly.
    pub consecutive_windows: u16,
    /// Per-metric settings.
    #[serde(default)]
    pub per_metric: BTreeMap<String, MetricThreshold>,
}

/// One metric's threshold settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    /// Which way is bad.
    pub direction: Direction,
    /// Smallest change worth acting on, metric units.
    #[serde(default)]
    pub min_change: f64,
    /// Smallest residual spread, metric units.
    #[serde(default)]
    pub spread_floor: f64,
    /// This metric's own threshold, sigmas (default: `thresholds.sigma`).
    #[serde(default)]
    pub sigma: Option<f64>,
}

impl Config {
    /// The built-in default configuration.
    pub fn default_config() -> Config {
        match load(None) {
            Ok(config) => config,
            // The default is tested to load; failing here is a build defect.
            Err(e) => panic!("the built-in config/default.toml does not load: {e}"),
        }
    }
}
