//! The scoring hot path, in samples per second on one core.
//!
//! Real simulated-fleet samples (1,000 VMs × 7 metrics, one sample a
//! minute) go through the fused `CanaryScorer`: dictionary mapping,
//! windowing, watermark, and at every window close the forecast, residual
//! RMSE, deviations, peer cohorts, failure-feature history and verdicts
//! for every VM, half of them patched and judged. The scorer is warmed on
//! history outside the measured loop.
//!
//! - `hot_path_1000_vms`: the default config's forecaster, the built-in
//!   LSTM (one step for every VM each window, beside its seasonal
//!   reference);
//! - `hot_path_1000_vms_statistical`: `forecast.kind = "seasonal-regression"`;
//! - `window_aggregation_1000_vms`: the per-sample windowing alone.
//!
//! Run: `cargo bench --bench scoring`

use arrow::array::RecordBatch;
use bellwether::config::{Config, ForecastKind};
use bellwether::scoring::{forecaster, scorer_config};
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_operators::window::{WindowAggregator, WindowSpec};
use bellwether_operators::{CanaryScorer, Operator};
use bellwether_schemas::EventTime;
use bellwether_schemas::metric::sample_columns;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const VMS: usize = 1_000;
const WARM_MINUTES: i64 = 90;
const MEASURED_MINUTES: i64 = 120;

fn config() -> Config {
    let mut config = Config::default_config();
    config.fleet.vms = VMS;
    config.simulation.partitions = 1;
    // Judge after one hour of history so the measured windows run the whole verdict path.
    config.baseline.min_hours = 1.0;
    config
}

fn batches(config: &Config, from_minute: i64, minutes: i64) -> Vec<RecordBatch> {
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    (0..from_minute + minutes)
        .flat_map(|m| fleet.tick(EventTime(m * 60_000)))
        .skip(from_minute as usize)
        .collect()
}

fn warmed_scorer(config: &Config, history: &[RecordBatch]) -> CanaryScorer {
    let mut scorer = CanaryScorer::new(scorer_config(config).unwrap(), forecaster(config)).unwrap();
    for batch in history {
        scorer.process_batch(0, batch).unwrap();
        scorer.on_watermark().unwrap();
    }
    for vm in 0..VMS / 2 {
        scorer.patched(&format!("vm-{vm:04}"), WARM_MINUTES * 60_000, 0);
    }
    scorer
}

fn scoring(c: &mut Criterion) {
    let config = config();
    let history = batches(&config, 0, WARM_MINUTES);
    let measured = batches(&config, WARM_MINUTES, MEASURED_MINUTES);
    let samples: u64 = measured.iter().map(|b| b.num_rows() as u64).sum();

    let mut group = c.benchmark_group("scoring");
    group.throughput(Throughput::Elements(samples));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let mut statistical = config.clone();
    statistical.forecast.kind = ForecastKind::SeasonalRegression;
    for (name, config) in [
        ("hot_path_1000_vms", &config),
        ("hot_path_1000_vms_statistical", &statistical),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || warmed_scorer(config, &history),
                |mut scorer| {
                    let mut windows = 0;
                    for batch in &measured {
                        scorer.process_batch(0, batch).unwrap();
                        windows += scorer.on_watermark().unwrap().len();
                    }
                    black_box(windows)
                },
                BatchSize::LargeInput,
            )
        });
    }

    // Windowing alone: the per-sample part of the hot path.
    let slots: Vec<Vec<u32>> = measured
        .iter()
        .map(|b| {
            let c = sample_columns(b).unwrap();
            let (keys, metrics) = (c.vm_keys, c.metric_keys);
            keys.iter()
                .zip(metrics)
                .map(|(&k, &m)| k * 7 + m as u32)
                .collect()
        })
        .collect();
    group.bench_function("window_aggregation_1000_vms", |b| {
        b.iter(|| {
            let mut windows =
                WindowAggregator::new(WindowSpec::tumbling(300_000, 120_000).unwrap(), 64);
            windows.ensure_series(VMS * 7);
            for (batch, slots) in measured.iter().zip(&slots) {
                let c = sample_columns(batch).unwrap();
                windows.add(slots, c.times.values(), c.values);
            }
            black_box(windows.close_until(i64::MAX).len())
        })
    });
    group.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
