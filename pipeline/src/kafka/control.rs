//! Reading the control topic (or any topic of JSON messages).

use super::context::Logging;
use super::dead_letter::DeadLetters;
use super::{consumer_config, transport};
use crate::config::KafkaConfig;
use crate::connector::{ConnectorError, MessageSource};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Reads JSON messages from every partition of one topic, from the
/// beginning: the control topic is the log the scoring stage and the actor
/// rebuild their state from. Offsets are committed to `group_id` (progress
/// and lag) only when the caller says its results are safe. A message that
/// does not decode is dead-lettered and skipped.
pub struct KafkaMessageSource<T> {
    consumer: BaseConsumer<Logging>,
    topic: String,
    dead_letters: DeadLetters,
    next: HashMap<i32, i64>,
    offsets: Vec<i64>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> KafkaMessageSource<T> {
    /// Reads `topic` from its first offset, committing progress to `group_id`.
    pub fn from_beginning(
        kafka: &KafkaConfig,
        topic: &str,
        group_id: &str,
        dead_letters: DeadLetters,
    ) -> Result<Self, ConnectorError> {
        Self::assign(kafka, topic, group_id, dead_letters, Offset::Beginning)
    }

    /// Reads only what is published from now on.
    pub fn from_end(
        kafka: &KafkaConfig,
        topic: &str,
        group_id: &str,
        dead_letters: DeadLetters,
    ) -> Result<Self, ConnectorError> {
        Self::assign(kafka, topic, group_id, dead_letters, Offset::End)
    }

    fn assign(
        kafka: &KafkaConfig,
        topic: &str,
        group_id: &str,
        dead_letters: DeadLetters,
        from: Offset,
    ) -> Result<Self, ConnectorError> {
        let consumer: BaseConsumer<Logging> = consumer_config(kafka, group_id)
            .create_with_context(Logging::default())
            .map_err(|e| transport("creating a Kafka consumer", e))?;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| transport(format!("reading the metadata of {topic}"), e))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(transport(
                format!("reading {topic}"),
                "the topic does not exist",
            ));
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, from)
                .map_err(|e| transport(format!("assigning {topic}"), e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| transport(format!("assigning {topic}"), e))?;
        Ok(KafkaMessageSource {
            consumer,
            topic: topic.to_string(),
            dead_letters,
            next: HashMap::new(),
            offsets: Vec::new(),
            _type: PhantomData,
        })
    }

    /// Everything published before this call: blocks until the consumer has
    /// reached the end offsets the topic had when it was called.
    pub fn catch_up(&mut self) -> Result<Vec<T>, ConnectorError> {
        let mut ends = HashMap::new();
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| transport("reading the assignment", e))?;
        for e in assignment.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, e.partition(), Duration::from_secs(30))
                .map_err(|err| transport(format!("reading the end of {}", self.topic), err))?;
            if high > low {
                ends.insert(e.partition(), high);
            }
        }
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        let started = Instant::now();
        while ends
            .iter()
            .any(|(p, end)| self.next.get(p).copied().unwrap_or(0) < *end)
        {
            out.extend(self.poll_for(Duration::from_millis(200), usize::MAX)?);
            offsets.append(&mut self.offsets);
            if started.elapsed() > Duration::from_secs(300) {
                return Err(transport(
                    format!("reading {} to its end", self.topic),
                    "no progress for 5 minutes",
                ));
            }
        }
        self.offsets = offsets;
        Ok(out)
    }

    fn poll_for(&mut self, wait: Duration, max: usize) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        self.offsets.clear();
        let mut timeout = wait;
        while out.len() < max {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let message = match result {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, "kafka: {e}");
                    break;
                }
            };
            self.next.insert(message.partition(), message.offset() + 1);
            match serde_json::from_slice::<T>(message.payload().unwrap_or_default()) {
                Ok(value) => {
                    out.push(value);
                    self.offsets.push(message.offset());
                }
                Err(e) => self.dead_letters.send(&message, &format!("json: {e}"))?,
            }
        }
        Ok(out)
    }
}

impl<T: DeserializeOwned> MessageSource<T> for KafkaMessageSource<T> {
    fn poll(&mut self, max: usize) -> Result<Vec<T>, ConnectorError> {
        self.poll_for(Duration::ZERO, max)
    }

    fn last_offsets(&self) -> &[i64] {
        &self.offsets
    }

    fn commit(&mut self) -> Result<(), ConnectorError> {
        if self.next.is_empty() {
            return Ok(());
        }
        self.dead_letters.flush()?;
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &self.next {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*next))
                .map_err(|e| transport("committing", e))?;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            // Progress only: state is rebuilt from the topic and the ledger.
            tracing::warn!(topic = %self.topic, "commit failed, retried next turn: {e}");
        }
        Ok(())
    }
}
