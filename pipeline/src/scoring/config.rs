//! Config of scoring: `[window]`, `[baseline]`, `[forecast]` and `[thresholds]`.

use crate::config::ConfigError;
use crate::config::validate::{at_most, hours, invalid, non_empty, positive};
use bellwether_schemas::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// An hour: clocks of a fleet disagree by seconds, not hours.
fn default_max_future_secs() -> u64 {
    3600
}

/// Scoring windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Length of the event-time windows the samples are scored in, seconds.
    pub size_secs: u64,
    /// Distance between window starts, seconds: equal to size_secs for tumbling
    /// windows, smaller for sliding ones.
    pub slide_secs: u64,
    /// Samples up to this late (after their window's end) still count; later
    /// ones are counted as late and dropped.
    pub allowed_lateness_secs: u64,
    /// Samples dated more than this far ahead of their Kafka message's
    /// timestamp (or of the wall clock, whichever is earlier) are not believed:
    /// the message is dead-lettered with the reason and never moves event time.
    #[serde(default = "default_max_future_secs")]
    pub max_future_secs: u64,
    /// VMs not in the inventory (first seen in the metrics) scored at most:
    /// each holds its baselines and forecasts for as long as the scorer runs,
    /// so a stream of made-up VM ids cannot take all memory. Samples of VMs
    /// past it are dropped and counted (`unlisted_dropped` in the status log);
    /// VMs of the inventory are always scored. 0 scores only the inventory.
    #[serde(default = "default_max_unlisted_vms")]
    pub max_unlisted_vms: usize,
}

fn default_max_unlisted_vms() -> usize {
    10_000
}

/// Baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineSettings {
    /// Half-life of the baseline's memory of past windows, hours.
    pub half_life_hours: f64,
    /// Hours of scored history a VM needs before it can be judged.
    pub min_hours: f64,
}

/// Forecaster kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForecastKind {
    /// Level + daily harmonics, recursive least squares: the statistical
    /// forecaster, also the fallback when no LSTM model can be loaded.
    SeasonalRegression,
    /// A trained LSTM (`forecast.model`), run by the fused kernel.
    Lstm,
}

/// The forecaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// "lstm": a trained LSTM forecaster (see `bellwether train`), the default.
    /// "seasonal-regression": level + daily harmonics per VM and metric; also
    /// the fallback when the LSTM bundle is missing, corrupt or does not fit.
    pub kind: ForecastKind,
    /// Daily harmonics fitted.
    pub harmonics: usize,
    /// Half-life of the forecaster's memory, hours.
    pub forgetting_half_life_hours: f64,
    /// The LSTM bundle: "builtin" (shipped in the binary, trained on a
    /// simulated fleet), a bundle file, or a models folder whose `promoted`
    /// file names one.
    #[serde(default = "crate::config::builtin_model")]
    pub model: String,
}

/// Thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Metrics scored, in order.
    pub metrics: Vec<String>,
    /// Default threshold, in sigmas of the VM's own pre-patch residual spread.
    pub sigma: f64,
    /// Windows in a row a metric must be past its threshold to count as
    /// anomalous.
    pub consecutive_windows: u16,
    /// Metrics without a sigma of their own use the threshold learned with the
    /// LSTM model (from its validation residuals) instead of `sigma`.
    #[serde(default = "crate::config::yes")]
    pub learned: bool,
    /// Per-metric settings.
    #[serde(default)]
    pub per_metric: BTreeMap<String, MetricThreshold>,
}

/// One metric's threshold settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    /// Which way is bad.
    pub direction: Direction,
    /// Smallest change worth acting on, metric units.
    #[serde(default)]
    pub min_change: f64,
    /// Smallest residual spread, metric units.
    #[serde(default)]
    pub spread_floor: f64,
    /// This metric's own threshold, sigmas (default: `thresholds.sigma`).
    #[serde(default)]
    pub sigma: Option<f64>,
}

impl WindowConfig {
    /// Checks sizes the clock can count: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        at_most("window.size_secs", self.size_secs, 1, 86_400)?;
        at_most("window.slide_secs", self.slide_secs, 1, 86_400)?;
        at_most(
            "window.allowed_lateness_secs",
            self.allowed_lateness_secs,
            0,
            86_400,
        )?;
        at_most(
            "window.max_future_secs",
            self.max_future_secs,
            1,
            30 * 86_400,
        )?;
        at_most(
            "window.max_unlisted_vms",
            self.max_unlisted_vms as u64,
            0,
            10_000_000,
        )?;
        if self.size_secs == 0
            || self.slide_secs == 0
            || !self.size_secs.is_multiple_of(self.slide_secs)
        {
            return Err(invalid(
                "window.slide_secs",
                format!(
                    "window.size_secs ({}) must be a positive multiple of slide_secs ({})",
                    self.size_secs, self.slide_secs
                ),
            ));
        }
        Ok(())
    }
}

impl BaselineSettings {
    /// Checks the learning rates: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        hours("baseline.min_hours", self.min_hours)?;
        hours("baseline.half_life_hours", self.half_life_hours)?;
        positive("baseline.half_life_hours", self.half_life_hours)?;
        if self.min_hours < 0.0 {
            return Err(invalid("baseline.min_hours", "cannot be negative"));
        }
        Ok(())
    }
}

impl ForecastConfig {
    /// Checks the forecaster's settings: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        hours(
            "forecast.forgetting_half_life_hours",
            self.forgetting_half_life_hours,
        )?;
        positive(
            "forecast.forgetting_half_life_hours",
            self.forgetting_half_life_hours,
        )?;
        if self.harmonics > 12 {
            return Err(invalid(
                "forecast.harmonics",
                "more than 12 daily harmonics only fits noise",
            ));
        }

        Ok(())
    }
}

impl ThresholdConfig {
    /// Checks the metrics and their rules: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let t = self;
        non_empty("thresholds.metrics", &t.metrics)?;
        positive("thresholds.sigma", t.sigma)?;
        if t.consecutive_windows == 0 {
            return Err(invalid(
                "thresholds.consecutive_windows",
                "must be at least 1",
            ));
        }
        let mut seen = BTreeSet::new();
        for metric in &t.metrics {
            if !seen.insert(metric) {
                return Err(invalid(
                    "thresholds.metrics",
                    format!("`{metric}` is listed twice"),
                ));
            }
            if !t.per_metric.contains_key(metric) {
                return Err(invalid(
                    format!("thresholds.per_metric.{metric}"),
                    "missing: every scored metric needs at least its direction",
                ));
            }
        }
        for (metric, rule) in &t.per_metric {
            let key = format!("thresholds.per_metric.{metric}");
            if !seen.contains(metric) {
                return Err(invalid(key, "this metric is not in thresholds.metrics"));
            }
            if let Some(sigma) = rule.sigma {
                positive(&format!("{key}.sigma"), sigma)?;
            }
            if rule.min_change < 0.0 {
                return Err(invalid(format!("{key}.min_change"), "cannot be negative"));
            }
            if rule.spread_floor < 0.0 {
                return Err(invalid(format!("{key}.spread_floor"), "cannot be negative"));
            }
        }
        Ok(())
    }
}
