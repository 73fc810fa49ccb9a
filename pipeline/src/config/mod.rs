//! Configuration: the sections assembled into [`Config`], the embedded
//! default layered with a user file and the environment, checked at start.
//!
//! Each section's struct, defaults and checks live in the module that uses
//! it (`rollout::config`, `kafka::config`, ...); here are what the sections
//! require of each other, loading, and the generated reference. Every
//! struct refuses unknown keys.

pub(crate) mod default_toml;
mod load;
pub(crate) mod reference;
pub(crate) mod validate;

pub use crate::scoring::judge::JudgeConfig;

/// Shown in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// `config` as JSON with every secret replaced by [`REDACTED`]: the HTTP
/// token, the remote-write token, the webhook secret, and every Kafka client setting whose name
/// speaks of a password or secret.
pub fn redacted(config: &Config) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    let hide = |v: &mut serde_json::Value| {
        if v.as_str().is_some_and(|s| !s.is_empty()) {
            *v = REDACTED.into();
        }
    };
    if let Some(v) = value.pointer_mut("/http/token") {
        hide(v);
    }
    if let Some(v) = value.pointer_mut("/remote_write/token") {
        hide(v);
    }
    if let Some(v) = value.pointer_mut("/actor/webhook/secret") {
        hide(v);
    }
    if let Some(client) = value
        .pointer_mut("/kafka/client")
        .and_then(|c| c.as_object_mut())
    {
        for (name, v) in client.iter_mut() {
            if ["password", "secret"].iter().any(|w| name.contains(w)) {
                hide(v);
            }
        }
    }
    value
}

pub use crate::history::config::{Aggregate, HistoryConfig, SampleRetention};
pub use crate::inventory::config::CanaryConfig;
pub use crate::kafka::config::{KafkaConfig, MetricsTopic};
pub use crate::model::config::{FailureConfig, RetrainConfig};
pub use crate::monitor::config::HttpConfig;
pub use crate::rollout::config::{
    ActorConfig, ActuatorKind, MaintenanceWindowConfig, OnAnomaly, OnMissingData, RollbackConfig,
    RollbackOrder, RollbackScope, RolloutConfig, ShellConfig, WavePlanKind, WebhookConfig,
};
pub use crate::scoring::config::{
    BaselineSettings, ForecastConfig, ForecastKind, MetricThreshold, ThresholdConfig, WindowConfig,
};
pub use crate::simulator::config::{FleetConfig, SimulationConfig};
pub use load::{ConfigError, DEFAULT_CONFIG, ENV_PREFIX, load, load_str};
pub(crate) use validate::{at_most, invalid};

use serde::{Deserialize, Serialize};

/// Everything bellwether can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The simulated fleet (`bellwether demo`). Production fleets come from the
    /// inventory instead.
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
    /// Kafka topics, formats and client settings (`run`, `actor`, `simulate`).
    pub kafka: KafkaConfig,
    /// The rollout actor's durable state and actuator.
    pub actor: ActorConfig,
    /// The dashboard and `/metrics`.
    pub http: HttpConfig,
    /// Parquet history.
    pub history: HistoryConfig,
    /// Predictive failure analysis: the probability that a patched VM fails
    /// (crashes) within the model's horizon, from its metrics' levels, trends
    /// and combinations; every score carries it with the features that drove
    /// it.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Scheduled retraining from the history.
    #[serde(default)]
    pub retrain: RetrainConfig,
    /// Approval rules in the spirit of a patch manager's baselines: a patch
    /// enters the canary rollout only once approved, by a rule, by a list,
    /// or by hand (`bellwether patch approve`). `bellwether patch submit`
    /// evaluates a patch against them (`bellwether patch evaluate` shows the
    /// decision).
    #[serde(default)]
    pub approval: crate::approval::rules::ApprovalConfig,
    /// How a patched VM is judged against the unpatched VMs like it (its
    /// control). Each window, its deviation from its own forecast is set
    /// against what its control did in the same window; a metric is bad only
    /// when the VM left its forecast and its peers did not move the same way (a
    /// traffic surge, a slow dependency or a regional incident moves both).
    #[serde(default)]
    pub judge: JudgeConfig,
    /// Bounds of the queries users send (`bellwether sql`, `/api/sql`): memory
    /// a query's sorts, joins and aggregations may hold, its longest run, its
    /// largest result, and how many `/api/sql` runs at once (more get a 503).
    #[serde(default)]
    pub sql: crate::history::sql::SqlConfig,
    /// The Prometheus remote-write receiver.
    #[serde(default)]
    pub remote_write: crate::remote_write::RemoteWriteConfig,
}

pub(crate) fn one() -> u16 {
    1
}

pub(crate) fn builtin_model() -> String {
    "builtin".to_string()
}

pub(crate) fn yes() -> bool {
    true
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

    /// The sections the control plane (planner, rollout actor) acts on.
    pub fn control(&self) -> bellwether_control::ControlConfig {
        bellwether_control::ControlConfig {
            canary: self.canary.clone(),
            rollout: self.rollout.clone(),
            rollback: self.rollback.clone(),
            approval: self.approval.clone(),
            judge: self.judge.clone(),
        }
    }
}
