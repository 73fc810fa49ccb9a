//! The Prometheus remote-write receiver, stage by stage in one run, on
//! requests shaped as Prometheus sends them (one sample per series, 7
//! bellwether series per VM, `instance` and `job` labels, 2,000 samples a
//! request as `max_samples_per_send` does in Prometheus 2.50+):
//! (1) snappy + protobuf decoding, (2) the same plus mapping to VM
//! snapshots, (3) plus the JSON the metrics topic gets, (4) the whole
//! receiver (decode, map, produce to tansu, wait for every delivery), one
//! request at a time and 4 at once (Prometheus' shards). Prints samples/s
//! of wall time and per core (this process's CPU time, librdkafka's
//! threads included; the broker's is not).
//!
//! `cargo bench --bench remote_write` (starts tansu from PATH or
//! ~/.cargo/bin; `BELLWETHER_BENCH_REQUESTS` sets the requests per pass,
//! default 2,000).

#[path = "../tests/common/mod.rs"]
mod common;

use bellwether::config::Config;
use bellwether::kafka::admin::ensure_topics;
use bellwether::kafka::dead_letter::DeadLetters;
use bellwether::kafka::sink::SharedProducer;
use bellwether::monitor::Monitor;
use bellwether::remote_write::Receiver;
use bellwether::remote_write::mapping::SeriesMap;
use bellwether_schemas::metric::names;
use bellwether_schemas::wire::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use bellwether_schemas::wire::{StagedRows, json, line_protocol};
use std::time::{Duration, Instant};

const SAMPLES_PER_REQUEST: usize = 2_000;

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// `n` requests from a fleet of VMs, each VM's 7 series once a request.
fn requests(n: usize) -> Vec<Vec<u8>> {
    let vms_per_request = SAMPLES_PER_REQUEST / names::ALL.len();
    (0..n)
        .map(|i| {
            let t = 1_796_000_000_000 + i as i64 * 15_000;
            let timeseries = (0..vms_per_request)
                .flat_map(|v| {
                    names::ALL
                        .iter()
                        .enumerate()
                        .map(move |(m, metric)| TimeSeries {
                            labels: vec![
                                Label {
                                    name: "__name__".into(),
                                    value: format!("bellwether:{metric}"),
                                },
                                Label {
                                    name: "instance".into(),
                                    value: format!(
                                        "web-{:04}.prod.example.com:9100",
                                        v + (i % 7) * vms_per_request
                                    ),
                                },
                                Label {
                                    name: "job".into(),
                                    value: "node".into(),
                                },
                            ],
                            samples: vec![Sample {
                                value: 10.0 + (v * 7 + m) as f64 * 0.37 + (i % 13) as f64,
                                timestamp: t,
                            }],
                        })
                })
                .collect();
            remote_write::encode(&WriteRequest { timeseries })
        })
        .collect()
}

struct Pass {
    samples: u64,
    wall: f64,
    cpu: f64,
}

fn measure(samples_per_pass: u64, f: impl FnOnce()) -> Pass {
    let (started, cpu) = (Instant::now(), cpu_seconds());
    f();
    Pass {
        samples: samples_per_pass,
        wall: started.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu,
    }
}

fn print(name: &str, p: &Pass) {
    println!(
        "| {name} | {:>12.0} | {:>12.0} |",
        p.samples as f64 / p.wall,
        p.samples as f64 / p.cpu
    );
}

fn main() {
    let n = std::env::var("BELLWETHER_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000usize);
    let bodies = requests(n);
    let config = Config::default_config();
    let map = SeriesMap::new(&config.remote_write);
    let samples = {
        let r = remote_write::decode(&bodies[0], 1 << 26).unwrap();
        map.map(&r).samples * n as u64
    };
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{n} requests, {samples} samples, {:.1} MB compressed ({} B a request)",
        bytes as f64 / 1e6,
        bytes / n
    );
    println!("| stage | samples/s (wall) | samples/s per core |");
    println!("| --- | --- | --- |");
    let decode = measure(samples, || {
        for b in &bodies {
            std::hint::black_box(remote_write::decode(b, 1 << 26).unwrap());
        }
    });
    print("decode (snappy + protobuf)", &decode);
    let mapped = measure(samples, || {
        for b in &bodies {
            let r = remote_write::decode(b, 1 << 26).unwrap();
            std::hint::black_box(map.map(&r));
        }
    });
    print("decode + map", &mapped);
    let encoded = measure(samples, || {
        for b in &bodies {
            let r = remote_write::decode(b, 1 << 26).unwrap();
            for snapshots in map.map(&r).vms.values() {
                std::hint::black_box(serde_json::to_vec(snapshots).unwrap());
            }
        }
    });
    print("decode + map + JSON", &encoded);

    // The same samples in the Kafka formats, as the metrics source decodes
    // them (into staged rows): bellwether's JSON (what the receiver
    // produces) and Telegraf's line protocol.
    let mut json_messages = Vec::new();
    let mut line_messages = Vec::new();
    for b in &bodies {
        let r = remote_write::decode(b, 1 << 26).unwrap();
        for snapshots in map.map(&r).vms.values() {
            json_messages.push(serde_json::to_vec(snapshots).unwrap());
            let lines: Vec<String> = snapshots
                .iter()
                .map(|s| line_protocol::encode_snapshot("bellwether", s))
                .collect();
            line_messages.push(lines.join("\n").into_bytes());
        }
    }
    let mut rows = StagedRows::new();
    let json_pass = measure(samples, || {
        for m in &json_messages {
            rows.clear();
            json::decode(m, None, &mut rows).unwrap();
        }
    });
    print(
        "for comparison: the same samples as JSON messages, decoded",
        &json_pass,
    );
    let mut decoder = line_protocol::LineProtocolDecoder::new(Default::default());
    let line_pass = measure(samples, || {
        for m in &line_messages {
            rows.clear();
            decoder.decode(m, None, &mut rows).unwrap();
        }
    });
    print("for comparison: as line protocol, decoded", &line_pass);
    drop((json_messages, line_messages, rows));

    let Some(broker) = common::Broker::start() else {
        return;
    };
    let mut config = config;
    config.kafka.brokers = broker.address.clone();
    ensure_topics(&config.kafka).unwrap();
    let monitor = Monitor::new(
        &bellwether::inventory::Inventory::new(Vec::new(), Vec::new()),
        "bench",
    );
    let dead_letters = DeadLetters::new(
        SharedProducer::new(&config.kafka).unwrap(),
        &config.kafka.dead_letter_topic,
    );
    let receiver =
        Receiver::new(&config.remote_write, &config.kafka, dead_letters, monitor).unwrap();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("content-type", "application/x-protobuf".parse().unwrap());
    headers.insert("content-encoding", "snappy".parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm the producer's connection.
    runtime.block_on(async {
        let r = receiver.receive(&headers, &bodies[0]).await;
        assert_eq!(r.status().as_u16(), 204);
    });
    for concurrency in [1usize, 4] {
        let pass = measure(samples, || {
            runtime.block_on(async {
                for chunk in bodies.chunks(concurrency) {
                    let answers = futures_util::future::join_all(
                        chunk.iter().map(|b| receiver.receive(&headers, b)),
                    )
                    .await;
                    for a in answers {
                        assert_eq!(a.status().as_u16(), 204);
                    }
                }
            })
        });
        print(
            &format!("receiver, produced to tansu, {concurrency} request(s) at once"),
            &pass,
        );
    }
    std::thread::sleep(Duration::from_millis(100));
}
