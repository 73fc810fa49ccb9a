//! Metric messages from bytes to staged rows: the decoder a metrics
//! topic's format names, kept from panicking and from believing what
//! cannot be true.

use crate::config::MetricsTopic;
use bellwether_schemas::EventTime;
use bellwether_schemas::wire::line_protocol::LineProtocolDecoder;
use bellwether_schemas::wire::{InputFormat, StagedRows, json};

/// Distinct metric names one message may carry: a VM has tens, not
/// thousands (more is a mistake or an attack, and would fill the batch's
/// metric dictionary).
pub const MAX_METRICS_PER_MESSAGE: usize = 1_000;

/// Decodes one metrics topic's messages (`kafka.metrics_topics[].format`).
pub enum MessageDecoder {
    /// One JSON snapshot of a VM per message.
    Json,
    /// InfluxDB line protocol, any number of lines per message.
    LineProtocol(LineProtocolDecoder),
}

impl MessageDecoder {
    /// The decoder of `topic`'s format.
    pub fn for_topic(topic: &MetricsTopic) -> MessageDecoder {
        match topic.format {
            InputFormat::Json => MessageDecoder::Json,
            InputFormat::LineProtocol => {
                MessageDecoder::LineProtocol(LineProtocolDecoder::new(topic.line_protocol.clone()))
            }
        }
    }

    /// Decodes `payload` into `staged` (emptied first). `timestamp_ms` is
    /// the message's own time, for samples without one; samples may be
    /// dated at most `max_future_ms` past it (or past the wall clock,
    /// whichever is earlier). The error is the reason the message goes to
    /// the dead-letter topic, whole: a decoder that panics on some input
    /// does not take the stream down.
    pub fn decode(
        &mut self,
        payload: Option<&[u8]>,
        timestamp_ms: Option<i64>,
        max_future_ms: i64,
        staged: &mut StagedRows,
    ) -> Result<(), String> {
        staged.clear();
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (payload, &mut *self) {
                (None, _) => Err("empty message".to_string()),
                (Some(payload), MessageDecoder::Json) => {
                    json::decode(payload, timestamp_ms, staged).map_err(|e| e.to_string())
                }
                (Some(payload), MessageDecoder::LineProtocol(d)) => d
                    .decode(payload, timestamp_ms, staged)
                    .map_err(|e| e.to_string()),
            }
        }))
        .unwrap_or_else(|panic| {
            Err(format!(
                "the decoder failed on this message ({}); please report it",
                crate::panic_message(panic.as_ref())
            ))
        });
        // What decoded must also be believable, or it is refused whole.
        let now_ms = EventTime::now().0;
        let reference = match timestamp_ms {
            Some(t) if t > 0 => t.min(now_ms),
            _ => now_ms,
        };
        let checked = decoded.and_then(|()| {
            staged.check_plausible(
                reference.saturating_add(max_future_ms),
                MAX_METRICS_PER_MESSAGE,
            )
        });
        if checked.is_err() {
            staged.clear();
        }
        checked
    }
}
