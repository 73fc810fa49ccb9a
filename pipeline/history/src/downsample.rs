//! Downsampled samples: one row per VM, metric and time bucket, holding
//! the bucket's aggregate (mean, min, max or last, per metric).
//!
//! A bucket is written once event time (the scorer's watermark) has passed
//! its end by the allowed lateness: samples later than that were dropped by
//! scoring too, and are counted here as late rather than written as a
//! second row for the same bucket.

use crate::config::Aggregate;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last_time: i64,
    last: f64,
}

impl Bucket {
    fn new(time: i64, value: f64) -> Bucket {
        Bucket {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last_time: time,
            last: value,
        }
    }

    fn add(&mut self, time: i64, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if time >= self.last_time {
            self.last_time = time;
            self.last = value;
        }
    }

    fn value(&self, aggregate: Aggregate) -> f64 {
        match aggregate {
            Aggregate::Mean => self.sum / self.count as f64,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Last => self.last,
        }
    }
}

/// The open buckets of one time slot, by VM and metric.
type Slot = HashMap<(Arc<str>, Arc<str>), Bucket>;

/// One downsampled row: bucket start (ms), VM, metric, value.
pub type Row = (i64, Arc<str>, Arc<str>, f64);

/// Buckets still open, and the rule that closes them.
#[derive(Debug)]
pub struct Downsampler {
    every_ms: i64,
    lateness_ms: i64,
    default: Aggregate,
    per_metric: HashMap<String, Aggregate>,
    open: BTreeMap<i64, Slot>,
    closed_through: Option<i64>,
    late: u64,
}

impl Downsampler {
    /// Buckets of `every_ms`, closed `lateness_ms` after their end;
    /// `closed_through`: buckets starting before it are already written.
    pub fn new(
        every_ms: i64,
        lateness_ms: i64,
        default: Aggregate,
        per_metric: HashMap<String, Aggregate>,
        closed_through: Option<i64>,
    ) -> Downsampler {
        Downsampler {
            every_ms: every_ms.max(1),
            lateness_ms: lateness_ms.max(0),
            default,
            per_metric,
            open: BTreeMap::new(),
            closed_through,
            late: 0,
        }
    }

    /// Buckets starting before this time are written.
    pub fn closed_through(&self) -> Option<i64> {
        self.closed_through
    }

    /// Samples that came after their bucket was written.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Adds one sample.
    pub fn add(&mut self, time: i64, vm: &Arc<str>, metric: &Arc<str>, value: f64) {
        let start = time.div_euclid(self.every_ms) * self.every_ms;
        if self.closed_through.is_some_and(|c| start < c) {
            self.late += 1;
            return;
        }
        self.open
            .entry(start)
            .or_default()
            .entry((vm.clone(), metric.clone()))
            .and_modify(|b| b.add(time, value))
            .or_insert_with(|| Bucket::new(time, value));
    }

    /// Closes the buckets event time `watermark` has left behind (all of
    /// them with `None`), returning their rows ordered by time, VM, metric.
    pub fn close(&mut self, watermark: Option<i64>) -> Vec<Row> {
        let mut rows = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            let end = start + self.every_ms;
            if watermark.is_some_and(|w| end + self.lateness_ms > w) {
                break;
            }
            let Some((_, buckets)) = self.open.pop_first() else {
                break;
            };
            let mut closed: Vec<Row> = buckets
                .into_iter()
                .map(|((vm, metric), b)| {
                    let aggregate = self
                        .per_metric
                        .get(metric.as_ref())
                        .copied()
                        .unwrap_or(self.default);
                    (start, vm, metric, b.value(aggregate))
                })
                .collect();
            closed.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
            rows.extend(closed);
            self.closed_through = Some(self.closed_through.map_or(end, |c| c.max(end)));
        }
        // Event time moved on with nothing open: later samples for the
        // buckets it passed are late all the same.
        if let Some(w) = watermark {
            let passed = (w - self.lateness_ms).div_euclid(self.every_ms) * self.every_ms;
            if self.open.is_empty() && self.closed_through.is_some_and(|c| passed > c) {
                self.closed_through = Some(passed);
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    #[test]
    fn aggregates_each_bucket_by_its_metric_rule_and_closes_by_event_time() {
        let per_metric = HashMap::from([("err".to_string(), Aggregate::Max)]);
        let mut d = Downsampler::new(300_000, 60_000, Aggregate::Mean, per_metric, None);
        let (vm, cpu, err) = (s("vm-1"), s("cpu"), s("err"));
        for (t, v) in [(0, 10.0), (60_000, 20.0), (240_000, 30.0), (300_000, 99.0)] {
            d.add(t, &vm, &cpu, v);
            d.add(t, &vm, &err, v / 10.0);
        }
        // The first bucket ends at 300 s; with 60 s lateness it closes at 360 s.
        assert!(d.close(Some(359_999)).is_empty());
        let rows = d.close(Some(360_000));
        let got: Vec<(i64, &str, f64)> = rows.iter().map(|r| (r.0, r.2.as_ref(), r.3)).collect();
        assert_eq!(got, [(0, "cpu", 20.0), (0, "err", 3.0)]);
        assert_eq!(d.closed_through(), Some(300_000));
        // A sample for the closed bucket is late, not a second row.
        d.add(299_000, &vm, &cpu, 1.0);
        assert_eq!(d.late(), 1);
        let rest = d.close(None);
        assert_eq!(rest.len(), 2);
        assert_eq!((rest[0].0, rest[0].3), (300_000, 99.0));
    }

    #[test]
    fn last_keeps_the_latest_sample_by_event_time() {
        let mut d = Downsampler::new(60_000, 0, Aggregate::Last, HashMap::new(), None);
        let (vm, m) = (s("vm"), s("m"));
        d.add(50_000, &vm, &m, 5.0);
        d.add(10_000, &vm, &m, 1.0);
        let rows = d.close(None);
        assert_eq!(rows[0].3, 5.0);
    }
}
