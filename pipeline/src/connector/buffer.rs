//! A metric source over messages already in memory, decoded by the same
//! [`MessageDecoder`] as the Kafka source: for measuring the pipeline
//! without a broker (`benches/decode_score.rs`, `benches/scale.rs`).

use super::decode::MessageDecoder;
use super::{ConnectorError, MetricBatch, MetricSource};
use bellwether_schemas::EventTime;
use bellwether_schemas::wire::{SampleBuilder, StagedRows};

/// Messages held in memory, handed out `per_poll` at a time as one input.
pub struct BufferSource<'a> {
    messages: &'a [Vec<u8>],
    next: usize,
    per_poll: usize,
    decoder: MessageDecoder,
    staged: StagedRows,
    builder: SampleBuilder,
    timestamp_ms: i64,
    samples: u64,
    refused: Vec<String>,
}

impl<'a> BufferSource<'a> {
    /// A source over `messages`, decoded with `decoder`, `per_poll` a poll
    /// (`kafka.max_batch_messages`); each message is timestamped now.
    pub fn new(
        messages: &'a [Vec<u8>],
        decoder: MessageDecoder,
        per_poll: usize,
    ) -> BufferSource<'a> {
        BufferSource {
            messages,
            next: 0,
            per_poll: per_poll.max(1),
            decoder,
            staged: StagedRows::new(),
            builder: SampleBuilder::new(),
            timestamp_ms: EventTime::now().0,
            samples: 0,
            refused: Vec::new(),
        }
    }

    /// True once every message was handed out.
    pub fn is_done(&self) -> bool {
        self.next == self.messages.len()
    }

    /// Samples decoded so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Why each refused message was refused (what Kafka's source sends to
    /// the dead-letter topic).
    pub fn refused(&self) -> &[String] {
        &self.refused
    }
}

impl MetricSource for BufferSource<'_> {
    fn poll(&mut self) -> Result<Vec<MetricBatch>, ConnectorError> {
        let end = (self.next + self.per_poll).min(self.messages.len());
        let mut out = Vec::new();
        for m in &self.messages[self.next..end] {
            let decoded = self.decoder.decode(
                Some(m),
                Some(self.timestamp_ms),
                EventTime::HOUR_MS,
                &mut self.staged,
            );
            if let Err(reason) = decoded {
                self.refused.push(reason);
                continue;
            }
            if self.builder.is_full() {
                out.push(MetricBatch {
                    input: 0,
                    samples: self.builder.finish(),
                });
            }
            self.builder.append_staged(&self.staged);
            self.samples += self.staged.len() as u64;
        }
        self.next = end;
        if !self.builder.is_empty() {
            out.push(MetricBatch {
                input: 0,
                samples: self.builder.finish(),
            });
        }
        Ok(out)
    }

    fn commit(&mut self, _: Option<i64>) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_into_one_batch_a_poll_and_bad_ones_are_refused() {
        let good = br#"{"vm_id":"vm-1","time":"2026-11-02T00:00:00Z","metrics":{"cpu_percent":12.5,"memory_percent":40}}"#;
        let messages = vec![good.to_vec(), b"{not json".to_vec(), good.to_vec()];
        let mut source = BufferSource::new(&messages, MessageDecoder::Json, 2);
        let first = source.poll().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].samples.num_rows(), 2);
        assert!(!source.is_done());
        let second = source.poll().unwrap();
        assert_eq!(second[0].samples.num_rows(), 2);
        assert!(source.is_done());
        assert_eq!(source.samples(), 4);
        assert_eq!(source.refused().len(), 1, "{:?}", source.refused());
    }
}
