//! End-to-end Kafka throughput: a metrics topic pre-filled with the
//! simulated fleet's JSON snapshots is drained (1) by a plain rdkafka
//! consumer that does nothing with the messages and (2) by bellwether's
//! full scoring pipeline (decode into Arrow, windows, forecasts, scores,
//! commands produced, offsets committed), on the same broker in the same
//! run, and (3) by the pipeline again with its monitor fed (dashboard model
//! and Prometheus series, HTTP server listening): the monitor's overhead.
//! Prints samples/s, ratios, and p50/p99 latency of the pipeline's turns
//! (hdrhistogram).
//!
//! `cargo bench --bench kafka_throughput` (starts tansu from PATH or
//! ~/.cargo/bin on a free port; `BELLWETHER_BENCH_VMS` and
//! `BELLWETHER_BENCH_HOURS` size the topic, default 300 VMs × 24 h).

#[path = "../tests/common/mod.rs"]
mod common;

use bellwether::config::Config;
use bellwether::connector::{MessageSink, MetricSource};
use bellwether::kafka::admin::ensure_topics;
use bellwether::kafka::control::KafkaMessageSource;
use bellwether::kafka::dead_letter::DeadLetters;
use bellwether::kafka::metrics_source::KafkaMetricSource;
use bellwether::kafka::sink::{KafkaSink, NullSink, SharedProducer};
use bellwether::monitor::Monitor;
use bellwether::monitor::server::serve;
use bellwether::scoring::ScoringStage;
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::wire::json;
use bellwether_schemas::{ControlMessage, ScoreRecord};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let Some(broker) = common::Broker::start() else {
        return;
    };
    let address = broker.address.clone();

    let mut config = Config::default_config();
    config.fleet.vms = env("BELLWETHER_BENCH_VMS", 300) as usize;
    config.kafka.brokers = address.clone();
    config.kafka.poll_timeout_ms = 20;
    ensure_topics(&config.kafka).unwrap();
    let topic = config.kafka.metrics_topics[0].name.clone();

    // Pre-fill.
    let hours = env("BELLWETHER_BENCH_HOURS", 24);
    let producer = SharedProducer::new(&config.kafka).unwrap();
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let mut now = bellwether::demo::DEMO_START;
    let end = now.plus_ms(hours as i64 * 3_600_000);
    let (mut messages, mut samples) = (0u64, 0u64);
    while now < end {
        for batch in fleet.tick(now) {
            samples += batch.num_rows() as u64;
            for s in snapshots(&batch).unwrap() {
                producer
                    .send(
                        &topic,
                        Some(s.vm_id.as_bytes()),
                        &json::encode_snapshot(&s),
                        None,
                    )
                    .unwrap();
                messages += 1;
            }
        }
        now = now.plus_ms(config.fleet.sample_interval_secs as i64 * 1000);
    }
    producer.flush().unwrap();
    println!(
        "topic: {messages} messages, {samples} samples ({} VMs x {hours} h), broker tansu 0.6.0 (memory)",
        config.fleet.vms
    );

    // (1) A plain consumer.
    let raw: BaseConsumer = bellwether::kafka::consumer_config(&config.kafka, "bench-raw")
        .create()
        .unwrap();
    raw.subscribe(&[&topic]).unwrap();
    let started = Instant::now();
    let mut got = 0u64;
    let mut first: Option<Instant> = None;
    while got < messages {
        if let Some(Ok(m)) = raw.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            use rdkafka::Message;
            std::hint::black_box(m.payload());
            got += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "raw consumer stalled"
        );
    }
    let raw_secs = first.unwrap().elapsed().as_secs_f64();
    drop(raw);

    // (2) The full pipeline, and (3) the same with the monitor fed (the
    // dashboard's model and every Prometheus series, server listening).
    let inventory = Arc::new(
        bellwether::inventory::Inventory::with_groups(fleet.inventory(), &config.canary.groups)
            .unwrap(),
    );
    let plain = pipeline_pass(
        &config,
        "bench-plain",
        &producer,
        &inventory,
        messages,
        None,
    );
    let monitor = Monitor::new(&inventory, "seasonal-regression");
    let server = serve("127.0.0.1:0", monitor.clone(), None).unwrap();
    let watched = pipeline_pass(
        &config,
        "bench-monitored",
        &producer,
        &inventory,
        messages,
        Some(monitor.clone()),
    );
    let scraped = ureq::get(&format!("{}metrics", server.url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(scraped.contains("bellwether_records_in_total"));

    let raw_rate = samples as f64 / raw_secs;
    println!(
        "raw rdkafka consumer: {:.0} samples/s ({:.0} messages/s, {raw_secs:.2} s)",
        raw_rate,
        messages as f64 / raw_secs
    );
    for (name, pass) in [
        ("bellwether pipeline", &plain),
        ("  with monitor", &watched),
    ] {
        let rate = samples as f64 / pass.secs;
        println!(
            "{name}: {:.0} samples/s ({:.0} messages/s, {:.2} s), {} windows scored, ratio to raw {:.2}",
            rate,
            messages as f64 / pass.secs,
            pass.secs,
            pass.windows,
            rate / raw_rate
        );
        println!(
            "  turn latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} turns)",
            pass.latency.value_at_quantile(0.5) as f64 / 1000.0,
            pass.latency.value_at_quantile(0.99) as f64 / 1000.0,
            pass.latency.max() as f64 / 1000.0,
            pass.latency.len()
        );
    }
    println!(
        "monitor overhead: {:+.1}% time",
        100.0 * (watched.secs / plain.secs - 1.0)
    );
}

struct Pass {
    secs: f64,
    windows: u64,
    latency: hdrhistogram::Histogram<u64>,
}

/// Drains the topic through the scoring stage in consumer group `group`.
fn pipeline_pass(
    config: &Config,
    group: &str,
    producer: &SharedProducer,
    inventory: &Arc<bellwether::inventory::Inventory>,
    messages: u64,
    monitor: Option<Monitor>,
) -> Pass {
    let mut config = config.clone();
    config.kafka.group_id = group.to_string();
    let mut dead = DeadLetters::new(producer.clone(), &config.kafka.dead_letter_topic);
    let mut stage = ScoringStage::new(&config, inventory.clone()).unwrap();
    if let Some(m) = &monitor {
        dead = dead.with_monitor(m.clone());
        stage = stage.with_monitor(m.clone());
    }
    let mut control_in = KafkaMessageSource::<ControlMessage>::from_beginning(
        &config.kafka,
        &config.kafka.control_topic,
        &format!("{group}-control"),
        dead.clone(),
    )
    .unwrap();
    let mut metrics = KafkaMetricSource::subscribe(&config.kafka, dead, monitor).unwrap();
    let mut control_out =
        KafkaSink::<ControlMessage>::new(producer.clone(), &config.kafka.control_topic);
    let mut scores: Box<dyn MessageSink<ScoreRecord>> = Box::new(NullSink);
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    while metrics.stats().messages < messages {
        let turn = Instant::now();
        stage
            .step(
                &mut metrics,
                &mut control_in,
                &mut control_out,
                scores.as_mut(),
            )
            .unwrap();
        if metrics.stats().messages > 0 {
            first.get_or_insert(turn);
            latency.record(turn.elapsed().as_micros() as u64).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "pipeline stalled"
        );
    }
    let secs = first.unwrap().elapsed().as_secs_f64();
    let _ = MetricSource::commit(&mut metrics, stage.watermark());
    Pass {
        secs,
        windows: stage.stats().windows_closed,
        latency,
    }
}
