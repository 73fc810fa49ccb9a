//! Checks that go beyond types: ranges, cross-references, parseable expressions.

use super::{Config, ConfigError};
use crate::approval::rules::Rules;

pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        reason: reason.into(),
        source_name: None,
    }
}

pub(crate) use bellwether_schemas::check::{at_most, hours, non_empty, positive};

/// Checks a deserialised config; the error names the first bad key.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    // Each section on its own first (sizes the machine can hold, windows
    // the clock can count), then what sections require of each other.
    c.fleet.check()?;
    c.simulation.check()?;
    let groups = c.canary.check()?;
    c.rollout.check(&groups)?;
    c.rollback.check()?;
    c.window.check()?;
    c.baseline.check()?;
    c.forecast.check()?;
    c.thresholds.check()?;
    c.failure.check()?;
    c.retrain.check()?;
    c.kafka.check()?;
    if c.kafka.replay_hours < c.baseline.min_hours {
        return Err(invalid(
            "kafka.replay_hours",
            format!(
                "{} is less than baseline.min_hours ({}): a restart could not rebuild the baselines",
                c.kafka.replay_hours, c.baseline.min_hours
            ),
        ));
    }
    c.actor.check()?;
    if let Some((key, reason)) = c.approval.problem() {
        return Err(invalid(&key, reason));
    }
    c.http.check()?;
    c.history.check()?;
    for metric in c.history.downsample_per_metric.keys() {
        if !c.thresholds.metrics.contains(metric) {
            return Err(invalid(
                format!("history.downsample_per_metric.{metric}"),
                "is not a metric of thresholds.metrics",
            ));
        }
    }
    c.judge.validate()?;
    if let Some(detect) = &c.rollout.detect {
        detect.check(&c.thresholds.metrics)?;
        if c.judge.wave_sigma <= 0.0 {
            return Err(invalid(
                "rollout.detect",
                "plans the canary stage for the wave test, which judge.wave_sigma = 0 turns off",
            ));
        }
    }
    c.remote_write.validate(&c.kafka)?;
    if c.remote_write.enabled && c.http.listen.trim().is_empty() {
        return Err(invalid(
            "remote_write.enabled",
            "remote write is served on http.listen, which is \"\" (no server); set http.listen or run `bellwether gateway`",
        ));
    }
    if let Some((key, reason)) = c.sql.problem() {
        return Err(invalid(key, reason));
    }
    if c.fleet.sample_interval_secs == 0 || c.fleet.sample_interval_secs > c.window.size_secs {
        return Err(invalid(
            "fleet.sample_interval_secs",
            format!(
                "must be between 1 and window.size_secs ({})",
                c.window.size_secs
            ),
        ));
    }

    if c.simulation.warmup_hours <= c.baseline.min_hours {
        return Err(invalid(
            "simulation.warmup_hours",
            format!(
                "{} h of history is not more than baseline.min_hours ({} h): no VM could be judged",
                c.simulation.warmup_hours, c.baseline.min_hours
            ),
        ));
    }
    Ok(())
}
