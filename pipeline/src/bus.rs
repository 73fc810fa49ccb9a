//! The in-process bus: Kafka's model (topics, partitions, offsets, consumer
//! groups with committed positions) in memory, for the embedded demo.
//!
//! A topic is a set of append-only partitions; a record goes to the
//! partition its key hashes to, so records with one key stay in order. Each
//! consumer group has its own committed position per partition, and a new
//! consumer of a group starts where the group last committed, as a
//! restarted Kafka consumer would.
//!
//! Retention: a record is kept until every group consuming the topic has
//! committed past it (a fleet's samples are not kept for the whole demo);
//! a group that starts consuming later begins at the earliest record kept,
//! as Kafka's `auto.offset.reset = earliest` does.

use crate::connector::{
    ConnectorError, Keyed, MessageSink, MessageSource, MetricBatch, MetricSource,
};
use arrow::array::RecordBatch;
pub use bellwether_schemas::stable_hash;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// One topic of the bus.
#[derive(Debug)]
pub struct Topic<T> {
    partitions: Vec<Mutex<Log<T>>>,
    /// Each consuming group's committed offsets, a group from its first
    /// consumer on.
    committed: Mutex<HashMap<String, Vec<usize>>>,
}

/// One partition's records from offset `base` on.
#[derive(Debug)]
struct Log<T> {
    base: usize,
    records: VecDeque<T>,
}

impl<T> Log<T> {
    fn end(&self) -> usize {
        self.base + self.records.len()
    }

    /// Drops the records before `offset`.
    fn trim(&mut self, offset: usize) {
        let n = offset.saturating_sub(self.base).min(self.records.len());
        self.records.drain(..n);
        self.base += n;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn partition_of(key: &str, partitions: usize) -> usize {
    (stable_hash(key) % partitions as u64) as usize
}

impl<T: Clone> Topic<T> {
    /// A topic with `partitions` partitions (at least one).
    pub fn new(partitions: usize) -> Arc<Topic<T>> {
        Arc::new(Topic {
            partitions: (0..partitions.max(1))
                .map(|_| {
                    Mutex::new(Log {
                        base: 0,
                        records: VecDeque::new(),
                    })
                })
                .collect(),
            committed: Mutex::new(HashMap::new()),
        })
    }

    /// Appends `value` to the partition of `key`; returns (partition, offset).
    pub fn publish(&self, key: &str, value: T) -> (usize, usize) {
        self.publish_to(partition_of(key, self.partitions.len()), value)
    }

    /// Appends `value` to partition `partition` (taken modulo the partition count).
    pub fn publish_to(&self, partition: usize, value: T) -> (usize, usize) {
        let partition = partition % self.partitions.len();
        let mut log = lock(&self.partitions[partition]);
        log.records.push_back(value);
        (partition, log.end() - 1)
    }

    /// Records kept, over all partitions.
    #[cfg(test)]
    pub fn retained(&self) -> usize {
        self.partitions.iter().map(|p| lock(p).records.len()).sum()
    }

    /// A consumer in `group`, starting at the group's committed positions
    /// (a new group: at the earliest records kept).
    pub fn consumer(self: &Arc<Self>, group: &str) -> BusConsumer<T> {
        let position = lock(&self.committed)
            .entry(group.to_string())
            .or_insert_with(|| self.partitions.iter().map(|p| lock(p).base).collect())
            .clone();
        BusConsumer {
            topic: self.clone(),
            group: group.to_string(),
            position,
        }
    }
}

/// A consumer of one topic in one consumer group.
#[derive(Debug)]
pub struct BusConsumer<T> {
    topic: Arc<Topic<T>>,
    group: String,
    position: Vec<usize>,
}

impl<T: Clone> BusConsumer<T> {
    /// Up to `max` records from the current positions, partition by
    /// partition, as (partition, record).
    pub fn poll(&mut self, max: usize) -> Vec<(usize, T)> {
        let mut out = Vec::new();
        for (p, partition) in self.topic.partitions.iter().enumerate() {
            let log = lock(partition);
            // Records before `base` are gone only once this group committed
            // past them.
            let from = self.position[p].max(log.base);
            let take = (log.end() - from).min(max - out.len());
            out.extend(
                log.records
                    .range(from - log.base..from - log.base + take)
                    .cloned()
                    .map(|r| (p, r)),
            );
            self.position[p] = from + take;
            if out.len() == max {
                break;
            }
        }
        out
    }

    /// Commits the current positions for the group, and drops the
    /// records every group has committed past.
    pub fn commit(&mut self) {
        let mut committed = lock(&self.topic.committed);
        committed.insert(self.group.clone(), self.position.clone());
        for (p, partition) in self.topic.partitions.iter().enumerate() {
            let all_past = committed.values().map(|c| c[p]).min().unwrap_or(0);
            lock(partition).trim(all_past);
        }
    }
}

/// The bus as a [`MetricSource`]: one input per partition.
pub struct BusMetricSource {
    consumer: BusConsumer<RecordBatch>,
}

impl BusMetricSource {
    /// Consumes `topic` in `group`.
    pub fn new(topic: &Arc<Topic<RecordBatch>>, group: &str) -> BusMetricSource {
        BusMetricSource {
            consumer: topic.consumer(group),
        }
    }
}

impl MetricSource for BusMetricSource {
    fn poll(&mut self) -> Result<Vec<MetricBatch>, ConnectorError> {
        Ok(self
            .consumer
            .poll(usize::MAX)
            .into_iter()
            .map(|(input, samples)| MetricBatch { input, samples })
            .collect())
    }

    fn commit(&mut self, _watermark: Option<i64>) -> Result<(), ConnectorError> {
        self.consumer.commit();
        Ok(())
    }
}

/// The bus as a [`MessageSource`].
pub struct BusSource<T> {
    consumer: BusConsumer<T>,
}

impl<T: Clone> BusSource<T> {
    /// Consumes `topic` in `group`.
    pub fn new(topic: &Arc<Topic<T>>, group: &str) -> BusSource<T> {
        BusSource {
            consumer: topic.consumer(group),
        }
    }
}

impl<T: Clone> MessageSource<T> for BusSource<T> {
    fn poll(&mut self, max: usize) -> Result<Vec<T>, ConnectorError> {
        Ok(self
            .consumer
            .poll(max)
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    fn commit(&mut self) -> Result<(), ConnectorError> {
        self.consumer.commit();
        Ok(())
    }
}

/// The bus as a [`MessageSink`]: publishes by the message's key.
pub struct BusSink<T> {
    topic: Arc<Topic<T>>,
}

impl<T> BusSink<T> {
    /// Publishes to `topic`.
    pub fn new(topic: &Arc<Topic<T>>) -> BusSink<T> {
        BusSink {
            topic: topic.clone(),
        }
    }
}

impl<T: Clone + Keyed> MessageSink<T> for BusSink<T> {
    fn send(&mut self, message: T) -> Result<(), ConnectorError> {
        let key = message.key().to_string();
        self.topic.publish(&key, message);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_stays_in_one_partition_in_order() {
        let topic: Arc<Topic<u32>> = Topic::new(4);
        let parts: Vec<usize> = (0..5).map(|i| topic.publish("rollout-1", i).0).collect();
        assert!(parts.windows(2).all(|w| w[0] == w[1]));
        let mut c = topic.consumer("g");
        let got: Vec<u32> = c.poll(100).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_new_consumer_resumes_from_the_groups_commit() {
        let topic: Arc<Topic<u32>> = Topic::new(1);
        for i in 0..4 {
            topic.publish("k", i);
        }
        let mut first = topic.consumer("g");
        let mut other = topic.consumer("other-group");
        assert_eq!(first.poll(2).len(), 2);
        first.commit();
        assert_eq!(first.poll(1).len(), 1); // polled, never committed
        drop(first);
        let mut second = topic.consumer("g");
        let got: Vec<u32> = second.poll(10).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, vec![2, 3], "uncommitted records are delivered again");
        assert_eq!(other.poll(10).len(), 4, "groups are independent");
    }

    #[test]
    fn records_every_group_committed_past_are_dropped() {
        let topic: Arc<Topic<u32>> = Topic::new(1);
        let mut a = topic.consumer("a");
        let mut b = topic.consumer("b");
        for i in 0..5 {
            topic.publish("k", i);
        }
        assert_eq!(a.poll(3).len(), 3);
        a.commit();
        assert_eq!(topic.retained(), 5, "b has not read them");
        assert_eq!(b.poll(4).len(), 4);
        b.commit();
        assert_eq!(topic.retained(), 2, "both committed past 3");
        let got: Vec<u32> = a.poll(10).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, [3, 4]);
        // A group that starts now begins at the earliest record kept.
        let mut late = topic.consumer("late");
        let got: Vec<u32> = late.poll(10).into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, [3, 4]);
    }
}
