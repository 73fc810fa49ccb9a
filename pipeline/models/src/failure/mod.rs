//! The failure-pattern model: logistic regression trained with burn on
//! labelled examples, and the measures of how well it predicts.
//!
//! Each example is one patched, judged VM in one window: its failure
//! features ([`bellwether_operators::failure`], read from the scorer
//! exactly as the pipeline computes them) and whether the VM crashed
//! within the horizon after the window closed. Rollouts are simulated
//! without rollbacks, so every failure the patch causes happens and is
//! seen; good patches and faults that do not crash (latency, errors, CPU,
//! drift) are the negatives that keep "anomalous" apart from "about to
//! fail".

use bellwether_operators::failure::FailureModel;
use bellwether_schemas::EventTime;

#[cfg(feature = "training")]
mod fit;
#[cfg(feature = "training")]
pub use fit::train_failure;

/// Refuses: this build has no trainer (the `training` feature).
#[cfg(not(feature = "training"))]
pub fn train_failure(
    _train: &FailureExamples,
    _validation: &FailureExamples,
    _options: &FailureTrainOptions,
    _version: &str,
) -> Result<TrainedFailure, FailureTrainingError> {
    Err(FailureTrainingError::NotBuilt)
}

/// Labelled examples: one row per patched VM and window.
#[derive(Debug, Clone, Default)]
pub struct FailureExamples {
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// `row × feature`.
    pub x: Vec<f32>,
    /// 1 when the VM crashed within the horizon after the window.
    pub y: Vec<f32>,
    /// Which rollout of the plan the row comes from.
    pub rollout: Vec<u32>,
    /// VM id and window end (ms) of the row.
    pub at: Vec<(String, i64)>,
    /// Every crash seen, per rollout: VM id and time (ms).
    pub crashes: Vec<Vec<(String, i64)>>,
}

impl FailureExamples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True without examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Features per example.
    pub fn width(&self) -> usize {
        self.features.len()
    }
}

/// Simulation or scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum FailureTrainingError {
    /// The scorer refused its settings or input.
    #[error(transparent)]
    Operator(#[from] bellwether_operators::OperatorError),
    /// Recorded history could not be read.
    #[error(transparent)]
    Data(#[from] crate::series::DataError),
    /// Nothing to learn from.
    #[error("no usable examples: {0}")]
    Empty(String),
    /// This build cannot train (built without the `training` feature).
    #[error(
        "this bellwether was built without training (the `training` feature); build it with the default features: cargo build --release"
    )]
    NotBuilt,
}

/// Settings of a failure-model training run.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureTrainOptions {
    /// Full-batch Adam steps at most.
    pub epochs: usize,
    /// Steps without a better validation loss before stopping.
    pub patience: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Minutes ahead the labels look.
    pub horizon_minutes: u32,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for FailureTrainOptions {
    fn default() -> FailureTrainOptions {
        FailureTrainOptions {
            epochs: 3000,
            patience: 300,
            learning_rate: 0.1,
            horizon_minutes: 30,
            seed: 1,
        }
    }
}

/// How well a failure model predicts, on some examples (0 where a
/// figure is undefined: no flag, no failure).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailureQuality {
    /// The risk threshold the figures are taken at.
    pub threshold: f64,
    /// Share of flagged VM-windows that did fail within the horizon.
    pub precision: f64,
    /// Share of failures flagged at least once within the horizon before them.
    pub recall: f64,
    /// Median minutes between the first flag before a failure and the failure.
    pub median_lead_minutes: f64,
    /// Failures in the examples.
    pub failures: usize,
}

/// A trained failure model with how it did on held-out rollouts.
#[derive(Debug, Clone)]
pub struct TrainedFailure {
    /// The model.
    pub model: FailureModel,
    /// The risk threshold chosen on the held-out rollouts (best F1).
    pub threshold: f64,
    /// Quality at that threshold on the held-out rollouts.
    pub validation: FailureQuality,
    /// Steps run.
    pub epochs: usize,
}

/// Precision over flagged VM-windows, recall and lead time over failures,
/// of `risks` (one per example) at `threshold`.
pub fn quality(
    examples: &FailureExamples,
    risks: &[f64],
    threshold: f64,
    horizon_minutes: u32,
) -> FailureQuality {
    let horizon_ms = horizon_minutes as i64 * EventTime::MINUTE_MS;
    let flagged: Vec<usize> = (0..examples.len())
        .filter(|&i| risks[i] >= threshold)
        .collect();
    let true_flags = flagged.iter().filter(|&&i| examples.y[i] > 0.5).count();
    let precision = if flagged.is_empty() {
        0.0
    } else {
        true_flags as f64 / flagged.len() as f64
    };
    // Per failure: the earliest flag within the horizon before it.
    let mut leads = Vec::new();
    let mut failures = 0;
    for (r, crashes) in examples.crashes.iter().enumerate() {
        for (vm, crash) in crashes {
            failures += 1;
            let first = flagged
                .iter()
                .filter(|&&i| examples.rollout[i] as usize == r)
                .map(|&i| &examples.at[i])
                .filter(|(v, t)| v == vm && *t < *crash && crash - t <= horizon_ms)
                .map(|(_, t)| *t)
                .min();
            if let Some(t) = first {
                leads.push((crash - t) as f64 / EventTime::MINUTE_MS as f64);
            }
        }
    }
    leads.sort_by(f64::total_cmp);
    FailureQuality {
        threshold,
        precision,
        recall: if failures == 0 {
            0.0
        } else {
            leads.len() as f64 / failures as f64
        },
        median_lead_minutes: leads.get(leads.len() / 2).copied().unwrap_or(0.0),
        failures,
    }
}
