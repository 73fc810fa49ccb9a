//! Predictive failure analysis: how likely each VM is to fail (crash, lose
//! its health check, collapse in errors) within the model's horizon, from
//! the recent pattern of its metrics.
//!
//! Anomaly detection asks "does this VM behave differently now?"; this asks
//! "is it heading for a failure?". Its inputs are what the scorer already
//! computes per window: each metric's observed mean and its deviation
//! (observed minus forecast, in sigmas of the VM's own residual spread),
//! turned into four kinds of features per VM:
//! - **level**: the metric's latest window mean, in its own unit (memory at
//!   95% is close to the end whatever the VM's usual level);
//! - **deviation**: the latest deviation, signed so that positive is the
//!   metric's bad direction;
//! - **trend**: the least-squares slope of the window means over the last
//!   [`TREND_WINDOWS`] windows, per window, positive in the bad direction
//!   (memory climbing for half an hour is a leak, one high window is not);
//! - **combination**: the product of two metrics' bad-direction deviations
//!   (memory pressure together with growing latency is worse than either).
//!
//! [`FailureModel`] is a logistic model over the standardised features
//! (trained with burn, `pipeline/src/model/failure.rs`); its weights times a
//! VM's standardised features are that VM's drivers, so every risk comes
//! with the features that raised it. Features and risks of all VMs are
//! computed in one pass per window, in the scorer's window turn.

use crate::error::OperatorError;
use arrow::array::{Array, Float64Array};
use bellwether_schemas::{Direction, RiskDriver};

/// Windows of deviation history a trend is fitted over.
pub const TREND_WINDOWS: usize = 6;

/// Deviations are clipped to this range (sigmas) before they become
/// features: past it a VM is plainly broken, and unbounded values would
/// let one metric swamp the model.
const CLIP: (f32, f32) = (-20.0, 50.0);

/// Scale of the combination features (product of two levels, in sigmas²).
const COMBINATION_SCALE: f32 = 10.0;

/// The names of the features, in the order [`FailureFeatures`] writes them.
pub fn feature_names(metrics: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    names.extend(metrics.iter().map(|m| format!("{m} level")));
    names.extend(metrics.iter().map(|m| format!("{m} deviation")));
    names.extend(metrics.iter().map(|m| format!("{m} trend")));
    for (i, a) in metrics.iter().enumerate() {
        for b in &metrics[i + 1..] {
            names.push(format!("{a} × {b}"));
        }
    }
    names
}

/// Number of features for `metrics` metrics.
pub fn feature_count(metrics: usize) -> usize {
    3 * metrics + metrics * metrics.saturating_sub(1) / 2
}

/// Keeps the last [`TREND_WINDOWS`] window means of every series and its
/// latest deviation, and writes every VM's features.
#[derive(Debug, Clone)]
pub struct FailureFeatures {
    directions: Vec<Direction>,
    /// Per series: the last window means, oldest first.
    history: Vec<[f32; TREND_WINDOWS]>,
    /// Per series: the latest bad-direction deviation, clipped.
    deviation: Vec<f32>,
    /// Per series: how many of `history` are filled.
    filled: Vec<u8>,
    /// `vm × feature`, the latest window's features.
    features: Vec<f32>,
}

impl FailureFeatures {
    /// Features for VMs scored on metrics judged in `directions` (slot order).
    pub fn new(directions: Vec<Direction>) -> FailureFeatures {
        FailureFeatures {
            directions,
            history: Vec::new(),
            deviation: Vec::new(),
            filled: Vec::new(),
            features: Vec::new(),
        }
    }

    /// Features per VM.
    pub fn width(&self) -> usize {
        feature_count(self.directions.len())
    }

    /// Takes one window's means and deviations (per series slot; null = no
    /// data or no forecast: the series keeps what it had) and updates every
    /// VM's features: [`FailureFeatures::learn`], then
    /// [`FailureFeatures::write_rows`].
    pub fn update(&mut self, observed: &Float64Array, deviation: &Float64Array) {
        self.learn(observed, deviation);
        self.write_rows();
    }

    /// Takes one window's means and deviations into every series' history,
    /// without writing the features (cheap: what every window needs so
    /// that the features are right whenever they are next written).
    pub fn learn(&mut self, observed: &Float64Array, deviation: &Float64Array) {
        let m = self.directions.len();
        let series = deviation.len().min(observed.len());
        if self.history.len() < series {
            self.history.resize(series, [0.0; TREND_WINDOWS]);
            self.deviation.resize(series, 0.0);
            self.filled.resize(series, 0);
        }
        for slot in 0..series {
            let direction = self.directions[slot % m];
            if deviation.is_valid(slot) {
                self.deviation[slot] =
                    (direction.badness(deviation.value(slot)) as f32).clamp(CLIP.0, CLIP.1);
            }
            if observed.is_valid(slot) {
                let h = &mut self.history[slot];
                h.rotate_left(1);
                h[TREND_WINDOWS - 1] = observed.value(slot) as f32;
                self.filled[slot] = (self.filled[slot] + 1).min(TREND_WINDOWS as u8);
            }
        }
    }

    /// Writes every VM's features from the history learned so far.
    pub fn write_rows(&mut self) {
        let m = self.directions.len();
        let vms = self.history.len() / m;
        let width = self.width();
        self.features.clear();
        self.features.resize(vms * width, 0.0);
        for vm in 0..vms {
            let row = &mut self.features[vm * width..(vm + 1) * width];
            for metric in 0..m {
                let slot = vm * m + metric;
                let (h, n) = (&self.history[slot], self.filled[slot] as usize);
                row[metric] = if n > 0 { h[TREND_WINDOWS - 1] } else { 0.0 };
                row[m + metric] = self.deviation[slot];
                let trend = slope(&h[TREND_WINDOWS - n..]) as f64;
                row[2 * m + metric] = self.directions[metric].badness(trend) as f32;
            }
            let mut at = 3 * m;
            for a in 0..m {
                for b in a + 1..m {
                    row[at] = row[m + a].max(0.0) * row[m + b].max(0.0) / COMBINATION_SCALE;
                    at += 1;
                }
            }
        }
    }

    /// The latest features, `vm × width`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The latest features of VM slot `vm`.
    pub fn row(&self, vm: usize) -> &[f32] {
        let width = self.width();
        &self.features[vm * width..(vm + 1) * width]
    }
}

/// Least-squares slope of `values` against their index (per window); 0
/// with fewer than three points.
fn slope(values: &[f32]) -> f32 {
    let n = values.len();
    if n < 3 {
        return 0.0;
    }
    let mean_x = (n - 1) as f32 / 2.0;
    let mean_y = values.iter().sum::<f32>() / n as f32;
    let (mut sxy, mut sxx) = (0.0f32, 0.0f32);
    for (i, &y) in values.iter().enumerate() {
        let dx = i as f32 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// A trained failure-pattern model: logistic regression over standardised
/// features.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureModel {
    /// Feature names, in input order ([`feature_names`]).
    pub features: Vec<String>,
    /// Per feature: mean subtracted before weighting.
    pub mean: Vec<f32>,
    /// Per feature: spread divided by before weighting.
    pub scale: Vec<f32>,
    /// Per feature: weight on the standardised value.
    pub weights: Vec<f32>,
    /// Intercept (log-odds of failure for an average VM).
    pub bias: f32,
    /// Minutes ahead the model predicts a failure within.
    pub horizon_minutes: u32,
    /// Name recorded with every risk (e.g. `failure-3`).
    pub name: String,
}

impl FailureModel {
    /// Checks the model fits `metrics` (same features, same order).
    pub fn check_fits(&self, metrics: &[String]) -> Result<(), OperatorError> {
        let expected = feature_names(metrics);
        let n = expected.len();
        if self.features != expected
            || self.mean.len() != n
            || self.scale.len() != n
            || self.weights.len() != n
        {
            return Err(OperatorError::InvalidSetting {
                setting: "failure model",
                reason: format!(
                    "the model has {} features ({} weights) for metrics it was trained on; the scorer's metrics {:?} need {n}",
                    self.features.len(),
                    self.weights.len(),
                    metrics
                ),
            });
        }
        if self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self
                .weights
                .iter()
                .chain(&self.mean)
                .chain([&self.bias])
                .any(|w| !w.is_finite())
        {
            return Err(OperatorError::InvalidSetting {
                setting: "failure model",
                reason: "weights, means and scales must be finite, scales positive".into(),
            });
        }
        Ok(())
    }

    /// The log-odds of failure of one feature row.
    fn logit(&self, row: &[f32]) -> f32 {
        row.iter()
            .zip(&self.weights)
            .zip(self.mean.iter().zip(&self.scale))
            .fold(self.bias, |z, ((x, w), (m, s))| z + w * (x - m) / s)
    }

    /// The failure risk in [0, 1] of every VM of `features` (`vm × width`).
    pub fn risk(&self, features: &[f32]) -> Vec<f64> {
        let width = self.weights.len().max(1);
        features
            .chunks_exact(width)
            .map(|row| sigmoid(self.logit(row)) as f64)
            .collect()
    }

    /// The `top` features that raised the risk of a VM with features `row`
    /// the most (positive contributions of at least a tenth of the largest,
    /// largest first).
    pub fn drivers(&self, row: &[f32], top: usize) -> Vec<RiskDriver> {
        let mut parts: Vec<RiskDriver> = row
            .iter()
            .enumerate()
            .map(|(i, &value)| RiskDriver {
                feature: self.features[i].clone(),
                value: value as f64,
                contribution: (self.weights[i] * (value - self.mean[i]) / self.scale[i]) as f64,
            })
            .filter(|d| d.contribution > 0.0)
            .collect();
        parts.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        // A feature that adds a tenth of what the first does explains little.
        let floor = parts.first().map_or(0.0, |d| d.contribution * 0.1);
        parts.retain(|d| d.contribution >= floor);
        parts.truncate(top);
        parts
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Vec<String> {
        ["memory", "latency", "errors"].map(String::from).to_vec()
    }

    #[test]
    fn features_name_levels_trends_and_combinations() {
        let names = feature_names(&metrics());
        assert_eq!(names.len(), feature_count(3));
        assert_eq!(names[0], "memory level");
        assert_eq!(names[3], "memory deviation");
        assert_eq!(names[6], "memory trend");
        assert_eq!(names[9], "memory × latency");
        assert_eq!(names[11], "latency × errors");
    }

    #[test]
    fn a_climbing_metric_has_a_trend_and_a_steady_one_has_none() {
        let mut f = FailureFeatures::new(vec![
            Direction::Increase,
            Direction::Increase,
            Direction::Decrease,
        ]);
        for w in 0..6 {
            // VM 0: memory climbs 3 points a window (deviation 2σ more each
            // window), latency steady at 4σ, success (bad when decreasing)
            // falls 1 point a window.
            let observed = Float64Array::from(vec![50.0 + 3.0 * w as f64, 2.0, 99.0 - w as f64]);
            let d = Float64Array::from(vec![2.0 * w as f64, 4.0, -(w as f64)]);
            f.update(&observed, &d);
        }
        let row = f.row(0);
        assert_eq!(row[0], 65.0);
        assert_eq!(row[3], 10.0);
        assert_eq!(row[5], 5.0, "bad-direction deviation");
        assert!((row[6] - 3.0).abs() < 1e-4, "{}", row[6]);
        assert!(row[7].abs() < 1e-5);
        assert!(
            (row[8] - 1.0).abs() < 1e-4,
            "bad-direction trend {}",
            row[8]
        );
        assert!((row[9] - 10.0 * 4.0 / COMBINATION_SCALE).abs() < 1e-5);
    }

    #[test]
    fn missing_data_keeps_the_history_and_extremes_are_clipped() {
        let mut f = FailureFeatures::new(vec![Direction::Increase]);
        f.update(
            &Float64Array::from(vec![Some(7.0)]),
            &Float64Array::from(vec![Some(1000.0)]),
        );
        f.update(
            &Float64Array::from(vec![None]),
            &Float64Array::from(vec![None]),
        );
        assert_eq!(f.row(0)[0], 7.0);
        assert_eq!(f.row(0)[1], CLIP.1);
    }

    #[test]
    fn risk_rises_with_the_weighted_features_and_drivers_explain_it() {
        let model = FailureModel {
            features: feature_names(&metrics()),
            mean: vec![0.0; 12],
            scale: vec![1.0; 12],
            weights: {
                let mut w = vec![0.0; 12];
                w[6] = 1.5; // memory trend
                w[9] = 0.5; // memory × latency
                w
            },
            bias: -4.0,
            horizon_minutes: 30,
            name: "failure-test".into(),
        };
        model.check_fits(&metrics()).unwrap();
        let calm = [0.0f32; 12];
        let mut leaking = [0.0f32; 12];
        leaking[6] = 4.0;
        leaking[9] = 2.0;
        let risk = model.risk(&[calm, leaking].concat());
        assert!(risk[0] < 0.05 && risk[1] > 0.9, "{risk:?}");
        let drivers = model.drivers(&leaking, 3);
        assert_eq!(drivers.len(), 2);
        assert_eq!(drivers[0].feature, "memory trend");
        assert!((drivers[0].contribution - 6.0).abs() < 1e-5);
        assert!(model.check_fits(&metrics()[..2]).is_err());
    }
}
