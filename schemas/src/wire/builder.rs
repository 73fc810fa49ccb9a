//! Builds metric-sample batches row by row, dictionary-encoding as it goes.

use super::StagedRows;
use crate::metric::sample_schema;
use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringDictionaryBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{UInt16Type, UInt32Type};
use std::sync::Arc;

/// Distinct metric names one batch may hold (the metric column's keys are
/// UInt16); a builder reports itself full a little before.
const MAX_METRICS_PER_BATCH: usize = 60_000;

/// Appends samples straight into the Arrow builders of the long
/// metric-sample schema ([`crate::metric::sample_schema`]).
pub struct SampleBuilder {
    vm: StringDictionaryBuilder<UInt32Type>,
    time: TimestampMillisecondBuilder,
    metric: StringDictionaryBuilder<UInt16Type>,
    value: Float64Builder,
    rows: usize,
    metric_keys: usize,
}

impl std::fmt::Debug for SampleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleBuilder")
            .field("rows", &self.rows)
            .finish()
    }
}

impl Default for SampleBuilder {
    fn default() -> Self {
        SampleBuilder::new()
    }
}

impl SampleBuilder {
    /// An empty builder.
    pub fn new() -> SampleBuilder {
        SampleBuilder {
            vm: StringDictionaryBuilder::new(),
            time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            metric: StringDictionaryBuilder::new(),
            value: Float64Builder::new(),
            rows: 0,
            metric_keys: 0,
        }
    }

    /// Rows appended since the last [`SampleBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True when the batch should be finished before more is appended
    /// (too many distinct metric names for its dictionary).
    pub fn is_full(&self) -> bool {
        self.metric_keys >= MAX_METRICS_PER_BATCH
    }

    /// Appends one sample.
    pub fn append(&mut self, vm_id: &str, time_ms: i64, metric: &str, value: f64) {
        // Neither dictionary can overflow: VM keys are u32, and `is_full`
        // keeps the u16 metric dictionary below its limit.
        self.vm.append_value(vm_id);
        self.time.append_value(time_ms);
        let key = self
            .metric
            .append(metric)
            .expect("is_full keeps the metric dictionary below u16::MAX");
        self.metric_keys = self.metric_keys.max(key as usize + 1);
        self.value.append_value(value);
        self.rows += 1;
    }

    /// Appends every staged row.
    pub fn append_staged(&mut self, staged: &StagedRows) {
        for (vm, time, metric, value) in staged.iter() {
            self.append(vm, time, metric, value);
        }
    }

    /// The batch of everything appended; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        self.metric_keys = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.vm.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.value.finish()),
        ];
        RecordBatch::try_new(sample_schema(), columns)
            .expect("the builders produce exactly the sample schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{check_sample_batch, sample_columns};

    #[test]
    fn builds_a_valid_sample_batch_and_starts_over() {
        let mut b = SampleBuilder::new();
        b.append("vm-1", 1000, "cpu_percent", 40.0);
        b.append("vm-2", 1000, "cpu_percent", 50.0);
        b.append("vm-1", 2000, "memory_percent", 60.0);
        let batch = b.finish();
        check_sample_batch(&batch).unwrap();
        assert_eq!(batch.num_rows(), 3);
        let cols = sample_columns(&batch).unwrap();
        assert_eq!(
            arrow::array::Array::len(cols.vm_names),
            2,
            "vm ids are dictionary-encoded"
        );
        assert_eq!(cols.values, &[40.0, 50.0, 60.0]);
        assert!(b.is_empty());
        assert_eq!(b.finish().num_rows(), 0);
    }
}
