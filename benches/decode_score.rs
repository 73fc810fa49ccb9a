//! The pipeline's own ceiling, without a broker: pre-filled message
//! buffers (the simulated fleet's samples as JSON snapshots and as
//! InfluxDB line protocol) go through the Kafka source's decoder
//! (`connector::decode`, with its panic guard and plausibility check) into
//! Arrow batches, and through the scoring stage (windows, baselines,
//! forecasts, peer cohorts, scores, decisions). Prints messages/s and
//! samples/s, wall and per core (CPU seconds of the process), for decoding
//! alone and for bytes to scores.
//!
//! `cargo bench --bench decode_score` (`BELLWETHER_BENCH_VMS`, default
//! 1,000, and `BELLWETHER_BENCH_HOURS`, default 12, size the buffers;
//! samples one a minute per metric).

mod support;

use bellwether::config::{Config, MetricsTopic};
use bellwether::connector::MetricSource;
use bellwether::connector::buffer::BufferSource;
use bellwether::connector::decode::MessageDecoder;
use bellwether::kafka::sink::NullSink;
use bellwether::scoring::ScoringStage;
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::EventTime;
use bellwether_schemas::wire::line_protocol::LineProtocolOptions;
use bellwether_schemas::wire::{InputFormat, json, line_protocol};
use std::sync::Arc;
use std::time::Instant;
use support::{NoControl, cpu_seconds, env};

struct Rate {
    messages: u64,
    samples: u64,
    wall: f64,
    cpu: f64,
}

impl Rate {
    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>10.0} messages/s {:>11.0} samples/s wall; {:>11.0} samples/s per core ({:.2} s wall, {:.2} CPU s)",
            self.messages as f64 / self.wall,
            self.samples as f64 / self.wall,
            self.samples as f64 / self.cpu,
            self.wall,
            self.cpu
        );
    }
}

fn measure(run: impl FnOnce() -> (u64, u64)) -> Rate {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let (messages, samples) = run();
    Rate {
        messages,
        samples,
        wall: wall.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
    }
}

fn main() {
    let mut config = Config::default_config();
    config.fleet.vms = env("BELLWETHER_BENCH_VMS", 1000) as usize;
    let hours = env("BELLWETHER_BENCH_HOURS", 12);
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let (mut as_json, mut as_lines) = (Vec::new(), Vec::new());
    let mut now = bellwether::demo::DEMO_START;
    let end = now.plus_ms(hours as i64 * EventTime::HOUR_MS);
    while now < end {
        for batch in fleet.tick(now) {
            for s in snapshots(&batch).unwrap() {
                as_json.push(json::encode_snapshot(&s));
                as_lines.push(line_protocol::encode_snapshot("vm", &s).into_bytes());
            }
        }
        now = now.plus_ms(config.fleet.sample_interval_secs as i64 * 1000);
    }
    let mb = |m: &[Vec<u8>]| m.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "buffers: {} messages ({} VMs x {hours} h, one snapshot of 7 metrics a minute); JSON {:.0} MB, line protocol {:.0} MB",
        as_json.len(),
        config.fleet.vms,
        mb(&as_json),
        mb(&as_lines)
    );
    let inventory = Arc::new(
        bellwether::inventory::Inventory::with_groups(fleet.inventory(), &config.canary.groups)
            .unwrap(),
    );
    let per_poll = config.kafka.max_batch_messages;
    let topic = |format: InputFormat| MetricsTopic {
        name: "metrics".into(),
        format,
        line_protocol: LineProtocolOptions {
            prefix_measurement: false,
            ..LineProtocolOptions::default()
        },
    };
    for (name, messages, format) in [
        ("JSON", &as_json, InputFormat::Json),
        ("line protocol", &as_lines, InputFormat::LineProtocol),
    ] {
        let topic = topic(format);
        let decode = measure(|| {
            let mut source =
                BufferSource::new(messages, MessageDecoder::for_topic(&topic), per_poll);
            while !source.is_done() {
                std::hint::black_box(source.poll().unwrap());
            }
            assert!(source.refused().is_empty(), "{:?}", &source.refused()[..1]);
            (messages.len() as u64, source.samples())
        });
        decode.print(&format!("{name}: decode to Arrow"));
        let mut windows = 0;
        let score = measure(|| {
            let mut source =
                BufferSource::new(messages, MessageDecoder::for_topic(&topic), per_poll);
            let mut stage = ScoringStage::new(&config, inventory.clone()).unwrap();
            while !source.is_done() {
                stage
                    .step(&mut source, &mut NoControl, &mut NullSink, &mut NullSink)
                    .unwrap();
            }
            windows = stage.stats().windows_closed;
            (messages.len() as u64, source.samples())
        });
        score.print(&format!("{name}: bytes to scores"));
        println!("  {windows} windows scored");
    }
}
