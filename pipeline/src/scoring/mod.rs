//! The scoring stage: metric batches in; scores, rollback commands and
//! window reports out.
//!
//! It wraps the [`CanaryScorer`] operator with what the operator must not
//! know: which rollout patched which VM (learned from patch commands on the
//! control topic), how critical each VM is, and which rollback commands were
//! already issued. [`ScoringStage::step`] is one turn of the loop, the same
//! over the in-process bus and over Kafka: read control, read metrics, emit
//! what the watermark released, flush, then commit.

pub(crate) mod config;
mod waves;
pub use bellwether_control::judge;

use crate::config::Config;
use crate::connector::{ConnectorError, MessageSink, MessageSource, MetricSource};
use crate::history::SharedHistory;
use crate::inventory::Inventory;
use crate::monitor::Monitor;
use bellwether_operators::baseline::BaselineConfig;
use bellwether_operators::forecast::Forecaster;
use bellwether_operators::scorer::PeerSettings;
use bellwether_operators::surprise::SurpriseConfig;
use bellwether_operators::verdict::{MetricRule, VerdictRules};
use bellwether_operators::wave::WavePool;
use bellwether_operators::window::WindowSpec;
use bellwether_operators::{
    CanaryScorer, Operator, OperatorError, ScoredWindow, ScorerConfig, ScorerStats,
};
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, FailureRisk, MetricVerdict, Outcome, OutcomeKind,
    OutcomeSource, RollbackCommand, RollbackReason, RollbackTrigger, ScoreRecord, WindowReport,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use thiserror::Error;
use waves::WaveGroups;

/// The scoring stage failed.
#[derive(Debug, Error)]
pub enum ScoringError {
    /// The operator refused its input or settings.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// A source or sink failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// History could not be written.
    #[error(transparent)]
    History(#[from] crate::history::writer::HistoryError),
}

fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, crate::history::History> {
    history.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds the scorer's settings from the config.
pub fn scorer_config(config: &Config) -> Result<ScorerConfig, OperatorError> {
    scorer_config_with(config, &BTreeMap::new())
}

/// The scorer's settings, with thresholds learned with the model for the
/// metrics whose threshold the config does not set (when
/// `thresholds.learned` is on).
pub fn scorer_config_with(
    config: &Config,
    learned: &BTreeMap<String, f64>,
) -> Result<ScorerConfig, OperatorError> {
    let t = &config.thresholds;
    let window_ms = config.window.slide_secs as f64 * 1000.0;
    let per_hour = EventTime::HOUR_MS as f64 / window_ms;
    let rule = |m: &String| {
        // validate() guarantees every scored metric has its entry.
        let r = &t.per_metric[m];
        MetricRule {
            direction: r.direction,
            threshold_sigma: r
                .sigma
                .or(learned.get(m).copied().filter(|_| t.learned))
                .unwrap_or(t.sigma),
            min_change: r.min_change,
        }
    };
    Ok(ScorerConfig {
        metrics: t.metrics.clone(),
        rules: VerdictRules {
            metrics: t.metrics.iter().map(rule).collect(),
            consecutive_windows: t.consecutive_windows,
            false_discovery_rate: (config.judge.false_discovery_rate > 0.0)
                .then_some(config.judge.false_discovery_rate),
            peer_test_p: (config.judge.mann_whitney_p > 0.0).then_some(config.judge.mann_whitney_p),
        },
        spread_floor: t
            .metrics
            .iter()
            .map(|m| t.per_metric[m].spread_floor.max(1e-9))
            .collect(),
        window: WindowSpec::sliding(
            config.window.size_secs as i64 * 1000,
            config.window.slide_secs as i64 * 1000,
            config.window.allowed_lateness_secs as i64 * 1000,
        )?,
        baseline: BaselineConfig {
            half_life_windows: config.baseline.half_life_hours * per_hour,
            min_windows: (config.baseline.min_hours * per_hour).ceil() as u32,
        },
        max_open_windows: 4096,
        max_unlisted_vms: config.window.max_unlisted_vms,
        surprise: SurpriseConfig::default(),
        peers: PeerSettings {
            enabled: config.judge.peers,
            levels: config.judge.levels(),
            min_control: config.judge.min_control,
            // Two hours of windows: longer than a surge or an incident.
            hold_windows: (7_200 / config.window.slide_secs.max(1)).min(u16::MAX as u64) as u16,
        },
    })
}

/// The configured forecaster (see [`crate::model::choose_forecaster`]).
pub fn forecaster(config: &Config) -> Box<dyn Forecaster> {
    crate::model::choose_forecaster(config).forecaster
}

/// The scoring stage.
pub struct ScoringStage {
    scorer: CanaryScorer,
    inventory: Arc<Inventory>,
    settle_ms: i64,
    /// Per patched VM: the rollout and wave that patched it.
    patched_by: HashMap<String, Patched>,
    rollbacks_issued: HashSet<CommandId>,
    monitor: Option<Monitor>,
    history: Option<SharedHistory>,
    model_fallback: Option<String>,
    /// Risk at or above which a patched VM is rolled back (None: not acted on).
    failure_act_at: Option<f64>,
    /// Per patched VM: when it is judged from (its patch plus settle time).
    judge_from: HashMap<String, i64>,
    /// Per patched VM: how many samples it sends, and for how long it has
    /// been (nearly) silent.
    health: HashMap<String, HealthState>,
    /// Windows without metrics that make a lost health check (0: never).
    health_check_windows: u16,
    /// How VMs are grouped into control cohorts, and waves judged whole.
    judge: crate::config::JudgeConfig,
    /// Per rollout: its patched VMs' windows, one pool per metric slot.
    wave_pools: HashMap<String, Vec<WavePool>>,
    /// The fleet's noise, reported with every window (`rollout.detect`).
    noise: bellwether_operators::noise::NoiseMeter,
    /// Windows a VM's pool needs before its wave is judged.
    consecutive_windows: u16,
}

/// The rollout and wave that patched a VM.
#[derive(Debug, Clone)]
struct Patched {
    rollout_id: String,
    wave: usize,
}

/// A patched VM's sample count, for its health check.
#[derive(Debug, Default)]
struct HealthState {
    /// Samples it usually sends per window (the most recent windows that
    /// were not silent, the highest weighing most).
    usual_samples: u32,
    /// Silent windows in a row since.
    silent_windows: u16,
}

impl ScoringStage {
    /// A stage for `inventory`, configured by `config`.
    pub fn new(config: &Config, inventory: Arc<Inventory>) -> Result<ScoringStage, ScoringError> {
        let choice = crate::model::choose_forecaster(config);
        let failure = crate::model::choose_failure_model(config);
        let mut scorer = CanaryScorer::new(
            scorer_config_with(config, &choice.learned_thresholds)?,
            choice.forecaster,
        )?;
        if let Some(model) = failure.model {
            scorer = scorer.with_failure_model(model)?;
        }
        for vm in inventory.vms() {
            scorer.set_cohorts(&vm.id, &config.judge.cohorts_of(vm));
        }
        Ok(ScoringStage {
            judge: config.judge.clone(),
            wave_pools: HashMap::new(),
            noise: Default::default(),
            consecutive_windows: config.thresholds.consecutive_windows.max(1),
            scorer,
            failure_act_at: failure.act_at,
            judge_from: HashMap::new(),
            health: HashMap::new(),
            health_check_windows: config.failure.health_check_windows,
            model_fallback: choice.fallback,
            inventory,
            settle_ms: config.rollout.settle_minutes as i64 * EventTime::MINUTE_MS,
            patched_by: HashMap::new(),
            rollbacks_issued: HashSet::new(),
            monitor: None,
            history: None,
        })
    }

    /// Records metric samples, scores, verdicts and control-topic messages
    /// in `history` from now on (the caller flushes it).
    pub fn with_history(mut self, history: SharedHistory) -> ScoringStage {
        self.history = Some(history);
        self
    }

    /// Feeds `monitor` (dashboard and Prometheus series) from now on.
    pub fn with_monitor(mut self, monitor: Monitor) -> ScoringStage {
        monitor
            .telemetry()
            .model_fallback(self.model_fallback.is_some());
        monitor.set_risk_threshold(self.failure_act_at);
        self.monitor = Some(monitor);
        self
    }

    /// The fleet's noise measured so far on the unpatched VMs.
    pub fn noise(&self) -> Option<bellwether_schemas::FleetNoise> {
        self.noise.noise()
    }

    /// Counters of the scorer (rows, late rows, windows).
    pub fn stats(&self) -> ScorerStats {
        self.scorer.stats()
    }

    /// The scorer's event time (watermark), ms since the epoch.
    pub fn watermark(&self) -> Option<i64> {
        self.scorer.watermark()
    }

    /// Why the configured model is not in use (the statistical fallback
    /// replaced it), if it is not.
    pub fn model_fallback(&self) -> Option<&str> {
        self.model_fallback.as_deref()
    }

    /// The forecaster's name.
    pub fn forecaster_name(&self) -> &str {
        self.scorer.forecaster_name()
    }

    /// Loads the failure model `config` names again, when that is a models
    /// folder whose promoted bundle changed since (a retraining promoted a
    /// new one, or an operator went back to an earlier one): from the next
    /// window on, risks are that model's. Returns the new model's name.
    /// A bundle that cannot be used leaves the model in use as it is.
    pub fn reload_promoted_failure_model(&mut self, config: &Config) -> Option<String> {
        let folder = std::path::Path::new(&config.failure.model);
        if !folder.is_dir() {
            return None;
        }
        let failure = crate::model::choose_failure_model(config);
        let model = failure.model?;
        if self.failure_model_name() == Some(model.name.as_str()) {
            return None;
        }
        let name = model.name.clone();
        self.scorer.set_failure_model(Some(model)).ok()?;
        self.failure_act_at = failure.act_at;
        if let Some(m) = &self.monitor {
            m.set_risk_threshold(failure.act_at);
        }
        Some(name)
    }

    /// The failure model's name, if one is loaded.
    pub fn failure_model_name(&self) -> Option<&str> {
        self.scorer.failure_model().map(|m| m.name.as_str())
    }

    /// Learns of a patch or rollback from the control topic.
    pub fn on_control(&mut self, message: &ControlMessage) {
        match message {
            ControlMessage::Patch(cmd) => {
                self.scorer
                    .patched(&cmd.vm_id, cmd.issued_at.0, self.settle_ms);
                self.patched_by.insert(
                    cmd.vm_id.clone(),
                    Patched {
                        rollout_id: cmd.rollout_id.clone(),
                        wave: cmd.wave,
                    },
                );
                self.judge_from
                    .insert(cmd.vm_id.clone(), cmd.issued_at.0 + self.settle_ms);
                self.health.remove(&cmd.vm_id);
            }
            ControlMessage::Rollback(cmd) => {
                self.scorer
                    .rolled_back(&cmd.vm_id, cmd.issued_at.0, self.settle_ms);
                self.patched_by.remove(&cmd.vm_id);
                self.rollbacks_issued.insert(cmd.command_id.clone());
            }
            ControlMessage::WindowReport(_)
            | ControlMessage::Approval(_)
            | ControlMessage::Execution(_)
            | ControlMessage::Outcome(_)
            | ControlMessage::Manual(_)
            | ControlMessage::Submission(_)
            | ControlMessage::ApprovalRules(_) => {}
            // Criticality of VMs registered later: applied in topic order.
            ControlMessage::Inventory(u) => {
                if let Err(e) = Arc::make_mut(&mut self.inventory).apply(&u.change) {
                    tracing::warn!("inventory change not applied: {e}");
                }
                for vm in self.inventory.vms() {
                    self.scorer.set_cohorts(&vm.id, &self.judge.cohorts_of(vm));
                }
            }
        }
    }

    /// One turn: control first (so patches are known before their metrics),
    /// then metrics, then whatever the watermark releases; results are
    /// flushed before the sources commit.
    pub fn step(
        &mut self,
        metrics: &mut dyn MetricSource,
        control_in: &mut dyn MessageSource<ControlMessage>,
        control_out: &mut dyn MessageSink<ControlMessage>,
        scores_out: &mut dyn MessageSink<ScoreRecord>,
    ) -> Result<(), ScoringError> {
        let started = std::time::Instant::now();
        let messages = control_in.poll(usize::MAX)?;
        let offsets = control_in.last_offsets();
        for (i, message) in messages.iter().enumerate() {
            self.on_control(message);
            if let Some(m) = &self.monitor {
                m.on_control(message);
            }
            if let Some(h) = &self.history {
                lock(h).control(message, offsets.get(i).copied());
            }
        }
        for batch in metrics.poll()? {
            if let Some(h) = &self.history {
                lock(h).samples(&batch.samples)?;
            }
            self.scorer.process_batch(batch.input, &batch.samples)?;
        }
        for (input, idle) in metrics.idle_changes() {
            self.scorer.set_idle(input, idle);
        }
        // One window at a time: a rollback decided in one window applies
        // before the next is scored.
        let mut windows = 0;
        while let Some(window) = self.scorer.next_window()? {
            windows += 1;
            if let Some(m) = &self.monitor {
                m.telemetry().model_time(window.model_time);
            }
            let (scores, control) = self.decide(&window);
            for score in scores {
                if let Some(m) = &self.monitor {
                    m.on_score(&score);
                }
                if let Some(h) = &self.history {
                    lock(h).score(&score);
                }
                scores_out.send(score)?;
            }
            for message in control {
                control_out.send(message)?;
            }
        }
        scores_out.flush()?;
        control_out.flush()?;
        if let Some(m) = &self.monitor {
            let latency = started.elapsed();
            for _ in 0..windows {
                m.telemetry().window_latency(latency);
            }
            m.publish();
        }
        if let Some(h) = &self.history {
            lock(h).advance(self.scorer.watermark())?;
        }
        metrics.commit(self.scorer.watermark())?;
        control_in.commit()?;
        Ok(())
    }

    /// Scores, rollback commands and the window report for one scored window.
    fn decide(&mut self, window: &ScoredWindow) -> (Vec<ScoreRecord>, Vec<ControlMessage>) {
        let forecaster = self.scorer.forecaster_name().to_string();
        let window_end = EventTime(window.range.end_ms);
        let mut scores = Vec::new();
        let mut control = Vec::new();
        let mut report = WindowReport {
            window_start: EventTime(window.range.start_ms),
            window_end,
            vms_scored: 0,
            patched_scored: 0,
            anomalous: Vec::new(),
            missing: Vec::new(),
            reported: Vec::new(),
            late_rows_total: self.scorer.stats().late_rows,
            noise: {
                self.noise.add(window);
                self.noise.noise()
            },
        };
        // The judged VMs of each rollout, for the wave tests.
        let mut waves = WaveGroups::default();
        for vm in 0..window.vm_count() {
            let vm_id = &window.vm_ids[vm];
            let has_data = window.has_data.value(vm);
            report.vms_scored += has_data as usize;
            let Some(Patched { rollout_id, wave }) = self.patched_by.get(vm_id.as_ref()).cloned()
            else {
                continue;
            };
            if let Some(lost) = self.health_check_lost(vm, &rollout_id, window) {
                control.push(lost);
            }
            if !has_data {
                report.missing.push(vm_id.to_string());
                continue;
            }
            report.patched_scored += 1;
            report.reported.push(vm_id.to_string());
            if !window.judged.value(vm) {
                continue;
            }
            waves.add(vm, &rollout_id, wave);
            let score = window.score_record(vm, &forecaster, Some(&rollout_id));
            if score.anomalous || self.predicted_failure(&score).is_some() {
                report.anomalous.push(vm_id.to_string());
                let command_id = CommandId::rollback(&rollout_id, vm_id);
                if self.rollbacks_issued.insert(command_id.clone()) {
                    let command =
                        self.rollback_command(command_id, &rollout_id, &score, window_end);
                    // Applied now, not when read back from the control
                    // topic: what follows must not depend on how soon that is.
                    self.scorer.rolled_back(vm_id, window_end.0, self.settle_ms);
                    self.patched_by.remove(vm_id.as_ref());
                    control.push(ControlMessage::Rollback(command));
                }
            }
            scores.push(score);
        }
        control.extend(self.judge_waves(window, &waves, &scores));
        control.push(ControlMessage::WindowReport(report));
        (scores, control)
    }

    /// A `failed` outcome (source: health check) when a patched VM, past
    /// its settle time, has gone (nearly) silent for `health_check_windows`
    /// windows in a row: it sent less than half its usual samples, or none. Once per silence.
    fn health_check_lost(
        &mut self,
        vm: usize,
        rollout_id: &str,
        window: &ScoredWindow,
    ) -> Option<ControlMessage> {
        let vm_id = window.vm_ids[vm].as_ref();
        let needed = self.health_check_windows;
        let settled = self
            .judge_from
            .get(vm_id)
            .is_some_and(|from| window.range.start_ms >= *from);
        if needed == 0 || !settled {
            return None;
        }
        let samples = window.vm_samples.value(vm);
        // Each window, for every patched VM: allocate its key only once.
        if !self.health.contains_key(vm_id) {
            self.health
                .insert(vm_id.to_string(), HealthState::default());
        }
        let state = self.health.get_mut(vm_id)?;
        let silent = samples == 0 || samples * 2 < state.usual_samples;
        if !silent {
            // Up at once, down slowly: a window cut short by a gap does not
            // lower the bar for the next one.
            state.usual_samples = if samples >= state.usual_samples {
                samples
            } else {
                (state.usual_samples * 15 + samples) / 16
            };
            state.silent_windows = 0;
            return None;
        }
        state.silent_windows = state.silent_windows.saturating_add(1);
        (state.silent_windows == needed).then(|| {
            ControlMessage::Outcome(Outcome {
                vm_id: vm_id.to_string(),
                rollout_id: Some(rollout_id.to_string()),
                kind: OutcomeKind::Failed,
                source: OutcomeSource::HealthCheck,
                at: EventTime(window.range.start_ms),
                command_id: None,
                note: format!("(nearly) no metrics for {needed} window(s) while patched"),
            })
        })
    }

    /// The score's failure risk when it reaches the threshold acted on.
    fn predicted_failure<'a>(&self, score: &'a ScoreRecord) -> Option<&'a FailureRisk> {
        let t = self.failure_act_at?;
        score.failure.as_ref().filter(|f| f.risk >= t)
    }

    /// Whether `vm_id` is critical, and its criticality rank (1 for a VM
    /// not in the inventory): the first part of a rollback's priority.
    fn criticality(&self, vm_id: &str) -> (bool, u32) {
        let vm = self.inventory.vm(vm_id);
        (
            vm.is_some_and(|v| v.is_critical()),
            vm.map_or(1, |v| v.criticality as u32),
        )
    }

    fn rollback_command(
        &self,
        command_id: CommandId,
        rollout_id: &str,
        score: &ScoreRecord,
        at: EventTime,
    ) -> RollbackCommand {
        let (critical, rank) = self.criticality(&score.vm_id);
        let predicted = self.predicted_failure(score);
        let evidence: Vec<MetricVerdict> = score
            .verdicts
            .iter()
            .filter(|v| {
                v.anomalous
                    || predicted
                        .is_some_and(|f| f.drivers.iter().any(|d| d.feature.starts_with(&v.metric)))
            })
            .cloned()
            .collect();
        let mut summary = evidence.iter().map(describe).collect::<Vec<_>>().join("; ");
        if let Some(f) = predicted {
            summary = format!("{}; {summary}", describe_risk(f));
        }
        // Criticality first, then how bad it is: the worse of the anomaly
        // score and the failure risk, in [0, 1] → 0..=999.
        let badness = score
            .anomaly_score
            .max(score.failure.as_ref().map_or(0.0, |f| f.risk));
        RollbackCommand {
            command_id,
            rollout_id: rollout_id.to_string(),
            vm_id: score.vm_id.clone(),
            critical,
            priority: rank * 1000 + (badness.clamp(0.0, 0.999) * 1000.0) as u32,
            reason: RollbackReason {
                trigger: if predicted.is_some() {
                    RollbackTrigger::PredictedFailure
                } else {
                    RollbackTrigger::Anomaly
                },
                summary,
                evidence,
                failure: score.failure.clone(),
                wave: None,
            },
            issued_at: at,
        }
    }
}

/// A predicted failure in one line: `predicted failure: risk 0.97 within
/// 30 min (memory_percent level 91.2, memory_percent trend +2.9)`.
pub fn describe_risk(f: &FailureRisk) -> String {
    let drivers = f
        .drivers
        .iter()
        .map(|d| format!("{} {:+.2}", d.feature, d.value))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "predicted failure: risk {:.2} within {} min ({drivers})",
        f.risk, f.horizon_minutes
    )
}

/// One line of evidence: `response_time_ms 212.4 vs 131.0 expected (+9.8σ,
/// threshold 5.0σ); unpatched peers (tags.role=web: 41 VMs) +0.4σ in the
/// same window; vs peers +9.4σ`.
pub fn describe(v: &MetricVerdict) -> String {
    let own = format!(
        "{} {:.2} vs {:.2} expected ({:+.1}σ, threshold {:.1}σ)",
        v.metric, v.observed, v.forecast, v.deviation, v.threshold
    );
    match &v.peers {
        Some(p) => {
            let test = match (p.mann_whitney_p, p.shift_sigma) {
                (Some(pv), Some(shift)) => format!(
                    "; Mann-Whitney p={pv:.1e} over {} window(s), shift {shift:+.1}σ",
                    p.test_windows
                ),
                _ => String::new(),
            };
            format!(
                "{own}; unpatched peers ({}: {} VMs) {:+.1}σ in the same window; vs peers {:+.1}σ{test}",
                p.cohort, p.control_vms, p.peer_deviation, p.vs_peers
            )
        }
        None => format!("{own}; no unpatched peers to compare with"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::failure_bundle::{BUILTIN, FailureBundle};

    #[test]
    fn a_newly_promoted_failure_model_is_loaded_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let builtin: FailureBundle = serde_json::from_str(BUILTIN).unwrap();
        for v in ["a", "b"] {
            let mut b = builtin.clone();
            b.version = v.into();
            b.threshold = if v == "a" { 0.9 } else { 0.8 };
            b.save(&dir.path().join(format!("failure-{v}.json")))
                .unwrap();
        }
        crate::model::versions::promote(dir.path(), "failure-a.json").unwrap();
        let mut config = crate::config::load(None).unwrap();
        config.failure.model = dir.path().to_string_lossy().into_owned();
        let mut stage =
            ScoringStage::new(&config, Arc::new(Inventory::new(vec![], vec![]))).unwrap();
        assert_eq!(stage.failure_model_name(), Some("failure-a"));
        assert_eq!(stage.reload_promoted_failure_model(&config), None);
        crate::model::versions::promote(dir.path(), "failure-b.json").unwrap();
        assert_eq!(
            stage.reload_promoted_failure_model(&config).as_deref(),
            Some("failure-b")
        );
        assert_eq!(stage.failure_model_name(), Some("failure-b"));
        assert_eq!(stage.failure_act_at, Some(0.8));
        // A built-in or file model is not reloaded.
        config.failure.model = "builtin".into();
        assert_eq!(stage.reload_promoted_failure_model(&config), None);
    }

    #[test]
    fn made_up_vm_ids_take_no_more_than_the_limit_and_never_the_inventorys_place() {
        use bellwether_operators::operator::Operator;
        let mut config = crate::config::load(None).unwrap();
        config.window.max_unlisted_vms = 100;
        let mut scorer = CanaryScorer::new(
            scorer_config(&config).unwrap(),
            crate::model::choose_forecaster(&config).forecaster,
        )
        .unwrap();
        scorer.set_cohorts("web-0001", &[]);
        // 10,000 VM ids nobody listed, then the inventory's VM.
        let mut batch = bellwether_schemas::wire::SampleBuilder::new();
        for i in 0..10_000 {
            batch.append(
                &format!("made-up-{i}"),
                1_796_000_000_000,
                "cpu_percent",
                5.0,
            );
        }
        batch.append("web-0001", 1_796_000_000_000, "cpu_percent", 5.0);
        scorer.process_batch(0, &batch.finish()).unwrap();
        let stats = scorer.stats();
        assert_eq!(stats.rows_unlisted_dropped, 9_900);
        // The inventory's VM was scored: 100 made-up ids and it took slots.
        assert_eq!(stats.rows_in, 10_001);
    }
}
