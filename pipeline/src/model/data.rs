//! Training data: per-VM window means of the scored metrics, from the
//! simulated fleet's unpatched history or a Parquet history folder (and,
//! from `bellwether-models`, a CSV file of samples).

use crate::config::Config;
use crate::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::EventTime;
use bellwether_schemas::metric::sample_columns;
use std::path::Path;

pub use bellwether_models::series::{DataError, TrainingSeries, WindowMeans, from_csv};

/// The unpatched history of a simulated fleet: `config`'s fleet with
/// `seed`, sampled for `hours`.
pub fn from_simulator(config: &Config, seed: u64, hours: f64) -> Result<TrainingSeries, DataError> {
    let mut config = config.clone();
    config.simulation.seed = seed;
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let metrics = config.thresholds.metrics.clone();
    let mut means = WindowMeans::new(&metrics, config.window.slide_secs as i64 * 1000);
    let interval = config.fleet.sample_interval_secs as i64 * 1000;
    let start = crate::simulator::DEMO_START.0 - (hours * EventTime::HOUR_MS as f64) as i64;
    let mut now = start;
    while now < crate::simulator::DEMO_START.0 {
        for batch in fleet.tick(EventTime(now)) {
            let c = sample_columns(&batch).map_err(|e| DataError::History(e.to_string()))?;
            for row in 0..c.values.len() {
                means.add(
                    c.vm_names.value(c.vm_keys[row] as usize),
                    c.times.value(row),
                    c.metric_names.value(c.metric_keys[row] as usize),
                    c.values[row],
                );
            }
        }
        now += interval;
    }
    means.finish(format!(
        "simulator: {} VMs, seed {seed}, {hours} h before {}",
        config.fleet.vms,
        chrono::DateTime::from_timestamp_millis(crate::simulator::DEMO_START.0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    ))
}

/// Samples from a Parquet history folder, each VM's up to its first patch.
pub fn from_history(
    root: &Path,
    metrics: &[String],
    window_ms: i64,
) -> Result<TrainingSeries, DataError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    let query = "SELECT s.vm_id, CAST(s.time AS BIGINT) AS t, s.metric, s.value \
                 FROM samples s LEFT JOIN (SELECT vm_id, min(executed_at) AS patched_at \
                 FROM executions WHERE action = 'patch' GROUP BY vm_id) p ON s.vm_id = p.vm_id \
                 WHERE p.patched_at IS NULL OR s.time < p.patched_at";
    let batches = crate::history::sql::query_once(root, query)
        .map_err(|e| DataError::History(format!("{}: {e}", root.display())))?;
    let mut means = WindowMeans::new(metrics, window_ms);
    for batch in &batches {
        let vm = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| DataError::History(e.to_string()))?;
        let metric = arrow::compute::cast(batch.column(2), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| DataError::History(e.to_string()))?;
        let (vm, metric) = (vm.as_string::<i32>(), metric.as_string::<i32>());
        let t = batch.column(1).as_primitive::<Int64Type>();
        let v = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            if vm.is_valid(row) && metric.is_valid(row) && t.is_valid(row) {
                means.add(vm.value(row), t.value(row), metric.value(row), v.value(row));
            }
        }
    }
    means.finish(format!("history: {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_lowers_the_validation_error_and_stops_early() {
        let mut small = crate::config::load(None).unwrap();
        small.fleet.vms = 12;
        let series = from_simulator(&small, 5, 30.0).unwrap();
        let options = bellwether_models::train::TrainOptions {
            epochs: 30,
            patience: 2,
            sequence: 48,
            ..Default::default()
        };
        let mut epochs = 0;
        let trained =
            bellwether_models::train::train(&series, &options, "test", |_, _| {}, |_| epochs += 1)
                .unwrap();
        assert_eq!(epochs, trained.epochs.len());
        let first = trained.epochs[0].validation_rmse;
        assert!(
            trained.validation_rmse <= first,
            "{} > {first}",
            trained.validation_rmse
        );
        assert!(trained.validation_rmse.is_finite() && trained.validation_rmse < 1.5);
        assert_eq!(trained.thresholds.len(), series.metrics.len());
        assert!(trained.thresholds.iter().all(|t| (3.0..=12.0).contains(t)));
        assert_eq!(trained.model.name, "lstm-test");
    }
}
