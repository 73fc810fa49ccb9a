//! `bellwether eval`: the detector on NAB, seeded rollouts, the retraining
//! loop.

use super::Global;
use crate::config::Config;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `bellwether eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score every series of a NAB-layout folder with NAB's rules.
    Nab(NabArgs),
    /// Run a good patch and every fault on many seeded simulated fleets and
    /// report what reached past the canary stage and what was rolled back.
    Rollouts(RolloutsArgs),
    /// The smallest regression stopped in the canary stage: seeded rollouts
    /// over fault size x canary size x bake time, with the false halts of
    /// good patches under the same settings.
    Sensitivity(SensitivityArgs),
    /// Record rollouts, mark their false alarms, retrain from that history,
    /// and compare later rollouts before and after.
    Retraining(RetrainingArgs),
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
    /// `lstm`: an LSTM correction of the seasonal regression, trained on
    /// each series' probation rows (used where it beats the regression on
    /// held-out probation rows); `statistical`: the seasonal regression.
    #[arg(long, value_enum, default_value_t = NabDetector::Lstm)]
    pub detector: NabDetector,
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
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

/// `bellwether eval rollouts` flags.
#[derive(Debug, Args)]
pub struct RolloutsArgs {
    /// Fleet seeds 1..=N.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// VMs per fleet (default: the config's).
    #[arg(long)]
    pub vms: Option<usize>,
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
    /// Give every odd seed a fleet-wide event (surge, slow dependency,
    /// regional incident or late batch job) during the canary stage.
    #[arg(long)]
    pub events: bool,
    /// Run the good patch only (false alarms on a large fleet, six times sooner).
    #[arg(long)]
    pub good_only: bool,
}

/// `bellwether eval sensitivity` flags.
#[derive(Debug, Args)]
pub struct SensitivityArgs {
    /// Fleet seeds 1..=N for every setting.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// VMs per fleet (default: the config's).
    #[arg(long)]
    pub vms: Option<usize>,
    /// VMs in the canary stage, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [6, 15, 30])]
    pub canary: Vec<usize>,
    /// Minutes the first wave bakes (later waves half of it), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [120])]
    pub bake: Vec<u32>,
    /// Faults to sweep, comma-separated: latency-regression, error-rate-rise,
    /// cpu-spike (each at half, one, two and four times the size the
    /// sensitivity goals name: 5%, 0.5pp, 3pp).
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Also draw the sweep to this SVG file: per fault, the share stopped
    /// against the size, one curve per canary size (the first --bake).
    #[arg(long)]
    pub plot: Option<PathBuf>,
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
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
}

/// Runs a `bellwether eval` subcommand.
pub fn exec(command: EvalCommand, global: &Global) -> Result<()> {
    match command {
        EvalCommand::Nab(args) => eval_nab(args, global),
        EvalCommand::Rollouts(args) => eval_rollouts(args, global),
        EvalCommand::Sensitivity(args) => eval_sensitivity(args, global),
        EvalCommand::Retraining(args) => eval_retraining(args, global),
    }
}

fn eval_nab(args: NabArgs, global: &Global) -> Result<()> {
    use crate::eval::nab;
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.threshold),
        "--threshold must be within [0, 1], not {}",
        args.threshold
    );
    let json = global.json(args.json);
    anyhow::ensure!(
        !(json && args.windows),
        "--windows prints text; it cannot go with --format json"
    );
    let config = global.load()?;
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
    if json {
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

/// The config with `--vms` applied, once `--vms` and `--seeds` are checked.
fn seeded_fleet(global: &Global, vms: Option<usize>, seeds: u64) -> Result<Config> {
    let mut config = global.load()?;
    if let Some(vms) = vms {
        anyhow::ensure!(vms > 0, "--vms must be at least 1");
        config.fleet.vms = vms;
    }
    anyhow::ensure!(seeds > 0, "--seeds must be at least 1");
    Ok(config)
}

fn eval_sensitivity(args: SensitivityArgs, global: &Global) -> Result<()> {
    use crate::eval::sensitivity::{Grid, sweep, table};
    let config = seeded_fleet(global, args.vms, args.seeds)?;
    anyhow::ensure!(
        args.canary.iter().all(|&c| c > 0 && c <= config.fleet.vms),
        "--canary sizes must be between 1 and the fleet's {} VMs",
        config.fleet.vms
    );
    anyhow::ensure!(
        args.bake.iter().all(|&b| b > 0),
        "--bake must be at least 1 minute"
    );
    if let Some(path) = &args.plot {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        anyhow::ensure!(
            dir.is_none_or(|d| d.is_dir()),
            "--plot {}: no such folder",
            path.display()
        );
    }
    let mut grid = Grid::goals(args.canary, args.bake, (1..=args.seeds).collect());
    if !args.faults.is_empty() {
        for name in &args.faults {
            anyhow::ensure!(
                grid.faults.iter().any(|(k, _)| k.to_string() == *name),
                "--faults: `{name}` is not one of latency-regression, error-rate-rise, cpu-spike"
            );
        }
        grid.faults
            .retain(|(k, _)| args.faults.contains(&k.to_string()));
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} rollouts")
            .context("progress bar template")?,
    );
    let result = sweep(&config, &grid, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    if let Some(path) = &args.plot {
        crate::eval::sensitivity_plot::plot(&result, path)?;
    }
    if global.json(false) {
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    println!(
        "{} seeds per setting, {} VMs each; stopped: share of bad rollouts halted with no wave past the canary stage",
        grid.seeds.len(),
        config.fleet.vms
    );
    print!("{}", table(&result));
    Ok(())
}

fn eval_rollouts(args: RolloutsArgs, global: &Global) -> Result<()> {
    let config = seeded_fleet(global, args.vms, args.seeds)?;
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
    if global.json(args.json) {
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

fn eval_retraining(args: RetrainingArgs, global: &Global) -> Result<()> {
    use crate::eval::retraining::{RetrainingPlan, evaluate_retraining};
    let mut config = global.load()?;
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
    if global.json(args.json) {
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
