//! The command line.

use crate::config::{self, Config};
use crate::demo::{DemoOptions, Progress, patch_quality, run_demo};
use crate::monitor::Monitor;
use crate::simulator::{FaultKind, PatchQuality};
use crate::summary::render_text;
use anyhow::{Context, Result};
use bellwether_schemas::InventoryChange;
use bellwether_schemas::wire::InputFormat;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Automated patch canarying with predictive failure analysis.
#[derive(Debug, Parser)]
#[command(name = "bellwether", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole canary rollout on a simulated fleet, embedded, in fleet time.
    Demo(DemoArgs),
    /// Run the scoring pipeline on Kafka (and the rollout actor, unless --no-actor).
    Run(RunArgs),
    /// Run the rollout actor alone on the control topic.
    Actor(ServiceArgs),
    /// Take Prometheus remote write (POST /api/v1/write) and produce the
    /// samples onto the metrics topic, without scoring them here.
    Gateway(GatewayArgs),
    /// Publish a simulated fleet's metrics on Kafka and obey executed commands.
    Simulate(SimulateArgs),
    /// Approve a patch: publish the approval that starts its rollout.
    Approve(ApproveArgs),
    /// Report a VM's outcome (it failed, or its rollback was a false alarm)
    /// on the control topic, for the history and the models to learn from.
    Mark(MarkArgs),
    /// Query the history with SQL (no query: an interactive prompt).
    Sql(SqlArgs),
    /// Parses the SQL on stdin and exits: how a query's parse is bounded
    /// in time (see `history::sql::parse_in_child`). Not for users.
    #[command(hide = true)]
    ParseSql,
    /// Check or show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Evaluate the detector on labelled data.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Train an LSTM forecaster and write its model bundle.
    Train(TrainArgs),
    /// Train the failure-pattern model on simulated rollouts and write its bundle.
    TrainFailure(TrainFailureArgs),
    /// List or promote the model versions of a models folder.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Retrain the forecaster and the failure model from recorded history,
    /// run each in shadow on the latest episodes, promote the better.
    Retrain(RetrainArgs),
    /// Canary groups: which VMs a group or a selector matches.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Patches and the approval rules.
    #[command(subcommand)]
    Patch(PatchCommand),
    /// The inventory of the running bellwether: register or remove VMs.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Control a rollout: start (approve) a submitted one, pause, resume,
    /// promote, abort, or roll every patched VM back now (published on the
    /// control topic).
    Rollout(RolloutArgs),
}

/// `bellwether rollout` flags.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// start (approve a submitted patch waiting for a human; also
    /// `approve`), pause, resume, promote (end the bake, next wave now),
    /// abort, or rollback (every patched VM, critical first, without
    /// analysis).
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

/// `bellwether patch` subcommands.
#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Show what the approval rules decide for a patch (publishes nothing).
    Evaluate(PatchArgs),
    /// Submit a patch: bellwether keeps it with the rules' decision and
    /// starts its rollout once approved (at once, after the rule's days,
    /// or by hand); a rejected one never starts.
    Submit(PatchArgs),
    /// Approve a submitted patch that waits for a human.
    Approve(PatchApproveArgs),
    /// Put a new set of approval rules in force in the running bellwether
    /// (kept across restarts; `GET /api/approval/rules` shows it).
    Rules {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The rules: TOML (an `[approval]` table, or its keys at the top)
        /// or JSON.
        #[arg(long)]
        file: PathBuf,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `bellwether patch approve` flags.
#[derive(Debug, Args)]
pub struct PatchApproveArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1201.
    #[arg(long)]
    pub id: String,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who approves (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Why (recorded).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// A patch, as `bellwether patch` takes it.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1201.
    #[arg(long)]
    pub id: String,
    /// A title for humans.
    #[arg(long, default_value = "")]
    pub title: String,
    /// Classification: security, bugfix, feature, ...
    #[arg(long)]
    pub classification: String,
    /// Severity: critical, important, moderate, low, ...
    #[arg(long)]
    pub severity: String,
    /// Product, e.g. debian-12.
    #[arg(long)]
    pub product: String,
    /// When the patch was released, RFC 3339 (default: now).
    #[arg(long)]
    pub released_at: Option<String>,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who submits (recorded).
    #[arg(long, default_value = "operator")]
    pub by: String,
    /// Canary groups for this rollout (repeatable; default:
    /// rollout.canary_groups).
    #[arg(long)]
    pub canary_group: Vec<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bellwether group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// The VMs a configured group, or a selector given here, matches; with
    /// `--waves`, the waves a rollout would deploy in and the VMs held back.
    Preview(GroupPreviewArgs),
    /// Every configured group (the built-in critical-systems first) and its size.
    List {
        /// A config file layered over the defaults (groups, inventory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Define a canary group (or replace the one of its name) in the
    /// running bellwether: published on the control topic, kept across
    /// restarts (`GET /api/groups` shows it).
    Define {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The group's name.
        #[arg(long)]
        name: String,
        /// The selector.
        #[command(flatten)]
        selector: crate::service::inventory::SelectorFlags,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Remove a canary group from the running bellwether.
    Remove {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The group's name.
        #[arg(long)]
        name: String,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `bellwether vm` subcommands: the inventory of the running bellwether.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Register a VM (or replace the one with its id): published on the
    /// control topic, kept across restarts; later rollouts patch it.
    Register {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The VM.
        #[command(flatten)]
        vm: crate::service::inventory::VmRegisterArgs,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Take a VM out of the inventory.
    Remove {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The VM id.
        #[arg(long)]
        id: String,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `bellwether group preview` flags.
#[derive(Debug, Args)]
pub struct GroupPreviewArgs {
    /// A configured group's name.
    #[arg(long, conflicts_with_all = ["expression", "tag", "instance_type", "region", "criticality"])]
    pub group: Option<String>,
    /// The selector, when no group is named.
    #[command(flatten)]
    pub selector: crate::service::inventory::SelectorFlags,
    /// Print the members as JSON.
    #[arg(long)]
    pub json: bool,
    /// Show the waves a rollout started now would deploy in (canary stage
    /// from `rollout.canary_groups`, or from `--group`), and the VMs held
    /// back as the control until the last wave (`rollout.control_holdback`).
    #[arg(long, conflicts_with_all = ["expression", "tag", "instance_type", "region", "criticality"])]
    pub waves: bool,
    /// With `--waves`: the patch whose rollout to preview (its rollout id
    /// seeds which VMs each wave takes; the counts do not depend on it).
    #[arg(long, requires = "waves")]
    pub patch: Option<String>,
    /// A config file layered over the defaults (groups, inventory).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `bellwether retrain` flags.
#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// History folders, oldest first (default: history.dir).
    #[arg(long)]
    pub history: Vec<PathBuf>,
    /// The models folder (default: retrain.models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Retrain only this model: `forecaster` or `failure`.
    #[arg(long, value_parser = ["forecaster", "failure"])]
    pub only: Option<String>,
    /// Share of the latest episodes held out (default: retrain.held_out_share).
    #[arg(long)]
    pub held_out_share: Option<f64>,
    /// The candidates' version (default: the UTC time).
    #[arg(long)]
    pub version: Option<String>,
    /// Epochs of the LSTM's training at most (default: retrain.lstm_epochs).
    #[arg(long)]
    pub lstm_epochs: Option<usize>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep running and retrain every HOURS (fractions allowed), until Ctrl-C.
    #[arg(long)]
    pub every: Option<f64>,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `bellwether model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every bundle of a models folder, its figures, and which is in use.
    List {
        /// The models folder.
        #[arg(long, default_value = "bellwether-models")]
        models: PathBuf,
    },
    /// Make a bundle of the folder the one in use for its kind (also to go
    /// back to an earlier version); bellwether loads it at its next start.
    Promote {
        /// The models folder.
        #[arg(long, default_value = "bellwether-models")]
        models: PathBuf,
        /// The bundle's file name in the folder, e.g. failure-20261130T120000Z.json.
        bundle: String,
    },
}

/// `bellwether train-failure` flags.
#[derive(Debug, Args)]
pub struct TrainFailureArgs {
    /// Fleet seeds of the training rollouts (each: every fault and a good patch).
    #[arg(long, value_delimiter = ',', default_value = "101,102,103,104")]
    pub seeds: Vec<u64>,
    /// Fleet seeds of the held-out rollouts (early stopping, threshold, quality).
    #[arg(long, value_delimiter = ',', default_value = "105,106")]
    pub validation_seeds: Vec<u64>,
    /// VMs per simulated fleet.
    #[arg(long, default_value_t = 100)]
    pub vms: usize,
    /// Minutes ahead a failure is predicted.
    #[arg(long, default_value_t = 30)]
    pub horizon_minutes: u32,
    /// A bundle file (*.json) or a models folder (the bundle is written
    /// there as failure-<version>.json; every version is kept).
    #[arg(long, default_value = "bellwether-models")]
    pub out: PathBuf,
    /// Make the new bundle the folder's promoted failure model (what
    /// `failure.model = "<folder>"` loads).
    #[arg(long)]
    pub promote: bool,
    /// The model's version (default: the UTC time).
    #[arg(long)]
    pub version: Option<String>,
    /// A config file layered over the defaults (metrics, forecaster).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `bellwether train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Where the training data comes from.
    #[arg(long, value_enum, default_value = "simulator")]
    pub from: crate::model::command::TrainingSource,
    /// The history folder (with --from history).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// The CSV file (with --from csv): timestamp,vm_id,metric,value.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Simulated fleet seed (with --from simulator; the demo's fleet is 7).
    #[arg(long, default_value_t = 1007)]
    pub seed: u64,
    /// Simulated hours of unpatched history (with --from simulator).
    #[arg(long, default_value_t = 48.0)]
    pub hours: f64,
    /// A bundle file (*.json) or a models folder.
    #[arg(long, default_value = "bellwether-models")]
    pub out: PathBuf,
    /// Make the new bundle the models folder's promoted one (what
    /// `forecast.model = "<folder>"` loads).
    #[arg(long)]
    pub promote: bool,
    /// The model's version (default: the UTC time).
    #[arg(long)]
    pub version: Option<String>,
    /// Most epochs.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Epochs without a better validation RMSE before stopping early.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Share of the time range held out for validation (the latest part).
    #[arg(long, default_value_t = 0.2)]
    pub validation_share: f64,
    /// Seed of the initial weights and batch order.
    #[arg(long, default_value_t = 1)]
    pub train_seed: u64,
    /// A config file layered over the defaults (metrics, window).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// No progress bar (epochs are printed instead).
    #[arg(long)]
    pub quiet: bool,
}

/// `bellwether eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score every series of a NAB-layout folder with NAB's rules.
    Nab(NabArgs),
    /// Run a good patch and every fault on many seeded simulated fleets and
    /// report what reached past the canary stage and what was rolled back.
    Rollouts(RolloutsArgs),
    /// Record rollouts, mark their false alarms, retrain from that history,
    /// and compare later rollouts before and after.
    Retraining(RetrainingArgs),
}

/// `bellwether eval retraining` flags.
#[derive(Debug, Args)]
pub struct RetrainingArgs {
    /// Earlier (recorded) rollouts: fleet seeds 1..=N, each a good patch and every fault.
    #[arg(long, default_value_t = 4)]
    pub seeds: u64,
    /// Later rollouts: fleet seeds 101..=100+N.
    #[arg(long, default_value_t = 4)]
    pub later_seeds: u64,
    /// VMs per fleet (default: the config's).
    #[arg(long)]
    pub vms: Option<usize>,
    /// Retrain the LSTM forecaster too (adds its training and a second replay).
    #[arg(long)]
    pub forecaster: bool,
    /// Working folder (histories and models; emptied first).
    #[arg(long, default_value = "bellwether-eval-retraining")]
    pub work: PathBuf,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bellwether eval rollouts` flags.
#[derive(Debug, Args)]
pub struct RolloutsArgs {
    /// Fleet seeds 1..=N.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// VMs per fleet (default: the config's).
    #[arg(long)]
    pub vms: Option<usize>,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the totals as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give every odd seed a fleet-wide event (surge, slow dependency,
    /// regional incident or late batch job) during the canary stage.
    #[arg(long)]
    pub events: bool,
    /// Run the good patch only (false alarms on a large fleet, six times sooner).
    #[arg(long)]
    pub good_only: bool,
}

/// `bellwether eval nab` flags.
#[derive(Debug, Args)]
pub struct NabArgs {
    /// The folder: data/<category>/*.csv and labels/combined_windows.json.
    #[arg(long)]
    pub data: PathBuf,
    /// Write DIR/<category>/<name>.csv (timestamp,value,anomaly_score).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The detection threshold fixed in advance (0.5: the scorer's anomaly
    /// score at its threshold: a deviation at `thresholds.sigma`, a level
    /// never seen, or a run of errors past the likelihood gate).
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Rows after an alert during which it is not raised again unless it
    /// grows (48 rows of 5 minutes: Alertmanager's default repeat interval
    /// of 4 h); 0 scores every row on its own.
    #[arg(long, default_value_t = 48)]
    pub realert_after: usize,
    /// A config file layered over the defaults (the forecaster's settings).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `lstm`: an LSTM correction of the seasonal regression, trained on
    /// each series' probation rows (used where it beats the regression on
    /// held-out probation rows); `statistical`: the seasonal regression.
    #[arg(long, value_enum, default_value_t = NabDetector::Lstm)]
    pub detector: NabDetector,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also print, per file at the fixed threshold (standard profile),
    /// where each window was first detected or that it was missed, and
    /// every false positive with its cost.
    #[arg(long, conflicts_with = "json")]
    pub windows: bool,
}

/// The forecaster behind `bellwether eval nab`'s anomaly scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NabDetector {
    /// Per-series LSTM trained on the probation period.
    Lstm,
    /// The same LSTM with an interval head: it also forecasts the spread
    /// of each next window (trained with a Gaussian likelihood), which
    /// widens the spread a window is held to where it expects more noise
    /// than usual.
    LstmInterval,
    /// The statistical fallback (seasonal regression).
    Statistical,
}

/// `bellwether sql` flags.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; without one, an interactive prompt.
    pub query: Option<String>,
    /// The history folder (default: history.dir of the config).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::history::sql::OutputFormat,
}

impl Command {
    /// True for the long-running commands (they log at info by default).
    pub fn is_service(&self) -> bool {
        matches!(
            self,
            Command::Run(_)
                | Command::Actor(_)
                | Command::Gateway(_)
                | Command::Simulate(_)
                | Command::Approve(_)
        )
    }
}

/// Flags of the Kafka services.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The config file (layered over the defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Bootstrap brokers (overrides kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
}

impl ServiceArgs {
    fn load(&self) -> Result<Config> {
        let mut config = config::load(self.config.as_deref())?;
        if let Some(b) = &self.brokers {
            config.kafka.brokers = b.clone();
        }
        Ok(config)
    }
}

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

/// `bellwether simulate` flags.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Metrics topic (default: the first of kafka.metrics_topics).
    #[arg(long)]
    pub topic: Option<String>,
    /// `json` or `line-protocol`.
    #[arg(long, default_value = "json", value_parser = parse_format)]
    pub format: InputFormat,
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

/// `bellwether approve` flags.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Config and brokers.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The patch id, e.g. KB-2026-1102.
    #[arg(long)]
    pub patch: String,
    /// A title for humans.
    #[arg(long, default_value = "")]
    pub title: String,
    /// The rollout id (default: rollout-<patch id>).
    #[arg(long)]
    pub rollout_id: Option<String>,
    /// Who approves.
    #[arg(long, default_value = "operator")]
    pub by: String,
}

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

fn parse_format(s: &str) -> Result<InputFormat, String> {
    match s {
        "json" => Ok(InputFormat::Json),
        "line-protocol" | "line_protocol" | "influx" => Ok(InputFormat::LineProtocol),
        other => Err(format!(
            "unknown format `{other}`; use json or line-protocol"
        )),
    }
}

/// The simulated scenario: shared by `demo` and `simulate`.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// `bad` (default: watch a bad patch get caught) or `good`.
    #[arg(long, default_value = "bad")]
    pub scenario: String,
    /// How a bad patch breaks VMs: latency-regression, error-rate-rise,
    /// cpu-spike, memory-leak or slow-drift (default latency-regression).
    #[arg(long, value_parser = parse_fault)]
    pub fault: Option<FaultKind>,
    /// Seed of the simulated fleet (default: simulation.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// VMs in the fleet (default: fleet.vms).
    #[arg(long)]
    pub vms: Option<usize>,
    /// A fleet-wide event that hits patched and unpatched VMs alike:
    /// surge, dependency, region or batch; it starts 40 minutes after the
    /// patch, in the first wave's bake, and lasts an hour. Repeatable.
    #[arg(long, value_parser = parse_event)]
    pub event: Vec<crate::simulator::EventKind>,
}

/// Minutes after the patch that an `--event` starts: in the first wave's
/// bake, after its VMs have settled.
pub const EVENT_START_MINUTES: f64 = 40.0;

fn parse_event(s: &str) -> Result<crate::simulator::EventKind, String> {
    s.parse()
}

impl ScenarioArgs {
    /// Applies `--seed`, `--vms` and `--event` to `config`; the patch's quality.
    fn apply(&self, config: &mut Config) -> Result<PatchQuality> {
        for kind in &self.event {
            config
                .simulation
                .events
                .push(crate::simulator::FleetEvent::new(
                    *kind,
                    EVENT_START_MINUTES,
                ));
        }
        if let Some(seed) = self.seed {
            config.simulation.seed = seed;
        }
        if let Some(vms) = self.vms {
            anyhow::ensure!(vms > 0, "--vms must be at least 1");
            config.fleet.vms = vms;
        }
        patch_quality(&self.scenario, self.fault).map_err(anyhow::Error::msg)
    }
}

/// `bellwether demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve the live dashboard and /metrics on this address (e.g.
    /// 127.0.0.1:9464; port 0 picks one) and print its URL.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// With --serve: keep serving after the scenario ends, until Ctrl-C.
    #[arg(long, requires = "serve")]
    pub keep_serving: bool,
    /// Fleet seconds per real second once the patch is approved (default:
    /// flat out, or 600 with --serve so the rollout can be watched).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Where to write the Parquet history (default: history.dir).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Keep no history.
    #[arg(long, conflicts_with = "history")]
    pub no_history: bool,
}

/// `bellwether config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file: exits non-zero naming the first bad key.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the effective config (defaults + file + environment) as JSON.
    Show {
        /// A config file layered over the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn parse_fault(s: &str) -> Result<FaultKind, String> {
    s.parse()
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo(args),
        Command::Run(args) => {
            let config = args.service.load()?;
            crate::service::run::run(
                &config,
                crate::service::run::RunOptions {
                    no_actor: args.no_actor,
                },
            )
        }
        Command::Actor(args) => crate::service::actor::run_actor(&args.load()?),
        Command::Gateway(args) => {
            let mut config = args.service.load()?;
            if let Some(listen) = &args.listen {
                config.remote_write.gateway_listen = listen.clone();
            }
            crate::service::gateway::run_gateway(&config)
        }
        Command::Simulate(args) => simulate(args),
        Command::Mark(args) => {
            let config = args.service.load()?;
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
        Command::Approve(args) => {
            let config = args.service.load()?;
            let rollout_id = args
                .rollout_id
                .unwrap_or_else(|| format!("rollout-{}", args.patch.to_lowercase()));
            crate::service::approve::publish_approval(
                &config,
                bellwether_schemas::Approval {
                    rollout_id: rollout_id.clone(),
                    patch: bellwether_schemas::Patch {
                        id: args.patch,
                        title: args.title,
                        classification: "unspecified".into(),
                        severity: "unspecified".into(),
                        product: "unspecified".into(),
                    },
                    approved_by: args.by,
                    approved_at: bellwether_schemas::EventTime(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64),
                    ),
                },
            )?;
            println!("approved: {rollout_id}");
            Ok(())
        }
        Command::Sql(args) => sql(args),
        Command::ParseSql => crate::history::sql::parse_stdin().map_err(Into::into),
        Command::Eval(EvalCommand::Nab(args)) => eval_nab(args),
        Command::Eval(EvalCommand::Retraining(args)) => eval_retraining(args),
        Command::Eval(EvalCommand::Rollouts(args)) => eval_rollouts(args),
        Command::Train(args) => {
            let config = config::load(args.config.as_deref())?;
            let request = crate::model::command::TrainRequest {
                from: args.from,
                history: args.history,
                csv: args.csv,
                seed: args.seed,
                hours: args.hours,
                out: args.out,
                promote: args.promote,
                version: args.version,
                options: crate::model::train::TrainOptions {
                    hidden: args.hidden,
                    epochs: args.epochs,
                    patience: args.patience,
                    validation_share: args.validation_share,
                    seed: args.train_seed,
                    ..Default::default()
                },
                quiet: args.quiet,
                report_to_stderr: false,
            };
            crate::model::command::run_train(&config, &request)?;
            Ok(())
        }
        Command::TrainFailure(args) => train_failure(args),
        Command::Retrain(args) => retrain(args),
        Command::Group(GroupCommand::Preview(args)) => group_preview(args),
        Command::Group(GroupCommand::Define {
            service,
            name,
            selector,
            by,
        }) => change_inventory(
            &service,
            InventoryChange::DefineGroup {
                group: selector.group(&name)?,
            },
            &by,
            format!("group {name} defined"),
        ),
        Command::Group(GroupCommand::Remove { service, name, by }) => change_inventory(
            &service,
            InventoryChange::RemoveGroup { name: name.clone() },
            &by,
            format!("group {name} removed"),
        ),
        Command::Vm(VmCommand::Register { service, vm, by }) => {
            let vm = vm.vm()?;
            let done = format!("vm {} registered", vm.id);
            change_inventory(&service, InventoryChange::RegisterVm { vm }, &by, done)
        }
        Command::Vm(VmCommand::Remove { service, id, by }) => change_inventory(
            &service,
            InventoryChange::RemoveVm { vm_id: id.clone() },
            &by,
            format!("vm {id} removed"),
        ),
        Command::Rollout(args) => {
            let config = args.service.load()?;
            let action = args.action;
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
        Command::Patch(PatchCommand::Evaluate(args)) => patch_decision(args, false),
        Command::Patch(PatchCommand::Submit(args)) => patch_decision(args, true),
        Command::Patch(PatchCommand::Approve(args)) => patch_approve(args),
        Command::Patch(PatchCommand::Rules { service, file, by }) => {
            let config = service.load()?;
            let rules = crate::approval::file::read_rules(&file)?;
            let n = rules.rules.len();
            crate::service::approve::publish(
                &config,
                bellwether_schemas::ControlMessage::ApprovalRules(
                    bellwether_schemas::ApprovalRulesUpdate {
                        rules,
                        by,
                        at: bellwether_schemas::EventTime::now(),
                    },
                ),
            )?;
            println!("approval rules sent: {n} rule(s) in force once bellwether reads them");
            Ok(())
        }
        Command::Group(GroupCommand::List { config }) => {
            let config = config::load(config.as_deref())?;
            let inventory = crate::service::load_inventory(&config)?;
            for name in inventory.group_names() {
                let group = inventory.group(name).expect("listed");
                let m = crate::monitor::groups::members(&inventory, group);
                println!("{:<24} {:>6} VMs", m.name, m.count);
            }
            Ok(())
        }
        Command::Model(ModelCommand::List { models }) => {
            let versions = crate::model::versions::list(&models)?;
            if versions.is_empty() {
                println!("no model bundle in {}", models.display());
            }
            for v in versions {
                println!(
                    "{} {:<8} {:<40} {:<24} {}",
                    if v.promoted { "*" } else { " " },
                    v.kind,
                    v.file,
                    v.version,
                    v.figures
                );
            }
            Ok(())
        }
        Command::Model(ModelCommand::Promote { models, bundle }) => {
            let kind = crate::model::versions::promote(&models, &bundle)?;
            println!(
                "promoted {bundle} as the {kind} model of {} (loaded at the next start)",
                models.display()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => {
            config::load(Some(&file))?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::Config(ConfigCommand::Show { config }) => {
            let config = config::load(config.as_deref())?;
            write_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&config::redacted(&config))?
            ))
        }
    }
}

fn demo(args: DemoArgs) -> Result<()> {
    let mut config: Config = config::load(args.config.as_deref())?;
    let quality = args.scenario.apply(&mut config)?;
    if let Some(speed) = args.speed {
        anyhow::ensure!(
            speed > 0.0 && speed.is_finite(),
            "--speed must be a positive number, not {speed}"
        );
    }
    let options = DemoOptions {
        quality,
        speed: args.speed.or(args.serve.as_ref().map(|_| 600.0)),
    };

    let dir = args
        .history
        .clone()
        .unwrap_or_else(|| config.history.dir.clone());
    let history = if args.no_history || dir.as_os_str().is_empty() {
        None
    } else {
        let options = crate::history::HistoryOptions::from_config(
            &config.history,
            config.window.allowed_lateness_secs as i64 * 1000,
            false,
        );
        Some(std::sync::Arc::new(std::sync::Mutex::new(
            crate::history::History::open(&dir, options)?,
        )))
    };

    let (monitor, server) = match &args.serve {
        Some(addr) => {
            let fleet = crate::simulator::FleetSimulator::new(&config, quality).inventory();
            let inventory = crate::inventory::Inventory::with_groups(fleet, &config.canary.groups)
                .map_err(|(group, e)| anyhow::anyhow!("canary group `{group}`: {}", e.reason))?;
            let monitor = Monitor::new(&inventory, crate::scoring::forecaster(&config).name());
            let root = history.as_ref().map(|h| {
                h.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .root()
                    .to_path_buf()
            });
            let server = crate::monitor::server::serve_with(
                addr,
                crate::monitor::server::AppState {
                    monitor: monitor.clone(),
                    history: root,
                    control: None,
                    approval: None,
                    sql: config.sql,
                    hosts: crate::monitor::guard::AllowedHosts(std::sync::Arc::new(
                        config.http.allowed_hosts.clone(),
                    )),
                    limits: (&config.http).into(),
                    waves: Some(crate::monitor::waves::WaveSettings {
                        rollout: config.rollout.clone(),
                        judge: config.judge.clone(),
                    }),
                    remote_write: None,
                },
            )?;
            eprintln!(
                "dashboard: {}  (metrics: {}metrics)",
                server.url(),
                server.url()
            );
            (Some(monitor), Some(server))
        }
        None => (None, None),
    };

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}").context("progress bar template")?,
    );
    let summary = run_demo(
        &config,
        options,
        monitor.as_ref(),
        history.as_ref(),
        &mut |p: &Progress| {
            bar.set_message(progress_line(p));
            bar.tick();
        },
    )?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", render_text(&summary));
    }
    if let Some(h) = &history {
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        let rows: u64 = h.written().iter().map(|(_, n)| n).sum();
        eprintln!(
            "history: {} ({rows} rows); try: bellwether sql --history {} \"SELECT vm_id, reason FROM commands WHERE action = 'rollback'\"",
            h.root().display(),
            h.root().display()
        );
    }
    if let (Some(server), true) = (&server, args.keep_serving) {
        use std::io::Write;
        std::io::stdout().flush()?;
        eprintln!("still serving {} (Ctrl-C to stop)", server.url());
        let stop = crate::service::shutdown_flag()?;
        while !crate::service::stopping(&stop) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Writes `text` to standard output; a reader that went away (`| head`)
/// ends the command quietly, as every Unix tool does.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        result => Ok(result?),
    }
}

fn sql(args: SqlArgs) -> Result<()> {
    use crate::history::sql;
    let config = config::load(args.config.as_deref())?;
    let root = args.history.unwrap_or(config.history.dir);
    anyhow::ensure!(
        root.is_dir(),
        "no history at {} (run `bellwether demo` or pass --history DIR)",
        root.display()
    );
    // Planned and run on the runtime's workers, which have deep stacks
    // (see sql::STACK_BYTES).
    let runtime = sql::runtime()?;
    let result = sql_session(&runtime, &root, args.query, args.format, &config.sql);
    runtime.shutdown_background();
    result
}

fn sql_session(
    runtime: &tokio::runtime::Runtime,
    root: &std::path::Path,
    query: Option<String>,
    format: crate::history::sql::OutputFormat,
    limits: &crate::history::sql::SqlConfig,
) -> Result<()> {
    use crate::history::sql;
    if let Some(q) = query {
        let batches = sql::query_bounded(runtime, root, &q, limits, || false)?;
        write_stdout(&sql::render(&batches, format)?)?;
        return Ok(());
    }
    use std::io::{BufRead, Write};
    eprintln!(
        "bellwether sql over {}: tables {}; end a query with ';', quit with \\q",
        root.display(),
        crate::history::tables::TABLES.join(", ")
    );
    let stdin = std::io::stdin();
    let mut statement = String::new();
    loop {
        eprint!(
            "{}",
            if statement.is_empty() {
                "bellwether> "
            } else {
                "       ...> "
            }
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim();
        if statement.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        statement.push_str(&line);
        if !trimmed.ends_with(';') {
            continue;
        }
        let q = std::mem::take(&mut statement);
        match sql::query_bounded(
            runtime,
            root,
            q.trim().trim_end_matches(';'),
            limits,
            || false,
        ) {
            Ok(batches) => write_stdout(&sql::render(&batches, format)?)?,
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let mut config = args.service.load()?;
    let quality = args.scenario.apply(&mut config)?;
    let warmup = config.simulation.warmup_hours;
    let options = crate::service::simulate::SimulateOptions {
        quality,
        topic: args.topic,
        format: args.format,
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

fn progress_line(p: &Progress) -> String {
    if p.warming_up {
        format!(
            "[{}] learning the fleet's normal behaviour ({} VMs)",
            p.now, p.fleet
        )
    } else {
        format!(
            "[{}] {} · wave {}/{} · {}/{} VMs on the patch · {} rolled back",
            p.now,
            p.state.as_str(),
            p.waves_started,
            p.waves_planned,
            p.patched,
            p.fleet,
            p.rolled_back
        )
    }
}

fn eval_rollouts(args: RolloutsArgs) -> Result<()> {
    let mut config = config::load(args.config.as_deref())?;
    if let Some(vms) = args.vms {
        anyhow::ensure!(vms > 0, "--vms must be at least 1");
        config.fleet.vms = vms;
    }
    anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
    let seeds: Vec<u64> = (1..=args.seeds).collect();
    let patches = if args.good_only {
        vec![crate::simulator::PatchQuality::Good]
    } else {
        crate::eval::rollouts::every_patch()
    };
    let bar = ProgressBar::new((seeds.len() * patches.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} rollouts")
            .context("progress bar template")?,
    );
    let lines = crate::eval::rollouts::evaluate_patches(
        &config,
        &seeds,
        &patches,
        args.events,
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&lines)?);
        return Ok(());
    }
    println!(
        "{} seeds x ({}), {} VMs each{}",
        seeds.len(),
        if args.good_only {
            "good patch".to_string()
        } else {
            format!(
                "good patch + {} faults",
                crate::simulator::FaultKind::ALL.len()
            )
        },
        config.fleet.vms,
        if args.events {
            "; odd seeds with a fleet-wide event in the canary stage"
        } else {
            ""
        }
    );
    print!("{}", crate::eval::rollouts::table(&lines));
    Ok(())
}

fn eval_retraining(args: RetrainingArgs) -> Result<()> {
    use crate::eval::retraining::{RetrainingPlan, evaluate_retraining};
    let mut config = config::load(args.config.as_deref())?;
    if let Some(vms) = args.vms {
        anyhow::ensure!(vms > 0, "--vms must be at least 1");
        config.fleet.vms = vms;
    }
    anyhow::ensure!(
        args.seeds > 0 && args.later_seeds > 0,
        "--seeds and --later-seeds must be at least 1"
    );
    let plan = RetrainingPlan {
        earlier_seeds: (1..=args.seeds).collect(),
        later_seeds: (101..=100 + args.later_seeds).collect(),
        work: args.work,
        forecaster: args.forecaster,
    };
    let r = evaluate_retraining(&config, &plan, |step| eprintln!("{step} ..."))?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let vms = config.fleet.vms;
    println!(
        "earlier rollouts (seeds 1..={}, {vms} VMs, recorded; {} false alarms marked by the simulated operator):",
        args.seeds, r.marked_false_alarms
    );
    print!("{}", crate::eval::rollouts::table(&r.earlier));
    println!("\nretraining from their history:");
    print!("{}", crate::model::retrain::describe(&r.retraining));
    for (name, lines) in [("before", &r.before), ("after", &r.after)] {
        println!(
            "\nlater rollouts (seeds 101..={}), models {name} retraining:",
            100 + args.later_seeds
        );
        print!("{}", crate::eval::rollouts::table(lines));
    }
    for (name, q) in [
        ("before", &r.failure_model_before),
        ("after", &r.failure_model_after),
    ] {
        if let Some(q) = q {
            println!(
                "failure model {name}, later seeds without rollbacks: precision {:.3}, recall {:.3} of {} crashes, median lead {:.0} min at risk >= {:.2}",
                q.precision, q.recall, q.failures, q.median_lead_minutes, q.threshold
            );
        }
    }
    Ok(())
}

fn patch_decision(args: PatchArgs, submit: bool) -> Result<()> {
    use crate::approval::submit::{PatchRequest, submission, what_happens};
    let config = args.service.load()?;
    let request = PatchRequest {
        id: args.id.clone(),
        title: args.title.clone(),
        classification: args.classification.clone(),
        severity: args.severity.clone(),
        product: args.product.clone(),
        released_at: args.released_at.clone(),
        rollout_id: args.rollout_id.clone(),
        by: None,
        canary_groups: (!args.canary_group.is_empty()).then(|| args.canary_group.clone()),
    };
    // Groups defined over the API are not in the config: the running
    // bellwether checks those.
    let inventory = crate::service::load_inventory(&config)?;
    let mut groups = inventory.group_names();
    groups.extend(args.canary_group.iter().map(String::as_str));
    let s = submission(
        &request,
        &args.by,
        bellwether_schemas::EventTime::now(),
        &groups,
    )
    .map_err(|e| anyhow::anyhow!("--{} {}", e.field.replace('_', "-"), e.reason))?;
    if submit {
        // The rollout actor keeps the submission: it starts the rollout once
        // the approval takes effect, or when a human approves it.
        crate::service::approve::publish(
            &config,
            bellwether_schemas::ControlMessage::Submission(s.clone()),
        )?;
    }
    // What the config's rules decide; rules put in force over the API
    // (`bellwether patch rules`) take precedence in the running bellwether.
    let decision = crate::approval::submit::decide(&config.approval, &s);
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "patch": s.patch.id, "rollout_id": s.rollout_id, "decision": decision, "submitted": submit, "next": what_happens(&s, &decision) })
        );
    } else if submit {
        println!("{}", what_happens(&s, &decision));
    } else {
        println!(
            "{} (bellwether patch submit to act on it)",
            crate::approval::rules::describe(&decision)
        );
    }
    Ok(())
}

/// Publishes an inventory change (`vm register|remove`, `group define|remove`).
fn change_inventory(
    service: &ServiceArgs,
    change: bellwether_schemas::InventoryChange,
    by: &str,
    done: String,
) -> Result<()> {
    let config = service.load()?;
    crate::service::inventory::publish_change(&config, change, by)?;
    println!("{done}");
    Ok(())
}

fn patch_approve(args: PatchApproveArgs) -> Result<()> {
    let config = args.service.load()?;
    let rollout_id = args
        .rollout_id
        .unwrap_or_else(|| crate::approval::submit::default_rollout_id(&args.id));
    crate::service::approve::publish(
        &config,
        bellwether_schemas::ControlMessage::Manual(bellwether_schemas::ManualCommand {
            rollout_id: rollout_id.clone(),
            action: bellwether_schemas::ManualAction::Approve,
            by: args.by,
            reason: args.reason,
            at: bellwether_schemas::EventTime::now(),
        }),
    )?;
    println!(
        "approval sent: {rollout_id} starts if its patch waits for one (see the rollout events)"
    );
    Ok(())
}

fn group_preview(args: GroupPreviewArgs) -> Result<()> {
    use crate::inventory::selector::Selector;
    let config = config::load(args.config.as_deref())?;
    let inventory = crate::service::load_inventory(&config)?;
    if args.waves {
        let groups = match &args.group {
            Some(g) if inventory.group(g).is_none() => {
                anyhow::bail!(
                    "--group {g}: no such group; groups: {}",
                    inventory.group_names().join(", ")
                )
            }
            Some(g) => vec![g.clone()],
            None => config.rollout.canary_groups.clone(),
        };
        let preview = crate::rollout::planner::preview(
            &inventory,
            &config.rollout,
            &config.judge,
            &groups,
            &crate::approval::submit::default_rollout_id(
                args.patch.as_deref().unwrap_or("preview"),
            ),
        );
        if args.json {
            println!("{}", serde_json::to_string(&preview)?);
        } else {
            write_stdout(&crate::rollout::planner::describe(&preview))?;
        }
        return Ok(());
    }
    let selector = match &args.group {
        Some(name) => inventory.group(name).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "--group {name}: no such group; groups: {}",
                inventory.group_names().join(", ")
            )
        })?,
        None => {
            let group = args.selector.group("preview")?;
            Selector::compile(&group)
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.reason))?
        }
    };
    let m = crate::monitor::groups::members(&inventory, &selector);
    if args.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!("{} of {} VMs match", m.count, inventory.vms().len());
        for id in &m.vms {
            println!("{id}");
        }
    }
    Ok(())
}

fn retrain(args: RetrainArgs) -> Result<()> {
    let config = config::load(args.config.as_deref())?;
    let mut request = crate::model::retrain::RetrainRequest::from_config(&config);
    if !args.history.is_empty() {
        request.histories = args.history;
    }
    if let Some(m) = args.models {
        request.models = m;
    }
    if let Some(only) = &args.only {
        request.forecaster = only == "forecaster";
        request.failure = only == "failure";
    }
    if let Some(s) = args.held_out_share {
        request.held_out_share = s;
    }
    if let Some(e) = args.lstm_epochs {
        request.lstm_epochs = e;
    }
    request.version = args.version;
    if let Some(hours) = args.every {
        anyhow::ensure!(
            hours > 0.0 && hours.is_finite(),
            "--every {hours}: give a positive number of hours"
        );
        anyhow::ensure!(
            request.version.is_none(),
            "--version names one candidate: leave it out with --every (each run is named by its time)"
        );
        let stop = crate::service::shutdown_flag()?;
        let every = std::time::Duration::from_secs_f64(hours * 3600.0);
        eprintln!("retraining every {hours} h until Ctrl-C");
        let _schedule =
            crate::model::schedule::RetrainSchedule::spawn(config.clone(), request, every);
        while !crate::service::stopping(&stop) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        return Ok(());
    }
    let reports = crate::model::retrain::retrain(&config, &request)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", crate::model::retrain::describe(&reports));
    }
    Ok(())
}

fn train_failure(args: TrainFailureArgs) -> Result<()> {
    use crate::model::failure::{
        FailureTrainOptions, SimulationPlan, simulate_examples, train_failure,
    };
    let config = config::load(args.config.as_deref())?;
    anyhow::ensure!(
        !args.seeds.is_empty() && !args.validation_seeds.is_empty(),
        "--seeds and --validation-seeds each need at least one seed"
    );
    anyhow::ensure!(
        args.seeds
            .iter()
            .all(|s| !args.validation_seeds.contains(s)),
        "--validation-seeds must differ from --seeds (held-out rollouts)"
    );
    let version = args
        .version
        .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let plan = |seeds: &[u64]| SimulationPlan {
        vms: args.vms,
        ..SimulationPlan::all_faults(seeds)
    };
    eprintln!(
        "simulating {} training and {} held-out rollouts ({} VMs each, no rollbacks)",
        plan(&args.seeds).rollouts.len(),
        plan(&args.validation_seeds).rollouts.len(),
        args.vms
    );
    let train = simulate_examples(&config, &plan(&args.seeds), args.horizon_minutes)?;
    let held_out = simulate_examples(&config, &plan(&args.validation_seeds), args.horizon_minutes)?;
    let failing =
        |e: &crate::model::failure::FailureExamples| e.y.iter().filter(|y| **y > 0.5).count();
    eprintln!(
        "{} training examples ({} before a failure), {} held out ({} before a failure)",
        train.len(),
        failing(&train),
        held_out.len(),
        failing(&held_out)
    );
    let options = FailureTrainOptions {
        horizon_minutes: args.horizon_minutes,
        ..FailureTrainOptions::default()
    };
    let trained = train_failure(&train, &held_out, &options, &version)?;
    let q = trained.validation;
    let bundle = crate::model::failure_bundle::FailureBundle::new(
        &trained,
        &version,
        format!(
            "simulated rollouts without rollbacks: seeds {:?} (every fault and a good patch), {} VMs, crashes within {} min as labels; held out: seeds {:?}",
            args.seeds, args.vms, args.horizon_minutes, args.validation_seeds
        ),
    );
    let path = if args.out.extension().is_some_and(|e| e == "json") {
        anyhow::ensure!(
            !args.promote,
            "--promote needs a models folder as --out, not a file"
        );
        args.out.clone()
    } else {
        args.out.join(format!("failure-{version}.json"))
    };
    bundle.save(&path)?;
    if args.promote {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        crate::model::versions::promote(&args.out, &name)?;
        eprintln!("promoted: {name}");
    }
    println!(
        "failure model {} ({} steps): on held-out rollouts at risk >= {:.2}: precision {:.3}, recall {:.3} of {} failures, median lead {:.0} min",
        trained.model.name,
        trained.epochs,
        q.threshold,
        q.precision,
        q.recall,
        q.failures,
        q.median_lead_minutes
    );
    println!("written {}", path.display());
    Ok(())
}

fn eval_nab(args: NabArgs) -> Result<()> {
    use crate::eval::nab;
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.threshold),
        "--threshold must be within [0, 1], not {}",
        args.threshold
    );
    let config = config::load(args.config.as_deref())?;
    let series = nab::read_corpus(&args.data)?;
    let bar = ProgressBar::new(series.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    let base = crate::model::seasonal_config(&config);
    let options = crate::eval::lstm_detector::nab_train_options(
        base,
        args.detector == NabDetector::LstmInterval,
    );
    let scorer_base = crate::scoring::scorer_config(&config)?;
    let mut scores = Vec::new();
    let (mut on_lstm, mut notes) = (0usize, Vec::new());
    for s in &series {
        bar.set_message(s.key.clone());
        let forecaster = match args.detector {
            NabDetector::Statistical => crate::model::statistical(&config),
            NabDetector::Lstm | NabDetector::LstmInterval => {
                let d = crate::eval::lstm_detector::detector_for(s, &options);
                on_lstm += usize::from(d.lstm);
                if let Some((lstm, seasonal)) = d.validation {
                    notes.push(serde_json::json!({
                        "series": s.key,
                        "lstm": d.lstm,
                        "lstm_validation_rmse": lstm,
                        "seasonal_validation_rmse": seasonal,
                        "reason": d.reason,
                    }));
                } else {
                    notes.push(
                        serde_json::json!({"series": s.key, "lstm": false, "reason": d.reason}),
                    );
                }
                d.forecaster
            }
        };
        let scorer = nab::scorer_config(&scorer_base, config.thresholds.sigma, s)?;
        scores.push(nab::detect(s, forecaster, scorer, args.realert_after)?);
        bar.inc(1);
    }
    let forecaster_name = match args.detector {
        NabDetector::Statistical => crate::model::statistical(&config).name().to_string(),
        NabDetector::Lstm | NabDetector::LstmInterval => format!(
            "{} per series (LSTM on {on_lstm} of {} series, seasonal-regression on the rest)",
            if options.interval {
                "lstm with an interval head"
            } else {
                "lstm"
            },
            series.len()
        ),
    };
    bar.finish_and_clear();
    if let Some(out) = &args.out {
        nab::write_results(out, &series, &scores)?;
        eprintln!("anomaly scores written under {}", out.display());
    }
    let files = nab::scored_files(&series, &scores);
    if args.windows {
        print!("{}", nab::window_report(&series, &files, args.threshold));
    }
    let reports = nab::report(&files, args.threshold);
    if args.json {
        let json: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "profile": r.profile.name,
                    "detector": forecaster_name,
                    "fixed_threshold": r.fixed.threshold,
                    "fixed_score": r.fixed.normalized,
                    "tuned_threshold": r.tuned.threshold,
                    "tuned_score": r.tuned.normalized,
                    "leave_one_out_score": r.leave_one_out,
                    "windows": r.fixed.windows,
                    "fixed_detected_windows": r.fixed.detected_windows,
                    "fixed_false_positives": r.fixed.false_positives,
                    "series": notes,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&json)?);
        return Ok(());
    }
    println!(
        "NAB score of the scorer (forecaster: {}) over {} files ({} windows):",
        forecaster_name,
        files.len(),
        reports.first().map_or(0, |r| r.fixed.windows)
    );
    println!(
        "{:<20} {:>22} {:>26} {:>14}",
        "profile", "fixed threshold", "best threshold (all files)", "leave-one-out"
    );
    for r in &reports {
        println!(
            "{:<20} {:>10.1} (t={:<6}) {:>14.1} (t={:<6.4}) {:>14.1}",
            r.profile.name,
            r.fixed.normalized,
            r.fixed.threshold,
            r.tuned.normalized,
            r.tuned.threshold,
            r.leave_one_out
        );
    }
    Ok(())
}
