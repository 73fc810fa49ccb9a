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

const DAY_MS: f64 = 86_400_000.0;

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
    /// The weights: `metrics + TIME_FEATURES` inputs, one output per metric.
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
    /// Checks that the weights fit the metric list.
    pub fn validate(&self) -> Result<(), OperatorError> {
        let m = self.metrics.len();
        if self.weights.input() != m + TIME_FEATURES || self.weights.outputs() != m {
            return Err(OperatorError::InvalidSetting {
                setting: "lstm shape",
                reason: format!(
                    "{m} metrics need {} inputs and {m} outputs; the weights have {} and {}",
                    m + TIME_FEATURES,
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
    /// Per series slot: normalised prediction for the next window.
    prediction: Vec<f32>,
    x: Vec<f32>,
}

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
            x: Vec::new(),
        })
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
            self.prediction.resize(vms * self.metrics, 0.0);
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
                let correction = self
                    .model
                    .normaliser
                    .denormalise(stats, self.prediction[slot] as f64);
                Some(base + correction)
            })
            .collect()
    }

    fn reference(&self) -> Option<&Float64Array> {
        Some(&self.base_forecast)
    }

    fn interval_scale(&self) -> Option<&[f64]> {
        self.base.interval_scale()
    }

    fn observe(&mut self, window: TimeRange, observed: &Float64Array, learn: &[bool]) {
        let series = observed.len();
        self.ensure_vms(series);
        let m = self.metrics;
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
                    self.prediction[slot]
                };
            }
            row[m..].copy_from_slice(&time);
            self.steps[vm] = self.steps[vm].saturating_add(1);
        }
        self.base.observe(window, observed, learn);
        kernel::run(&self.model.weights, &self.x, 1, &mut self.h, &mut self.c);
        kernel::head(&self.model.weights, &self.h, &mut self.prediction);
    }
}
