//! The dead-letter topic: messages that could not be decoded, kept whole.

use super::sink::SharedProducer;
use crate::connector::ConnectorError;
use crate::monitor::Monitor;
use rdkafka::Message;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Header naming why a message was dead-lettered.
pub const REASON_HEADER: &str = "bellwether.error";
/// Header naming the topic it came from.
pub const TOPIC_HEADER: &str = "bellwether.source.topic";
/// Header naming its partition.
pub const PARTITION_HEADER: &str = "bellwether.source.partition";
/// Header naming its offset.
pub const OFFSET_HEADER: &str = "bellwether.source.offset";

/// Sends undecodable messages to the dead-letter topic with their original
/// key, payload and headers, plus headers naming the reason and the source
/// topic, partition and offset.
#[derive(Clone)]
pub struct DeadLetters {
    producer: SharedProducer,
    topic: String,
    count: Arc<AtomicU64>,
    monitor: Option<Monitor>,
}

impl DeadLetters {
    /// Dead letters go to `topic`.
    pub fn new(producer: SharedProducer, topic: &str) -> DeadLetters {
        DeadLetters {
            producer,
            topic: topic.to_string(),
            count: Arc::new(AtomicU64::new(0)),
            monitor: None,
        }
    }

    /// Counts dead letters in `monitor`'s series too.
    pub fn with_monitor(mut self, monitor: Monitor) -> DeadLetters {
        self.monitor = Some(monitor);
        self
    }

    /// Messages dead-lettered so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Dead-letters `message` because of `reason`.
    pub fn send<M: Message>(&self, message: &M, reason: &str) -> Result<(), ConnectorError> {
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            "dead-lettered: {reason}"
        );
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        for (key, value) in [
            (REASON_HEADER, reason),
            (TOPIC_HEADER, message.topic()),
            (PARTITION_HEADER, partition.as_str()),
            (OFFSET_HEADER, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        self.producer.send(
            &self.topic,
            message.key(),
            message.payload().unwrap_or_default(),
            Some(headers),
        )?;
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.monitor {
            m.telemetry().dead_lettered(message.topic());
        }
        Ok(())
    }

    /// Dead-letters a record that decoded but could not be handled, as
    /// `payload` (its JSON again), keyed `key`, from `source_topic`.
    pub fn send_handled(
        &self,
        source_topic: &str,
        key: &str,
        payload: &[u8],
        reason: &str,
    ) -> Result<(), ConnectorError> {
        tracing::warn!(topic = source_topic, key, "dead-lettered: {reason}");
        let mut headers = OwnedHeaders::new();
        for (key, value) in [(REASON_HEADER, reason), (TOPIC_HEADER, source_topic)] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        self.producer
            .send(&self.topic, Some(key.as_bytes()), payload, Some(headers))?;
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.monitor {
            m.telemetry().dead_lettered(source_topic);
        }
        Ok(())
    }

    /// Waits until every dead letter is delivered.
    pub fn flush(&self) -> Result<(), ConnectorError> {
        self.producer.flush()
    }
}
