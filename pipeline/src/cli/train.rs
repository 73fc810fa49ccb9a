//! `bellwether train`, `train-failure` and `retrain`: the models learned
//! from history or simulation.

use super::Global;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

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
    /// No progress bar (epochs are printed instead).
    #[arg(long)]
    pub quiet: bool,
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
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
    /// Keep running and retrain every HOURS (fractions allowed), until Ctrl-C.
    #[arg(long)]
    pub every: Option<f64>,
}

/// Refuses at once, before any data is read, in a build without the
/// trainers (the `training` feature).
fn needs_training() -> Result<()> {
    if cfg!(feature = "training") {
        Ok(())
    } else {
        Err(crate::model::train::TrainError::NotBuilt.into())
    }
}

/// Trains an LSTM forecaster bundle.
pub fn exec(args: TrainArgs, global: &Global) -> Result<()> {
    needs_training()?;
    let config = global.load()?;
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

/// Trains a failure model.
pub fn exec_failure(args: TrainFailureArgs, global: &Global) -> Result<()> {
    use crate::model::failure::{
        FailureTrainOptions, SimulationPlan, simulate_examples, train_failure,
    };
    needs_training()?;
    let config = global.load()?;
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

/// Retrains on recorded outcomes, candidates in shadow.
pub fn exec_retrain(args: RetrainArgs, global: &Global) -> Result<()> {
    needs_training()?;
    let config = global.load()?;
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
    if global.json(args.json) {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", crate::model::retrain::describe(&reports));
    }
    Ok(())
}
