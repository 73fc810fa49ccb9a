//! Configuration: the embedded default, layered with a user file and the
//! environment, checked at start.
//!
//! The doc comments here mirror `config/default.toml`, which is the user's
//! reference. Every struct refuses unknown keys.

mod judge;
mod load;
pub mod reference;
mod validate;

pub use judge::JudgeConfig;

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

pub use load::{ConfigError, DEFAULT_CONFIG, ENV_PREFIX, load, load_str};
pub(crate) use validate::{at_most, invalid};

use crate::inventory::selector::GroupConfig;
use bellwether_schemas::{Direction, WaveSize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything bellwether can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Kafka topics, formats and client settings (`run`, `actor`, `simulate`).
    pub kafka: KafkaConfig,
    /// The rollout actor's durable state and actuator.
    pub actor: ActorConfig,
    /// The dashboard and `/metrics`.
    pub http: HttpConfig,
    /// Parquet history.
    pub history: HistoryConfig,
    /// Predictive failure analysis.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Scheduled retraining from the history.
    #[serde(default)]
    pub retrain: RetrainConfig,
    /// Approval rules: which patches are approved, when, and which wait for a human.
    #[serde(default)]
    pub approval: crate::approval::rules::ApprovalConfig,
    /// How patched VMs are set against their unpatched peers.
    #[serde(default)]
    pub judge: JudgeConfig,
    /// Bounds of the queries users send (`bellwether sql`, `/api/sql`).
    #[serde(default)]
    pub sql: crate::history::sql::SqlConfig,
    /// The Prometheus remote-write receiver.
    #[serde(default)]
    pub remote_write: crate::remote_write::RemoteWriteConfig,
}

/// Scheduled retraining (`bellwether run`): the models are retrained from
/// `history.dir`, each candidate run in shadow on the latest episodes and
/// promoted in `models` only if it beats the model in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrainConfig {
    /// Hours between retrainings; 0: only on demand (`bellwether retrain`).
    #[serde(default)]
    pub every_hours: f64,
    /// The models folder candidates are written to and promoted in.
    #[serde(default = "models_dir")]
    pub models: std::path::PathBuf,
    /// Retrain the LSTM forecaster.
    #[serde(default = "yes")]
    pub forecaster: bool,
    /// Retrain the failure model.
    #[serde(default = "yes")]
    pub failure: bool,
    /// Share of the latest patched-VM episodes held out for the shadow run.
    #[serde(default = "held_out_share")]
    pub held_out_share: f64,
    /// Epochs of the LSTM's training at most.
    #[serde(default = "lstm_epochs")]
    pub lstm_epochs: usize,
}

impl Default for RetrainConfig {
    fn default() -> RetrainConfig {
        RetrainConfig {
            every_hours: 0.0,
            models: models_dir(),
            forecaster: true,
            failure: true,
            held_out_share: held_out_share(),
            lstm_epochs: lstm_epochs(),
        }
    }
}

fn models_dir() -> std::path::PathBuf {
    "bellwether-models".into()
}

fn held_out_share() -> f64 {
    0.3
}

fn lstm_epochs() -> usize {
    40
}

/// Predictive failure analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    /// The failure-pattern model: `builtin` (shipped in the binary), a
    /// bundle file, or `none`.
    #[serde(default = "builtin_model")]
    pub model: String,
    /// Risk at or above which a patched VM is rolled back before it fails;
    /// unset: the threshold chosen with the model.
    #[serde(default)]
    pub risk_threshold: Option<f64>,
    /// Roll back on predicted failures (false: risks are scored, shown and
    /// recorded, never acted on).
    #[serde(default = "yes")]
    pub act: bool,
    /// A patched VM that goes (nearly) silent for this many windows in a
    /// row after its settle time (less than half the samples of its last
    /// window) has lost its health check: reported as a failure outcome, a
    /// label for retraining. 0: not reported.
    #[serde(default = "one")]
    pub health_check_windows: u16,
}

fn one() -> u16 {
    1
}

impl Default for FailureConfig {
    fn default() -> FailureConfig {
        FailureConfig {
            model: builtin_model(),
            risk_threshold: None,
            act: true,
            health_check_windows: 1,
        }
    }
}

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

/// An hour: clocks of a fleet disagree by seconds, not hours.
fn default_max_future_secs() -> u64 {
    3600
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

/// Canary groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// User-defined groups (the built-in `critical-systems` is added).
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
}

/// Waves and bake times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// What a window without metrics from a patched VM does to the rollout.
    #[serde(default)]
    pub on_missing_data: OnMissingData,
    /// `listed`: the `waves` sizes; `exponential`: 1, 2, 4, 8, ... VMs per
    /// wave until the whole fleet (the `waves` list is then not used).
    #[serde(default)]
    pub plan: WavePlanKind,
    /// VMs of a wave patched at the same time at most (0: the whole wave
    /// at once); the next VM starts when one is done.
    #[serde(default)]
    pub max_concurrency: usize,
    /// Waves start only inside this window (unset: at any time).
    /// Rollbacks never wait for it.
    #[serde(default)]
    pub maintenance_window: Option<MaintenanceWindowConfig>,
    /// VMs of each control cohort (`judge.cohort_by`) kept unpatched
    /// until the last wave, so every earlier wave has unpatched peers to
    /// be judged against: a count ("3") or a share of the cohort ("20%").
    /// Unset: none held back.
    #[serde(default)]
    pub control_holdback: Option<WaveSize>,
}

/// A recurring maintenance window: it opens at each time a cron expression
/// names, in a time zone, and stays open for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowConfig {
    /// When the window opens: a cron expression, five fields (minute hour
    /// day-of-month month day-of-week), e.g. `"0 2 * * SAT"`.
    pub cron: String,
    /// The IANA time zone the expression is read in, e.g. `"Europe/Berlin"`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// How long the window stays open, minutes.
    pub duration_minutes: u32,
}

fn utc() -> String {
    "UTC".into()
}

/// How wave sizes are given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WavePlanKind {
    /// The cumulative sizes of `rollout.waves`.
    #[default]
    Listed,
    /// Each wave twice the one before: 1, 2, 4, 8, ... VMs.
    Exponential,
}

impl RolloutConfig {
    /// The cumulative wave sizes the plan stands for.
    pub fn wave_sizes(&self) -> Vec<bellwether_schemas::WaveSize> {
        use bellwether_schemas::WaveSize;
        match self.plan {
            WavePlanKind::Listed => self.waves.clone(),
            // Cumulative 1, 3, 7, 15, ...: waves of 1, 2, 4, 8, ... VMs.
            WavePlanKind::Exponential => (1..=30)
                .map(|k| WaveSize::Count((1usize << k) - 1))
                .chain([WaveSize::Percent(100.0)])
                .collect(),
        }
    }
}

/// What missing metrics of a patched VM do to the rollout.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissingData {
    /// Halt: nothing more is deployed (the safe default).
    #[default]
    Halt,
    /// Inconclusive: hold the next wave until the VM reports again (or an
    /// operator promotes or resumes).
    Wait,
    /// Go on as if the VM were healthy.
    Proceed,
}

/// Order of waiting rollbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackOrder {
    /// Critical VMs first, then the worse anomaly.
    CriticalFirst,
    /// In the order they were detected.
    AsDetected,
}

/// What an anomaly does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnAnomaly {
    /// Roll back the affected VMs and deploy nothing more.
    Halt,
    /// Roll back the affected VMs and go on without them.
    Continue,
    /// Roll back every VM the rollout patched, critical first.
    RollBackAll,
}

/// How far one VM's rollback reaches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackScope {
    /// Only the affected VM.
    #[default]
    Vm,
    /// Every patched VM of the affected VM's canary group (outside the
    /// canary groups: of its wave).
    Group,
    /// Every VM the rollout patched.
    Rollout,
}

/// Rollback policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// Order of waiting rollbacks.
    pub order: RollbackOrder,
    /// What an anomaly does to the rollout.
    pub on_anomaly: OnAnomaly,
    /// Rollbacks carried out per scoring window at most; never fewer than
    /// the most VMs the rollout patched at once (`rollout.max_concurrency`,
    /// or a whole wave), so a rollout rolls back at least as fast as it
    /// patched.
    pub max_concurrent: usize,
    /// With `on_anomaly = "continue"`: rollbacks the rollout absorbs (a
    /// count, "3", or a share of the VMs it patched, "2%") before it halts.
    /// Unset: no budget.
    #[serde(default)]
    pub error_budget: Option<bellwether_schemas::WaveSize>,
    /// How far a VM's rollback reaches: the VM, its group, or the rollout.
    #[serde(default)]
    pub scope: RollbackScope,
}

/// Scoring windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, seconds.
    pub size_secs: u64,
    /// Distance between window starts, seconds.
    pub slide_secs: u64,
    /// Lateness still accepted, seconds.
    pub allowed_lateness_secs: u64,
    /// Samples dated more than this many seconds ahead of their Kafka
    /// message's timestamp (or the wall clock, whichever is earlier) are
    /// not believed: the message is dead-lettered and never moves event time.
    #[serde(default = "default_max_future_secs")]
    pub max_future_secs: u64,
    /// VMs not in the inventory scored at most (each holds state while
    /// the scorer runs); samples of more are dropped and counted.
    #[serde(default = "default_max_unlisted_vms")]
    pub max_unlisted_vms: usize,
}

fn default_max_unlisted_vms() -> usize {
    10_000
}

/// Baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineSettings {
    /// Half-life of the baseline's memory, hours.
    pub half_life_hours: f64,
    /// Hours of history before a VM is judged.
    pub min_hours: f64,
}

/// Forecaster kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForecastKind {
    /// Level + daily harmonics, recursive least squares: the statistical
    /// forecaster, also the fallback when no LSTM model can be loaded.
    SeasonalRegression,
    /// A trained LSTM (`forecast.model`), run by the fused kernel.
    Lstm,
}

/// The forecaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// Which forecaster.
    pub kind: ForecastKind,
    /// Daily harmonics.
    pub harmonics: usize,
    /// Half-life of its memory, hours.
    pub forgetting_half_life_hours: f64,
    /// The LSTM bundle: `builtin`, a bundle file, or a models folder whose
    /// `promoted` file names the bundle.
    #[serde(default = "builtin_model")]
    pub model: String,
}

fn builtin_model() -> String {
    "builtin".to_string()
}

fn yes() -> bool {
    true
}

/// Thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Metrics scored, in order.
    pub metrics: Vec<String>,
    /// Default threshold, sigmas.
    pub sigma: f64,
    /// Bad windows in a row that make an anomaly.
    pub consecutive_windows: u16,
    /// Use the thresholds learned with the model for metrics without a
    /// `sigma` of their own (instead of the default `sigma`).
    #[serde(default = "yes")]
    pub learned: bool,
    /// Per-metric settings.
    #[serde(default)]
    pub per_metric: BTreeMap<String, MetricThreshold>,
}

/// One metric's threshold settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Kafka topics, formats and client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Consumer group of the scoring pipeline (instances share its partitions).
    pub group_id: String,
    /// librdkafka settings passed through verbatim (`security.protocol`,
    /// `sasl.mechanism`, `ssl.ca.location`, ...).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// Topics metrics are read from, each with its format.
    pub metrics_topics: Vec<MetricsTopic>,
    /// Commands and window reports.
    pub control_topic: String,
    /// Messages that failed to decode, with the reason in their headers.
    pub dead_letter_topic: String,
    /// Per-VM scores ("" to publish none).
    #[serde(default)]
    pub scores_topic: String,
    /// VM records a CMDB publishes ("" for none): each registers (or
    /// replaces) a VM, `{"id": ..., "removed": true}` removes one.
    #[serde(default)]
    pub inventory_topic: String,
    /// Create missing topics at start.
    pub create_topics: bool,
    /// Partitions of topics bellwether creates (control: always 1).
    pub partitions: i32,
    /// Replication factor of topics bellwether creates.
    pub replication_factor: i32,
    /// Seconds without a message after which a partition stops holding
    /// event time back.
    pub idle_partition_secs: u64,
    /// Hours of metrics replayed after a restart to rebuild baselines and
    /// forecasts: offsets are committed this far behind event time.
    pub replay_hours: f64,
    /// Messages decoded into one batch at most.
    pub max_batch_messages: usize,
    /// Longest wait for messages in one poll, milliseconds.
    pub poll_timeout_ms: u64,
    /// First retry delay when the broker is unreachable, milliseconds.
    pub retry_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub retry_max_ms: u64,
}

/// One metrics topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsTopic {
    /// Topic name.
    pub name: String,
    /// `json` or `line_protocol`.
    pub format: bellwether_schemas::wire::InputFormat,
    /// How line protocol maps onto VMs and metrics.
    #[serde(default)]
    pub line_protocol: bellwether_schemas::wire::line_protocol::LineProtocolOptions,
}

/// How the actor carries out commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActuatorKind {
    /// Publish each executed command on the control topic for the agents on
    /// the VMs (`bellwether simulate` is one) to carry out.
    Agents,
    /// POST each command, HMAC-signed, to `actor.webhook.url`.
    Webhook,
    /// Run `actor.shell.patch` / `actor.shell.rollback` for each command.
    Shell,
}

/// The webhook actuator's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Bellwether-Signature` header.
    pub secret: String,
    /// Seconds one call may take.
    #[serde(default = "webhook_timeout")]
    pub timeout_secs: f64,
    /// Calls after the first on a network error, timeout, 429 or 5xx.
    #[serde(default = "webhook_retries")]
    pub retries: u32,
    /// Wait before the first retry, doubled before each next one.
    #[serde(default = "webhook_backoff")]
    pub backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            url: String::new(),
            secret: String::new(),
            timeout_secs: webhook_timeout(),
            retries: webhook_retries(),
            backoff_ms: webhook_backoff(),
        }
    }
}

fn webhook_timeout() -> f64 {
    10.0
}

fn webhook_retries() -> u32 {
    3
}

fn webhook_backoff() -> u64 {
    500
}

/// The shell actuator's command templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// Run to patch a VM: `{vm_id}`, `{patch_id}`, `{rollout_id}`, `{command_id}`.
    pub patch: String,
    /// Run to roll a VM back: `{vm_id}`, `{rollout_id}`, `{command_id}`.
    pub rollback: String,
    /// Seconds a command may take.
    #[serde(default = "shell_timeout")]
    pub timeout_secs: f64,
}

impl Default for ShellConfig {
    fn default() -> ShellConfig {
        ShellConfig {
            patch: String::new(),
            rollback: String::new(),
            timeout_secs: shell_timeout(),
        }
    }
}

fn shell_timeout() -> f64 {
    600.0
}

/// The rollout actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorConfig {
    /// Consumer group of the actor on the control topic.
    pub group_id: String,
    /// Folder of the actor's durable record of executed commands.
    pub state_dir: std::path::PathBuf,
    /// How commands are carried out.
    pub actuator: ActuatorKind,
    /// The webhook (with `actuator = "webhook"`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// The command templates (with `actuator = "shell"`).
    #[serde(default)]
    pub shell: Option<ShellConfig>,
    /// The fleet's inventory: a JSON array of VM records (`vm_id`, `region`,
    /// `instance_type`, `criticality`, `tags`). Unset: the simulated fleet of
    /// `[fleet]`, which is what `bellwether simulate` runs.
    #[serde(default)]
    pub inventory_file: Option<std::path::PathBuf>,
}

/// The HTTP server: dashboard, `/api`, `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address `bellwether run` serves on (`host:port`); "" serves nothing.
    /// `bellwether demo` serves only when asked (`--serve`).
    pub listen: String,
    /// Bearer token mutating requests must carry; "" refuses them all.
    #[serde(default)]
    pub token: String,
    /// Host names the server answers (in the `Host` header) besides IP
    /// addresses and localhost; others are refused (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds a connection may take to send a request head, or stay idle
    /// between requests; then it is closed.
    #[serde(default = "header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive.
    #[serde(default = "body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Connections open at once (dashboards' live feeds included); more are
    /// answered 503 and closed.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// Of those, open at once from one IP address.
    #[serde(default = "max_connections_per_client")]
    pub max_connections_per_client: usize,
}

fn max_connections_per_client() -> usize {
    64
}

fn header_timeout_secs() -> u64 {
    10
}

fn body_timeout_secs() -> u64 {
    30
}

fn max_connections() -> usize {
    256
}

/// Samples kept in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SampleRetention {
    /// Every sample.
    Raw,
    /// One row per VM, metric and `downsample_secs` bucket, holding the
    /// bucket's aggregate (`downsample_aggregate`, per metric overridable).
    Downsampled,
    /// None (scores, verdicts, commands and events are still kept).
    None,
}

/// How a downsampled bucket's samples become its one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The mean.
    Mean,
    /// The smallest sample.
    Min,
    /// The largest sample.
    Max,
    /// The latest sample (by event time).
    Last,
}

/// History in Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Folder of the tables; "" keeps no history.
    pub dir: std::path::PathBuf,
    /// Which metric samples are kept.
    pub samples: SampleRetention,
    /// Bucket width of downsampled samples, in seconds.
    pub downsample_secs: u64,
    /// Aggregate of a downsampled bucket.
    pub downsample_aggregate: Aggregate,
    /// Per-metric aggregates overriding `downsample_aggregate`.
    #[serde(default)]
    pub downsample_per_metric: std::collections::BTreeMap<String, Aggregate>,
    /// Buffered rows are written at least this often (`bellwether run`).
    pub flush_secs: u64,
    /// Partitions whose date is more than this many days before today are
    /// deleted; 0 keeps everything.
    pub retention_days: u64,
    /// A partition with at least this many files is merged into one.
    pub compact_min_files: usize,
    /// Seconds between two background compaction and retention passes.
    pub maintenance_secs: u64,
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
