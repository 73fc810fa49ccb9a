//! Kafka: the production path.
//!
//! Metrics come in through a consumer group ([`metrics_source`]), decoded
//! straight into Arrow batches; what fails to decode goes to the dead-letter
//! topic ([`dead_letter`]). Commands, reports and scores go out through an
//! idempotent producer ([`sink`]); the control topic is read back by the
//! scoring stage and the rollout actor ([`control`]). Every client takes the
//! user's librdkafka settings verbatim, so secured clusters work as is.

pub mod admin;
pub(crate) mod config;
pub(crate) mod context;
pub mod control;
pub mod dead_letter;
pub mod metrics_source;
pub mod sink;

use crate::config::KafkaConfig;
use crate::connector::ConnectorError;
use rdkafka::ClientConfig;

/// Client settings shared by every bellwether client: the brokers, then the
/// user's `kafka.client` settings (which win).
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "bellwether")
        .set("reconnect.backoff.ms", kafka.retry_initial_ms.to_string())
        .set("reconnect.backoff.max.ms", kafka.retry_max_ms.to_string())
        // A broker that stops answering is noticed (logged, reconnected)
        // after 15 s instead of librdkafka's 60.
        .set("socket.timeout.ms", "15000");
    for (k, v) in &kafka.client {
        c.set(k, v);
    }
    if kafka.client.contains_key("debug") {
        // librdkafka's debug contexts log at debug level: let them through
        // (shown with BELLWETHER_LOG=librdkafka=debug).
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    c
}

/// Consumer settings: manual offset storage and commits, from the earliest
/// offset when the group has none.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let client = client_config(kafka);
    for (k, v) in client.config_map() {
        c.set(k, v);
    }
    c.set_log_level(client.log_level);
    c
}

/// Producer settings: idempotent (no duplicates or reordering on retry),
/// acknowledged by every in-sync replica, retried until delivered.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5");
    let client = client_config(kafka);
    for (k, v) in client.config_map() {
        c.set(k, v);
    }
    c.set_log_level(client.log_level);
    c
}

pub(crate) fn transport(what: impl Into<String>, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Transport {
        what: what.into(),
        reason: e.to_string(),
    }
}
