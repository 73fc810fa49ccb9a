//! The command line: one module per command, each with its flags and an
//! `exec` calling the library.

mod api;
mod config;
mod demo;
mod eval;
mod group;
mod mark;
mod model;
mod patch;
mod remote;
mod rollout;
mod run;
mod simulate;
mod sql;
mod train;
mod vm;

pub use demo::EVENT_START_MINUTES;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Automated patch canarying with predictive failure analysis.
#[derive(Debug, Parser)]
#[command(name = "bellwether", version, about)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole canary rollout on a simulated fleet, embedded, in fleet time.
    Demo(demo::DemoArgs),
    /// Run the scoring pipeline on Kafka (and the rollout actor, unless --no-actor).
    Run(run::RunArgs),
    /// Run the rollout actor alone on the control topic.
    Actor(ServiceArgs),
    /// Take Prometheus remote write (POST /api/v1/write) and produce the
    /// samples onto the metrics topic, without scoring them here.
    Gateway(run::GatewayArgs),
    /// Publish a simulated fleet's metrics on Kafka and obey executed commands.
    Simulate(simulate::SimulateArgs),
    /// Deprecated (kept for one release): starts a patch's rollout without
    /// the approval rules. Use `patch submit`, then `patch approve`.
    #[command(hide = true)]
    Approve(patch::ApproveArgs),
    /// Report a VM's outcome (it failed, or its rollback was a false alarm)
    /// on the control topic, for the history and the models to learn from.
    Mark(mark::MarkArgs),
    /// Query the history with SQL (no query: an interactive prompt).
    Sql(sql::SqlArgs),
    /// Parses the SQL on stdin and exits: how a query's parse is bounded
    /// in time (see `history::sql::parse_in_child`). Not for users.
    #[command(hide = true)]
    ParseSql,
    /// Check or show configuration, or print its reference.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The HTTP API's OpenAPI document or its reference, without a server.
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// Evaluate the detector on labelled data.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Train an LSTM forecaster and write its model bundle.
    Train(train::TrainArgs),
    /// Train the failure-pattern model on simulated rollouts and write its bundle.
    TrainFailure(train::TrainFailureArgs),
    /// List or promote the model versions of a models folder.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Retrain the forecaster and the failure model from recorded history,
    /// run each in shadow on the latest episodes, promote the better.
    Retrain(train::RetrainArgs),
    /// Canary groups: which VMs a group or a selector matches.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Patches and the approval rules.
    #[command(subcommand)]
    Patch(patch::PatchCommand),
    /// The inventory of the running bellwether: register or remove VMs.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Rollouts: list them and show one (from a running bellwether's API),
    /// or pause, resume, promote, abort, or roll every patched VM back now
    /// (published on the control topic).
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
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

/// Flags every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// A config file layered over the defaults (`BELLWETHER__*` environment
    /// variables go over both).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How to print results: `table` (for people; the default), `json`, or
    /// `csv` (`sql` only).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
}

/// What `--format` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON (`sql`: one object per row, a line each).
    Json,
    /// Comma-separated values with a header row (`sql` only).
    Csv,
}

impl Global {
    /// The config in force: defaults, `--config`, environment.
    pub fn load(&self) -> Result<crate::config::Config> {
        Ok(crate::config::load(self.config.as_deref())?)
    }

    /// True when the command should print JSON: `--format json`, or the
    /// older `--json` of the command (`legacy`). (`--format csv` is refused
    /// before any command other than `sql` runs.)
    pub fn json(&self, legacy: bool) -> bool {
        legacy || self.format == Some(Format::Json)
    }
}

/// Flags of the Kafka services.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Bootstrap brokers (overrides kafka.brokers).
    #[arg(long)]
    pub brokers: Option<String>,
}

impl ServiceArgs {
    fn load(&self, global: &Global) -> Result<crate::config::Config> {
        let mut config = global.load()?;
        if let Some(b) = &self.brokers {
            config.kafka.brokers = b.clone();
        }
        Ok(config)
    }
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    // Checked before any work: `eval rollouts --format csv` must not run
    // for minutes and then refuse.
    if global.format == Some(Format::Csv) && !matches!(cli.command, Command::Sql(_)) {
        anyhow::bail!("--format csv: only `bellwether sql` prints CSV; use table or json");
    }
    match cli.command {
        Command::Demo(args) => demo::exec(args, global),
        Command::Run(args) => run::exec(args, global),
        Command::Actor(args) => run::exec_actor(args, global),
        Command::Gateway(args) => run::exec_gateway(args, global),
        Command::Simulate(args) => simulate::exec(args, global),
        Command::Mark(args) => mark::exec(args, global),
        Command::Approve(args) => patch::exec_approve(args, global),
        Command::Sql(args) => sql::exec(args, global),
        Command::ParseSql => sql::exec_parse(),
        Command::Eval(command) => eval::exec(command, global),
        Command::Train(args) => train::exec(args, global),
        Command::TrainFailure(args) => train::exec_failure(args, global),
        Command::Retrain(args) => train::exec_retrain(args, global),
        Command::Group(command) => group::exec(command, global),
        Command::Vm(command) => vm::exec(command, global),
        Command::Rollout(command) => rollout::exec(command, global),
        Command::Patch(command) => patch::exec(command, global),
        Command::Model(command) => model::exec(command, global),
        Command::Config(command) => config::exec(command, global),
        Command::Api(command) => api::exec(command),
    }
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

/// Publishes an inventory change (`vm register|remove`, `group define|remove`).
fn change_inventory(
    global: &Global,
    service: &ServiceArgs,
    change: bellwether_schemas::InventoryChange,
    by: &str,
    done: String,
) -> Result<()> {
    let config = service.load(global)?;
    crate::service::inventory::publish_change(&config, change, by)?;
    println!("{done}");
    Ok(())
}
