//! The trainer itself: burn's LSTM and Adam over prepared sequences,
//! validated in the fused kernel.

use super::{EpochReport, TrainError, TrainOptions, Trained};
use crate::series::TrainingSeries;
use crate::thresholds::learn_threshold;
use arrow::array::{Array, Float64Array};
use bellwether_operators::forecast::lstm::normalise::RunningStats;
use bellwether_operators::forecast::lstm::{
    LOG_SPREAD_BOUND, LstmModel, LstmWeights, Normaliser, TIME_FEATURES, kernel, time_features,
};
use bellwether_operators::forecast::seasonal::{SeasonalRegression, SeasonalRegressionConfig};
use bellwether_operators::forecast::{Forecaster, TimeRange};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Lstm, LstmConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// A burn LSTM with its dense head and Adam: training one batch at a time.
pub struct Trainer {
    net: Net,
    optim: burn::optim::ModuleOptimizer,
    device: Device,
    input: usize,
    outputs: usize,
    interval: bool,
    learning_rate: f64,
}

impl Trainer {
    /// A fresh model on burn's flex CPU backend with autodiff.
    pub fn new(
        input: usize,
        hidden: usize,
        outputs: usize,
        learning_rate: f64,
        seed: u64,
    ) -> Trainer {
        Trainer::with_head(input, hidden, outputs, false, learning_rate, seed)
    }

    /// A fresh model whose head predicts `outputs` values and, with
    /// `interval`, the log-spread of each as well (`2 × outputs` in all).
    pub fn with_head(
        input: usize,
        hidden: usize,
        outputs: usize,
        interval: bool,
        learning_rate: f64,
        seed: u64,
    ) -> Trainer {
        let device = Device::flex().autodiff();
        device.seed(seed);
        let head = if interval { 2 * outputs } else { outputs };
        Trainer {
            net: Net {
                lstm: LstmConfig::new(input, hidden, true).init(&device),
                head: LinearConfig::new(hidden, head).init(&device),
            },
            optim: AdamConfig::new().init(),
            device,
            input,
            outputs,
            interval,
            learning_rate,
        }
    }

    /// One optimiser step on a batch: `x` is `batch × steps × input`,
    /// `y` and `mask` are `batch × steps × outputs` (mask 1 = scored).
    /// Returns the batch's masked mean squared error (with an interval
    /// head, its masked Gaussian negative log-likelihood,
    /// `s + d² e^(-2s) / 2` for a log-spread `s`).
    pub fn step(
        &mut self,
        x: Vec<f32>,
        y: Vec<f32>,
        mask: Vec<f32>,
        batch: usize,
        steps: usize,
    ) -> f64 {
        let scored: f32 = mask.iter().sum::<f32>().max(1.0);
        let d = &self.device;
        let x = Tensor::<3>::from_data(TensorData::new(x, [batch, steps, self.input]), d);
        let y = Tensor::<3>::from_data(TensorData::new(y, [batch, steps, self.outputs]), d);
        let mask = Tensor::<3>::from_data(TensorData::new(mask, [batch, steps, self.outputs]), d);
        let out = self.net.forward(x);
        let loss = if self.interval {
            let m = self.outputs;
            let mean = out.clone().narrow(2, 0, m);
            let log_spread = out
                .narrow(2, m, m)
                .clamp(-LOG_SPREAD_BOUND as f32, LOG_SPREAD_BOUND as f32);
            let diff = mean - y;
            let nll = log_spread.clone()
                + (diff.clone() * diff * log_spread.mul_scalar(-2.0).exp()).mul_scalar(0.5);
            (nll * mask).sum().div_scalar(scored)
        } else {
            let diff = out - y;
            (diff.clone() * diff * mask).sum().div_scalar(scored)
        };
        let value = loss
            .clone()
            .into_data()
            .as_slice::<f32>()
            .map(|v| v[0])
            .unwrap_or(f32::NAN);
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        let net = self.net.clone();
        self.net = self.optim.step(self.learning_rate, net, grads);
        value as f64
    }

    /// The current weights in the fused layout.
    pub fn weights(&self) -> LstmWeights {
        let head = if self.interval {
            2 * self.outputs
        } else {
            self.outputs
        };
        self.net.weights(self.input, head)
    }
}

#[derive(Module, Debug)]
struct Net {
    lstm: Lstm,
    head: Linear,
}

impl Net {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (h, _) = self.lstm.forward(x, None);
        self.head.forward(h)
    }

    /// The trained weights in the fused layout.
    fn weights(&self, input: usize, outputs: usize) -> LstmWeights {
        let hidden = self.lstm.d_hidden;
        let width = 4 * hidden;
        let values = |t: Tensor<2>| -> Vec<f32> {
            t.into_data()
                .as_slice::<f32>()
                .expect("f32 weights")
                .to_vec()
        };
        let bias = |b: &Option<burn::module::Param<Tensor<1>>>| -> Vec<f32> {
            b.as_ref()
                .map(|b| b.val().into_data().as_slice::<f32>().expect("f32").to_vec())
                .unwrap_or_else(|| vec![0.0; hidden])
        };
        let forget = self
            .lstm
            .forget_gate
            .as_ref()
            .expect("forget gate is built");
        let gates = [
            &self.lstm.input_gate,
            forget,
            &self.lstm.cell_gate,
            &self.lstm.output_gate,
        ];
        let mut fused = vec![0.0f32; (input + hidden) * width];
        let mut fused_bias = vec![0.0f32; width];
        for (g, gate) in gates.iter().enumerate() {
            let wi = values(gate.input_transform.weight.val()); // input × hidden
            let wh = values(gate.hidden_transform.weight.val()); // hidden × hidden
            for k in 0..input {
                fused[k * width + g * hidden..][..hidden]
                    .copy_from_slice(&wi[k * hidden..][..hidden]);
            }
            for k in 0..hidden {
                fused[(input + k) * width + g * hidden..][..hidden]
                    .copy_from_slice(&wh[k * hidden..][..hidden]);
            }
            let (bi, bh) = (
                bias(&gate.input_transform.bias),
                bias(&gate.hidden_transform.bias),
            );
            for j in 0..hidden {
                fused_bias[g * hidden + j] = bi[j] + bh[j];
            }
        }
        let head = values(self.head.weight.val());
        let head_bias = bias(&self.head.bias);
        LstmWeights::new(input, hidden, outputs, fused, fused_bias, head, head_bias)
            .expect("burn's shapes match the fused layout")
    }
}

/// Normalised inputs and next-window targets of every VM.
struct Prepared {
    vms: usize,
    windows: usize,
    input: usize,
    outputs: usize,
    /// vm × window × input.
    x: Vec<f32>,
    /// vm × window × outputs: the next window, normalised; NaN = no data.
    y: Vec<f32>,
}

/// The seasonal regression's residual of every VM, metric and window
/// (`vm × window × metric`, NaN where it has no forecast or no data),
/// fitted window by window as the forecaster does at run time.
fn base_residuals(series: &TrainingSeries, base: SeasonalRegressionConfig) -> Vec<f64> {
    let m = series.metrics.len();
    let (vms, windows) = (series.vms.len(), series.windows);
    let slots = vms * m;
    let mut regression = SeasonalRegression::new(base);
    let learn = vec![true; slots];
    let mut residuals = vec![f64::NAN; vms * windows * m];
    for w in 0..windows {
        let range = TimeRange {
            start_ms: series.window_start(w),
            end_ms: series.window_start(w + 1),
        };
        let forecast = regression.forecast(range, slots);
        let observed: Float64Array = (0..slots)
            .map(|slot| Some(series.at(slot / m, w)[slot % m]).filter(|v| !v.is_nan()))
            .collect();
        regression.observe(range, &observed, &learn);
        for slot in 0..slots {
            let (vm, metric) = (slot / m, slot % m);
            let value = series.at(vm, w)[metric];
            if forecast.is_valid(slot) && !value.is_nan() {
                residuals[(vm * windows + w) * m + metric] = value - forecast.value(slot);
            }
        }
    }
    residuals
}

fn prepare(
    series: &TrainingSeries,
    normaliser: &Normaliser,
    base: SeasonalRegressionConfig,
) -> Prepared {
    let m = series.metrics.len();
    let input = m + TIME_FEATURES;
    let (vms, windows) = (series.vms.len(), series.windows);
    let residual = base_residuals(series, base);
    let at = |vm: usize, w: usize| &residual[(vm * windows + w) * m..][..m];
    let mut x = vec![0.0f32; vms * windows * input];
    let mut y = vec![f32::NAN; vms * windows * m];
    for vm in 0..vms {
        let mut stats = vec![RunningStats::default(); m];
        for w in 0..windows {
            let row = &mut x[(vm * windows + w) * input..][..input];
            for (i, &value) in at(vm, w).iter().enumerate() {
                if value.is_nan() {
                    continue;
                }
                if stats[i].count() > 0 {
                    row[i] = normaliser.normalise(&stats[i], value) as f32;
                }
                normaliser.update(&mut stats[i], value);
            }
            let next_mid = series.window_start(w + 1) + series.window_ms / 2;
            row[m..].copy_from_slice(&time_features(next_mid));
            if w + 1 < windows {
                for (i, &value) in at(vm, w + 1).iter().enumerate() {
                    if !value.is_nan() && stats[i].count() > 0 {
                        y[(vm * windows + w) * m + i] =
                            normaliser.normalise(&stats[i], value) as f32;
                    }
                }
            }
        }
    }
    Prepared {
        vms,
        windows,
        input,
        outputs: m,
        x,
        y,
    }
}

/// Runs `weights` over every VM's whole series; returns per-window
/// normalised residuals (`vm × window × outputs`, NaN without a target).
/// From window `free_from` on, the model is fed its own predictions
/// instead of the observed metrics: how the forecaster follows a patched
/// VM.
fn residuals(p: &Prepared, weights: &LstmWeights, free_from: usize) -> Vec<f32> {
    let hidden = weights.hidden();
    // The head's outputs: the forecasts first, then any interval head's.
    let outs = weights.outputs();
    let mut h = vec![0.0f32; p.vms * hidden];
    let mut c = vec![0.0f32; p.vms * hidden];
    let mut out = vec![0.0f32; p.vms * outs];
    let mut step = vec![0.0f32; p.vms * p.input];
    let mut r = vec![f32::NAN; p.vms * p.windows * p.outputs];
    for w in 0..p.windows {
        for vm in 0..p.vms {
            let row = &mut step[vm * p.input..][..p.input];
            row.copy_from_slice(&p.x[(vm * p.windows + w) * p.input..][..p.input]);
            if w >= free_from {
                row[..p.outputs].copy_from_slice(&out[vm * outs..][..p.outputs]);
            }
        }
        kernel::run(weights, &step, 1, &mut h, &mut c);
        kernel::head(weights, &h, &mut out);
        for vm in 0..p.vms {
            for i in 0..p.outputs {
                let at = (vm * p.windows + w) * p.outputs + i;
                r[at] = out[vm * outs + i] - p.y[at];
            }
        }
    }
    r
}

fn rmse(r: &[f32], p: &Prepared, windows: std::ops::Range<usize>, metric: Option<usize>) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0u64);
    for vm in 0..p.vms {
        for w in windows.clone() {
            for i in 0..p.outputs {
                let v = r[(vm * p.windows + w) * p.outputs + i];
                if !v.is_nan() && metric.is_none_or(|m| m == i) {
                    sum += (v as f64).powi(2);
                    n += 1;
                }
            }
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).sqrt()
    }
}

/// Trains a model on `series`. `progress` is told of every batch
/// (`done`, `total`) and every epoch.
pub fn train(
    series: &TrainingSeries,
    options: &TrainOptions,
    version: &str,
    mut on_batch: impl FnMut(usize, usize),
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    if options.hidden == 0 || options.batch == 0 || options.sequence <= options.burn_in {
        return Err(TrainError::Setting(format!(
            "hidden {}, batch {}, sequence {} (must exceed burn-in {})",
            options.hidden, options.batch, options.sequence, options.burn_in
        )));
    }
    if !(0.05..=0.5).contains(&options.validation_share) {
        return Err(TrainError::Setting(format!(
            "validation share {} (use 0.05 to 0.5)",
            options.validation_share
        )));
    }
    let normaliser = Normaliser::default();
    let p = prepare(series, &normaliser, options.base);
    let split = ((p.windows as f64) * (1.0 - options.validation_share)).round() as usize;
    let seq = options.sequence;
    if split < seq + options.warmup_windows as usize || p.windows - split < 12 {
        return Err(TrainError::TooLittle(format!(
            "{} windows per VM: need at least {} for training and 12 held out",
            p.windows,
            seq + options.warmup_windows as usize
        )));
    }
    // Training sequences: every VM, starts every half sequence, inside the training part.
    let mut starts: Vec<(usize, usize)> = (0..p.vms)
        .flat_map(|vm| {
            (0..=split - seq)
                .step_by((seq / 2).max(1))
                .map(move |s| (vm, s))
        })
        .collect();
    let mut trainer = Trainer::with_head(
        p.input,
        options.hidden,
        p.outputs,
        options.interval,
        options.learning_rate,
        options.seed,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let batches = starts.len().div_ceil(options.batch);
    let total = batches * options.epochs;
    let mut done = 0;
    let mut best: Option<(f64, LstmWeights, usize)> = None;
    let mut reports = Vec::new();
    let warmup = options.warmup_windows as usize;
    for epoch in 1..=options.epochs {
        starts.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for chunk in starts.chunks(options.batch) {
            let b = chunk.len();
            let mut x = Vec::with_capacity(b * seq * p.input);
            let mut y = Vec::with_capacity(b * seq * p.outputs);
            let mut mask = Vec::with_capacity(b * seq * p.outputs);
            for &(vm, s) in chunk {
                x.extend_from_slice(&p.x[(vm * p.windows + s) * p.input..][..seq * p.input]);
                for t in 0..seq {
                    let at = (vm * p.windows + s + t) * p.outputs;
                    for &v in &p.y[at..at + p.outputs] {
                        let scored = t >= options.burn_in && s + t >= warmup && !v.is_nan();
                        y.push(if v.is_nan() { 0.0 } else { v });
                        mask.push(if scored { 1.0f32 } else { 0.0 });
                    }
                }
            }
            loss_sum += trainer.step(x, y, mask, b, seq);
            done += 1;
            on_batch(done, total);
        }
        let weights = trainer.weights();
        let r = residuals(&p, &weights, usize::MAX);
        let validation_rmse = rmse(&r, &p, split..p.windows, None);
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / batches as f64,
            validation_rmse,
        };
        on_epoch(&report);
        reports.push(report);
        if best.as_ref().is_none_or(|(b, _, _)| validation_rmse < *b) {
            best = Some((validation_rmse, weights, epoch));
        } else if best
            .as_ref()
            .is_some_and(|(_, _, e)| epoch - e >= options.patience)
        {
            break;
        }
    }
    let (validation_rmse, weights, best_epoch) = best.expect("at least one epoch ran");
    let r = residuals(&p, &weights, usize::MAX);
    let validation_rmse_per_metric = (0..p.outputs)
        .map(|i| rmse(&r, &p, split..p.windows, Some(i)))
        .collect();
    // The seasonal regression alone predicts a normalised residual of 0.
    let uncorrected: Vec<f32> = p.y.iter().map(|v| -v).collect();
    let seasonal_validation_rmse = rmse(&uncorrected, &p, split..p.windows, None);
    // Thresholds judge patched VMs, which the forecaster follows on its own
    // predictions: learn them from free-running residuals of the held-out
    // windows, in units of the one-step residual spread the scorer's
    // baseline learns while the VM runs unpatched.
    let free = residuals(&p, &weights, split);
    let thresholds = (0..p.outputs)
        .map(|i| {
            learn_threshold(
                &deviations(&r, &free, &p, split, warmup, i),
                options.consecutive_windows,
            )
        })
        .collect();
    Ok(Trained {
        model: LstmModel {
            weights,
            metrics: series.metrics.clone(),
            normaliser,
            base: options.base,
            warmup_windows: options.warmup_windows,
            name: format!("lstm-{version}"),
        },
        epochs: reports,
        best_epoch,
        validation_rmse,
        validation_rmse_per_metric,
        seasonal_validation_rmse,
        thresholds,
        trained_from_ms: series.window_start(0),
        trained_to_ms: series.window_start(split - 1),
        validation_from_ms: series.window_start(split),
    })
}

/// Held-out free-running residuals of metric `i` in units of each VM's own
/// one-step residual spread over its training windows: what the scorer's
/// deviation of a patched VM is.
fn deviations(
    one_step: &[f32],
    free: &[f32],
    p: &Prepared,
    split: usize,
    warmup: usize,
    i: usize,
) -> Vec<Vec<f64>> {
    (0..p.vms)
        .map(|vm| {
            let index = |w: usize| (vm * p.windows + w) * p.outputs + i;
            let train: Vec<f64> = (warmup..split)
                .map(|w| one_step[index(w)] as f64)
                .filter(|v| !v.is_nan())
                .collect();
            let n = train.len().max(1) as f64;
            let mean = train.iter().sum::<f64>() / n;
            let spread = (train.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-6);
            (split..p.windows)
                .map(|w| free[index(w)] as f64)
                .filter(|v| !v.is_nan())
                .map(|v| ((v - mean) / spread).abs())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_weights_run_in_the_fused_kernel_as_in_burn() {
        let (batch, steps, input, hidden, outputs) = (3, 7, 5, 16, 4);
        let trainer = Trainer::new(input, hidden, outputs, 1e-3, 3);
        let x: Vec<f32> = (0..batch * steps * input)
            .map(|i| ((i as f32) * 0.61).sin())
            .collect();
        let burn_out = trainer
            .net
            .forward(Tensor::<3>::from_data(
                TensorData::new(x.clone(), [batch, steps, input]),
                &trainer.device,
            ))
            .into_data();
        let burn_out = burn_out.as_slice::<f32>().unwrap();
        let w = trainer.weights();
        let mut h = vec![0.0; batch * hidden];
        let mut c = vec![0.0; batch * hidden];
        kernel::run(&w, &x, steps, &mut h, &mut c);
        let mut ours = vec![0.0; batch * outputs];
        kernel::head(&w, &h, &mut ours);
        for b in 0..batch {
            for o in 0..outputs {
                let theirs = burn_out[(b * steps + steps - 1) * outputs + o];
                let mine = ours[b * outputs + o];
                assert!(
                    (theirs - mine).abs() < 1e-4,
                    "batch {b} output {o}: burn {theirs}, fused {mine}"
                );
            }
        }
    }

    #[test]
    fn an_interval_head_widens_the_spread_in_the_hours_a_series_is_noisy() {
        use bellwether_operators::forecast::lstm::LstmForecaster;
        use rand_distr::{Distribution, Normal};
        // Four VMs, one metric, 5-minute windows: quiet (sd 0.2) from
        // midnight to noon, noisy (sd 2) from noon to midnight.
        const STEP: i64 = 300_000;
        let metrics = ["cpu_percent".to_string()];
        let noisy = |t: i64| (t.rem_euclid(86_400_000)) >= 43_200_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let sample = |t: i64, rng: &mut rand::rngs::StdRng| {
            let sd = if noisy(t) { 2.0 } else { 0.2 };
            30.0 + Normal::new(0.0, sd).unwrap().sample(rng)
        };
        let days = 5;
        let mut means = crate::series::WindowMeans::new(&metrics, STEP);
        for vm in 0..4 {
            for w in 0..days * 288 {
                let t = w as i64 * STEP;
                means.add(&format!("vm-{vm}"), t, "cpu_percent", sample(t, &mut rng));
            }
        }
        let series = means.finish("test".into()).unwrap();
        let options = TrainOptions {
            hidden: 8,
            sequence: 48,
            burn_in: 8,
            batch: 16,
            epochs: 12,
            patience: 12,
            interval: true,
            ..TrainOptions::default()
        };
        let trained = train(&series, &options, "test", |_, _| {}, |_| {}).unwrap();
        assert!(trained.model.has_interval());
        assert_eq!(trained.model.weights.outputs(), 2);
        // Run it as the scorer does over two more days of one VM.
        let mut forecaster = LstmForecaster::new(trained.model, &metrics).unwrap();
        let (mut quiet, mut loud) = (Vec::new(), Vec::new());
        for w in 0..(days + 2) * 288 {
            let t = w as i64 * STEP;
            let range = TimeRange {
                start_ms: t,
                end_ms: t + STEP,
            };
            forecaster.forecast(range, 1);
            if w >= days * 288 {
                let scale = forecaster.interval_scale().expect("an interval head")[0];
                let hours = if noisy(range.mid_ms()) {
                    &mut loud
                } else {
                    &mut quiet
                };
                hours.push(scale);
            }
            forecaster.observe(
                range,
                &Float64Array::from(vec![sample(t, &mut rng)]),
                &[true],
            );
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (quiet, loud) = (mean(&quiet), mean(&loud));
        assert!(
            loud > 1.15,
            "noisy hours: the spread widened {loud:.2} times"
        );
        assert!(
            quiet < 1.1 && loud > quiet * 1.15,
            "quiet {quiet:.2}, noisy {loud:.2}"
        );
    }
}
