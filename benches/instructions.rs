//! Instruction counts of the hot paths, for `scripts/instruction-counts`.
//!
//! Each workload prepares its input, then runs the measured work once
//! inside a function whose name starts with `measured_`;
//! `scripts/instruction-counts` runs this binary under
//! `valgrind --tool=callgrind --toggle-collect='*measured_*'`, so only
//! that work is counted, and compares the counts with the committed
//! baselines in `benches/instructions.txt`. Counts, unlike times, repeat
//! exactly on a loaded machine, so a 10% rise is a real change.
//!
//! Workloads (`cargo bench --bench instructions -- NAME`, or no name for
//! the list):
//! - `scoring_window_pass`: 300 simulated VMs × 7 metrics, 30 minutes of
//!   samples through the fused scorer (windowing, then at each window
//!   close forecast, residuals, peer cohorts, failure features, verdicts),
//!   half of the VMs patched and judged, after 90 warm minutes;
//! - `json_decoder`, `line_protocol_decoder`: 1,000 VM snapshot messages
//!   (7 metrics each) decoded and built into one Arrow batch;
//! - `lstm_kernel`: the fused LSTM kernel, 64 VMs × 60 steps, 8 inputs,
//!   32 hidden units.

use arrow::array::RecordBatch;
use bellwether::config::Config;
use bellwether::scoring::{forecaster, scorer_config};
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_operators::forecast::lstm::{LstmWeights, kernel};
use bellwether_operators::{CanaryScorer, Operator};
use bellwether_schemas::EventTime;
use bellwether_schemas::metric::VmSnapshot;
use bellwether_schemas::wire::line_protocol::{self, LineProtocolDecoder};
use bellwether_schemas::wire::{SampleBuilder, StagedRows, json};
use std::hint::black_box;

const VMS: usize = 300;
const WARM_MINUTES: i64 = 90;
const MEASURED_MINUTES: i64 = 30;
const MESSAGES: usize = 1_000;

const WORKLOADS: [&str; 4] = [
    "scoring_window_pass",
    "json_decoder",
    "line_protocol_decoder",
    "lstm_kernel",
];

fn fleet_config() -> Config {
    let mut config = Config::default_config();
    config.fleet.vms = VMS;
    config.simulation.partitions = 1;
    // Judge after one hour of history so the measured windows run the whole verdict path.
    config.baseline.min_hours = 1.0;
    config
}

fn fleet_batches(config: &Config, minutes: i64) -> Vec<RecordBatch> {
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    (0..minutes)
        .flat_map(|m| fleet.tick(EventTime(m * 60_000)))
        .collect()
}

fn scoring_window_pass() -> usize {
    let config = fleet_config();
    let batches = fleet_batches(&config, WARM_MINUTES + MEASURED_MINUTES);
    let (warm, measured) = batches.split_at(batches.len() * WARM_MINUTES as usize / 120);
    let mut scorer = CanaryScorer::new(scorer_config(&config).unwrap(), forecaster(&config))
        .expect("the default config makes a scorer");
    for batch in warm {
        scorer.process_batch(0, batch).unwrap();
        scorer.on_watermark().unwrap();
    }
    for vm in 0..VMS / 2 {
        scorer.patched(&format!("vm-{vm:04}"), WARM_MINUTES * 60_000, 0);
    }
    measured_scoring(&mut scorer, measured)
}

#[inline(never)]
fn measured_scoring(scorer: &mut CanaryScorer, batches: &[RecordBatch]) -> usize {
    let mut windows = 0;
    for batch in batches {
        scorer.process_batch(0, batch).unwrap();
        windows += scorer.on_watermark().unwrap().len();
    }
    black_box(windows)
}

fn messages() -> Vec<VmSnapshot> {
    let mut config = fleet_config();
    config.fleet.vms = MESSAGES;
    fleet_batches(&config, 1)
        .iter()
        .flat_map(|b| snapshots(b).unwrap())
        .collect()
}

fn json_decoder() -> usize {
    let encoded: Vec<Vec<u8>> = messages().iter().map(json::encode_snapshot).collect();
    measured_json(&encoded)
}

#[inline(never)]
fn measured_json(messages: &[Vec<u8>]) -> usize {
    let mut staged = StagedRows::new();
    let mut builder = SampleBuilder::new();
    for message in messages {
        staged.clear();
        json::decode(message, None, &mut staged).unwrap();
        builder.append_staged(&staged);
    }
    black_box(builder.finish().num_rows())
}

fn line_protocol_decoder() -> usize {
    let encoded: Vec<String> = messages()
        .iter()
        .map(|s| line_protocol::encode_snapshot("vm_metrics", s))
        .collect();
    measured_line_protocol(&encoded)
}

#[inline(never)]
fn measured_line_protocol(messages: &[String]) -> usize {
    let mut decoder = LineProtocolDecoder::new(Default::default());
    let mut staged = StagedRows::new();
    let mut builder = SampleBuilder::new();
    for message in messages {
        staged.clear();
        decoder
            .decode(message.as_bytes(), None, &mut staged)
            .unwrap();
        builder.append_staged(&staged);
    }
    black_box(builder.finish().num_rows())
}

fn lstm_kernel() -> usize {
    let (batch, steps) = (64, 60);
    let w = LstmWeights::pseudo_random(8, 32, 8, 7);
    let x: Vec<f32> = (0..batch * steps * 8)
        .map(|i| ((i as f32) * 0.37).sin())
        .collect();
    measured_lstm(&w, &x, batch, steps)
}

#[inline(never)]
fn measured_lstm(w: &LstmWeights, x: &[f32], batch: usize, steps: usize) -> usize {
    let mut h = vec![0.0f32; batch * 32];
    let mut c = vec![0.0f32; batch * 32];
    kernel::run(w, x, steps, &mut h, &mut c);
    black_box(h.len())
}

fn main() {
    // `cargo bench` passes `--bench`; the workload is the first other argument.
    let name = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let done = match name.as_deref() {
        Some("scoring_window_pass") => scoring_window_pass(),
        Some("json_decoder") => json_decoder(),
        Some("line_protocol_decoder") => line_protocol_decoder(),
        Some("lstm_kernel") => lstm_kernel(),
        Some(other) => {
            eprintln!(
                "unknown workload {other:?}; one of: {}",
                WORKLOADS.join(", ")
            );
            std::process::exit(2);
        }
        None => {
            println!("{}", WORKLOADS.join("\n"));
            return;
        }
    };
    eprintln!("{}: {done}", name.unwrap_or_default());
}
