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
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

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

#[derive(Module, Debug)]
struct Logistic {
    linear: Linear,
}

/// Trains the failure model on `train` (early stopping and the threshold
/// on `validation`, other rollouts).
pub fn train_failure(
    train: &FailureExamples,
    validation: &FailureExamples,
    options: &FailureTrainOptions,
    version: &str,
) -> Result<TrainedFailure, FailureTrainingError> {
    let width = train.width();
    let positives = train.y.iter().filter(|y| **y > 0.5).count();
    if positives == 0 || positives == train.len() {
        return Err(FailureTrainingError::Empty(format!(
            "{positives} of {} training examples failed: need both failures and survivors",
            train.len()
        )));
    }
    // Standardise each feature over the training examples.
    let n = train.len() as f64;
    let mut mean = vec![0.0f32; width];
    let mut scale = vec![0.0f32; width];
    for j in 0..width {
        let col = (0..train.len()).map(|i| train.x[i * width + j] as f64);
        let m = col.clone().sum::<f64>() / n;
        let v = col.map(|x| (x - m).powi(2)).sum::<f64>() / n;
        mean[j] = m as f32;
        scale[j] = (v.sqrt() as f32).max(1e-3);
    }
    let standardise = |e: &FailureExamples| -> Vec<f32> {
        e.x.iter()
            .enumerate()
            .map(|(i, &x)| (x - mean[i % width]) / scale[i % width])
            .collect()
    };
    let device = Device::flex().autodiff();
    device.seed(options.seed);
    let x = Tensor::<2>::from_data(
        TensorData::new(standardise(train), [train.len(), width]),
        &device,
    );
    let y = Tensor::<2>::from_data(TensorData::new(train.y.clone(), [train.len(), 1]), &device);
    // Failures are rare: weigh them up to balance the classes.
    let pos_weight = ((train.len() - positives) as f32 / positives as f32).min(50.0);
    let w = y.clone().mul_scalar(pos_weight - 1.0).add_scalar(1.0);
    let mut net = Logistic {
        linear: LinearConfig::new(width, 1).init(&device),
    };
    let mut optim = AdamConfig::new().init();
    let mut best: Option<(f64, FailureModel, usize)> = None;
    let mut epochs = 0;
    for epoch in 1..=options.epochs {
        epochs = epoch;
        let z = net.linear.forward(x.clone());
        // Binary cross-entropy with logits, in its stable form.
        let loss = (z.clone().clamp_min(0.0) - z.clone() * y.clone()
            + z.abs().neg().exp().add_scalar(1.0).log())
            * w.clone();
        let loss = loss.mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(options.learning_rate, net, grads);
        let model = export(&net, &train.features, &mean, &scale, options, version);
        let v = log_loss(&model, &validation.x, &validation.y, pos_weight);
        if best.as_ref().is_none_or(|(b, _, _)| v < *b) {
            best = Some((v, model, epoch));
        } else if best
            .as_ref()
            .is_some_and(|(_, _, e)| epoch - e >= options.patience)
        {
            break;
        }
    }
    let (_, model, _) = best.expect("at least one step ran");
    // The threshold is chosen where failures were seen: the held-out
    // examples, or the training ones when none of those failed (a short
    // recorded history).
    let chosen_on = if validation.y.iter().any(|y| *y > 0.5) {
        validation
    } else {
        train
    };
    let threshold = best_threshold(
        chosen_on,
        &model.risk(&chosen_on.x),
        options.horizon_minutes,
    );
    let risks = model.risk(&validation.x);
    let validation = quality(validation, &risks, threshold, options.horizon_minutes);
    Ok(TrainedFailure {
        model,
        threshold,
        validation,
        epochs,
    })
}

fn export(
    net: &Logistic,
    features: &[String],
    mean: &[f32],
    scale: &[f32],
    options: &FailureTrainOptions,
    version: &str,
) -> FailureModel {
    let weights = net
        .linear
        .weight
        .val()
        .into_data()
        .as_slice::<f32>()
        .expect("f32 weights")
        .to_vec();
    let bias = net
        .linear
        .bias
        .as_ref()
        .map(|b| b.val().into_data().as_slice::<f32>().expect("f32")[0])
        .unwrap_or(0.0);
    FailureModel {
        features: features.to_vec(),
        mean: mean.to_vec(),
        scale: scale.to_vec(),
        weights,
        bias,
        horizon_minutes: options.horizon_minutes,
        name: format!("failure-{version}"),
    }
}

/// Class-weighted mean log loss of `model` on raw features `x`.
fn log_loss(model: &FailureModel, x: &[f32], y: &[f32], pos_weight: f32) -> f64 {
    let risks = model.risk(x);
    let (mut sum, mut weight) = (0.0, 0.0);
    for (p, &label) in risks.iter().zip(y) {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        let w = if label > 0.5 { pos_weight as f64 } else { 1.0 };
        sum -= w * if label > 0.5 { p.ln() } else { (1.0 - p).ln() };
        weight += w;
    }
    sum / weight.max(1.0)
}

/// The threshold with the best balance of what the goals ask: precision
/// of flagged VM-windows and recall of failures (each flagged at least once
/// within the horizon before it), their F1, among thresholds that flag
/// failures at least 5 minutes ahead (median). Falls back to 0.5.
fn best_threshold(examples: &FailureExamples, risks: &[f64], horizon_minutes: u32) -> f64 {
    let mut best = (0.5, -1.0);
    for step in 1..100 {
        let t = step as f64 / 100.0;
        let q = quality(examples, risks, t, horizon_minutes);
        if q.median_lead_minutes < 5.0 {
            continue;
        }
        let f1 = 2.0 * q.precision * q.recall / (q.precision + q.recall).max(1e-9);
        if f1 > best.1 {
            best = (t, f1);
        }
    }
    best.0
}

/// Precision over flagged VM-windows, recall and lead time over failures,
/// of `risks` (one per example) at `threshold`.
pub fn quality(
    examples: &FailureExamples,
    risks: &[f64],
    threshold: f64,
    horizon_minutes: u32,
) -> FailureQuality {
    let horizon_ms = horizon_minutes as i64 * 60_000;
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
                leads.push((crash - t) as f64 / 60_000.0);
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
