//! Waiting for the broker, and creating missing topics.

use super::context::Logging;
use super::{client_config, transport};
use crate::config::KafkaConfig;
use crate::connector::ConnectorError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Blocks until the brokers answer a metadata request, retrying with
/// exponential backoff and saying so; `give_up_after` bounds the wait, and
/// `stop` (SIGINT/SIGTERM) ends it within a few seconds: then it returns
/// false.
pub fn wait_for_broker(
    kafka: &KafkaConfig,
    give_up_after: Option<Duration>,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> Result<bool, ConnectorError> {
    let stopping = || stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
    let consumer: BaseConsumer<Logging> = client_config(kafka)
        .create_with_context(Logging::default())
        .map_err(|e| transport("creating a Kafka client", e))?;
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(kafka.retry_initial_ms);
    let mut attempt = 1;
    loop {
        if stopping() {
            tracing::info!("stopped while waiting for Kafka");
            return Ok(false);
        }
        match consumer.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(m) => {
                tracing::info!(brokers = %kafka.brokers, count = m.brokers().len(), "connected to Kafka");
                return Ok(true);
            }
            Err(e) => {
                if give_up_after.is_some_and(|g| started.elapsed() >= g) {
                    return Err(transport(format!("reaching Kafka at {}", kafka.brokers), e));
                }
                tracing::warn!(
                    brokers = %kafka.brokers,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "Kafka unreachable: {e}"
                );
                // In short naps, so a signal is heard within a moment.
                let until = std::time::Instant::now() + delay;
                while std::time::Instant::now() < until && !stopping() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                delay = (delay * 2).min(Duration::from_millis(kafka.retry_max_ms));
                attempt += 1;
            }
        }
    }
}

/// Topics bellwether reads and writes, with their partition counts.
pub fn topics(kafka: &KafkaConfig) -> Vec<(String, i32)> {
    let mut t: Vec<(String, i32)> = kafka
        .metrics_topics
        .iter()
        .map(|m| (m.name.clone(), kafka.partitions))
        .collect();
    t.push((kafka.control_topic.clone(), 1));
    t.push((kafka.dead_letter_topic.clone(), 1));
    if !kafka.scores_topic.is_empty() {
        t.push((kafka.scores_topic.clone(), kafka.partitions));
    }
    if !kafka.inventory_topic.is_empty() {
        t.push((kafka.inventory_topic.clone(), 1));
    }
    t
}

/// Creates whichever of bellwether's topics do not exist yet.
pub fn ensure_topics(kafka: &KafkaConfig) -> Result<(), ConnectorError> {
    let admin: AdminClient<Logging> = client_config(kafka)
        .create_with_context(Logging::default())
        .map_err(|e| transport("creating a Kafka admin client", e))?;
    let wanted = topics(kafka);
    let new: Vec<NewTopic> = wanted
        .iter()
        .map(|(name, partitions)| {
            let topic = NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(kafka.replication_factor),
            );
            // The control topic is bellwether's store of rollouts, approvals
            // and inventory changes, replayed at every start: kept for ever.
            if name == &kafka.control_topic {
                topic.set("retention.ms", "-1")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| transport("creating topics", e))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(transport(format!("creating topic {name}"), code));
            }
        }
    }
    Ok(())
}
