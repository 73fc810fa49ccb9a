//! Metric samples: the long (one metric per row) and wide (one row per VM
//! snapshot) forms, their Arrow schemas, and the conversion between them.

use crate::{SchemaError, contract_metadata, time::EventTime};
use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
    UInt16Type, UInt32Type,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// Column names of the long metric-sample schema.
pub mod columns {
    /// The VM the sample was measured on.
    pub const VM_ID: &str = "vm_id";
    /// When the sample was measured.
    pub const EVENT_TIME: &str = "event_time";
    /// Which metric (e.g. `response_time_ms`).
    pub const METRIC: &str = "metric";
    /// The measured value.
    pub const VALUE: &str = "value";
}

/// The metrics bellwether's simulator produces and its default config
/// scores. Any other metric name is accepted on the wire and scored if the
/// config lists it.
pub mod names {
    /// CPU utilisation, percent of all cores.
    pub const CPU: &str = "cpu_percent";
    /// Memory in use, percent of RAM.
    pub const MEMORY: &str = "memory_percent";
    /// Disk throughput, MB/s read + written.
    pub const DISK_IO: &str = "disk_io_mbps";
    /// Network round-trip latency to the VM's peers, milliseconds.
    pub const NETWORK_LATENCY: &str = "network_latency_ms";
    /// Application response time (mean), milliseconds.
    pub const RESPONSE_TIME: &str = "response_time_ms";
    /// Application requests that failed, percent.
    pub const ERROR_RATE: &str = "error_rate_percent";
    /// Business transactions that succeeded, percent.
    pub const TRANSACTION_SUCCESS: &str = "transaction_success_percent";
    /// All of the above, in a fixed order.
    pub const ALL: [&str; 7] = [
        CPU,
        MEMORY,
        DISK_IO,
        NETWORK_LATENCY,
        RESPONSE_TIME,
        ERROR_RATE,
        TRANSACTION_SUCCESS,
    ];
}

/// Which way a metric goes when something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Bad when it rises (latency, errors, CPU).
    Increase,
    /// Bad when it falls (transaction success).
    Decrease,
    /// Bad either way (disk I/O).
    Either,
}

impl Direction {
    /// Signed deviation seen through this direction: positive means "worse".
    pub fn badness(self, deviation: f64) -> f64 {
        match self {
            Direction::Increase => deviation,
            Direction::Decrease => -deviation,
            Direction::Either => deviation.abs(),
        }
    }
}

/// One measurement of one metric on one VM (a row of the long schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// VM id.
    pub vm_id: String,
    /// When it was measured.
    pub time: EventTime,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

/// All metrics of one VM at one instant (a row of the wide schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSnapshot {
    /// VM id.
    pub vm_id: String,
    /// When it was measured.
    pub time: EventTime,
    /// Metric name to value.
    pub metrics: BTreeMap<String, f64>,
}

fn vm_id_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

fn event_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

static SAMPLE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new(columns::VM_ID, vm_id_type(), false),
            Field::new(columns::EVENT_TIME, event_time_type(), false),
            Field::new(
                columns::METRIC,
                DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new(columns::VALUE, DataType::Float64, false),
        ],
        contract_metadata("metric_sample"),
    ))
});

/// Arrow schema of metric samples in long form: one row per VM, instant and
/// metric. VM ids and metric names are dictionary-encoded, so a batch costs
/// a few bytes per sample and operators work on integer keys.
pub fn sample_schema() -> SchemaRef {
    SAMPLE_SCHEMA.clone()
}

/// Arrow schema of wide VM snapshots: `vm_id`, `event_time`, then one
/// nullable Float64 column per metric in `metrics` (null = not measured).
pub fn snapshot_schema(metrics: &[&str]) -> SchemaRef {
    let mut fields = vec![
        Field::new(columns::VM_ID, vm_id_type(), false),
        Field::new(columns::EVENT_TIME, event_time_type(), false),
    ];
    fields.extend(
        metrics
            .iter()
            .map(|m| Field::new(*m, DataType::Float64, true)),
    );
    Arc::new(Schema::new_with_metadata(
        fields,
        contract_metadata("vm_snapshot"),
    ))
}

/// Builds a long-form sample batch from parallel columns.
pub fn sample_batch(
    vm_ids: DictionaryArray<UInt32Type>,
    times_ms: Vec<i64>,
    metrics: DictionaryArray<UInt16Type>,
    values: Vec<f64>,
) -> Result<RecordBatch, SchemaError> {
    let times = TimestampMillisecondArray::from(times_ms).with_timezone("UTC");
    Ok(RecordBatch::try_new(
        sample_schema(),
        vec![
            Arc::new(vm_ids),
            Arc::new(times),
            Arc::new(metrics),
            Arc::new(Float64Array::from(values)),
        ],
    )?)
}

/// Turns a wide snapshot batch into long samples: one row per non-null
/// metric cell, in column order. Columns other than `vm_id` and
/// `event_time` are taken as metrics and must be Float64.
pub fn snapshots_to_samples(wide: &RecordBatch) -> Result<RecordBatch, SchemaError> {
    let vm = wide
        .column_by_name(columns::VM_ID)
        .ok_or_else(|| missing("vm_snapshot", columns::VM_ID))?;
    let vm = vm
        .as_any()
        .downcast_ref::<DictionaryArray<UInt32Type>>()
        .ok_or_else(|| wrong("vm_snapshot", columns::VM_ID, &vm_id_type(), vm.data_type()))?;
    let time = wide
        .column_by_name(columns::EVENT_TIME)
        .ok_or_else(|| missing("vm_snapshot", columns::EVENT_TIME))?;
    let time = time
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| {
            wrong(
                "vm_snapshot",
                columns::EVENT_TIME,
                &event_time_type(),
                time.data_type(),
            )
        })?;

    let schema = wide.schema();
    let metric_fields: Vec<(usize, &str)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != columns::VM_ID && f.name() != columns::EVENT_TIME)
        .map(|(i, f)| (i, f.name().as_str()))
        .collect();
    let names = StringArray::from(metric_fields.iter().map(|(_, n)| *n).collect::<Vec<_>>());

    let mut vm_keys = Vec::new();
    let mut times = Vec::new();
    let mut metric_keys = Vec::new();
    let mut values = Vec::new();
    for (metric_key, (col_index, name)) in metric_fields.iter().enumerate() {
        let column = wide.column(*col_index);
        let column = column
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| wrong("vm_snapshot", name, &DataType::Float64, column.data_type()))?;
        for row in 0..wide.num_rows() {
            if column.is_valid(row) {
                vm_keys.push(vm.keys().value(row));
                times.push(time.value(row));
                metric_keys.push(metric_key as u16);
                values.push(column.value(row));
            }
        }
    }
    let vm_ids = DictionaryArray::<UInt32Type>::try_new(vm_keys.into(), vm.values().clone())?;
    let metrics =
        DictionaryArray::<UInt16Type>::try_new(metric_keys.into(), Arc::new(names) as ArrayRef)?;
    sample_batch(vm_ids, times, metrics, values)
}

/// The columns of a long sample batch, typed: what operators read.
#[derive(Debug, Clone, Copy)]
pub struct SampleColumns<'a> {
    /// Per row: key into `vm_names`.
    pub vm_keys: &'a [u32],
    /// The VM id dictionary.
    pub vm_names: &'a StringArray,
    /// Per row: event time, ms since the epoch.
    pub times: &'a TimestampMillisecondArray,
    /// Per row: key into `metric_names`.
    pub metric_keys: &'a [u16],
    /// The metric name dictionary.
    pub metric_names: &'a StringArray,
    /// Per row: the value.
    pub values: &'a [f64],
}

/// Checks a batch against the long sample schema and returns its typed
/// columns; the error names the missing or mistyped column.
pub fn sample_columns(batch: &RecordBatch) -> Result<SampleColumns<'_>, SchemaError> {
    check_sample_batch(batch)?;
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| missing("metric_sample", name))
    };
    let mistyped = |name: &str, expected: &DataType| {
        let found = batch.column_by_name(name).map(|c| c.data_type().clone());
        wrong(
            "metric_sample",
            name,
            expected,
            &found.unwrap_or(DataType::Null),
        )
    };
    let vm = column(columns::VM_ID)?
        .as_dictionary_opt::<UInt32Type>()
        .ok_or_else(|| mistyped(columns::VM_ID, &vm_id_type()))?;
    let metric = column(columns::METRIC)?
        .as_dictionary_opt::<UInt16Type>()
        .ok_or_else(|| mistyped(columns::METRIC, &DataType::UInt16))?;
    Ok(SampleColumns {
        vm_keys: vm.keys().values(),
        vm_names: vm
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| mistyped(columns::VM_ID, &vm_id_type()))?,
        times: column(columns::EVENT_TIME)?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| mistyped(columns::EVENT_TIME, &event_time_type()))?,
        metric_keys: metric.keys().values(),
        metric_names: metric
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| mistyped(columns::METRIC, &DataType::Utf8))?,
        values: column(columns::VALUE)?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| mistyped(columns::VALUE, &DataType::Float64))?
            .values(),
    })
}

/// Checks that a batch follows the long sample schema (by column name and type).
pub fn check_sample_batch(batch: &RecordBatch) -> Result<(), SchemaError> {
    for field in sample_schema().fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| missing("metric_sample", field.name()))?;
        if column.data_type() != field.data_type() {
            return Err(wrong(
                "metric_sample",
                field.name(),
                field.data_type(),
                column.data_type(),
            ));
        }
    }
    Ok(())
}

fn missing(contract: &'static str, column: &str) -> SchemaError {
    SchemaError::MissingColumn {
        contract,
        column: column.to_string(),
    }
}

fn wrong(
    contract: &'static str,
    column: &str,
    expected: &DataType,
    found: &DataType,
) -> SchemaError {
    SchemaError::WrongType {
        contract,
        column: column.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringDictionaryBuilder;

    #[test]
    fn wide_snapshot_becomes_one_row_per_measured_metric() {
        let mut vm = StringDictionaryBuilder::<UInt32Type>::new();
        vm.append_value("vm-1");
        vm.append_value("vm-2");
        let wide = RecordBatch::try_new(
            snapshot_schema(&[names::CPU, names::MEMORY]),
            vec![
                Arc::new(vm.finish()),
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("UTC")),
                Arc::new(Float64Array::from(vec![Some(10.0), Some(20.0)])),
                Arc::new(Float64Array::from(vec![Some(50.0), None])),
            ],
        )
        .unwrap();
        let long = snapshots_to_samples(&wide).unwrap();
        assert_eq!(sample_columns(&long).unwrap().values, &[10.0, 20.0, 50.0]);
        assert_eq!(long.num_rows(), 3);
        let vm = long.column(0).as_dictionary::<UInt32Type>();
        let vm_names = vm.values().as_string::<i32>();
        let ids: Vec<&str> = vm
            .keys()
            .iter()
            .map(|k| vm_names.value(k.unwrap() as usize))
            .collect();
        assert_eq!(ids, ["vm-1", "vm-2", "vm-1"]);
        let metric = long.column(2).as_dictionary::<UInt16Type>();
        let metric_names = metric.values().as_string::<i32>();
        let ms: Vec<&str> = metric
            .keys()
            .iter()
            .map(|k| metric_names.value(k.unwrap() as usize))
            .collect();
        assert_eq!(ms, [names::CPU, names::CPU, names::MEMORY]);
        let values = long
            .column(3)
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(values.values().to_vec(), vec![10.0, 20.0, 50.0]);
    }

    #[test]
    fn a_batch_with_a_wrong_column_type_is_named() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "vm_id",
            DataType::Utf8,
            false,
        )]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        let err = sample_columns(&batch).unwrap_err().to_string();
        assert!(err.contains("`vm_id`"), "{err}");
    }

    #[test]
    fn direction_sees_badness_the_right_way() {
        assert_eq!(Direction::Increase.badness(2.0), 2.0);
        assert_eq!(Direction::Decrease.badness(2.0), -2.0);
        assert_eq!(Direction::Either.badness(-2.0), 2.0);
    }
}
