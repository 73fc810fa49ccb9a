//! `bellwether run`: the scoring pipeline on Kafka, with the rollout actor
//! in the same process unless `--no-actor`.

use super::actor::ActorService;
use crate::config::Config;
use crate::connector::MessageSink;
use crate::connector::MessageSource;
use crate::history::maintenance::{Maintenance, MaintenancePolicy};
use crate::history::{History, HistoryOptions, SharedHistory};
use crate::kafka::control::KafkaMessageSource;
use crate::kafka::dead_letter::DeadLetters;
use crate::kafka::metrics_source::KafkaMetricSource;
use crate::kafka::sink::{KafkaSink, NullSink, SharedProducer};
use crate::monitor::Monitor;
use crate::monitor::server::serve_with;
use crate::scoring::ScoringStage;
use anyhow::Result;
use bellwether_schemas::{ControlMessage, EventTime, ScoreRecord};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `bellwether run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Run the scoring pipeline only (the actor runs as `bellwether actor`).
    pub no_actor: bool,
}

/// Runs until SIGINT/SIGTERM.
pub fn run(config: &Config, options: RunOptions) -> Result<()> {
    let stop = super::shutdown_flag()?;
    let kafka = &config.kafka;
    if !super::connect(kafka, &stop)? {
        return Ok(());
    }
    let inventory = super::load_inventory(config)?;
    let mut stage = ScoringStage::new(config, inventory.clone())?;
    let monitor = Monitor::new(&inventory, stage.forecaster_name());
    let history = open_history(config, stage.forecaster_name())?;
    let _maintenance = history.as_ref().map(|shared| {
        let h = &config.history;
        Maintenance::spawn(
            lock(shared).root(),
            MaintenancePolicy {
                compact_min_files: h.compact_min_files,
                retention_days: h.retention_days,
            },
            Duration::from_secs(h.maintenance_secs),
        )
    });
    let _retraining = crate::model::schedule::interval(config).map(|every| {
        let request = crate::model::retrain::RetrainRequest::from_config(config);
        let folder = request.models.to_string_lossy().into_owned();
        if config.failure.model != folder || config.forecast.model != folder {
            tracing::warn!(
                models = %folder,
                "retraining is scheduled, but failure.model and forecast.model do not both name its models folder: what it promotes is not what this process loads at its next start"
            );
        }
        tracing::info!(every_hours = config.retrain.every_hours, "retraining scheduled");
        crate::model::schedule::RetrainSchedule::spawn(config.clone(), request, every)
    });
    if let Some(h) = &history {
        stage = stage.with_history(h.clone());
        // Exported from the start, at 0.
        let _ = monitor
            .telemetry()
            .history_write_errors
            .with_label_values(&[] as &[&str]);
    }
    let producer = SharedProducer::new(kafka)?;
    let dead_letters =
        DeadLetters::new(producer.clone(), &kafka.dead_letter_topic).with_monitor(monitor.clone());
    // Outcomes marked over HTTP, published on the control topic below.
    let (marks_in, marks) = std::sync::mpsc::channel::<ControlMessage>();
    let _server = if config.http.listen.trim().is_empty() {
        None
    } else {
        let root = history.as_ref().map(|_| config.history.dir.clone());
        let control =
            (!config.http.token.is_empty()).then(|| crate::monitor::outcomes::ControlAccess {
                token: config.http.token.clone(),
                sender: marks_in.clone(),
                canary_groups: config.rollout.canary_groups.clone(),
            });
        let server = serve_with(
            config.http.listen.trim(),
            crate::monitor::server::AppState {
                monitor: monitor.clone(),
                history: root,
                control,
                approval: Some(config.approval.clone()),
                sql: config.sql,
                hosts: crate::monitor::guard::AllowedHosts(std::sync::Arc::new(
                    config.http.allowed_hosts.clone(),
                )),
                limits: (&config.http).into(),
                waves: Some(crate::monitor::waves::WaveSettings {
                    rollout: config.rollout.clone(),
                    judge: config.judge.clone(),
                }),
                remote_write: remote_write_receiver(config, &dead_letters, &monitor)?,
            },
        )?;
        tracing::info!(url = %server.url(), "dashboard and /metrics served");
        Some(server)
    };
    stage = stage.with_monitor(monitor.clone());

    // The stage learns which VMs are patched from the whole control topic
    // before it reads a metric.
    let mut control_in = KafkaMessageSource::<ControlMessage>::from_beginning(
        kafka,
        &kafka.control_topic,
        &format!("{}.control", kafka.group_id),
        dead_letters.clone(),
    )?;
    let backlog = control_in.catch_up()?;
    tracing::info!(messages = backlog.len(), "control topic read");
    let offsets = control_in.last_offsets().to_vec();
    for (i, message) in backlog.iter().enumerate() {
        stage.on_control(message);
        // The dashboard and the API show rollouts from before a restart too.
        monitor.on_control(message);
        if let Some(h) = &history {
            lock(h).control(message, offsets.get(i).copied());
        }
    }
    let mut inventory_feed = super::inventory::InventoryFeed::open(config, dead_letters.clone())?;
    let mut metrics =
        KafkaMetricSource::subscribe(kafka, dead_letters.clone(), Some(monitor.clone()))?
            .with_max_future_secs(config.window.max_future_secs);
    let mut control_out = KafkaSink::<ControlMessage>::new(producer.clone(), &kafka.control_topic);
    let mut scores_out: Box<dyn MessageSink<ScoreRecord>> = if kafka.scores_topic.is_empty() {
        Box::new(NullSink)
    } else {
        Box::new(KafkaSink::<ScoreRecord>::new(
            producer.clone(),
            &kafka.scores_topic,
        ))
    };
    let mut actor = if options.no_actor {
        None
    } else {
        Some(ActorService::start(
            config,
            inventory,
            producer.clone(),
            dead_letters.clone(),
        )?)
    };
    tracing::info!(
        topics = ?kafka.metrics_topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        group = %kafka.group_id,
        forecaster = stage.forecaster_name(),
        actor = actor.is_some(),
        "bellwether is running"
    );

    let mut last_status = Instant::now();
    let mut last_model_check = Instant::now();
    let mut last_flush = Instant::now();
    let flush_every = Duration::from_secs(config.history.flush_secs);
    let mut events_recorded = 0;
    let mut events_shown = 0;
    while !super::stopping(&stop) {
        let mut marked = false;
        while let Ok(message) = marks.try_recv() {
            control_out.send(message)?;
            marked = true;
        }
        if let Some(feed) = inventory_feed.as_mut() {
            for change in feed.changes(&monitor)? {
                control_out.send(change)?;
                marked = true;
            }
        }
        if marked {
            control_out.flush()?;
        }
        stage.step(
            &mut metrics,
            &mut control_in,
            &mut control_out,
            scores_out.as_mut(),
        )?;
        if let Some(actor) = actor.as_mut() {
            actor.step()?;
            let a = actor.actor();
            if let Some(r) = a.rollout() {
                monitor.on_actor(&r.id, a.state(), a.planned_waves().len(), a.is_paused());
                let events = a.events();
                monitor.on_actor_events(&events[events_shown.min(events.len())..]);
                monitor.on_bake(&r.id, a.bake_ends());
                events_shown = events.len();
            }
            if let Some(h) = &history {
                let events = a.events();
                lock(h).rollout_events(&events[events_recorded.min(events.len())..])?;
                events_recorded = events.len();
            }
        }
        if let Some(h) = history
            .as_ref()
            .filter(|_| last_flush.elapsed() >= flush_every)
        {
            last_flush = Instant::now();
            // History must not stop rollbacks: a failed flush keeps its rows
            // and is retried; the checkpoint does not move past them.
            let mut h = lock(h);
            if let Err(e) = h.flush() {
                monitor
                    .telemetry()
                    .history_write_errors
                    .with_label_values(&[] as &[&str])
                    .inc();
                tracing::warn!("history: {e} (retried in {} s)", flush_every.as_secs());
            }
            for (table, rows) in h.written() {
                monitor
                    .telemetry()
                    .history_rows
                    .with_label_values(&[table])
                    .set(rows as i64);
            }
        }
        if last_model_check.elapsed() >= Duration::from_secs(30) {
            last_model_check = Instant::now();
            if let Some(name) = stage.reload_promoted_failure_model(config) {
                tracing::info!(model = %name, "promoted failure model loaded");
            }
        }
        if last_status.elapsed() >= Duration::from_secs(10) {
            last_status = Instant::now();
            let s = stage.stats();
            let m = metrics.stats();
            tracing::info!(
                event_time = %stage.watermark().map_or("-".to_string(), |w| EventTime(w).to_string()),
                messages = m.messages,
                rows = m.rows,
                dead_letters = m.dead_letters,
                windows = s.windows_closed,
                late_rows = s.late_rows,
                unlisted_dropped = s.rows_unlisted_dropped,
                partitions = ?metrics.assigned(),
                rollout = actor.as_ref().map_or("-", |a| a.actor().state().as_str()),
                "status"
            );
        }
    }
    tracing::info!("stopping: flushing and committing");
    // One last turn delivers and commits what is in flight.
    stage.step(
        &mut metrics,
        &mut control_in,
        &mut control_out,
        scores_out.as_mut(),
    )?;
    if let Some(h) = &history {
        // Open downsampled buckets stay open: a restart replays them.
        lock(h).flush()?;
    }
    Ok(())
}

/// The remote-write receiver, with `remote_write.enabled`.
fn remote_write_receiver(
    config: &Config,
    dead_letters: &DeadLetters,
    monitor: &Monitor,
) -> Result<Option<Arc<crate::remote_write::Receiver>>> {
    if !config.remote_write.enabled {
        return Ok(None);
    }
    let receiver = crate::remote_write::Receiver::new(
        &config.remote_write,
        &config.kafka,
        dead_letters.clone(),
        monitor.clone(),
    )?;
    tracing::info!(
        topic = receiver.topic(),
        "Prometheus remote write taken at /api/v1/write"
    );
    Ok(Some(Arc::new(receiver)))
}

/// The history `run` writes (none when `history.dir` is ""), resuming an
/// earlier run's: what that one wrote is skipped when the restart replays.
fn open_history(config: &Config, forecaster: &str) -> Result<Option<SharedHistory>> {
    let h = &config.history;
    if h.dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let options =
        HistoryOptions::from_config(h, config.window.allowed_lateness_secs as i64 * 1000, true);
    let mut history = History::open(&h.dir, options)?;
    history.model_version(forecaster, env!("CARGO_PKG_VERSION"), "{}")?;
    tracing::info!(dir = %history.root().describe("").display(), samples = ?h.samples, "history written");
    Ok(Some(Arc::new(Mutex::new(history))))
}

fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, History> {
    history.lock().unwrap_or_else(|p| p.into_inner())
}
