//! `bellwether demo`: a whole canary rollout on a simulated fleet,
//! embedded, in fleet time; and the simulated scenario it shares with
//! `bellwether simulate`.

use super::Global;
use crate::config::Config;
use crate::demo::{DemoOptions, Progress, patch_quality, run_demo};
use crate::monitor::Monitor;
use crate::simulator::{FaultKind, PatchQuality};
use crate::summary::render_text;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `bellwether demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
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
    /// Rollouts at once, 1 to 4: the first rolls the scenario's patch out
    /// (bad by default), every further one a good patch canaried on
    /// another group; they run side by side on disjoint VMs (up to
    /// rollout.max_parallel).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub rollouts: u8,
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
    /// How big the fault is, in its unit: latency-regression `5%` (of
    /// response time), error-rate-rise `0.5pp` and cpu-spike `3pp`
    /// (points), memory-leak `0.5pp/min`, slow-drift `10%/h` (default:
    /// simulation.fault_size, else each fault's own size).
    #[arg(long)]
    pub size: Option<String>,
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
    /// Applies `--seed`, `--vms`, `--size` and `--event` to `config`; the
    /// patch's quality.
    pub fn apply(&self, config: &mut Config) -> Result<PatchQuality> {
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
        let quality = patch_quality(&self.scenario, self.fault).map_err(anyhow::Error::msg)?;
        if let Some(size) = &self.size {
            let PatchQuality::Bad(kind) = quality else {
                anyhow::bail!("--size only applies to --scenario bad");
            };
            let size = kind
                .parse_size(size)
                .map_err(|e| anyhow::anyhow!("--size: {e}"))?;
            config.simulation.fault_size = Some(size);
        }
        Ok(quality)
    }
}

fn parse_fault(s: &str) -> Result<FaultKind, String> {
    s.parse()
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

/// Runs the demo.
pub fn exec(args: DemoArgs, global: &Global) -> Result<()> {
    let mut config: Config = global.load()?;
    let quality = args.scenario.apply(&mut config)?;
    if let Some(speed) = args.speed {
        anyhow::ensure!(
            speed > 0.0 && speed.is_finite(),
            "--speed must be a positive number, not {speed}"
        );
    }
    // With --serve and http.token, operators pause, resume, promote, abort
    // or roll back the demo's rollout over the API, as against `run`.
    let (operator_in, operator) = std::sync::mpsc::channel();
    let takes_commands = args.serve.is_some() && !config.http.token.is_empty();
    let options = DemoOptions {
        quality,
        speed: args.speed.or(args.serve.as_ref().map(|_| 600.0)),
        operator: takes_commands.then(|| std::sync::Arc::new(std::sync::Mutex::new(operator))),
        rollouts: usize::from(args.rollouts),
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
            crate::history::History::open_afresh(&dir, options)?,
        )))
    };

    let (monitor, server) = match &args.serve {
        Some(addr) => {
            let fleet =
                crate::simulator::FleetSimulator::new(&config.fleet, &config.simulation, quality)
                    .inventory();
            let inventory = crate::inventory::Inventory::with_groups(fleet, &config.canary.groups)
                .map_err(|(group, e)| anyhow::anyhow!("canary group `{group}`: {}", e.reason))?;
            let monitor = Monitor::new(&inventory, crate::scoring::forecaster(&config).name());
            let root = history.as_ref().map(|_| dir.clone());
            let server = crate::monitor::server::serve_with(
                addr,
                crate::monitor::server::AppState {
                    monitor: monitor.clone(),
                    history: root,
                    control: takes_commands.then(|| crate::monitor::outcomes::ControlAccess {
                        token: config.http.token.clone(),
                        sender: operator_in.clone(),
                        canary_groups: config.rollout.canary_groups.clone(),
                    }),
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
    if global.json(args.json) {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", render_text(&summary));
    }
    if let Some(h) = &history {
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        let rows: u64 = h.written().iter().map(|(_, n)| n).sum();
        if cfg!(feature = "sql") {
            eprintln!(
                "history: {} ({rows} rows); try: bellwether sql --history {} \"SELECT vm_id, reason FROM commands WHERE action = 'rollback'\"",
                dir.display(),
                dir.display()
            );
        } else {
            eprintln!(
                "history: {} ({rows} rows); query it with DuckDB or pyarrow, or with `bellwether sql` from a build with the default features",
                dir.display()
            );
        }
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
