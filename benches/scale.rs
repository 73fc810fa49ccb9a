//! Fleet scale, without a broker: a simulated fleet of
//! `BELLWETHER_BENCH_VMS` VMs (one sample a minute of 7 metrics) is
//! encoded as JSON messages a minute at a time, then decoded and scored by
//! the Kafka source's decoder and the scoring stage, for
//! `BELLWETHER_BENCH_HOURS` of fleet time. Prints the process's peak RSS
//! and its RSS before the stage existed (the difference over the VMs is
//! the scoring path's state per VM), samples/s per core through decode +
//! score (CPU seconds of those steps only), and the time from a window's
//! close to its decisions: the duration of each step that closed a
//! window, p50/p99/max (hdrhistogram).
//!
//! Then the durable state a restart reads, at this many VMs: the history
//! checkpoint's samples progress (7 metrics a VM) as Parquet, beside the
//! JSON it used to be, and the actor's ledger with a patch and a rollback
//! command a VM; sizes and write times.
//!
//! `./scripts/bench-scale` runs it at 1,000, 10,000 and 100,000 VMs.

mod support;

use bellwether::config::Config;
use bellwether::connector::buffer::BufferSource;
use bellwether::connector::decode::MessageDecoder;
use bellwether::connector::{ConnectorError, MessageSink};
use bellwether::kafka::sink::NullSink;
use bellwether::scoring::ScoringStage;
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::wire::json;
use bellwether_schemas::{ControlMessage, EventTime};
use std::sync::Arc;
use std::time::Instant;
use support::{NoControl, cpu_seconds, env, peak_rss_mb};

/// Resident set size now, in MB.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// Counts the window reports (one a closed window) and rollbacks.
#[derive(Default)]
struct Decisions {
    reports: u64,
    rollbacks: u64,
}

impl MessageSink<ControlMessage> for Decisions {
    fn send(&mut self, message: ControlMessage) -> Result<(), ConnectorError> {
        match message {
            ControlMessage::WindowReport(_) => self.reports += 1,
            ControlMessage::Rollback(_) => self.rollbacks += 1,
            _ => {}
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

fn main() {
    let mut config = Config::default_config();
    let vms = env("BELLWETHER_BENCH_VMS", 1000) as usize;
    config.fleet.vms = vms;
    config.fleet.sample_interval_secs = 60;
    let hours = env("BELLWETHER_BENCH_HOURS", 2);
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let inventory = Arc::new(
        bellwether::inventory::Inventory::with_groups(fleet.inventory(), &config.canary.groups)
            .unwrap(),
    );
    let rss_before = rss_mb();
    let mut stage = ScoringStage::new(&config, inventory).unwrap();
    let per_poll = config.kafka.max_batch_messages;
    let mut decisions = Decisions::default();
    let mut close_to_decisions = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let (mut samples, mut messages, mut cpu, mut wall) = (0u64, 0u64, 0.0, 0.0);
    let mut buffer: Vec<Vec<u8>> = Vec::with_capacity(vms);
    let mut now = bellwether::demo::DEMO_START;
    let end = now.plus_ms(hours as i64 * EventTime::HOUR_MS);
    while now < end {
        buffer.clear();
        for batch in fleet.tick(now) {
            for s in snapshots(&batch).unwrap() {
                buffer.push(json::encode_snapshot(&s));
            }
        }
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut source = BufferSource::new(&buffer, MessageDecoder::Json, per_poll);
        while !source.is_done() {
            let (reports, step) = (decisions.reports, Instant::now());
            stage
                .step(&mut source, &mut NoControl, &mut decisions, &mut NullSink)
                .unwrap();
            if decisions.reports > reports {
                close_to_decisions
                    .record(step.elapsed().as_micros() as u64)
                    .unwrap();
            }
        }
        cpu += cpu_seconds() - cpu0;
        wall += wall0.elapsed().as_secs_f64();
        samples += source.samples();
        messages += buffer.len() as u64;
        assert!(source.refused().is_empty(), "{:?}", &source.refused()[..1]);
        now = now.plus_ms(config.fleet.sample_interval_secs as i64 * 1000);
    }
    let peak = peak_rss_mb();
    let ms = |q: f64| close_to_decisions.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{vms} VMs x {hours} h: {messages} messages, {samples} samples, {} windows closed, {} rollbacks",
        decisions.reports, decisions.rollbacks
    );
    println!(
        "  peak RSS {peak:.0} MB (before the scoring stage {rss_before:.0} MB): {:.1} KB a VM",
        (peak - rss_before) * 1000.0 / vms as f64
    );
    println!(
        "  decode + score: {:.0} samples/s per core, {:.0} samples/s wall ({:.1} CPU s, {:.1} s)",
        samples as f64 / cpu,
        samples as f64 / wall,
        cpu,
        wall
    );
    println!(
        "  window close to decisions: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} windows)",
        ms(0.5),
        ms(0.99),
        close_to_decisions.max() as f64 / 1000.0,
        close_to_decisions.len()
    );
    durable_state(vms);
}

/// The checkpoint's samples progress and the actor's ledger at `vms` VMs.
fn durable_state(vms: usize) {
    use bellwether::history::checkpoint::save_samples;
    use bellwether::rollout::ledger::Ledger;
    use bellwether_schemas::CommandId;
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..vms).map(|i| format!("vm-{i:06}")).collect();
    let metrics: &[&str] = &bellwether_schemas::metric::names::ALL;
    let t0 = bellwether::demo::DEMO_START.0;
    let rows = || {
        names.iter().enumerate().flat_map(move |(i, vm)| {
            metrics
                .iter()
                .map(move |m| (vm.as_str(), *m, t0 + (i % 60) as i64 * 1000))
        })
    };
    let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len() as f64 / 1e6;
    let started = Instant::now();
    let root = bellwether::history::store::Root::Folder(dir.path().to_path_buf());
    let name = save_samples(&root, "1", 1, rows()).unwrap();
    let parquet = (started.elapsed(), size(&dir.path().join(&name)));
    let started = Instant::now();
    let mut map: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (vm, m, t) in rows() {
        map.entry(vm.to_string())
            .or_default()
            .insert(m.to_string(), t);
    }
    let json_path = dir.path().join("samples.json");
    std::fs::write(&json_path, serde_json::to_vec(&map).unwrap()).unwrap();
    let json = (started.elapsed(), size(&json_path));
    println!(
        "  history checkpoint, samples progress of {} series: Parquet {:.2} MB in {:.0} ms (JSON, as before: {:.2} MB in {:.0} ms)",
        vms * metrics.len(),
        parquet.1,
        parquet.0.as_secs_f64() * 1000.0,
        json.1,
        json.0.as_secs_f64() * 1000.0
    );
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let started = Instant::now();
    for chunk in names.chunks(1000) {
        let ids: Vec<CommandId> = chunk
            .iter()
            .flat_map(|vm| {
                [
                    CommandId::patch("rollout-kb5031356", vm),
                    CommandId::rollback("rollout-kb5031356", vm),
                ]
            })
            .collect();
        ledger.record(&ids).unwrap();
    }
    let written = started.elapsed();
    let started = Instant::now();
    let reopened = Ledger::open(dir.path()).unwrap();
    assert_eq!(reopened.ids().len(), 2 * vms);
    println!(
        "  actor ledger, {} commands appended a poll of 1,000 VMs at a time: {:.2} MB, {:.0} ms to write (synced each poll), {:.0} ms to read at a restart",
        2 * vms,
        size(&dir.path().join("executed-commands.log")),
        written.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0
    );
}
