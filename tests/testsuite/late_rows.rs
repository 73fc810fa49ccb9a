//! Samples that arrive after their window closed are counted, never merged.

use arrow::array::{DictionaryArray, StringArray};
use arrow::datatypes::{UInt16Type, UInt32Type};
use bellwether::config::Config;
use bellwether::scoring::{forecaster, scorer_config};
use bellwether_operators::{CanaryScorer, Operator};
use bellwether_schemas::metric::sample_batch;
use std::sync::Arc;

fn batch(times: Vec<i64>, values: Vec<f64>) -> arrow::array::RecordBatch {
    let n = times.len();
    let vm = DictionaryArray::<UInt32Type>::try_new(
        vec![0u32; n].into(),
        Arc::new(StringArray::from(vec!["vm-1"])),
    )
    .unwrap();
    let metric = DictionaryArray::<UInt16Type>::try_new(
        vec![0u16; n].into(),
        Arc::new(StringArray::from(vec!["cpu_percent"])),
    )
    .unwrap();
    sample_batch(vm, times, metric, values).unwrap()
}

#[test]
fn late_rows_are_counted_and_kept_out_of_every_window() {
    let config = Config::default_config(); // 5-minute windows, 2 minutes allowed lateness
    let mut scorer =
        CanaryScorer::new(scorer_config(&config).unwrap(), forecaster(&config)).unwrap();
    let minute = 60_000;
    scorer
        .process_batch(0, &batch(vec![minute, 2 * minute], vec![10.0, 12.0]))
        .unwrap();
    // Event time reaches 7m10s: window [0, 5m) closes (5m + 2m lateness).
    scorer
        .process_batch(0, &batch(vec![7 * minute + 10_000], vec![11.0]))
        .unwrap();
    let closed = scorer.on_watermark().unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        closed[0].observed.value(0),
        11.0,
        "window [0, 5m) holds 10 and 12"
    );

    // A sample from minute 3 arrives now: too late.
    scorer
        .process_batch(0, &batch(vec![3 * minute], vec![500.0]))
        .unwrap();
    assert_eq!(scorer.stats().late_rows, 1);
    scorer
        .process_batch(0, &batch(vec![13 * minute], vec![11.0]))
        .unwrap();
    let next = scorer.on_watermark().unwrap();
    assert_eq!(
        next[0].observed.value(0),
        11.0,
        "the late 500 did not leak into [5m, 10m)"
    );

    // A sample within the allowed lateness is merged.
    scorer
        .process_batch(0, &batch(vec![11 * minute], vec![20.0]))
        .unwrap();
    assert_eq!(scorer.stats().late_rows, 1);
}
