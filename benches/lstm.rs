//! LSTM inference and training, beside ONNX Runtime.
//!
//! - `lstm_inference/K/B`: bellwether's fused kernel K (each vector one
//!   this CPU runs: `avx512f+fma`, `avx2+fma`) running one LSTM layer (8
//!   inputs, 32 hidden units) over 60 steps for B = 1, 64, 1,024 and
//!   10,000 VMs, on one thread. Throughput is in VM-windows (one 60-step
//!   sequence of one VM) per second.
//! - `lstm_training_step/burn`: one Adam step of the trainer (burn, flex
//!   CPU backend with autodiff) on a batch of 64 such sequences.
//!
//! After the benches, when `BELLWETHER_BENCH_PYTHON` names a Python with
//! `onnxruntime`, `onnx` and `numpy` (`scripts/bench-lstm` installs them),
//! the same shapes run in ONNX Runtime on one thread and a table compares
//! VM-windows/s and effective GFLOP/s (2 FLOPs per multiply-add of the gate
//! products) of both, from this run's criterion estimates.

use bellwether::model::train::Trainer;
use bellwether_operators::forecast::lstm::{LstmWeights, kernel};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::path::PathBuf;

const STEPS: usize = 60;
const INPUT: usize = 8;
const HIDDEN: usize = 32;
const BATCHES: [usize; 4] = [1, 64, 1024, 10_000];

fn inputs(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i as f32) * 0.37).sin()).collect()
}

fn inference(c: &mut Criterion) {
    let w = LstmWeights::pseudo_random(INPUT, HIDDEN, INPUT, 7);
    let mut group = c.benchmark_group("lstm_inference");
    group.sample_size(10);
    for name in vector_kernels() {
        for batch in BATCHES {
            let x = inputs(batch * STEPS * INPUT);
            let mut h = vec![0.0f32; batch * HIDDEN];
            let mut cell = vec![0.0f32; batch * HIDDEN];
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, _| {
                b.iter(|| {
                    h.fill(0.0);
                    cell.fill(0.0);
                    kernel::run_with(name, &w, black_box(&x), STEPS, &mut h, &mut cell);
                    black_box(&h);
                })
            });
        }
    }
    group.finish();
}

/// The kernels timed: every vector one this CPU runs (the portable one
/// when there is none).
fn vector_kernels() -> Vec<&'static str> {
    let all = kernel::available(HIDDEN);
    let vector: Vec<_> = all
        .iter()
        .copied()
        .filter(|k| *k != kernel::PORTABLE)
        .collect();
    if vector.is_empty() { all } else { vector }
}

fn training(c: &mut Criterion) {
    let batch = 64;
    let mut trainer = Trainer::new(INPUT, HIDDEN, INPUT, 1e-3, 1);
    let x = inputs(batch * STEPS * INPUT);
    let y: Vec<f32> = inputs(batch * STEPS * INPUT + INPUT)[INPUT..].to_vec();
    let mask = vec![1.0f32; batch * STEPS * INPUT];
    let mut group = c.benchmark_group("lstm_training_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(BenchmarkId::new("burn", batch), |b| {
        b.iter(|| black_box(trainer.step(x.clone(), y.clone(), mask.clone(), batch, STEPS)))
    });
    group.finish();
}

criterion_group!(benches, inference, training);

/// Criterion's median estimate for a bench, seconds.
fn median_seconds(group: &str, function: &str, parameter: usize) -> Option<f64> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../criterion");
    let path = root.join(format!("{group}/{function}/{parameter}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1e9)
}

fn compare_with_onnxruntime() {
    let Ok(python) = std::env::var("BELLWETHER_BENCH_PYTHON") else {
        eprintln!(
            "BELLWETHER_BENCH_PYTHON not set: no ONNX Runtime comparison (scripts/bench-lstm runs it)"
        );
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lstm_onnxruntime.py");
    let batches = BATCHES.map(|b| b.to_string()).join(",");
    let out = std::process::Command::new(&python)
        .args([
            script,
            "--batches",
            &batches,
            "--steps",
            "60",
            "--input",
            "8",
            "--hidden",
            "32",
        ])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "ONNX Runtime bench failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("cannot run {python}: {e}");
            return;
        }
    };
    let flops =
        |batch: usize| (batch * STEPS) as f64 * 2.0 * ((INPUT + HIDDEN) * 4 * HIDDEN) as f64;
    println!(
        "\nLSTM layer, {STEPS} steps, {INPUT} inputs, {HIDDEN} hidden, one thread; the pipeline runs {}",
        kernel::implementation(HIDDEN)
    );
    println!(
        "{:>7} {:>12} | {:>12} {:>14} {:>7} | {:>12} {:>14} {:>7} | {:>6}",
        "batch",
        "kernel",
        "bellwether",
        "VM-windows/s",
        "GFLOP/s",
        "onnxruntime",
        "VM-windows/s",
        "GFLOP/s",
        "ratio"
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(batch), Some(ort)) = (v["batch"].as_u64(), v["seconds"].as_f64()) else {
            continue;
        };
        let batch = batch as usize;
        for name in vector_kernels() {
            let Some(ours) = median_seconds("lstm_inference", name, batch) else {
                continue;
            };
            println!(
                "{batch:>7} {name:>12} | {:>9.3} ms {:>14.0} {:>7.1} | {:>9.3} ms {:>14.0} {:>7.1} | {:>5.2}x",
                ours * 1e3,
                batch as f64 / ours,
                flops(batch) / ours / 1e9,
                ort * 1e3,
                batch as f64 / ort,
                flops(batch) / ort / 1e9,
                ort / ours,
            );
        }
    }
    if let Some(step) = median_seconds("lstm_training_step", "burn", 64) {
        println!(
            "training step (burn, batch 64): {:.1} ms, {:.0} sequences/s",
            step * 1e3,
            64.0 / step
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    compare_with_onnxruntime();
}
