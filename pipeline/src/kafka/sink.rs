//! The idempotent producer, and sinks of JSON messages on it.

use super::context::Delivery;
use super::{producer_config, transport};
use crate::config::KafkaConfig;
use crate::connector::{ConnectorError, Keyed, MessageSink};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One idempotent producer shared by every sink of a process.
#[derive(Clone)]
pub struct SharedProducer {
    inner: Arc<ThreadedProducer<Delivery>>,
}

impl SharedProducer {
    /// Connects (lazily: librdkafka retries in the background).
    pub fn new(kafka: &KafkaConfig) -> Result<SharedProducer, ConnectorError> {
        let producer = producer_config(kafka)
            .create_with_context(Delivery::default())
            .map_err(|e| transport("creating the Kafka producer", e))?;
        Ok(SharedProducer {
            inner: Arc::new(producer),
        })
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), ConnectorError> {
        let mut record = BaseRecord::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(transport(format!("producing to {topic}"), e)),
            }
        }
    }

    /// Waits until every queued record is delivered; while the broker is away
    /// it keeps waiting (and saying so), since nothing may be committed
    /// before its results are delivered. Fails if a delivery failed.
    pub fn flush(&self) -> Result<(), ConnectorError> {
        let (failed_before, _) = self.inner.context().failures();
        let started = Instant::now();
        let mut warned = false;
        loop {
            match self.inner.flush(Duration::from_secs(5)) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    if !warned || started.elapsed().as_secs().is_multiple_of(30) {
                        tracing::warn!(
                            queued = self.inner.in_flight_count(),
                            waited_s = started.elapsed().as_secs(),
                            "waiting for Kafka to take queued messages"
                        );
                        warned = true;
                    }
                }
                Err(e) => return Err(transport("flushing the Kafka producer", e)),
            }
        }
        if warned {
            tracing::info!(
                waited_s = started.elapsed().as_secs(),
                "Kafka took every queued message"
            );
        }
        let (failed, reason) = self.inner.context().failures();
        if failed > failed_before {
            return Err(transport(
                "delivering to Kafka",
                format!(
                    "{} message(s) not delivered, last {}",
                    failed - failed_before,
                    reason.unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}

/// Sends messages as JSON on one topic, keyed by [`Keyed::key`] so that
/// messages with one key (one rollout's commands) stay in order.
pub struct KafkaSink<T> {
    producer: SharedProducer,
    topic: String,
    buffer: Vec<u8>,
    _type: PhantomData<fn(T)>,
}

impl<T> KafkaSink<T> {
    /// A sink on `topic`.
    pub fn new(producer: SharedProducer, topic: &str) -> KafkaSink<T> {
        KafkaSink {
            producer,
            topic: topic.to_string(),
            buffer: Vec::new(),
            _type: PhantomData,
        }
    }
}

impl<T: Serialize + Keyed> MessageSink<T> for KafkaSink<T> {
    fn send(&mut self, message: T) -> Result<(), ConnectorError> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, &message)
            .map_err(|e| transport(format!("encoding a message for {}", self.topic), e))?;
        self.producer.send(
            &self.topic,
            Some(message.key().as_bytes()),
            &self.buffer,
            None,
        )?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        self.producer.flush()
    }
}

/// A sink that drops everything (a topic switched off in config).
pub struct NullSink;

impl<T> MessageSink<T> for NullSink {
    fn send(&mut self, _: T) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
