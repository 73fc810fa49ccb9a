//! The command line.

use crate::config::{self, Config};
use crate::demo::{DemoOptions, Progress, patch_quality, run_demo};
use crate::simulator::FaultKind;
use crate::summary::render_text;
use anyhow::{Context, Result};
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
    /// Check or show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `bellwether demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
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
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// A config file layered over the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
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
        Command::Config(ConfigCommand::Check { file }) => {
            config::load(Some(&file))?;
            println!("{}: ok", file.display());
            Ok(())
        }
        Command::Config(ConfigCommand::Show { config }) => {
            let config = config::load(config.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

fn demo(args: DemoArgs) -> Result<()> {
    let mut config: Config = config::load(args.config.as_deref())?;
    if let Some(seed) = args.seed {
        config.simulation.seed = seed;
    }
    if let Some(vms) = args.vms {
        anyhow::ensure!(vms > 0, "--vms must be at least 1");
        config.fleet.vms = vms;
    }
    let quality = patch_quality(&args.scenario, args.fault).map_err(anyhow::Error::msg)?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}").context("progress bar template")?,
    );
    let summary = run_demo(&config, DemoOptions { quality }, &mut |p: &Progress| {
        bar.set_message(progress_line(p));
        bar.tick();
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", render_text(&summary));
    }
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
