//! The LSTM forecaster: a trained recurrent model per fleet, run on every
//! VM's window means with its state carried from window to window.
//!
//! The LSTM forecasts what the statistical seasonal regression (level and
//! daily harmonics, [`SeasonalRegression`]) gets wrong: the short-term,
//! autocorrelated part of each series' residual. Each step feeds one VM's
//! residuals of the window just closed, normalised by that VM's own running
//! residual spread ([`Normaliser`]), plus the time of day of the next
//! window; the head predicts the next window's normalised residuals, and
//! the forecast is the seasonal forecast plus that correction. All VMs step
//! together in one fused-kernel call ([`kernel::run`]).
//!
//! A VM that is not learning (patched, or a metric without data) is fed
//! the model's own prediction instead of what it observed, and its seasonal
//! fit is frozen: the forecast keeps following the pre-patch behaviour, so
//! a regression stays visible as a residual instead of being absorbed, and
//! the correction fades towards the seasonal forecast over the hours a VM
//! stays patched instead of drifting.
//!
//! A model trained with an interval head ([`LstmModel::has_interval`])
//! also predicts the log-spread of each next residual: the forecast is an
//! interval, not a point. Where it expects a wider spread than it usually
//! predicts for the series, it widens the residual spread the scorer holds
//! the window to ([`Forecaster::interval_scale`]); it never narrows it
//! (narrowing added false alarms on NAB, benches/README).

pub mod kernel;
pub mod normalise;
pub mod weights;

pub use normalise::Normaliser;
pub use weights::LstmWeights;

use super::seasonal::{SeasonalRegression, SeasonalRegressionConfig};
use super::{Forecaster, TimeRange};
use crate::error::OperatorError;
use arrow::array::{Array, Float64Array};
use std::f64::consts::TAU;

const DAY_MS: f64 = bellwether_schemas::EventTime::DAY_MS as f64;

/// Extra inputs per step besides the metrics: sine and cosine of the next
/// window's time of day.
pub const TIME_FEATURES: usize = 2;

/// The time-of-day features of an instant, in the order the model reads them.
pub fn time_features(at_ms: i64) -> [f32; TIME_FEATURES] {
    let phase = (at_ms as f64).rem_euclid(DAY_MS) / DAY_MS * TAU;
    [phase.sin() as f32, phase.cos() as f32]
}

/// A trained model and what it expects.
#[derive(Debug, Clone)]
pub struct LstmModel {
    /// The weights: `metrics + TIME_FEATURES` inputs, one output per
    /// metric (the forecast), or two (the forecast, then the log of its
    /// spread: an interval head).
    pub weights: LstmWeights,
    /// Metrics, in input and output order.
    pub metrics: Vec<String>,
    /// Normalisation the model was trained with.
    pub normaliser: Normaliser,
    /// The seasonal regression whose residuals the model was trained on.
    pub base: SeasonalRegressionConfig,
    /// Windows a VM must have been observed before it is forecast.
    pub warmup_windows: u32,
    /// Name recorded with every score (e.g. `lstm-3`).
    pub name: String,
}

impl LstmModel {
    /// True when the model forecasts an interval: its head predicts the log
    /// of each forecast's spread after the forecasts.
    pub fn has_interval(&self) -> bool {
        self.weights.outputs() == 2 * self.metrics.len()
    }

    /// Checks that the weights fit the metric list.
    pub fn validate(&self) -> Result<(), OperatorError> {
        let m = self.metrics.len();
        let outputs = self.weights.outputs();
        if self.weights.input() != m + TIME_FEATURES || (outputs != m && outputs != 2 * m) {
            return Err(OperatorError::InvalidSetting {
                setting: "lstm shape",
                reason: format!(
                    "{m} metrics need {} inputs and {m} outputs ({} with an interval head); the weights have {} and {}",
                    m + TIME_FEATURES,
                    2 * m,
                    self.weights.input(),
                    self.weights.outputs()
                ),
            });
        }
        Ok(())
    }
}

/// Forecasts every VM's next window means with an [`LstmModel`].
#[derive(Debug)]
pub struct LstmForecaster {
    model: LstmModel,
    base: SeasonalRegression,
    /// The base forecast of the window being scored.
    base_forecast: Float64Array,
    metrics: usize,
    vms: usize,
    h: Vec<f32>,
    c: Vec<f32>,
    /// Per series slot: running normalisation state.
    stats: Vec<normalise::RunningStats>,
    /// Per VM: windows stepped.
    steps: Vec<u32>,
    /// Per VM: the head's outputs for the next window (normalised
    /// forecasts, then any interval head's log-spreads).
    prediction: Vec<f32>,
    /// Per series slot, with an interval head: the squares of the spreads
    /// predicted for it so far, their mean weighted as the normaliser
    /// weighs values.
    spread_ms: Vec<normalise::RunningStats>,
    /// Per series slot: interval scale of the last forecast.
    interval: Vec<f64>,
    x: Vec<f32>,
}

/// How far the interval head may scale the residual spread: it widens it
/// up to 4 times and never narrows it.
const INTERVAL_RANGE: (f64, f64) = (1.0, 4.0);

/// Bound of the interval head's log-spread, in training and at run time
/// (a spread between e^-4 and e^4 times the normalised residual's).
pub const LOG_SPREAD_BOUND: f64 = 4.0;

impl LstmForecaster {
    /// A forecaster for VMs scored on `metrics` (in slot order), which must
    /// be the model's metrics in the same order.
    pub fn new(model: LstmModel, metrics: &[String]) -> Result<LstmForecaster, OperatorError> {
        model.validate()?;
        if model.metrics != metrics {
            return Err(OperatorError::InvalidSetting {
                setting: "forecast.model",
                reason: format!(
                    "the model was trained on metrics {:?}, the scorer scores {:?}",
                    model.metrics, metrics
                ),
            });
        }
        Ok(LstmForecaster {
            metrics: metrics.len(),
            base: SeasonalRegression::new(model.base),
            base_forecast: Float64Array::from(Vec::<f64>::new()),
            model,
            vms: 0,
            h: Vec::new(),
            c: Vec::new(),
            stats: Vec::new(),
            steps: Vec::new(),
            prediction: Vec::new(),
            spread_ms: Vec::new(),
            interval: Vec::new(),
            x: Vec::new(),
        })
    }

    /// The interval head's spread for slot's next window, in normalised units.
    fn predicted_spread(&self, slot: usize) -> f64 {
        let (m, outputs) = (self.metrics, self.model.weights.outputs());
        let log_spread = self.prediction[(slot / m) * outputs + m + slot % m] as f64;
        log_spread.clamp(-LOG_SPREAD_BOUND, LOG_SPREAD_BOUND).exp()
    }

    fn ensure_vms(&mut self, series: usize) {
        let vms = series.div_ceil(self.metrics);
        if vms > self.vms {
            let hidden = self.model.weights.hidden();
            self.h.resize(vms * hidden, 0.0);
            self.c.resize(vms * hidden, 0.0);
            self.stats
                .resize(vms * self.metrics, normalise::RunningStats::default());
            self.steps.resize(vms, 0);
            self.prediction
                .resize(vms * self.model.weights.outputs(), 0.0);
            self.spread_ms
                .resize(vms * self.metrics, normalise::RunningStats::default());
            self.vms = vms;
        }
    }
}

impl Forecaster for LstmForecaster {
    fn name(&self) -> &str {
        &self.model.name
    }

    fn forecast(&mut self, window: TimeRange, series: usize) -> Float64Array {
        self.ensure_vms(series);
        self.base_forecast = self.base.forecast(window, series);
        let m = self.metrics;
        let outputs = self.model.weights.outputs();
        if self.model.has_interval() {
            let base = self.base.interval_scale().unwrap_or(&[]);
            let mut interval = std::mem::take(&mut self.interval);
            interval.clear();
            interval.extend((0..series).map(|slot| {
                let scale = base.get(slot).copied().unwrap_or(1.0);
                let ms = self.spread_ms[slot].mean();
                if self.steps[slot / m] < self.model.warmup_windows || ms <= 0.0 {
                    return scale;
                }
                let spread = self.predicted_spread(slot);
                scale * (spread / ms.sqrt()).clamp(INTERVAL_RANGE.0, INTERVAL_RANGE.1)
            }));
            self.interval = interval;
        }
        (0..series)
            .map(|slot| {
                let base = self
                    .base_forecast
                    .is_valid(slot)
                    .then(|| self.base_forecast.value(slot))?;
                let stats = &self.stats[slot];
                if self.steps[slot / m] < self.model.warmup_windows || stats.count() == 0 {
                    return Some(base);
                }
                let z = self.prediction[(slot / m) * outputs + slot % m];
                let correction = self.model.normaliser.denormalise(stats, z as f64);
                Some(base + correction)
            })
            .collect()
    }

    fn reference(&self) -> Option<&Float64Array> {
        Some(&self.base_forecast)
    }

    fn interval_scale(&self) -> Option<&[f64]> {
        if self.model.has_interval() {
            Some(&self.interval)
        } else {
            self.base.interval_scale()
        }
    }

    fn observe(&mut self, window: TimeRange, observed: &Float64Array, learn: &[bool]) {
        let series = observed.len();
        self.ensure_vms(series);
        let m = self.metrics;
        let outputs = self.model.weights.outputs();
        let input = self.model.weights.input();
        let next_mid = window.end_ms + (window.end_ms - window.start_ms) / 2;
        let time = time_features(next_mid);
        self.x.clear();
        self.x.resize(self.vms * input, 0.0);
        for vm in 0..self.vms {
            let row = &mut self.x[vm * input..(vm + 1) * input];
            for (metric, cell) in row.iter_mut().enumerate().take(m) {
                let slot = vm * m + metric;
                let seen = slot < series
                    && observed.is_valid(slot)
                    && slot < self.base_forecast.len()
                    && self.base_forecast.is_valid(slot);
                let learning = seen && learn.get(slot).copied().unwrap_or(false);
                *cell = if learning {
                    let value = observed.value(slot) - self.base_forecast.value(slot);
                    let stats = &mut self.stats[slot];
                    let z = if stats.count() > 0 {
                        self.model.normaliser.normalise(stats, value) as f32
                    } else {
                        0.0
                    };
                    self.model.normaliser.update(stats, value);
                    z
                } else {
                    self.prediction[vm * outputs + metric]
                };
            }
            row[m..].copy_from_slice(&time);
            self.steps[vm] = self.steps[vm].saturating_add(1);
        }
        self.base.observe(window, observed, learn);
        kernel::run(&self.model.weights, &self.x, 1, &mut self.h, &mut self.c);
        kernel::head(&self.model.weights, &self.h, &mut self.prediction);
        if self.model.has_interval() {
            // The spreads the series is used to, learned where it learns.
            for (slot, &learns) in learn.iter().enumerate().take(self.vms * m) {
                if !learns || slot >= series || observed.is_null(slot) {
                    continue;
                }
                let s2 = self.predicted_spread(slot).powi(2);
                self.model.normaliser.update(&mut self.spread_ms[slot], s2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(outputs: usize) -> LstmModel {
        let (input, hidden) = (1 + TIME_FEATURES, 2);
        LstmModel {
            weights: LstmWeights::new(
                input,
                hidden,
                outputs,
                vec![0.0; (input + hidden) * 4 * hidden],
                vec![0.0; 4 * hidden],
                vec![0.0; hidden * outputs],
                // A forecast of 0.3 and, with an interval head, a log-spread
                // of 0.7: the same every window.
                [0.3, 0.7][..outputs.min(2)]
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(0.0))
                    .take(outputs)
                    .collect(),
            )
            .unwrap(),
            metrics: vec!["cpu_percent".into()],
            normaliser: Normaliser::default(),
            base: SeasonalRegressionConfig {
                harmonics: 1,
                forgetting_half_life_windows: 100.0,
                min_windows: 2,
            },
            warmup_windows: 2,
            name: "lstm-test".into(),
        }
    }

    #[test]
    fn a_head_of_one_or_two_outputs_per_metric_fits_and_others_do_not() {
        assert!(model(1).validate().is_ok() && !model(1).has_interval());
        assert!(model(2).validate().is_ok() && model(2).has_interval());
        let err = model(3).validate().unwrap_err().to_string();
        assert!(err.contains("1 outputs (2 with an interval head)"), "{err}");
    }

    #[test]
    fn an_interval_head_that_predicts_its_usual_spread_leaves_forecast_and_interval_as_is() {
        let metrics = ["cpu_percent".to_string()];
        let mut point = LstmForecaster::new(model(1), &metrics).unwrap();
        let mut interval = LstmForecaster::new(model(2), &metrics).unwrap();
        for w in 0..20i64 {
            let range = TimeRange {
                start_ms: w * 300_000,
                end_ms: (w + 1) * 300_000,
            };
            let observed = Float64Array::from(vec![10.0 + (w % 3) as f64]);
            assert_eq!(point.forecast(range, 1), interval.forecast(range, 1));
            if w >= 3 {
                let scale = interval.interval_scale().unwrap()[0];
                let base = point.interval_scale().unwrap()[0];
                assert!((scale - base).abs() < 1e-9, "window {w}: {scale} vs {base}");
            }
            point.observe(range, &observed, &[true]);
            interval.observe(range, &observed, &[true]);
        }
    }
}
