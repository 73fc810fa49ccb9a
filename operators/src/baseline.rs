//! Per-VM, per-metric baselines, learned while a VM runs unpatched.
//!
//! A baseline holds a series' usual level and how far its window means
//! usually land from the forecast (the residual spread). Deviations are
//! measured in units of that spread, so one threshold in "sigmas" fits a
//! quiet cache VM and a noisy batch VM alike. Baselines learn only from
//! windows the scorer marks as learnable (the VM unpatched); from a VM's
//! patch on they stay as they were before the patch.

use crate::column::f64_column;
use arrow::array::{Array, Float64Array};

/// How baselines learn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineConfig {
    /// Half-life of the exponential weighting, in windows: older windows
    /// count half as much every `half_life_windows`.
    pub half_life_windows: f64,
    /// Windows with a forecast a series needs before it is judged.
    pub min_windows: u32,
}

/// Baselines of every series slot.
#[derive(Debug, Clone)]
pub struct Baselines {
    alpha: f64,
    min_windows: u32,
    mean: Vec<f64>,
    residual_ms: Vec<f64>,
    /// Mean square of observed minus the open-loop forecast (the forecast
    /// without its short-term correction: what a frozen forecast becomes).
    open_ms: Vec<f64>,
    windows: Vec<u32>,
}

impl Baselines {
    /// Empty baselines.
    pub fn new(config: BaselineConfig) -> Baselines {
        Baselines {
            alpha: 1.0 - 0.5f64.powf(1.0 / config.half_life_windows.max(1.0)),
            min_windows: config.min_windows,
            mean: Vec::new(),
            residual_ms: Vec::new(),
            open_ms: Vec::new(),
            windows: Vec::new(),
        }
    }

    /// Grows to `series` slots.
    pub fn ensure_series(&mut self, series: usize) {
        self.mean.resize(series, f64::NAN);
        self.residual_ms.resize(series, 0.0);
        self.open_ms.resize(series, f64::NAN);
        self.windows.resize(series, 0);
    }

    /// Learns from one window: `observed` window means and `residual`
    /// (observed - forecast; null where there was no forecast), for the slots
    /// where `learn` is true.
    pub fn learn(&mut self, observed: &Float64Array, residual: &Float64Array, learn: &[bool]) {
        let a = self.alpha;
        for (i, &learn) in learn.iter().enumerate() {
            if !learn || observed.is_null(i) {
                continue;
            }
            let y = observed.value(i);
            self.mean[i] = if self.mean[i].is_nan() {
                y
            } else {
                self.mean[i] + a * (y - self.mean[i])
            };
            if residual.is_valid(i) {
                let r2 = residual.value(i) * residual.value(i);
                // Bias-corrected start: the first residuals set the scale.
                let w = (a).max(1.0 / (self.windows[i] as f64 + 1.0));
                self.residual_ms[i] += w * (r2 - self.residual_ms[i]);
                self.windows[i] += 1;
            }
        }
    }

    /// Learns the open-loop error: `observed` against `reference` (the
    /// forecast without its short-term correction), where `learn` is true.
    pub fn learn_open(
        &mut self,
        observed: &Float64Array,
        reference: &Float64Array,
        learn: &[bool],
    ) {
        let a = self.alpha;
        for (i, &learn) in learn.iter().enumerate() {
            if !learn || observed.is_null(i) || i >= reference.len() || reference.is_null(i) {
                continue;
            }
            let d = observed.value(i) - reference.value(i);
            let ms = &mut self.open_ms[i];
            *ms = if ms.is_nan() {
                d * d
            } else {
                *ms + a * (d * d - *ms)
            };
        }
    }

    /// Spread of slot `i`'s open-loop error (None before any).
    pub fn open_spread(&self, i: usize) -> Option<f64> {
        let ms = *self.open_ms.get(i)?;
        (!ms.is_nan()).then(|| ms.sqrt())
    }

    /// True when slot `i` has seen enough windows to be judged.
    pub fn is_ready(&self, i: usize) -> bool {
        self.windows[i] >= self.min_windows
    }

    /// The usual level of slot `i` (NaN before any window).
    pub fn mean(&self, i: usize) -> f64 {
        self.mean[i]
    }

    /// Residual spread of slot `i` (RMS of window residuals).
    pub fn residual_spread(&self, i: usize) -> f64 {
        self.residual_ms[i].sqrt()
    }

    /// Baseline levels of every slot, as an array.
    pub fn means(&self) -> Float64Array {
        Float64Array::from(self.mean.clone())
    }

    /// Residual spreads of the ready slots (null where not ready), floored
    /// at `floor[metric]` so a flat-lined series does not turn noise into sigmas.
    pub fn spreads(&self, metric_count: usize, floor: &[f64]) -> Float64Array {
        f64_column(self.windows.len(), |i| {
            self.is_ready(i)
                .then(|| self.residual_spread(i).max(floor[i % metric_count]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_level_and_spread_only_where_told() {
        let mut b = Baselines::new(BaselineConfig {
            half_life_windows: 1e9,
            min_windows: 2,
        });
        b.ensure_series(2);
        for r in [1.0, -1.0, 1.0, -1.0] {
            b.learn(
                &Float64Array::from(vec![10.0 + r, 99.0]),
                &Float64Array::from(vec![Some(r), Some(50.0)]),
                &[true, false],
            );
        }
        assert!(b.is_ready(0));
        assert!(!b.is_ready(1), "slot 1 was never allowed to learn");
        assert!((b.residual_spread(0) - 1.0).abs() < 1e-9);
        assert!((b.mean(0) - 10.0).abs() < 1.0);
        let spreads = b.spreads(2, &[0.0, 0.0]);
        assert!(spreads.is_valid(0) && spreads.is_null(1));
    }

    #[test]
    fn the_spread_floor_applies() {
        let mut b = Baselines::new(BaselineConfig {
            half_life_windows: 10.0,
            min_windows: 1,
        });
        b.ensure_series(1);
        b.learn(
            &Float64Array::from(vec![5.0]),
            &Float64Array::from(vec![0.0]),
            &[true],
        );
        assert_eq!(b.spreads(1, &[0.5]).value(0), 0.5);
    }
}
