//! `bellwether train`: train an LSTM forecaster and write its bundle.

use super::bundle::ModelBundle;
use super::data::{self, TrainingSeries};
use super::train::{TrainOptions, train};
use crate::config::Config;
use anyhow::{Context, bail};
use bellwether_schemas::EventTime;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// Where the training data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainingSource {
    /// A simulated fleet's unpatched history (`--seed`, `--hours`).
    Simulator,
    /// A Parquet history folder (`--history`), each VM up to its first patch.
    History,
    /// A CSV file of samples (`--csv`): `timestamp,vm_id,metric,value`.
    Csv,
}

/// What `bellwether train` was asked to do.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The data source.
    pub from: TrainingSource,
    /// History folder (with `history`).
    pub history: Option<PathBuf>,
    /// CSV file (with `csv`).
    pub csv: Option<PathBuf>,
    /// Simulated fleet seed.
    pub seed: u64,
    /// Simulated hours.
    pub hours: f64,
    /// A bundle file (`.json`) or a models folder.
    pub out: PathBuf,
    /// In a models folder, make this bundle the promoted one.
    pub promote: bool,
    /// The version (default: the UTC time of training).
    pub version: Option<String>,
    /// Training settings.
    pub options: TrainOptions,
    /// No progress bar.
    pub quiet: bool,
    /// Where the closing report (figures per metric) goes: standard output
    /// for `bellwether train`, standard error when called by retraining
    /// (whose own report is the output).
    pub report_to_stderr: bool,
}

/// Trains, writes the bundle, and returns its path.
pub fn run_train(config: &Config, request: &TrainRequest) -> anyhow::Result<PathBuf> {
    let metrics = &config.thresholds.metrics;
    let window_ms = config.window.slide_secs as i64 * 1000;
    let per_hour = EventTime::HOUR_MS as f64 / window_ms as f64;
    let mut options = request.options.clone();
    options.base.harmonics = config.forecast.harmonics;
    options.consecutive_windows = config.thresholds.consecutive_windows as usize;
    options.base.forgetting_half_life_windows =
        config.forecast.forgetting_half_life_hours * per_hour;
    let series: TrainingSeries = match request.from {
        TrainingSource::Simulator => data::from_simulator(config, request.seed, request.hours)?,
        TrainingSource::History => {
            let Some(dir) = &request.history else {
                bail!("--from history needs --history DIR");
            };
            data::from_history(dir, metrics, window_ms)?
        }
        TrainingSource::Csv => {
            let Some(file) = &request.csv else {
                bail!("--from csv needs --csv FILE");
            };
            data::from_csv(file, metrics, window_ms)?
        }
    };
    let version = request
        .version
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%d%H%M%S").to_string());
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("--version `{version}`: use letters, digits, `-`, `_` and `.` only");
    }
    eprintln!(
        "training on {}: {} VMs × {} windows of {} s",
        series.source,
        series.vms.len(),
        series.windows,
        window_ms / 1000
    );
    let bar = if request.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} batches {elapsed} {msg}")
            .context("progress bar template")?,
    );
    let trained = train(
        &series,
        &options,
        &version,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        |e| {
            bar.set_message(format!(
                "epoch {}: loss {:.4}, validation RMSE {:.4}",
                e.epoch, e.train_loss, e.validation_rmse
            ));
            if request.quiet {
                eprintln!(
                    "epoch {}: loss {:.4}, validation RMSE {:.4}",
                    e.epoch, e.train_loss, e.validation_rmse
                );
            }
        },
    )?;
    bar.finish_and_clear();
    let bundle = ModelBundle::new(
        &trained,
        &options,
        &version,
        &series.source,
        series.vms.len(),
        config.window.slide_secs,
    );
    let path = write(&bundle, &request.out, request.promote)?;
    let say = |line: String| {
        if request.report_to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "model lstm-{version}: best epoch {} of {}, validation RMSE {:.3} (in units of each VM's spread)",
        trained.best_epoch,
        trained.epochs.len(),
        trained.validation_rmse
    ));
    say(format!(
        "{:<30} {:>15} {:>18}",
        "metric", "validation RMSE", "learned threshold"
    ));
    for (i, m) in trained.model.metrics.iter().enumerate() {
        say(format!(
            "{m:<30} {:>15.3} {:>16.1} σ",
            trained.validation_rmse_per_metric[i], trained.thresholds[i]
        ));
    }
    say(format!("bundle written to {}", path.display()));
    Ok(path)
}

fn write(bundle: &ModelBundle, out: &Path, promote: bool) -> anyhow::Result<PathBuf> {
    let is_file = out.extension().is_some_and(|e| e == "json");
    if is_file {
        if promote {
            bail!("--promote needs a models folder as --out, not a file");
        }
        bundle.save(out)?;
        return Ok(out.to_path_buf());
    }
    let name = format!("lstm-{}.json", bundle.version);
    let path = out.join(&name);
    bundle.save(&path)?;
    if promote {
        super::versions::promote(out, &name)?;
        let pointer = out.join(super::versions::LSTM_POINTER);
        eprintln!("promoted: {} now names {name}", pointer.display());
    }
    Ok(path)
}
