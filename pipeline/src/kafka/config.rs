//! Config of the Kafka path: `[kafka]`.

use crate::config::ConfigError;
use crate::config::validate::{invalid, non_empty, positive};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// Kafka topics, formats and client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`. Used by `bellwether run`,
    /// `bellwether actor` and `bellwether simulate` (the demo runs on its
    /// in-process bus and ignores this section).
    pub brokers: String,
    /// Consumer group of the scoring pipeline (instances share its partitions).
    pub group_id: String,
    /// librdkafka settings passed through verbatim (`security.protocol`,
    /// `sasl.mechanism`, `ssl.ca.location`, ...).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// Topics carrying metrics, each in its own format: "json" (bellwether's
    /// own) or "line_protocol" (InfluxDB line protocol as Telegraf sends it,
    /// with a mapping of Telegraf's names onto bellwether's metrics).
    pub metrics_topics: Vec<MetricsTopic>,
    /// Rollback, patch and approval commands, window reports, executions.
    pub control_topic: String,
    /// Metric messages that failed to decode, with the reason in their headers.
    pub dead_letter_topic: String,
    /// Per-VM scores of patched VMs; "" publishes none.
    #[serde(default)]
    pub scores_topic: String,
    /// VM records from a CMDB ("" for none): each message registers (or
    /// replaces) a VM, e.g. {"id": "web-0301", "instance_type": "m6i.large",
    /// "region": "eu-west-1", "criticality": "critical", "tags": {"role":
    /// "web"}}; {"id": "web-0017", "removed": true} removes one. Read by
    /// `bellwether run` and kept as inventory changes on the control topic.
    #[serde(default)]
    pub inventory_topic: String,
    /// Create missing topics at start, with `partitions` partitions (the
    /// control topic always gets one, so commands and reports stay in order).
    pub create_topics: bool,
    /// Partitions of topics bellwether creates (control: always 1).
    pub partitions: i32,
    /// Replication factor of topics bellwether creates.
    pub replication_factor: i32,
    /// Seconds without a message after which a partition stops holding
    /// event time back.
    pub idle_partition_secs: u64,
    /// After a restart, this many hours of metrics are replayed to rebuild the
    /// baselines and forecasts; offsets are committed this far behind event
    /// time. Keep it at least baseline.min_hours.
    pub replay_hours: f64,
    /// Messages decoded into one Arrow batch at most.
    pub max_batch_messages: usize,
    /// Longest wait for messages in one poll, milliseconds.
    pub poll_timeout_ms: u64,
    /// First retry delay when the broker is unreachable, milliseconds.
    pub retry_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub retry_max_ms: u64,
}

/// One metrics topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsTopic {
    /// Topic name.
    pub name: String,
    /// `json` or `line_protocol`.
    pub format: bellwether_schemas::wire::InputFormat,
    /// How line protocol maps onto VMs and metrics.
    #[serde(default)]
    pub line_protocol: bellwether_schemas::wire::line_protocol::LineProtocolOptions,
}

impl KafkaConfig {
    /// Checks brokers, topics and client settings: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let k = self;
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
        Ok(())
    }
}
