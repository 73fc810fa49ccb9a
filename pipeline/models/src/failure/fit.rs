//! The failure model's trainer: logistic regression with burn, early
//! stopping on held-out rollouts, the threshold chosen on them.

use super::{FailureExamples, FailureTrainOptions, FailureTrainingError, TrainedFailure, quality};
use bellwether_operators::failure::FailureModel;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

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
