//! `bellwether simulate`: a simulated fleet on Kafka.
//!
//! It publishes every VM's metrics on a metrics topic (bellwether's JSON or
//! line protocol), approves the patch once the fleet has history, and obeys
//! the execution records the rollout actor publishes on the control topic:
//! a VM is patched or rolled back when the actor executes the command, as
//! an agent on a real VM would. Warm-up history is published as fast as the
//! broker takes it; after that fleet time runs `speed` times real time.

use crate::config::Config;
use crate::connector::{MessageSink, MessageSource};
use crate::demo::demo_patch;
use crate::kafka::control::KafkaMessageSource;
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::sink::{KafkaSink, SharedProducer};
use crate::simulator::DEMO_START;
use crate::simulator::{FleetSimulator, PatchQuality};
use anyhow::{Result, ensure};
use arrow::array::RecordBatch;
use bellwether_schemas::metric::sample_columns;
use bellwether_schemas::wire::{InputFormat, json, line_protocol};
use bellwether_schemas::{Action, Approval, ControlMessage, EventTime, VmSnapshot};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Options of `bellwether simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Good or bad patch.
    pub quality: PatchQuality,
    /// The topic to publish on (default: the first of `kafka.metrics_topics`).
    pub topic: Option<String>,
    /// Format of the messages.
    pub format: InputFormat,
    /// Fleet seconds per real second once warm-up history is published.
    pub speed: f64,
    /// Fleet hours after which the patch is approved (None: never).
    pub approve_after_hours: Option<f64>,
    /// Fleet hours to simulate in all.
    pub hours: f64,
}

/// What the simulated fleet went through (printed as JSON at the end).
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    /// Fleet time at the end.
    pub fleet_time: EventTime,
    /// Metric messages published.
    pub messages: u64,
    /// VMs the patch broke.
    pub affected_vms: Vec<String>,
    /// VMs running the patch at the end.
    pub patched_vms: Vec<String>,
    /// VMs rolled back, in the order the actor's records arrived.
    pub rolled_back_vms: Vec<String>,
    /// Execution records obeyed.
    pub executions: usize,
}

/// Runs the simulated fleet for `options.hours` of fleet time (or until
/// SIGINT/SIGTERM).
pub fn simulate(config: &Config, options: &SimulateOptions) -> Result<SimulationReport> {
    ensure!(options.speed > 0.0, "--speed must be positive");
    ensure!(options.hours > 0.0, "--hours must be positive");
    let stop = super::shutdown_flag()?;
    let kafka = &config.kafka;
    ensure!(
        super::connect(kafka, &stop)?,
        "stopped before Kafka answered"
    );
    let topic = options
        .topic
        .clone()
        .unwrap_or_else(|| kafka.metrics_topics[0].name.clone());
    let producer = SharedProducer::new(kafka)?;
    let dead_letters = DeadLetters::new(producer.clone(), &kafka.dead_letter_topic);
    let mut control = KafkaMessageSource::<ControlMessage>::from_end(
        kafka,
        &kafka.control_topic,
        "bellwether-simulate",
        dead_letters,
    )?;
    let mut control_out = KafkaSink::<ControlMessage>::new(producer.clone(), &kafka.control_topic);
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, options.quality);

    let interval_ms = config.fleet.sample_interval_secs as i64 * 1000;
    let end = DEMO_START.plus_ms((options.hours * EventTime::HOUR_MS as f64) as i64);
    let approve_at = options
        .approve_after_hours
        .map(|h| DEMO_START.plus_ms((h * EventTime::HOUR_MS as f64) as i64));
    // History before the approval (or, with none, the warm-up) is
    // published as fast as the broker takes it.
    let pace_from = approve_at.unwrap_or_else(|| {
        DEMO_START.plus_ms((config.simulation.warmup_hours * EventTime::HOUR_MS as f64) as i64)
    });
    // Fleet events start relative to the approval (or the warm-up's end).
    fleet.set_patch_time(pace_from);
    let mut paced_since: Option<(Instant, EventTime)> = None;
    let mut obeyed: HashSet<String> = HashSet::new();
    let mut rolled_back = Vec::new();
    let mut messages = 0u64;
    let mut approved = false;
    let mut now = DEMO_START;
    let mut payload = Vec::new();
    tracing::info!(%topic, format = %options.format, vms = fleet.inventory().len(), "simulated fleet publishing");

    while now < end && !super::stopping(&stop) {
        for message in control.poll(usize::MAX)? {
            let ControlMessage::Execution(e) = message else {
                continue;
            };
            if !obeyed.insert(e.command_id.0.clone()) {
                continue;
            }
            let result = match e.action {
                Action::Patch => fleet.patch(&e.vm_id, now),
                Action::Rollback => {
                    rolled_back.push(e.vm_id.clone());
                    fleet.roll_back(&e.vm_id, now)
                }
            };
            match result {
                Ok(()) => {
                    tracing::info!(vm = %e.vm_id, action = ?e.action, "agent obeyed {}", e.command_id)
                }
                Err(err) => {
                    tracing::warn!(vm = %e.vm_id, "agent could not obey {}: {err}", e.command_id)
                }
            }
        }
        if let Some(at) = approve_at
            && !approved
            && now >= at
        {
            let patch = demo_patch();
            control_out.send(ControlMessage::Approval(Approval {
                rollout_id: format!("rollout-{}", patch.id.to_lowercase()),
                patch,
                approved_by: "bellwether simulate".into(),
                approved_at: now,
            }))?;
            control_out.flush()?;
            approved = true;
            tracing::info!(fleet_time = %now, "patch approved");
        }
        for batch in fleet.tick(now) {
            for snapshot in snapshots(&batch)? {
                payload.clear();
                match options.format {
                    InputFormat::Json => payload.extend(json::encode_snapshot(&snapshot)),
                    InputFormat::LineProtocol => {
                        payload.extend(line_protocol::encode_snapshot("vm", &snapshot).into_bytes())
                    }
                }
                producer.send(&topic, Some(snapshot.vm_id.as_bytes()), &payload, None)?;
                messages += 1;
            }
        }
        if now >= pace_from {
            let (wall, fleet_t) = *paced_since.get_or_insert_with(|| {
                tracing::info!(fleet_time = %now, "history published; fleet time now runs at {}x", options.speed);
                (Instant::now(), now)
            });
            producer.flush()?;
            let due = Duration::from_secs_f64((now.0 - fleet_t.0) as f64 / 1000.0 / options.speed);
            if let Some(wait) = due.checked_sub(wall.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        now = now.plus_ms(interval_ms);
    }
    producer.flush()?;
    let patched: BTreeSet<String> = fleet
        .inventory()
        .into_iter()
        .map(|v| v.id)
        .filter(|id| fleet.is_patched(id))
        .collect();
    Ok(SimulationReport {
        fleet_time: now,
        messages,
        affected_vms: fleet.affected_vms(),
        patched_vms: patched.into_iter().collect(),
        rolled_back_vms: rolled_back,
        executions: obeyed.len(),
    })
}

/// Regroups long samples into one wide snapshot per VM and instant.
pub fn snapshots(batch: &RecordBatch) -> Result<Vec<VmSnapshot>> {
    let cols = sample_columns(batch)?;
    let mut index: HashMap<(u32, i64), usize> = HashMap::new();
    let mut out: Vec<VmSnapshot> = Vec::new();
    for row in 0..batch.num_rows() {
        let vm = cols.vm_keys[row];
        let t = cols.times.value(row);
        let i = *index.entry((vm, t)).or_insert_with(|| {
            out.push(VmSnapshot {
                vm_id: cols.vm_names.value(vm as usize).to_string(),
                time: EventTime(t),
                metrics: BTreeMap::new(),
            });
            out.len() - 1
        });
        out[i].metrics.insert(
            cols.metric_names
                .value(cols.metric_keys[row] as usize)
                .to_string(),
            cols.values[row],
        );
    }
    Ok(out)
}
