//! The seams between bellwether and the systems around it.
//!
//! A metric source yields Arrow batches of samples; a message source yields
//! commands and reports; a message sink takes them. The in-process
//! [`crate::bus`] implements all three for the embedded demo; the Kafka
//! connector implements the same traits for production. Sources commit only
//! what was polled before the caller's results were flushed to its sinks
//! (at-least-once).

pub mod buffer;
pub mod decode;

use arrow::array::RecordBatch;
use bellwether_operators::operator::InputId;
use bellwether_schemas::{ControlMessage, RolloutEvent, ScoreRecord};
use thiserror::Error;

/// A batch of metric samples from one input (partition).
#[derive(Debug, Clone)]
pub struct MetricBatch {
    /// The input (partition) it came from; event time is tracked per input.
    pub input: InputId,
    /// Samples in the long metric-sample schema.
    pub samples: RecordBatch,
}

/// A source or sink that failed.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The transport failed (broker unreachable, topic missing, ...).
    #[error("{what}: {reason}")]
    Transport {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

/// Where metric samples come from.
pub trait MetricSource {
    /// Returns the batches available now (possibly none), without blocking long.
    fn poll(&mut self) -> Result<Vec<MetricBatch>, ConnectorError>;
    /// Commits what is no longer needed, now that the results of everything
    /// polled so far are delivered. `watermark` is the scorer's event time:
    /// a source that rebuilds state by replay keeps what lies within its
    /// replay horizon of it uncommitted.
    fn commit(&mut self, watermark: Option<i64>) -> Result<(), ConnectorError>;
    /// Inputs that went quiet (true) or were revoked, or came back (false),
    /// since the last call.
    fn idle_changes(&mut self) -> Vec<(InputId, bool)> {
        Vec::new()
    }
}

/// Where commands and reports come from.
pub trait MessageSource<T> {
    /// Returns up to `max` messages available now (possibly none).
    fn poll(&mut self, max: usize) -> Result<Vec<T>, ConnectorError>;
    /// Commits everything polled so far.
    fn commit(&mut self) -> Result<(), ConnectorError>;
    /// The offsets of the messages the last poll returned, in order, for a
    /// source that has them (Kafka); empty otherwise.
    fn last_offsets(&self) -> &[i64] {
        &[]
    }
}

/// Where commands, scores and events go.
pub trait MessageSink<T> {
    /// Queues one message.
    fn send(&mut self, message: T) -> Result<(), ConnectorError>;
    /// Waits until every queued message is safely delivered.
    fn flush(&mut self) -> Result<(), ConnectorError>;
}

/// A message's partitioning key: messages with the same key stay in order.
pub trait Keyed {
    /// The key.
    fn key(&self) -> &str;
}

impl Keyed for ControlMessage {
    fn key(&self) -> &str {
        ControlMessage::key(self)
    }
}

impl Keyed for ScoreRecord {
    fn key(&self) -> &str {
        &self.vm_id
    }
}

impl Keyed for RolloutEvent {
    fn key(&self) -> &str {
        &self.rollout_id
    }
}

/// A sink that keeps every message in memory (for summaries and tests).
#[derive(Debug, Default, Clone)]
pub struct VecSink<T> {
    /// Messages received, in order.
    pub messages: Vec<T>,
}

impl<T> MessageSink<T> for VecSink<T> {
    fn send(&mut self, message: T) -> Result<(), ConnectorError> {
        self.messages.push(message);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
