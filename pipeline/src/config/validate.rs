//! Checks that go beyond types: ranges, cross-references, parseable expressions.

use super::{Config, ConfigError};
use crate::approval::rules::Rules;
use crate::inventory::selector::{BUILT_IN_CRITICAL_GROUP, Selector};
use std::collections::BTreeSet;

pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        reason: reason.into(),
        source_name: None,
    }
}

fn share(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is not a share between 0 and 1"),
        ))
    }
}

fn positive(key: &str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} must be a positive number")))
    }
}

pub(crate) fn at_most(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is not between {min} and {max}"),
        ))
    }
}

/// A finite number of hours from 0 to ten years.
fn hours(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=87_600.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is not a number of hours from 0 to 87600"),
        ))
    }
}

fn non_empty<T>(key: &str, list: &[T]) -> Result<(), ConfigError> {
    if list.is_empty() {
        Err(invalid(key, "must not be empty"))
    } else {
        Ok(())
    }
}

fn http(c: &Config) -> Result<(), ConfigError> {
    let listen = c.http.listen.trim();
    if !listen.is_empty()
        && listen
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(invalid(
            "http.listen",
            format!("`{listen}` is not host:port (e.g. 127.0.0.1:9464), nor \"\" for no server"),
        ));
    }
    let token = &c.http.token;
    if !token.is_empty() && (token.len() < 16 || token.chars().any(char::is_whitespace)) {
        return Err(invalid(
            "http.token",
            "use at least 16 characters and no spaces (or \"\" to refuse every change)",
        ));
    }
    at_most(
        "http.header_timeout_secs",
        c.http.header_timeout_secs,
        1,
        3_600,
    )?;
    at_most("http.body_timeout_secs", c.http.body_timeout_secs, 1, 3_600)?;
    at_most(
        "http.max_connections",
        c.http.max_connections as u64,
        1,
        100_000,
    )?;
    Ok(())
}

fn actuator(c: &Config) -> Result<(), ConfigError> {
    use crate::config::ActuatorKind;
    let a = &c.actor;
    match a.actuator {
        ActuatorKind::Agents => {}
        ActuatorKind::Webhook => {
            let Some(w) = &a.webhook else {
                return Err(invalid(
                    "actor.webhook",
                    "actuator = \"webhook\" needs [actor.webhook] with url and secret",
                ));
            };
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(invalid(
                    "actor.webhook.url",
                    format!("`{}` is not an http:// or https:// URL", w.url),
                ));
            }
            if w.secret.len() < 16 {
                return Err(invalid(
                    "actor.webhook.secret",
                    "use at least 16 characters (the HMAC key the endpoint checks signatures with)",
                ));
            }
            if !(w.timeout_secs > 0.0 && w.timeout_secs.is_finite()) {
                return Err(invalid("actor.webhook.timeout_secs", "must be above 0"));
            }
        }
        ActuatorKind::Shell => {
            let Some(s) = &a.shell else {
                return Err(invalid(
                    "actor.shell",
                    "actuator = \"shell\" needs [actor.shell] with patch and rollback",
                ));
            };
            for (key, template) in [
                ("actor.shell.patch", &s.patch),
                ("actor.shell.rollback", &s.rollback),
            ] {
                if template.trim().is_empty() {
                    return Err(invalid(key, "an empty command"));
                }
            }
            if s.rollback.contains("{patch_id}") {
                return Err(invalid(
                    "actor.shell.rollback",
                    "{patch_id} is not known to a rollback (use {vm_id}, {rollout_id}, {command_id})",
                ));
            }
            if !(s.timeout_secs > 0.0 && s.timeout_secs.is_finite()) {
                return Err(invalid("actor.shell.timeout_secs", "must be above 0"));
            }
        }
    }
    Ok(())
}

fn kafka(c: &Config) -> Result<(), ConfigError> {
    let k = &c.kafka;
    if k.brokers.trim().is_empty() {
        return Err(invalid("kafka.brokers", "must name at least one broker"));
    }
    non_empty("kafka.metrics_topics", &k.metrics_topics)?;
    let mut seen = BTreeSet::new();
    for (i, t) in k.metrics_topics.iter().enumerate() {
        if t.name.trim().is_empty() {
            return Err(invalid(
                format!("kafka.metrics_topics[{i}].name"),
                "must not be empty",
            ));
        }
        if !seen.insert(t.name.as_str()) {
            return Err(invalid(
                format!("kafka.metrics_topics[{i}].name"),
                format!("topic `{}` is listed twice", t.name),
            ));
        }
        if t.line_protocol.vm_tag.is_empty() {
            return Err(invalid(
                format!("kafka.metrics_topics[{i}].line_protocol.vm_tag"),
                "must not be empty",
            ));
        }
    }
    for (key, topic) in [
        ("kafka.control_topic", &k.control_topic),
        ("kafka.dead_letter_topic", &k.dead_letter_topic),
    ] {
        if topic.trim().is_empty() {
            return Err(invalid(key, "must not be empty"));
        }
        if seen.contains(topic.as_str()) {
            return Err(invalid(key, format!("`{topic}` is also a metrics topic")));
        }
    }
    if k.partitions < 1 {
        return Err(invalid("kafka.partitions", "must be at least 1"));
    }
    if k.replication_factor < 1 {
        return Err(invalid("kafka.replication_factor", "must be at least 1"));
    }
    positive("kafka.replay_hours", k.replay_hours)?;
    if k.replay_hours < c.baseline.min_hours {
        return Err(invalid(
            "kafka.replay_hours",
            format!(
                "{} is less than baseline.min_hours ({}): a restart could not rebuild the baselines",
                k.replay_hours, c.baseline.min_hours
            ),
        ));
    }
    if k.max_batch_messages == 0 {
        return Err(invalid("kafka.max_batch_messages", "must be at least 1"));
    }
    if k.retry_initial_ms == 0 || k.retry_max_ms < k.retry_initial_ms {
        return Err(invalid(
            "kafka.retry_initial_ms",
            "must be at least 1 and at most kafka.retry_max_ms",
        ));
    }
    for key in k.client.keys() {
        if key == "group.id" || key == "bootstrap.servers" {
            return Err(invalid(
                format!("kafka.client.\"{key}\""),
                "set kafka.group_id / kafka.brokers instead",
            ));
        }
    }
    if c.actor.group_id.trim().is_empty() {
        return Err(invalid("actor.group_id", "must not be empty"));
    }
    Ok(())
}

fn history(c: &Config) -> Result<(), ConfigError> {
    let h = &c.history;
    positive("history.flush_secs", h.flush_secs as f64)?;
    positive("history.maintenance_secs", h.maintenance_secs as f64)?;
    if h.downsample_secs == 0 || 86_400 % h.downsample_secs != 0 {
        return Err(invalid(
            "history.downsample_secs",
            "must divide a day (e.g. 60, 300, 3600)",
        ));
    }
    if h.compact_min_files < 2 {
        return Err(invalid(
            "history.compact_min_files",
            "must be at least 2 (merging one file gains nothing)",
        ));
    }
    for metric in h.downsample_per_metric.keys() {
        if !c.thresholds.metrics.contains(metric) {
            return Err(invalid(
                format!("history.downsample_per_metric.{metric}"),
                "is not a metric of thresholds.metrics",
            ));
        }
    }
    Ok(())
}

/// Checks a deserialised config; the error names the first bad key.
pub(super) fn validate(c: &Config) -> Result<(), ConfigError> {
    kafka(c)?;
    actuator(c)?;
    if let Some((key, reason)) = c.approval.problem() {
        return Err(invalid(&key, reason));
    }
    http(c)?;
    history(c)?;
    c.judge.validate()?;
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
    if let Some(t) = c.failure.risk_threshold
        && !(t > 0.0 && t < 1.0)
    {
        return Err(invalid(
            "failure.risk_threshold",
            format!("{t} is not a risk strictly between 0 and 1"),
        ));
    }
    if c.failure.model.trim().is_empty() {
        return Err(invalid(
            "failure.model",
            "name `builtin`, a bundle file, or `none`",
        ));
    }
    if !(c.retrain.every_hours >= 0.0 && c.retrain.every_hours.is_finite()) {
        return Err(invalid(
            "retrain.every_hours",
            format!(
                "{} is not a number of hours (0: on demand only)",
                c.retrain.every_hours
            ),
        ));
    }
    if !(c.retrain.held_out_share > 0.0 && c.retrain.held_out_share < 1.0) {
        return Err(invalid(
            "retrain.held_out_share",
            format!(
                "{} is not a share strictly between 0 and 1",
                c.retrain.held_out_share
            ),
        ));
    }
    if c.retrain.lstm_epochs == 0 {
        return Err(invalid(
            "retrain.lstm_epochs",
            "training needs at least one epoch",
        ));
    }
    if c.fleet.vms == 0 {
        return Err(invalid("fleet.vms", "a fleet needs at least one VM"));
    }
    share("fleet.critical_share", c.fleet.critical_share)?;
    share("fleet.canary_ring_share", c.fleet.canary_ring_share)?;
    share("simulation.affected_share", c.simulation.affected_share)?;
    if c.simulation.events.len() > crate::simulator::MAX_EVENTS {
        return Err(invalid(
            "simulation.events",
            format!(
                "{} events; at most {}",
                c.simulation.events.len(),
                crate::simulator::MAX_EVENTS
            ),
        ));
    }
    for (i, event) in c.simulation.events.iter().enumerate() {
        if let Some((key, why)) = event.problem(&format!("simulation.events[{i}]")) {
            return Err(invalid(key, why));
        }
    }
    share(
        "simulation.high_memory_share",
        c.simulation.high_memory_share,
    )?;
    // Sizes the machine can hold, windows the clock can count: checked
    // before anything is computed from them.
    at_most("fleet.vms", c.fleet.vms as u64, 1, 1_000_000)?;
    at_most(
        "simulation.partitions",
        c.simulation.partitions as u64,
        1,
        1024,
    )?;
    at_most("window.size_secs", c.window.size_secs, 1, 86_400)?;
    at_most("window.slide_secs", c.window.slide_secs, 1, 86_400)?;
    at_most(
        "window.allowed_lateness_secs",
        c.window.allowed_lateness_secs,
        0,
        86_400,
    )?;
    at_most(
        "window.max_future_secs",
        c.window.max_future_secs,
        1,
        30 * 86_400,
    )?;
    at_most(
        "window.max_unlisted_vms",
        c.window.max_unlisted_vms as u64,
        0,
        10_000_000,
    )?;
    hours("simulation.warmup_hours", c.simulation.warmup_hours)?;
    hours(
        "simulation.max_rollout_hours",
        c.simulation.max_rollout_hours,
    )?;
    hours("baseline.min_hours", c.baseline.min_hours)?;
    hours("baseline.half_life_hours", c.baseline.half_life_hours)?;
    hours(
        "forecast.forgetting_half_life_hours",
        c.forecast.forgetting_half_life_hours,
    )?;
    // Cumulative sizes grow: each count past the counts before it, each
    // share past the shares before it (how counts and shares interleave
    // depends on the fleet, which the inventory may change).
    let (mut count, mut percent) = (0usize, 0f64);
    for (i, w) in c.rollout.waves.iter().enumerate() {
        let grows = match *w {
            bellwether_schemas::WaveSize::Count(n) => std::mem::replace(&mut count, n) < n,
            bellwether_schemas::WaveSize::Percent(p) => std::mem::replace(&mut percent, p) < p,
        };
        if !grows {
            return Err(invalid(
                format!("rollout.waves[{i}]"),
                format!(
                    "`{w}` is not larger than the wave before it: wave sizes are cumulative and must grow"
                ),
            ));
        }
    }
    non_empty("fleet.regions", &c.fleet.regions)?;
    non_empty("fleet.instance_types", &c.fleet.instance_types)?;
    non_empty("fleet.roles", &c.fleet.roles)?;
    if c.fleet.sample_interval_secs == 0 || c.fleet.sample_interval_secs > c.window.size_secs {
        return Err(invalid(
            "fleet.sample_interval_secs",
            format!(
                "must be between 1 and window.size_secs ({})",
                c.window.size_secs
            ),
        ));
    }

    positive("simulation.warmup_hours", c.simulation.warmup_hours)?;
    positive(
        "simulation.max_rollout_hours",
        c.simulation.max_rollout_hours,
    )?;
    if c.simulation.warmup_hours <= c.baseline.min_hours {
        return Err(invalid(
            "simulation.warmup_hours",
            format!(
                "{} h of history is not more than baseline.min_hours ({} h): no VM could be judged",
                c.simulation.warmup_hours, c.baseline.min_hours
            ),
        ));
    }
    if c.simulation.partitions == 0 {
        return Err(invalid(
            "simulation.partitions",
            "needs at least one partition",
        ));
    }

    let mut names = BTreeSet::from([BUILT_IN_CRITICAL_GROUP.to_string()]);
    for (i, group) in c.canary.groups.iter().enumerate() {
        let key = format!("canary.groups[{i}]");
        if !names.insert(group.name.clone()) {
            return Err(invalid(
                format!("{key}.name"),
                format!("group `{}` is defined twice (or is built in)", group.name),
            ));
        }
        Selector::compile(group).map_err(|e| invalid(format!("{key}.{}", e.field), e.reason))?;
    }
    non_empty("rollout.canary_groups", &c.rollout.canary_groups)?;
    for (i, name) in c.rollout.canary_groups.iter().enumerate() {
        if !names.contains(name) {
            return Err(invalid(
                format!("rollout.canary_groups[{i}]"),
                format!(
                    "no canary group named `{name}`; known groups: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    non_empty("rollout.waves", &c.rollout.waves)?;
    let waves = c.rollout.wave_sizes().len();
    if c.rollout.canary_waves == 0 || c.rollout.canary_waves > waves {
        return Err(invalid(
            "rollout.canary_waves",
            format!("must be between 1 and the number of waves ({waves})"),
        ));
    }
    if let Some(w) = &c.rollout.maintenance_window {
        crate::rollout::window::MaintenanceWindow::parse(w)
            .map_err(|e| invalid(format!("rollout.maintenance_window.{}", e.field), e.reason))?;
    }

    if c.rollback.max_concurrent == 0 {
        return Err(invalid(
            "rollback.max_concurrent",
            "at least one rollback must be allowed at a time",
        ));
    }
    if c.window.size_secs == 0
        || c.window.slide_secs == 0
        || !c.window.size_secs.is_multiple_of(c.window.slide_secs)
    {
        return Err(invalid(
            "window.slide_secs",
            format!(
                "window.size_secs ({}) must be a positive multiple of slide_secs ({})",
                c.window.size_secs, c.window.slide_secs
            ),
        ));
    }
    positive("baseline.half_life_hours", c.baseline.half_life_hours)?;
    if c.baseline.min_hours < 0.0 {
        return Err(invalid("baseline.min_hours", "cannot be negative"));
    }
    positive(
        "forecast.forgetting_half_life_hours",
        c.forecast.forgetting_half_life_hours,
    )?;
    if c.forecast.harmonics > 12 {
        return Err(invalid(
            "forecast.harmonics",
            "more than 12 daily harmonics only fits noise",
        ));
    }

    let t = &c.thresholds;
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
