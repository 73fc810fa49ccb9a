//! The metrics source: a consumer group over the metrics topics, decoding
//! messages straight into Arrow batches, one batch per partition per poll.
//!
//! Offsets: a partition's offset is committed only once the results of what
//! came before it are delivered (the caller commits after flushing its
//! sinks) *and* its samples are older than the scorer's watermark minus
//! `kafka.replay_hours`. A restarted instance (or the new owner of a
//! partition after a rebalance) therefore replays enough history to rebuild
//! the baselines and forecasts, and decides again what was not yet decided;
//! decisions have deterministic ids, so a decision made twice is executed
//! once.

use super::context::Logging;
use super::dead_letter::DeadLetters;
use super::{consumer_config, transport};
use crate::config::{KafkaConfig, MetricsTopic};
use crate::connector::decode::MessageDecoder;
use crate::connector::{ConnectorError, MetricBatch, MetricSource};
use crate::monitor::Monitor;
use bellwether_operators::operator::InputId;
use bellwether_schemas::EventTime;
use bellwether_schemas::wire::{SampleBuilder, StagedRows};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters of the metrics source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Messages read.
    pub messages: u64,
    /// Sample rows decoded.
    pub rows: u64,
    /// Messages that failed to decode (all dead-lettered).
    pub dead_letters: u64,
    /// Messages read per (topic, partition).
    pub per_partition: Vec<((String, i32), u64)>,
}

/// Offsets safe to commit, shared with the rebalance callback.
#[derive(Default)]
struct Shared {
    safe: HashMap<(String, i32), i64>,
    assigned: Vec<(String, i32)>,
    revoked: Vec<(String, i32)>,
}

/// Commits safe offsets of partitions about to be revoked, and tells the
/// source which partitions came and went.
struct RebalanceContext {
    logging: Logging,
    shared: Arc<Mutex<Shared>>,
    monitor: Option<Monitor>,
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.logging.log(level, fac, message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.logging.error(error, reason);
    }
    /// librdkafka's statistics: each assigned partition's consumer lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(monitor) = &self.monitor else {
            return;
        };
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    monitor
                        .telemetry()
                        .consumer_lag(topic, &partition.to_string(), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let mut commit = TopicPartitionList::new();
            for e in tpl.elements() {
                let key = (e.topic().to_string(), e.partition());
                if let Some(offset) = shared.safe.get(&key) {
                    let _ = commit.add_partition_offset(
                        e.topic(),
                        e.partition(),
                        Offset::Offset(*offset),
                    );
                }
                shared.revoked.push(key);
            }
            tracing::info!(
                partitions = tpl.count(),
                "partitions revoked; committing what is safe"
            );
            if commit.count() > 0
                && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
            {
                tracing::warn!(
                    "commit on revoke failed (the new owner replays a little more): {e}"
                );
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            for e in tpl.elements() {
                shared.assigned.push((e.topic().to_string(), e.partition()));
            }
        }
    }
}

struct Partition {
    key: (String, i32),
    builder: SampleBuilder,
    /// (next offset, highest event time up to it), coarsened to a minute.
    checkpoints: VecDeque<(i64, i64)>,
    max_event_ms: i64,
    messages: u64,
    /// Messages not yet counted in the monitor's series.
    unreported: u64,
    last_message: Instant,
    idle: bool,
    assigned: bool,
}

/// The metrics source over Kafka.
pub struct KafkaMetricSource {
    consumer: BaseConsumer<RebalanceContext>,
    state: State,
}

struct State {
    shared: Arc<Mutex<Shared>>,
    decoders: HashMap<String, MessageDecoder>,
    dead_letters: DeadLetters,
    partitions: Vec<Partition>,
    /// Batches finished early (a builder's metric dictionary filled up).
    ready: Vec<MetricBatch>,
    staged: StagedRows,
    idle_changes: Vec<(InputId, bool)>,
    replay_ms: i64,
    idle_after: Duration,
    max_messages: usize,
    poll_timeout: Duration,
    stats: SourceStats,
    monitor: Option<Monitor>,
    /// How far past its message's timestamp (capped at the wall clock) a
    /// sample may be dated.
    max_future_ms: i64,
}

impl KafkaMetricSource {
    /// Joins `kafka.group_id` and subscribes to every metrics topic;
    /// `monitor`, if any, gets records in and consumer lag per partition.
    pub fn subscribe(
        kafka: &KafkaConfig,
        dead_letters: DeadLetters,
        monitor: Option<Monitor>,
    ) -> Result<KafkaMetricSource, ConnectorError> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut config = consumer_config(kafka, &kafka.group_id);
        if monitor.is_some() && !kafka.client.contains_key("statistics.interval.ms") {
            config.set("statistics.interval.ms", "5000");
        }
        let consumer: BaseConsumer<RebalanceContext> = config
            .create_with_context(RebalanceContext {
                logging: Logging::default(),
                shared: shared.clone(),
                monitor: monitor.clone(),
            })
            .map_err(|e| transport("creating the metrics consumer", e))?;
        let names: Vec<&str> = kafka
            .metrics_topics
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        consumer
            .subscribe(&names)
            .map_err(|e| transport(format!("subscribing to {}", names.join(", ")), e))?;
        let decoders = kafka
            .metrics_topics
            .iter()
            .map(|t: &MetricsTopic| (t.name.clone(), MessageDecoder::for_topic(t)))
            .collect();
        Ok(KafkaMetricSource {
            consumer,
            state: State {
                shared,
                decoders,
                dead_letters,
                ready: Vec::new(),
                partitions: Vec::new(),
                staged: StagedRows::new(),
                idle_changes: Vec::new(),
                replay_ms: (kafka.replay_hours * EventTime::HOUR_MS as f64) as i64,
                idle_after: Duration::from_secs(kafka.idle_partition_secs),
                max_messages: kafka.max_batch_messages,
                poll_timeout: Duration::from_millis(kafka.poll_timeout_ms),
                stats: SourceStats::default(),
                monitor,
                max_future_ms: EventTime::HOUR_MS,
            },
        })
    }

    /// Refuses samples dated more than `secs` past their message's
    /// timestamp (or the wall clock, whichever is earlier); default an hour.
    pub fn with_max_future_secs(mut self, secs: u64) -> KafkaMetricSource {
        self.state.max_future_ms = (secs as i64).saturating_mul(1000);
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> SourceStats {
        SourceStats {
            dead_letters: self.state.dead_letters.count(),
            per_partition: self
                .state
                .partitions
                .iter()
                .map(|p| (p.key.clone(), p.messages))
                .collect(),
            ..self.state.stats.clone()
        }
    }

    /// Partitions this instance owns now, as `topic/partition`.
    pub fn assigned(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .partitions
            .iter()
            .filter(|p| p.assigned)
            .map(|p| format!("{}/{}", p.key.0, p.key.1))
            .collect();
        v.sort();
        v
    }
}

impl State {
    /// The input of a partition (partitions are few: a linear search, and
    /// no key allocated per message).
    fn find(&self, topic: &str, partition: i32) -> Option<InputId> {
        self.partitions
            .iter()
            .position(|p| p.key.1 == partition && p.key.0 == topic)
    }

    fn input(&mut self, topic: &str, partition: i32) -> InputId {
        if let Some(i) = self.find(topic, partition) {
            return i;
        }
        let i = self.partitions.len();
        self.partitions.push(Partition {
            key: (topic.to_string(), partition),
            builder: SampleBuilder::new(),
            checkpoints: VecDeque::new(),
            max_event_ms: i64::MIN,
            messages: 0,
            unreported: 0,
            last_message: Instant::now(),
            idle: true,
            assigned: false,
        });
        i
    }

    fn apply_rebalance(&mut self) {
        let (assigned, revoked) = {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut shared.assigned),
                std::mem::take(&mut shared.revoked),
            )
        };
        for (topic, partition) in revoked {
            let i = self.input(&topic, partition);
            let p = &mut self.partitions[i];
            p.assigned = false;
            p.checkpoints.clear();
            // What was decoded but not handed over is replayed by the new owner.
            p.builder.finish();
            if !p.idle {
                p.idle = true;
                self.idle_changes.push((i, true));
            }
        }
        for (topic, partition) in assigned {
            let i = self.input(&topic, partition);
            let p = &mut self.partitions[i];
            p.assigned = true;
            p.last_message = Instant::now();
            // An assigned partition holds event time back until it sends
            // data or goes quiet: its data may only be slow to arrive.
            p.idle = false;
            self.idle_changes.push((i, false));
        }
    }

    fn decode(
        &mut self,
        message: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<(), ConnectorError> {
        let i = self.input(message.topic(), message.partition());
        self.stats.messages += 1;
        let fallback_ms = message.timestamp().to_millis();
        let decoded = match self.decoders.get_mut(message.topic()) {
            None => Err(format!(
                "no format configured for topic {}",
                message.topic()
            )),
            Some(decoder) => decoder.decode(
                message.payload(),
                fallback_ms,
                self.max_future_ms,
                &mut self.staged,
            ),
        };
        let p = &mut self.partitions[i];
        p.messages += 1;
        p.unreported += 1;
        p.last_message = Instant::now();
        if p.idle {
            p.idle = false;
            self.idle_changes.push((i, false));
        }
        match decoded {
            Ok(()) => {
                for (_, t, _, _) in self.staged.iter() {
                    p.max_event_ms = p.max_event_ms.max(t);
                }
                if p.builder.is_full() {
                    // Rare: tens of thousands of metric names in one poll.
                    self.ready.push(MetricBatch {
                        input: i,
                        samples: p.builder.finish(),
                    });
                }
                p.builder.append_staged(&self.staged);
                self.stats.rows += self.staged.len() as u64;
            }
            Err(reason) => self.dead_letters.send(message, &reason)?,
        }
        let next = message.offset() + 1;
        let len = p.checkpoints.len();
        match p.checkpoints.back_mut() {
            Some(last) if last.1 >= p.max_event_ms - EventTime::MINUTE_MS && len > 1 => {
                *last = (next, p.max_event_ms);
            }
            _ => p.checkpoints.push_back((next, p.max_event_ms)),
        }
        Ok(())
    }
}

impl MetricSource for KafkaMetricSource {
    fn poll(&mut self) -> Result<Vec<MetricBatch>, ConnectorError> {
        let mut timeout = self.state.poll_timeout;
        let mut read = 0;
        while read < self.state.max_messages {
            let result = self.consumer.poll(timeout);
            self.state.apply_rebalance();
            let Some(result) = result else { break };
            timeout = Duration::ZERO;
            match result {
                Ok(message) => {
                    read += 1;
                    self.state.decode(&message)?;
                }
                Err(e) => {
                    tracing::warn!("kafka: {e}");
                    break;
                }
            }
        }
        let now = Instant::now();
        let state = &mut self.state;
        for (i, p) in state.partitions.iter_mut().enumerate() {
            if p.assigned && !p.idle && now.duration_since(p.last_message) >= state.idle_after {
                tracing::debug!(topic = %p.key.0, partition = p.key.1, "partition idle");
                p.idle = true;
                state.idle_changes.push((i, true));
            }
        }
        if let Some(monitor) = &state.monitor {
            for p in state.partitions.iter_mut().filter(|p| p.unreported > 0) {
                monitor
                    .telemetry()
                    .records_in(&p.key.0, &p.key.1.to_string(), p.unreported);
                p.unreported = 0;
            }
        }
        let mut batches = std::mem::take(&mut state.ready);
        batches.extend(
            state
                .partitions
                .iter_mut()
                .enumerate()
                .filter(|(_, p)| !p.builder.is_empty())
                .map(|(input, p)| MetricBatch {
                    input,
                    samples: p.builder.finish(),
                }),
        );
        Ok(batches)
    }

    fn commit(&mut self, watermark: Option<i64>) -> Result<(), ConnectorError> {
        let consumer = &self.consumer;
        let state = &mut self.state;
        state.dead_letters.flush()?;
        let Some(watermark) = watermark else {
            return Ok(());
        };
        let horizon = watermark.saturating_sub(state.replay_ms);
        let mut tpl = TopicPartitionList::new();
        let mut safe = Vec::new();
        for p in &mut state.partitions {
            let mut offset = None;
            while p.checkpoints.front().is_some_and(|c| c.1 < horizon) {
                offset = p.checkpoints.pop_front().map(|c| c.0);
            }
            if let (Some(offset), true) = (offset, p.assigned) {
                tpl.add_partition_offset(&p.key.0, p.key.1, Offset::Offset(offset))
                    .map_err(|e| transport("committing offsets", e))?;
                safe.push((p.key.clone(), offset));
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                let mut shared = state.shared.lock().unwrap_or_else(|p| p.into_inner());
                shared.safe.extend(safe);
                Ok(())
            }
            Err(e) => {
                // Not fatal: offsets stay where they were, and a restart
                // replays a little more. Retried at the next commit.
                tracing::warn!("committing metrics offsets failed: {e}");
                for ((topic, partition), offset) in safe {
                    if let Some(i) = state.find(&topic, partition) {
                        state.partitions[i]
                            .checkpoints
                            .push_front((offset, i64::MIN));
                    }
                }
                Ok(())
            }
        }
    }

    fn idle_changes(&mut self) -> Vec<(InputId, bool)> {
        std::mem::take(&mut self.state.idle_changes)
    }
}
