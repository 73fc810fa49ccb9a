//! `bellwether demo`: the whole system, embedded, on a simulated fleet.
//!
//! The simulated fleet publishes samples on the in-process bus; the scoring
//! stage and the rollout actor consume and produce exactly as they do over
//! Kafka. Fleet time advances one sample interval per turn, as fast as the
//! machine goes, so a day of fleet time takes seconds.

use crate::bus::{BusMetricSource, BusSink, BusSource, Topic};
use crate::config::Config;
use crate::connector::{ConnectorError, MessageSink, MessageSource};
use crate::history::SharedHistory;
use crate::inventory::Inventory;
use crate::monitor::Monitor;
use crate::rollout::RolloutActor;
use crate::scoring::{ScoringError, ScoringStage};
use crate::simulator::{FaultKind, FleetSimulator, PatchQuality};
use crate::summary::{DemoSummary, summarize};
use arrow::array::RecordBatch;
use bellwether_schemas::{
    Approval, ControlMessage, EventTime, Outcome, OutcomeKind, OutcomeSource, Patch, RolloutState,
    ScoreRecord,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use thiserror::Error;

mod actuator;
pub mod side_by_side;

pub use crate::simulator::DEMO_START;
pub use actuator::SimulatorActuator;

/// The demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    /// Scoring failed.
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    /// The bus failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// History could not be written.
    #[error(transparent)]
    History(#[from] crate::history::writer::HistoryError),
    /// A canary group does not compile.
    #[error("canary group `{group}`: {reason}")]
    Group {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },
}

/// Operators' commands from the demo's HTTP API (pause, resume, ...), put
/// on the demo's control topic each turn.
pub type OperatorInbox = Arc<Mutex<std::sync::mpsc::Receiver<ControlMessage>>>;

/// What the demo rolls out, and how fast.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Good or bad patch (and how a bad one breaks VMs).
    pub quality: PatchQuality,
    /// Fleet seconds per real second once the patch is approved (None: as
    /// fast as the machine goes). Warm-up history always runs flat out.
    pub speed: Option<f64>,
    /// Commands operators send through `--serve`'s API (with http.token).
    pub operator: Option<OperatorInbox>,
    /// Rollouts at once (`--rollouts`): the first rolls the scenario's
    /// patch out, every further one a good patch on another canary group.
    pub rollouts: usize,
}

impl DemoOptions {
    /// A demo of a patch of `quality`, flat out.
    pub fn new(quality: PatchQuality) -> DemoOptions {
        DemoOptions {
            quality,
            speed: None,
            operator: None,
            rollouts: 1,
        }
    }
}

/// Where the demo is, for a progress line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Fleet time now.
    pub now: EventTime,
    /// True before the patch is approved.
    pub warming_up: bool,
    /// Rollout state.
    pub state: RolloutState,
    /// Waves started.
    pub waves_started: usize,
    /// Waves planned.
    pub waves_planned: usize,
    /// VMs running the patch.
    pub patched: usize,
    /// VMs rolled back.
    pub rolled_back: usize,
    /// Fleet size.
    pub fleet: usize,
}

/// Keeps score counts and each VM's worst score, not every record.
#[derive(Debug, Default)]
pub struct ScoreTally {
    /// Score records received.
    pub count: u64,
    /// Highest anomaly score per VM.
    pub worst: HashMap<String, f64>,
}

impl MessageSink<ScoreRecord> for ScoreTally {
    fn send(&mut self, score: ScoreRecord) -> Result<(), ConnectorError> {
        self.count += 1;
        let worst = self.worst.entry(score.vm_id).or_insert(0.0);
        *worst = worst.max(score.anomaly_score);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// The patch every demo rolls out.
pub fn demo_patch() -> Patch {
    Patch {
        id: "KB-2026-1102".into(),
        title: "openssl 3.0.15 + kernel 6.1.119 security update".into(),
        classification: "security".into(),
        severity: "important".into(),
        product: "debian-12".into(),
    }
}

/// Runs the scenario to the end and summarises it; `progress` is called
/// every simulated quarter hour; `monitor`, if any, is fed as the pipeline
/// runs (the dashboard and `/metrics` of `bellwether demo --serve`), and
/// `history`, if any, gets every sample, score, command and event.
pub fn run_demo(
    config: &Config,
    options: DemoOptions,
    monitor: Option<&Monitor>,
    history: Option<&SharedHistory>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DemoSummary, DemoError> {
    let wall = Instant::now();
    let patch_at =
        DEMO_START.plus_ms((config.simulation.warmup_hours * EventTime::HOUR_MS as f64) as i64);
    let mut simulator = FleetSimulator::new(&config.fleet, &config.simulation, options.quality);
    simulator.set_patch_time(patch_at);
    let fleet = Arc::new(Mutex::new(simulator));
    let inventory = Inventory::with_groups(lock(&fleet).inventory(), &config.canary.groups)
        .map_err(|(group, e)| DemoError::Group {
            group,
            reason: e.reason,
        })?;
    let inventory = Arc::new(inventory);
    let fleet_size = inventory.vms().len();

    let metrics: Arc<Topic<RecordBatch>> = Topic::new(config.simulation.partitions);
    let control: Arc<Topic<ControlMessage>> = Topic::new(1);
    let mut stage = ScoringStage::new(config, inventory.clone())?;
    if let Some(m) = monitor {
        stage = stage.with_monitor(m.clone());
    }
    if let Some(h) = history {
        stage = stage.with_history(h.clone());
        lock(h).model_version(stage.forecaster_name(), env!("CARGO_PKG_VERSION"), "{}")?;
    }
    let mut metric_source = BusMetricSource::new(&metrics, "scoring");
    let mut stage_control = BusSource::new(&control, "scoring");
    let mut control_sink = BusSink::new(&control);
    let mut scores = ScoreTally::default();
    let extras = side_by_side::extra_rollouts(options.rollouts, &demo_patch(), &inventory, config);
    let actuator = extras
        .iter()
        .fold(SimulatorActuator::new(fleet.clone()), |a, e| {
            a.with_quality(&e.id, e.quality)
        });
    let mut actor = RolloutActor::new(&config.control(), inventory.clone(), actuator);
    let mut actor_control = BusSource::new(&control, "rollout-actor");

    let interval_ms = config.fleet.sample_interval_secs as i64 * 1000;
    let deadline =
        patch_at.plus_ms((config.simulation.max_rollout_hours * EventTime::HOUR_MS as f64) as i64);
    let drain_ms = config.simulation.drain_minutes as i64 * EventTime::MINUTE_MS;
    let rollout_id = format!("rollout-{}", demo_patch().id.to_lowercase());
    let mut settled_at: Option<EventTime> = None;
    let mut now = DEMO_START;
    let mut turn: u64 = 0;
    let mut paced_since: Option<Instant> = None;
    let mut crashes_reported = 0;
    // A paced demo (`--serve`) commits its history as it goes, every 5 s
    // (or history.flush_secs, if shorter), so /api/sql answers while it runs.
    let flush_every = std::time::Duration::from_secs(config.history.flush_secs.min(5));
    let mut last_flush = Instant::now();
    let mut events_recorded = 0;
    let mut events_shown = 0;

    loop {
        if now >= patch_at && actor.rollout().is_none() {
            actor.start(&rollout_id, demo_patch(), now);
            // The further rollouts go through the actor's approvals: they
            // start beside it, or queue (rollout.max_parallel).
            for extra in &extras {
                actor.handle(extra.submission(now));
            }
            let approval = ControlMessage::Approval(Approval {
                rollout_id: rollout_id.clone(),
                patch: demo_patch(),
                approved_by: "bellwether demo".into(),
                approved_at: now,
            });
            if let Some(m) = monitor {
                m.on_control(&approval);
            }
            if let Some(h) = history {
                lock(h).control(&approval, None);
            }
        }
        for message in actor.take_outbox() {
            control_sink.send(message)?;
        }
        if let Some(inbox) = &options.operator {
            let commands: Vec<ControlMessage> = lock(inbox).try_iter().collect();
            for message in commands {
                control_sink.send(message)?;
            }
        }
        // The actor executes what is on the control topic before the fleet
        // reports, as a real actuator acts between two scrapes.
        run_actor(&mut actor, &mut actor_control, &mut control_sink)?;
        let batches = lock(&fleet).tick(now);
        // A crash is a failure the fleet reports: an outcome on the control
        // topic, in the history with the metrics that preceded it.
        let new_crashes = lock(&fleet).crashes()[crashes_reported..].to_vec();
        crashes_reported += new_crashes.len();
        for crash in new_crashes {
            control_sink.send(ControlMessage::Outcome(Outcome {
                vm_id: crash.vm_id.clone(),
                rollout_id: actor.rollout().map(|_| rollout_id.clone()),
                kind: OutcomeKind::Failed,
                source: OutcomeSource::Simulator,
                at: crash.time,
                command_id: None,
                note: "crashed: memory exhausted".into(),
            }))?;
        }
        for (partition, batch) in batches.into_iter().enumerate() {
            if let Some(m) = monitor {
                m.telemetry().records_in(
                    "metrics",
                    &partition.to_string(),
                    batch.num_rows() as u64,
                );
            }
            metrics.publish_to(partition, batch);
        }
        stage.step(
            &mut metric_source,
            &mut stage_control,
            &mut control_sink,
            &mut scores,
        )?;
        run_actor(&mut actor, &mut actor_control, &mut control_sink)?;
        if let Some(m) = monitor {
            for r in actor.rollouts() {
                m.on_actor(&r.rollout.id, r.state, r.planned_waves, r.paused);
                m.on_bake(&r.rollout.id, r.bake_ends());
            }
            let events = actor.events();
            m.on_actor_events(&events[events_shown.min(events.len())..]);
            events_shown = events.len();
        }
        if let Some(h) = history.filter(|_| {
            options.speed.is_some() && now >= patch_at && last_flush.elapsed() >= flush_every
        }) {
            last_flush = Instant::now();
            // The control messages the scoring stage took in are in
            // already; the actor's events so far join them.
            let mut h = lock(h);
            let events = actor.events();
            h.rollout_events(&events[events_recorded.min(events.len())..])?;
            events_recorded = events.len();
            h.flush()?;
        }
        if let Some(speed) = options.speed.filter(|_| now >= patch_at) {
            let since = *paced_since.get_or_insert_with(Instant::now);
            let due =
                std::time::Duration::from_secs_f64((now.0 - patch_at.0) as f64 / 1000.0 / speed);
            if let Some(wait) = due.checked_sub(since.elapsed()) {
                std::thread::sleep(wait);
            }
        }

        if turn.is_multiple_of(15) {
            // The scenario's rollout (the demo's first).
            let scenario = actor.rollout_view(&rollout_id);
            progress(&Progress {
                now,
                warming_up: now < patch_at,
                state: scenario.map_or(RolloutState::Pending, |r| r.state),
                waves_started: scenario.map_or(0, |r| r.waves.len()),
                waves_planned: scenario.map_or(0, |r| r.planned_waves),
                patched: scenario.map_or(0, |r| r.patched.len()),
                rolled_back: scenario.map_or(0, |r| r.rollbacks.len()),
                fleet: fleet_size,
            });
        }
        // Watch on for the drain time after the rollout last settled: a late
        // rollback unsettles it and restarts the wait.
        if actor.is_settled() {
            let since = *settled_at.get_or_insert(now);
            if now.0 - since.0 >= drain_ms {
                break;
            }
        } else {
            settled_at = None;
        }
        if now >= deadline {
            break;
        }
        now = now.plus_ms(interval_ms);
        turn += 1;
    }

    if let Some(m) = monitor {
        m.publish();
    }
    if let Some(h) = history {
        let mut h = lock(h);
        // What the actor said after the stage's last turn.
        for message in stage_control.poll(usize::MAX)? {
            h.control(&message, None);
        }
        let events = actor.events();
        h.rollout_events(&events[events_recorded.min(events.len())..])?;
        h.finish()?;
    }
    let fleet = lock(&fleet);
    let qualities: Vec<(String, PatchQuality)> = std::iter::once((rollout_id, options.quality))
        .chain(extras.into_iter().map(|e| (e.id, e.quality)))
        .collect();
    Ok(summarize(
        config,
        &qualities,
        &fleet,
        &actor,
        &stage,
        &scores,
        patch_at,
        now,
        wall.elapsed(),
    ))
}

/// Lets the actor consume the control topic until it has nothing more to say.
fn run_actor<A: crate::rollout::Actuator>(
    actor: &mut RolloutActor<A>,
    source: &mut BusSource<ControlMessage>,
    sink: &mut BusSink<ControlMessage>,
) -> Result<(), ConnectorError> {
    loop {
        let messages = source.poll(usize::MAX)?;
        if messages.is_empty() {
            return Ok(());
        }
        actor.handle_all(messages);
        for message in actor.take_outbox() {
            sink.send(message)?;
        }
        sink.flush()?;
        // Commit only once the actor's own commands are on the topic.
        source.commit()?;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses the CLI's scenario and fault into a patch quality.
pub fn patch_quality(scenario: &str, fault: Option<FaultKind>) -> Result<PatchQuality, String> {
    match (scenario, fault) {
        ("good", None) => Ok(PatchQuality::Good),
        ("good", Some(_)) => Err("--fault only applies to --scenario bad".into()),
        ("bad", fault) => Ok(PatchQuality::Bad(
            fault.unwrap_or(FaultKind::LatencyRegression),
        )),
        (other, _) => Err(format!("unknown scenario `{other}`; use good or bad")),
    }
}
