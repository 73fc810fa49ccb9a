//! `[remote_write]`: the Prometheus remote-write receiver's settings.

use crate::config::ConfigError;
use crate::config::KafkaConfig;
use crate::config::{at_most, invalid};
use bellwether_schemas::wire::InputFormat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where Prometheus (or any remote-write sender) posts samples, and how its
/// series become bellwether's VM metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Prometheus remote write (1.0): `bellwether run` answers POST
    /// /api/v1/write on http.listen when enabled; `bellwether gateway` always
    /// does, on gateway_listen, without scoring. Samples are produced onto
    /// `topic` (one of kafka.metrics_topics in "json"; "": the first) as
    /// bellwether's JSON snapshots keyed by VM id, answered 204 once Kafka
    /// holds them, 503 (the sender retries) if it does not within
    /// produce_timeout_secs, 400 with the reason (and the body on the
    /// dead-letter topic) if the body does not decode. config/prometheus/ has
    /// the recording rules and the remote_write block to send these.
    #[serde(default)]
    pub enabled: bool,
    /// The metrics topic samples are produced onto (one of
    /// `kafka.metrics_topics`, in `json`); "": the first `json` one.
    #[serde(default)]
    pub topic: String,
    /// Bearer token senders must present (Prometheus:
    /// authorization.credentials); "": none asked. Better given as
    /// BELLWETHER__REMOTE_WRITE__TOKEN.
    #[serde(default)]
    pub token: String,
    /// The label naming the VM.
    #[serde(default = "vm_label")]
    pub vm_label: String,
    /// Strip a `:port` from the VM label's value (`10.0.0.7:9100` is VM
    /// `10.0.0.7`).
    #[serde(default = "yes")]
    pub strip_port: bool,
    /// A rewrite of the VM label's value, as Prometheus relabelling does:
    /// when this regular expression matches the whole value (after the port
    /// is stripped), the VM is `vm_replacement` with `$1`, `$name`...
    /// filled in; "": no rewrite.
    #[serde(default)]
    pub vm_regex: String,
    /// The VM id a matching `vm_regex` makes.
    #[serde(default = "first_group")]
    pub vm_replacement: String,
    /// Which series are which metric: a metric name, or one with label values
    /// it must have, e.g. `cpu_percent = { name = "instance:node_cpu:ratio",
    /// labels = { job = "node" } }`. Series no rule takes are dropped and
    /// counted (bellwether_remote_write_series_dropped_total); stale markers
    /// and NaNs are skipped and counted; samples older than the scorer's
    /// allowed lateness are counted as late rows, like any other.
    #[serde(default = "default_metrics")]
    pub metrics: BTreeMap<String, SeriesRule>,
    /// Largest request body, compressed, in MB.
    #[serde(default = "max_body_mb")]
    pub max_body_mb: u64,
    /// Largest request body once decompressed, in MB.
    #[serde(default = "max_decoded_mb")]
    pub max_decoded_mb: u64,
    /// Seconds Kafka may take to store a request's samples; past that (a
    /// broker away) the sender is answered 503 and sends them again.
    #[serde(default = "produce_timeout_secs")]
    pub produce_timeout_secs: u64,
    /// Where `bellwether gateway` listens.
    #[serde(default = "gateway_listen")]
    pub gateway_listen: String,
}

/// The series one bellwether metric is read from.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SeriesRule {
    /// Every series of this metric name.
    Name(String),
    /// Series of this name whose labels have these values.
    Matching {
        /// The metric name (`__name__`).
        name: String,
        /// Label name to the value it must have.
        labels: BTreeMap<String, String>,
    },
}

/// The table form of [`SeriesRule`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchingRule {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A name or a table, with the table's own errors (an unknown key named)
/// rather than "did not match any variant".
impl<'de> Deserialize<'de> for SeriesRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SeriesRule, D::Error> {
        struct RuleVisitor;
        impl<'de> serde::de::Visitor<'de> for RuleVisitor {
            type Value = SeriesRule;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metric name, or { name = \"...\", labels = { ... } }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SeriesRule, E> {
                Ok(SeriesRule::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SeriesRule, A::Error> {
                let rule =
                    MatchingRule::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SeriesRule::Matching {
                    name: rule.name,
                    labels: rule.labels,
                })
            }
        }
        d.deserialize_any(RuleVisitor)
    }
}

impl SeriesRule {
    /// The metric name.
    pub fn name(&self) -> &str {
        match self {
            SeriesRule::Name(n) | SeriesRule::Matching { name: n, .. } => n,
        }
    }

    /// The label values a series must have.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        let labels = match self {
            SeriesRule::Name(_) => None,
            SeriesRule::Matching { labels, .. } => Some(labels),
        };
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn vm_label() -> String {
    "instance".into()
}

fn yes() -> bool {
    true
}

fn first_group() -> String {
    "$1".into()
}

/// The series `config/prometheus/bellwether.rules.yml` (and
/// `application.rules.yml`) record.
fn default_metrics() -> BTreeMap<String, SeriesRule> {
    bellwether_schemas::metric::names::ALL
        .iter()
        .map(|m| (m.to_string(), SeriesRule::Name(format!("bellwether:{m}"))))
        .collect()
}

fn max_body_mb() -> u64 {
    8
}

fn max_decoded_mb() -> u64 {
    64
}

fn produce_timeout_secs() -> u64 {
    10
}

fn gateway_listen() -> String {
    "127.0.0.1:9465".into()
}

impl Default for RemoteWriteConfig {
    fn default() -> RemoteWriteConfig {
        RemoteWriteConfig {
            enabled: false,
            topic: String::new(),
            token: String::new(),
            vm_label: vm_label(),
            strip_port: true,
            vm_regex: String::new(),
            vm_replacement: first_group(),
            metrics: default_metrics(),
            max_body_mb: max_body_mb(),
            max_decoded_mb: max_decoded_mb(),
            produce_timeout_secs: produce_timeout_secs(),
            gateway_listen: gateway_listen(),
        }
    }
}

impl RemoteWriteConfig {
    /// The metrics topic samples go to, or why there is none.
    pub fn target_topic(&self, kafka: &KafkaConfig) -> Result<String, ConfigError> {
        let json = |t: &&crate::config::MetricsTopic| t.format == InputFormat::Json;
        if self.topic.is_empty() {
            return kafka
                .metrics_topics
                .iter()
                .find(json)
                .map(|t| t.name.clone())
                .ok_or_else(|| {
                    invalid(
                        "remote_write.topic",
                        "kafka.metrics_topics has no `json` topic to produce remote-written samples onto; add one",
                    )
                });
        }
        match kafka.metrics_topics.iter().find(|t| t.name == self.topic) {
            Some(t) if json(&t) => Ok(self.topic.clone()),
            Some(t) => Err(invalid(
                "remote_write.topic",
                format!(
                    "`{}` is a `{}` topic; remote-written samples are produced as `json`",
                    self.topic, t.format
                ),
            )),
            None => Err(invalid(
                "remote_write.topic",
                format!(
                    "`{}` is not one of kafka.metrics_topics, so nothing would score what is produced onto it",
                    self.topic
                ),
            )),
        }
    }

    /// Checks every key, naming the first that is wrong.
    pub fn validate(&self, kafka: &KafkaConfig) -> Result<(), ConfigError> {
        self.target_topic(kafka)?;
        if self.vm_label.is_empty() {
            return Err(invalid("remote_write.vm_label", "must not be empty"));
        }
        if !self.vm_regex.is_empty() {
            regex::Regex::new(&format!("^(?:{})$", self.vm_regex)).map_err(|e| {
                invalid(
                    "remote_write.vm_regex",
                    format!("not a regular expression: {e}"),
                )
            })?;
        }
        if !self.token.is_empty() && self.token.len() < 16 {
            return Err(invalid(
                "remote_write.token",
                "shorter than 16 characters: too easy to guess",
            ));
        }
        for (metric, rule) in &self.metrics {
            if rule.name().is_empty() {
                return Err(invalid(
                    format!("remote_write.metrics.{metric}"),
                    "names no series",
                ));
            }
        }
        at_most("remote_write.max_body_mb", self.max_body_mb, 1, 256)?;
        at_most("remote_write.max_decoded_mb", self.max_decoded_mb, 1, 1024)?;
        at_most(
            "remote_write.produce_timeout_secs",
            self.produce_timeout_secs,
            1,
            600,
        )?;
        if self.max_decoded_mb < self.max_body_mb {
            return Err(invalid(
                "remote_write.max_decoded_mb",
                "is less than max_body_mb: a body could not decompress to its own size",
            ));
        }
        Ok(())
    }
}
