//! The canary scorer: windows, baselines, forecast, residuals and verdicts
//! fused into one operator.
//!
//! Feed it metric sample batches with [`Operator::process_batch`]; tell it
//! when VMs are patched and rolled back; [`Operator::on_watermark`] returns a
//! [`ScoredWindow`] for every window event time has passed. VMs learn
//! (baseline and forecaster) while they run unpatched, and are judged against
//! their frozen pre-patch behaviour once patched and settled.

use crate::OperatorError;
use crate::baseline::{BaselineConfig, Baselines};
use crate::column::f64_column;
use crate::failure::{FailureFeatures, FailureModel};
use crate::forecast::{Forecaster, TimeRange};
use crate::operator::{InputId, Operator};
use crate::peer_test::{PeerTestInputs, RecentWindows, peer_test};
use crate::peers::{NO_COHORT, PeerControl, PeerInputs, peer_control};
use crate::residual::{deviations, window_residuals};
use crate::series::{NO_VM, SeriesIndex, UNSCORED};
use crate::surprise::{Surprise, SurpriseConfig};
use crate::verdict::{ScoreRuns, VerdictRules, judge, score_of};
use crate::watermark::WatermarkTracker;
use crate::window::{ClosedWindow, SKIP, WindowAggregator, WindowSpec};
use arrow::array::{Array, BooleanArray, Float64Array, RecordBatch, UInt32Array};
use bellwether_schemas::metric::sample_columns;
use bellwether_schemas::{
    Direction, EventTime, FailureRisk, MetricVerdict, PeerEvidence, ScoreRecord,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Settings of the scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerConfig {
    /// Scored metrics, in slot order.
    pub metrics: Vec<String>,
    /// How each metric is judged (same order as `metrics`).
    pub rules: VerdictRules,
    /// Smallest residual spread per metric, in the metric's unit.
    pub spread_floor: Vec<f64>,
    /// Window shape.
    pub window: WindowSpec,
    /// How baselines learn.
    pub baseline: BaselineConfig,
    /// Windows kept open at most (bounds memory against bad clocks).
    pub max_open_windows: usize,
    /// How patched VMs are set against their unpatched peers.
    pub peers: PeerSettings,
    /// VMs not registered (not in the inventory) scored at most; rows of
    /// more are dropped and counted.
    pub max_unlisted_vms: usize,
    /// How a window's temporal surprise is judged (a level never seen, an
    /// unlikely run of errors): part of every VM's anomaly score.
    pub surprise: SurpriseConfig,
}

/// How patched VMs are set against their unpatched peers.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSettings {
    /// False: every VM is judged on its own forecast alone.
    pub enabled: bool,
    /// Names of the cohort levels, narrowest first (e.g. `tags.role,
    /// region`, then `tags.role`); the whole fleet is the last level.
    pub levels: Vec<String>,
    /// Control VMs a cohort needs before it is used (else the next level).
    pub min_control: usize,
    /// Windows an unpatched VM stops learning at most while its whole
    /// cohort moved together (a fleet-wide event is not its usual
    /// behaviour, and patched VMs do not learn it either); past that, a
    /// lasting change is learned.
    pub hold_windows: u16,
}

/// Windows of every series the second opinion can look back on (an hour
/// of five-minute windows).
const RECENT_WINDOWS: usize = 12;

/// The cohort's common move, in a VM's sigmas, past which the VM does not
/// learn from the window (a cohort's median of normal noise moves well under 1σ).
const HOLD_SIGMA: f64 = 3.0;

impl PeerSettings {
    /// No peer control.
    pub fn off() -> PeerSettings {
        PeerSettings {
            enabled: false,
            levels: Vec::new(),
            min_control: 1,
            hold_windows: 0,
        }
    }
}

/// Label of the last cohort level.
pub const WHOLE_FLEET: &str = "whole fleet";

/// Counters of what the scorer has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScorerStats {
    /// Sample rows received.
    pub rows_in: u64,
    /// Rows of metrics the scorer does not score.
    pub rows_unscored: u64,
    /// Rows whose value was NaN or infinite, or dated before 1970.
    pub rows_invalid: u64,
    /// Rows of VMs past the limit of VMs not in the inventory, dropped.
    pub rows_unlisted_dropped: u64,
    /// Rows that arrived after their window closed (counted, not merged).
    pub late_rows: u64,
    /// Rows too far ahead of event time to be believed.
    pub future_rows: u64,
    /// Windows closed and scored.
    pub windows_closed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum VmPhase {
    /// Unpatched: learns from windows starting at or after `from_ms`.
    Learning { from_ms: i64 },
    /// Patched at `since_ms`; judged from windows starting at `judge_from_ms`.
    Patched { since_ms: i64, judge_from_ms: i64 },
}

/// A window's peer control, and each judged VM's cohort label (None: the
/// whole fleet).
pub type WindowPeers = (Arc<PeerControl>, Vec<Option<Arc<str>>>);

/// One scored window: per-series and per-VM arrays in slot order.
#[derive(Debug, Clone)]
pub struct ScoredWindow {
    /// The window.
    pub range: TimeRange,
    /// Scored metrics, in slot order.
    pub metrics: Arc<Vec<String>>,
    /// VM ids, in slot order.
    pub vm_ids: Vec<Arc<str>>,
    /// Per series: observed window mean.
    pub observed: Float64Array,
    /// Per series: forecast.
    pub forecast: Float64Array,
    /// Per series: residual RMSE over the window's samples.
    pub residual_rmse: Float64Array,
    /// Per series: deviation in sigmas.
    pub deviation: Float64Array,
    /// Per series: the baseline level.
    pub baseline_mean: Float64Array,
    /// Per series: anomalous.
    pub anomalous: BooleanArray,
    /// Per series: temporal surprise in [0, 1], 0.5 at the threshold
    /// ([`crate::surprise`]); null without data or history.
    pub surprise: Float64Array,
    /// Per VM: under judgement (patched, settled, baseline ready).
    pub judged: BooleanArray,
    /// Per VM: sent at least one scored sample in the window.
    pub has_data: BooleanArray,
    /// Per VM: samples received in the window, all metrics together.
    pub vm_samples: UInt32Array,
    /// Per VM: any metric anomalous.
    pub vm_anomalous: BooleanArray,
    /// Per VM: RMS deviation in sigmas.
    pub vm_rmse: Float64Array,
    /// Per VM: anomaly score in [0, 1], 0.5 at the threshold: the larger of
    /// its worst metric's deviation against its threshold (the least over
    /// the run of windows a verdict needs) and its worst metric's surprise
    /// (against peers too, where it has them).
    pub vm_score: Float64Array,
    /// Per VM: predicted failure risk in [0, 1] (null without a failure model).
    pub vm_risk: Float64Array,
    /// Per VM: p-value of its worst metric (null where not judged).
    pub vm_p_value: Float64Array,
    /// The peer control of the judged VMs, and each one's cohort label.
    pub peers: Option<WindowPeers>,
    /// Time the forecaster took (forecast and update) for this window.
    pub model_time: std::time::Duration,
    rules: VerdictRules,
    /// The failure model and this window's features (`vm × width`), to
    /// explain each risk on demand.
    failure: Option<(Arc<FailureModel>, Arc<Vec<f32>>)>,
}

impl ScoredWindow {
    /// Number of VMs in the window.
    pub fn vm_count(&self) -> usize {
        self.vm_ids.len()
    }

    /// The rules the window was judged by.
    pub fn rules(&self) -> &VerdictRules {
        &self.rules
    }

    /// What a [`crate::wave::WavePool`] takes from this window (None
    /// without peer control).
    pub fn wave_inputs(&self) -> Option<crate::wave::WaveInputs<'_>> {
        let (control, cohorts) = self.peers.as_ref()?;
        Some(crate::wave::WaveInputs {
            peers: control,
            cohorts,
            baseline_mean: &self.baseline_mean,
            metrics: self.metrics.len(),
        })
    }

    /// The per-metric verdicts of VM slot `vm` (metrics with data and a forecast).
    pub fn verdicts(&self, vm: usize) -> Vec<MetricVerdict> {
        let m = self.metrics.len();
        (0..m)
            .filter_map(|metric| {
                let i = vm * m + metric;
                if self.deviation.is_null(i) {
                    return None;
                }
                let rule = &self.rules.metrics[metric];
                let peers = self.peers.as_ref().and_then(|(control, cohorts)| {
                    control.vs_peers.is_valid(i).then(|| PeerEvidence {
                        cohort: cohorts[vm].as_deref().unwrap_or(WHOLE_FLEET).to_string(),
                        control_vms: control.control_vms[vm],
                        peer_deviation: control.peer_deviation.value(i),
                        vs_peers: control.vs_peers.value(i),
                        mann_whitney_p: control.test_p.is_valid(i).then(|| control.test_p.value(i)),
                        shift_sigma: control
                            .test_shift
                            .is_valid(i)
                            .then(|| control.test_shift.value(i)),
                        test_windows: control.test_windows[vm],
                    })
                });
                Some(MetricVerdict {
                    metric: self.metrics[metric].clone(),
                    observed: self.observed.value(i),
                    forecast: self.forecast.value(i),
                    residual_rmse: self.residual_rmse.value(i),
                    baseline_mean: self.baseline_mean.value(i),
                    deviation: self.deviation.value(i),
                    threshold: rule.threshold_sigma,
                    direction: rule.direction,
                    anomalous: self.anomalous.value(i),
                    peers,
                })
            })
            .collect()
    }

    /// The score record of VM slot `vm`.
    pub fn score_record(
        &self,
        vm: usize,
        forecaster: &str,
        rollout_id: Option<&str>,
    ) -> ScoreRecord {
        ScoreRecord {
            vm_id: self.vm_ids[vm].to_string(),
            window_start: EventTime(self.range.start_ms),
            window_end: EventTime(self.range.end_ms),
            rollout_id: rollout_id.map(str::to_string),
            forecaster: forecaster.to_string(),
            residual_rmse: if self.vm_rmse.is_valid(vm) {
                self.vm_rmse.value(vm)
            } else {
                f64::NAN
            },
            anomaly_score: if self.vm_score.is_valid(vm) {
                self.vm_score.value(vm)
            } else {
                0.0
            },
            anomalous: self.vm_anomalous.value(vm),
            verdicts: self.verdicts(vm),
            failure: self.failure_risk(vm),
        }
    }

    /// VM slot `vm`'s predicted failure risk with its three strongest
    /// drivers, when a failure model is loaded.
    pub fn failure_risk(&self, vm: usize) -> Option<FailureRisk> {
        let (model, features) = self.failure.as_ref()?;
        if self.vm_risk.is_null(vm) {
            return None;
        }
        let width = model.weights.len();
        Some(FailureRisk {
            risk: self.vm_risk.value(vm),
            horizon_minutes: model.horizon_minutes,
            model: model.name.clone(),
            drivers: model.drivers(&features[vm * width..(vm + 1) * width], 3),
        })
    }
}

/// The fused scoring operator.
///
/// ```
/// use bellwether_operators::baseline::BaselineConfig;
/// use bellwether_operators::forecast::seasonal::{SeasonalRegression, SeasonalRegressionConfig};
/// use bellwether_operators::scorer::{CanaryScorer, PeerSettings, ScorerConfig};
/// use bellwether_operators::surprise::SurpriseConfig;
/// use bellwether_operators::verdict::{MetricRule, VerdictRules};
/// use bellwether_schemas::metric::Direction;
/// use bellwether_operators::window::WindowSpec;
/// use bellwether_operators::Operator;
/// use bellwether_schemas::wire::SampleBuilder;
///
/// let config = ScorerConfig {
///     metrics: vec!["cpu_percent".into()],
///     rules: VerdictRules {
///         metrics: vec![MetricRule { direction: Direction::Increase, threshold_sigma: 4.0, min_change: 5.0 }],
///         consecutive_windows: 1,
///         false_discovery_rate: None,
///         peer_test_p: None,
///     },
///     spread_floor: vec![0.5],
///     window: WindowSpec::tumbling(60_000, 0).unwrap(),
///     baseline: BaselineConfig { half_life_windows: 60.0, min_windows: 5 },
///     max_open_windows: 16,
///     peers: PeerSettings::off(),
///     max_unlisted_vms: 10,
///     surprise: SurpriseConfig::default(),
/// };
/// let forecaster = SeasonalRegression::new(SeasonalRegressionConfig {
///     harmonics: 0,
///     forgetting_half_life_windows: 60.0,
///     min_windows: 3,
/// });
/// let mut scorer = CanaryScorer::new(config, Box::new(forecaster)).unwrap();
/// let minute = 60_000;
/// // An hour of CPU around 40%; then the VM is patched and runs at 90%.
/// scorer.patched("web-1", 60 * minute, 0);
/// let mut caught = None;
/// for m in 0..70 {
///     let cpu = if m < 60 { 40.0 + (m % 3) as f64 } else { 90.0 };
///     let mut batch = SampleBuilder::new();
///     batch.append("web-1", m * minute + 1, "cpu_percent", cpu);
///     scorer.process_batch(0, &batch.finish()).unwrap();
///     for window in scorer.on_watermark().unwrap() {
///         if caught.is_none() && window.vm_anomalous.value(0) {
///             caught = Some(window.range.start_ms / minute);
///         }
///     }
/// }
/// assert_eq!(caught, Some(60), "the first patched minute is anomalous");
/// ```
pub struct CanaryScorer {
    config: ScorerConfig,
    metrics: Arc<Vec<String>>,
    index: SeriesIndex,
    windows: WindowAggregator,
    watermark: WatermarkTracker,
    baselines: Baselines,
    surprise: Surprise,
    /// Each metric's bad direction, in slot order.
    directions: Vec<Direction>,
    /// Each VM's anomaly score over a verdict's run of windows.
    runs: ScoreRuns,
    forecaster: Box<dyn Forecaster>,
    failure: FailureFeatures,
    failure_model: Option<Arc<FailureModel>>,
    /// Write every VM's failure features each window even without a
    /// failure model (for training).
    keep_failure_features: bool,
    phases: Vec<VmPhase>,
    streak: Vec<u16>,
    /// Per series: windows in a row an unpatched VM did not learn because
    /// its cohort moved together.
    held: Vec<u16>,
    /// Every series' last windows, for the second opinion.
    recent: RecentWindows,
    stats: ScorerStats,
    vm_map: Vec<u32>,
    metric_map: Vec<u16>,
    slots: Vec<u32>,
    /// Windows the watermark closed that are not scored yet.
    closed: VecDeque<ClosedWindow>,
    /// Per VM slot and cohort level: the VM's cohort id ([`NO_COHORT`] unknown).
    cohorts: Vec<u32>,
    /// Per cohort level: ids of the cohort labels, and the labels by id.
    cohort_ids: Vec<HashMap<Arc<str>, u32>>,
    cohort_labels: Vec<Vec<Arc<str>>>,
}

impl CanaryScorer {
    /// A scorer with no history, forecasting with `forecaster`.
    pub fn new(
        config: ScorerConfig,
        forecaster: Box<dyn Forecaster>,
    ) -> Result<CanaryScorer, OperatorError> {
        let m = config.metrics.len();
        if m == 0 || config.rules.metrics.len() != m || config.spread_floor.len() != m {
            return Err(OperatorError::InvalidSetting {
                setting: "metrics",
                reason: format!(
                    "{m} metrics, {} rules and {} spread floors: need one rule and one floor per metric, and at least one metric",
                    config.rules.metrics.len(),
                    config.spread_floor.len()
                ),
            });
        }
        let mut index = SeriesIndex::new(&config.metrics);
        index.set_max_unlisted(config.max_unlisted_vms);
        Ok(CanaryScorer {
            metrics: Arc::new(config.metrics.clone()),
            index,
            windows: WindowAggregator::new(config.window, config.max_open_windows),
            watermark: WatermarkTracker::default(),
            baselines: Baselines::new(config.baseline),
            surprise: Surprise::new(config.surprise),
            directions: config.rules.metrics.iter().map(|r| r.direction).collect(),
            runs: ScoreRuns::new(config.rules.consecutive_windows),
            forecaster,
            failure: FailureFeatures::new(
                config.rules.metrics.iter().map(|r| r.direction).collect(),
            ),
            failure_model: None,
            keep_failure_features: false,
            phases: Vec::new(),
            streak: Vec::new(),
            held: Vec::new(),
            recent: RecentWindows::new(RECENT_WINDOWS),
            stats: ScorerStats::default(),
            vm_map: Vec::new(),
            metric_map: Vec::new(),
            slots: Vec::new(),
            closed: VecDeque::new(),
            cohorts: Vec::new(),
            cohort_ids: vec![HashMap::new(); config.peers.levels.len()],
            cohort_labels: vec![Vec::new(); config.peers.levels.len()],
            config,
        })
    }

    /// Predicts every VM's failure risk with `model` from now on.
    pub fn with_failure_model(mut self, model: FailureModel) -> Result<Self, OperatorError> {
        model.check_fits(&self.config.metrics)?;
        self.failure_model = Some(Arc::new(model));
        Ok(self)
    }

    /// Replaces the failure model (a newly promoted one) from the next
    /// window on; `None` stops predicting.
    pub fn set_failure_model(&mut self, model: Option<FailureModel>) -> Result<(), OperatorError> {
        if let Some(m) = &model {
            m.check_fits(&self.config.metrics)?;
        }
        self.failure_model = model.map(Arc::new);
        Ok(())
    }

    /// The failure model in use, if any.
    pub fn failure_model(&self) -> Option<&FailureModel> {
        self.failure_model.as_deref()
    }

    /// Writes every VM's failure features each window even without a
    /// failure model, for [`CanaryScorer::failure_features`] to read
    /// (training). Without a model and without this, only the features'
    /// history is kept, which is much cheaper.
    pub fn keep_failure_features(mut self) -> Self {
        self.keep_failure_features = true;
        self
    }

    /// Every VM's failure-pattern features after the last scored window
    /// (what the failure model reads; training data is taken from here):
    /// written when a failure model is loaded or
    /// [`CanaryScorer::keep_failure_features`] was called, else empty.
    pub fn failure_features(&self) -> &FailureFeatures {
        &self.failure
    }

    /// Name of the forecaster in use.
    pub fn forecaster_name(&self) -> &str {
        self.forecaster.name()
    }

    /// Counters so far.
    pub fn stats(&self) -> ScorerStats {
        let counters = self.windows.counters();
        ScorerStats {
            late_rows: counters.late_rows,
            future_rows: counters.future_rows,
            ..self.stats
        }
    }

    /// The current watermark (ms), if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark.watermark()
    }

    /// The series index (VM ids and metrics seen).
    pub fn series(&self) -> &SeriesIndex {
        &self.index
    }

    /// Sets the cohort `vm_id` belongs to at each level (one label per
    /// level of [`PeerSettings::levels`], e.g. `tags.role=web, region=eu-west-1`;
    /// None: unknown at that level). A VM never given its cohorts is
    /// compared with the whole fleet only.
    pub fn set_cohorts(&mut self, vm_id: &str, labels: &[Option<String>]) {
        let vm = self.register_vm(vm_id);
        let levels = self.config.peers.levels.len();
        for level in 0..levels {
            let id = match labels.get(level).and_then(Option::as_deref) {
                None => NO_COHORT,
                Some(label) => {
                    let ids = &mut self.cohort_ids[level];
                    match ids.get(label) {
                        Some(&id) => id,
                        None => {
                            let id = self.cohort_labels[level].len() as u32;
                            let label: Arc<str> = label.into();
                            ids.insert(label.clone(), id);
                            self.cohort_labels[level].push(label);
                            id
                        }
                    }
                }
            };
            self.cohorts[vm * levels + level] = id;
        }
    }

    /// Records that `vm_id` was patched at `at_ms`: its baseline and forecast
    /// freeze as they were before, and it is judged from `at_ms + settle_ms`.
    pub fn patched(&mut self, vm_id: &str, at_ms: i64, settle_ms: i64) {
        let vm = self.register_vm(vm_id);
        self.phases[vm] = VmPhase::Patched {
            since_ms: at_ms,
            judge_from_ms: at_ms + settle_ms,
        };
    }

    /// Records that `vm_id` was rolled back at `at_ms`: no longer judged, it
    /// learns again from `at_ms + settle_ms`, once it has recovered.
    pub fn rolled_back(&mut self, vm_id: &str, at_ms: i64, settle_ms: i64) {
        let vm = self.register_vm(vm_id);
        self.phases[vm] = VmPhase::Learning {
            from_ms: at_ms + settle_ms,
        };
        let m = self.index.metric_count();
        self.streak[vm * m..(vm + 1) * m].fill(0);
    }

    /// Scores the earliest window the watermark has closed, or None when
    /// none is left. One at a time, so a caller can act on a window (roll a
    /// VM back, say) before the next one is scored: the outcome does not
    /// depend on how many windows one watermark advance releases.
    pub fn next_window(&mut self) -> Result<Option<ScoredWindow>, OperatorError> {
        if self.closed.is_empty()
            && let Some(watermark) = self.watermark.watermark()
        {
            self.closed.extend(self.windows.close_until(watermark));
        }
        match self.closed.pop_front() {
            Some(closed) => self.score(closed).map(Some),
            None => Ok(None),
        }
    }

    /// True when `vm_id` is patched (and not rolled back).
    pub fn is_patched(&self, vm_id: &str) -> bool {
        self.index
            .vm_slot(vm_id)
            .is_some_and(|vm| matches!(self.phases[vm as usize], VmPhase::Patched { .. }))
    }

    fn register_vm(&mut self, vm_id: &str) -> usize {
        let vm = self.index.vm_slot_or_insert(vm_id) as usize;
        self.grow();
        vm
    }

    fn grow(&mut self) {
        let series = self.index.series_count();
        self.phases.resize(
            self.index.vm_count(),
            VmPhase::Learning { from_ms: i64::MIN },
        );
        self.streak.resize(series, 0);
        self.held.resize(series, 0);
        self.cohorts.resize(
            self.index.vm_count() * self.config.peers.levels.len(),
            NO_COHORT,
        );
        self.baselines.ensure_series(series);
        self.surprise.ensure_series(series);
        self.windows.ensure_series(series);
    }

    fn score(&mut self, closed: ClosedWindow) -> Result<ScoredWindow, OperatorError> {
        let m = self.index.metric_count();
        let series = self.index.series_count();
        let range = TimeRange {
            start_ms: closed.start_ms,
            end_ms: closed.end_ms,
        };
        let has_data = BooleanArray::from_iter(
            closed
                .sums
                .count
                .chunks(m)
                .map(|c| Some(c.iter().any(|&n| n > 0))),
        );
        let vm_samples = UInt32Array::from_iter_values(
            closed.sums.count.chunks(m).map(|c| c.iter().sum::<u32>()),
        );
        let model_started = std::time::Instant::now();
        let forecast = self.forecaster.forecast(range, series);
        let mut model_time = model_started.elapsed();
        let residuals = window_residuals(closed.sums, &forecast)?;
        let mut spreads = self.baselines.spreads(m, &self.config.spread_floor);
        if let Some(scale) = self.forecaster.interval_scale() {
            // The forecast's own uncertainty widens the spread it is held to.
            spreads = Float64Array::from_iter(
                spreads
                    .iter()
                    .enumerate()
                    .map(|(i, s)| s.map(|s| s * scale.get(i).copied().unwrap_or(1.0))),
            );
        }
        let deviation = deviations(&residuals.residual, &spreads)?;

        let mut learn = vec![false; series];
        let mut judged = vec![false; self.phases.len()];
        let mut control = vec![false; self.phases.len()];
        for (vm, phase) in self.phases.iter().enumerate() {
            let (learns, is_judged) = match *phase {
                VmPhase::Learning { from_ms } => {
                    let learns = range.start_ms >= from_ms;
                    control[vm] = learns && has_data.value(vm);
                    (learns, false)
                }
                VmPhase::Patched {
                    since_ms,
                    judge_from_ms,
                } => (range.end_ms <= since_ms, range.start_ms >= judge_from_ms),
            };
            learn[vm * m..(vm + 1) * m].fill(learns);
            judged[vm] = is_judged;
        }
        let peers = self.config.peers.enabled.then(|| {
            let levels = self.config.peers.levels.len();
            let inputs = PeerInputs {
                observed: &residuals.observed,
                reference: self.forecaster.reference().unwrap_or(&forecast),
                spread: &spreads,
                metrics: m,
            };
            // Unpatched VMs are set against their peers too: where the
            // whole cohort moved, they do not learn the move.
            let compared: Vec<bool> = judged.iter().zip(&control).map(|(j, c)| *j || *c).collect();
            self.recent.push(series, |i| {
                (inputs.observed.is_valid(i)
                    && inputs.reference.is_valid(i)
                    && inputs.spread.is_valid(i))
                .then(|| {
                    (inputs.observed.value(i) - inputs.reference.value(i)) / inputs.spread.value(i)
                })
            });
            let mut peers = peer_control(
                &inputs,
                &control,
                &compared,
                &self.cohorts,
                levels,
                self.config.peers.min_control,
            );
            for (i, learns) in learn.iter_mut().enumerate() {
                if !control[i / m] || !*learns {
                    continue;
                }
                let moved = peers.peer_deviation.is_valid(i)
                    && peers.peer_deviation.value(i).abs() > HOLD_SIGMA;
                let held = &mut self.held[i];
                if !moved {
                    *held = 0;
                } else if *held < self.config.peers.hold_windows {
                    *held += 1;
                    *learns = false;
                }
            }
            // The second opinion, for the metrics that look bad against peers.
            let slide = self.config.window.slide_ms.max(1);
            let judged_windows: Vec<u16> = self
                .phases
                .iter()
                .zip(&judged)
                .map(|(phase, &j)| match *phase {
                    VmPhase::Patched { judge_from_ms, .. } if j => {
                        ((range.start_ms - judge_from_ms) / slide + 1).clamp(1, u16::MAX as i64)
                            as u16
                    }
                    _ => 0,
                })
                .collect();
            let rules = &self.config.rules;
            let vs = peers.vs_peers.clone();
            peer_test(
                &self.recent,
                &PeerTestInputs {
                    control: &control,
                    judged_windows: &judged_windows,
                    cohorts: &self.cohorts,
                    levels,
                    metrics: m,
                },
                &mut peers,
                |i| {
                    let rule = &rules.metrics[i % m];
                    vs.is_valid(i) && rule.direction.badness(vs.value(i)) > rule.threshold_sigma
                },
            );
            let control = peers;
            let labels = (0..judged.len())
                .map(|vm| {
                    let level = control.level[vm] as usize;
                    (judged[vm] && level < levels).then(|| {
                        let id = self.cohorts[vm * levels + level] as usize;
                        self.cohort_labels[level][id].clone()
                    })
                })
                .collect();
            (Arc::new(control), labels)
        });
        // A judged VM the peer control found no peers for is judged on its
        // own forecast alone, which has been frozen since its patch: hold it
        // to the spread of the open-loop forecast (what a frozen forecast
        // drifts to), not to the one-step spread of a VM that keeps learning.
        let deviation = match &peers {
            Some((p, _)) => f64_column(deviation.len(), |i| {
                let value = deviation.is_valid(i).then(|| deviation.value(i))?;
                let without_peers = judged[i / m] && p.control_vms[i / m] == 0;
                Some(match self.baselines.open_spread(i) {
                    Some(open) if without_peers && open > spreads.value(i) => {
                        residuals.residual.value(i) / open
                    }
                    _ => value,
                })
            }),
            None => deviation,
        };
        // The failure model reads deviations against the peers where there
        // are peers: a regional incident is not a VM about to fail.
        let failure_deviation = match &peers {
            Some((p, _)) => f64_column(deviation.len(), |i| {
                if p.vs_peers.is_valid(i) {
                    Some(p.vs_peers.value(i))
                } else {
                    deviation.is_valid(i).then(|| deviation.value(i))
                }
            }),
            None => deviation.clone(),
        };
        // Its levels and trends too: a VM whose peers moved as it did (a
        // batch job on every worker) is not heading for a failure of its own.
        let failure_observed = match &peers {
            Some((p, _)) => {
                let reference = self.forecaster.reference().unwrap_or(&forecast);
                f64_column(deviation.len(), |i| {
                    if p.vs_peers_residual.is_valid(i) && reference.is_valid(i) {
                        Some(reference.value(i) + p.vs_peers_residual.value(i))
                    } else {
                        residuals
                            .observed
                            .is_valid(i)
                            .then(|| residuals.observed.value(i))
                    }
                })
            }
            None => residuals.observed.clone(),
        };
        self.failure.learn(&failure_observed, &failure_deviation);
        if self.failure_model.is_some() || self.keep_failure_features {
            self.failure.write_rows();
        }
        let (vm_risk, failure) = match &self.failure_model {
            Some(model) => (
                Float64Array::from(model.risk(self.failure.features())),
                Some((model.clone(), Arc::new(self.failure.features().to_vec()))),
            ),
            None => (Float64Array::new_null(self.index.vm_count()), None),
        };
        let mut verdicts = judge(
            &self.config.rules,
            &deviation,
            &residuals.residual,
            peers.as_ref().map(|(p, _)| p.as_ref()),
            &judged,
            &mut self.streak,
        );
        let surprise =
            self.surprise
                .score(&residuals.observed, &residuals.residual, &self.directions);
        let run_score = self.runs.least(&verdicts.vm_score);
        verdicts.vm_score = with_surprise(
            &run_score,
            &surprise,
            peers.as_ref().map(|(p, _)| p.as_ref()),
            &self.config.rules,
        );
        self.surprise
            .learn(&residuals.observed, &residuals.residual, &learn);
        let baseline_mean = self.baselines.means();
        self.baselines
            .learn(&residuals.observed, &residuals.residual, &learn);
        self.baselines.learn_open(
            &residuals.observed,
            self.forecaster.reference().unwrap_or(&forecast),
            &learn,
        );
        let model_started = std::time::Instant::now();
        self.forecaster.observe(range, &residuals.observed, &learn);
        model_time += model_started.elapsed();
        self.stats.windows_closed += 1;

        Ok(ScoredWindow {
            range,
            metrics: self.metrics.clone(),
            vm_ids: self.index.vm_ids().to_vec(),
            observed: residuals.observed,
            forecast,
            residual_rmse: residuals.residual_rmse,
            deviation,
            baseline_mean,
            anomalous: verdicts.anomalous,
            surprise,
            judged: BooleanArray::from(judged),
            has_data,
            vm_samples,
            vm_anomalous: verdicts.vm_anomalous,
            vm_rmse: verdicts.vm_rmse,
            vm_score: verdicts.vm_score,
            vm_risk,
            vm_p_value: verdicts.vm_p_value,
            peers,
            model_time,
            rules: self.config.rules.clone(),
            failure,
        })
    }
}

/// Each VM's anomaly score raised to its worst metric's surprise. Where a
/// metric has a peer control, its surprise counts only as far as the VM
/// also stands out from its peers (the lesser of the two): a surge the
/// whole fleet shows is no VM's surprise.
fn with_surprise(
    vm_score: &Float64Array,
    surprise: &Float64Array,
    peers: Option<&PeerControl>,
    rules: &VerdictRules,
) -> Float64Array {
    let m = rules.metrics.len().max(1);
    f64_column(vm_score.len(), |vm| {
        let mut worst = vm_score.is_valid(vm).then(|| vm_score.value(vm));
        for metric in 0..m {
            let i = vm * m + metric;
            if i >= surprise.len() || surprise.is_null(i) {
                continue;
            }
            let mut s = surprise.value(i);
            if let Some(p) = peers.filter(|p| p.vs_peers.is_valid(i)) {
                let rule = &rules.metrics[metric];
                let w =
                    (rule.direction.badness(p.vs_peers.value(i)) / rule.threshold_sigma).max(0.0);
                s = s.min(score_of(w));
            }
            worst = Some(worst.map_or(s, |w: f64| w.max(s)));
        }
        worst
    })
}

impl Operator for CanaryScorer {
    type Output = ScoredWindow;

    fn process_batch(&mut self, input: InputId, batch: &RecordBatch) -> Result<(), OperatorError> {
        let columns = sample_columns(batch)?;
        self.index
            .map_vm_dictionary(columns.vm_names, &mut self.vm_map);
        self.index
            .map_metric_dictionary(columns.metric_names, &mut self.metric_map);
        self.grow();

        let m = self.index.metric_count() as u32;
        let (mut unscored, mut invalid, mut unlisted) = (0u64, 0u64, 0u64);
        // Only rows that are scored move event time: a stray metric nobody
        // scores must not end detection. (How far ahead of the clock a row
        // may be is for the source to say: a backfill legitimately runs
        // hours ahead of the slowest partition.)
        let mut newest: Option<i64> = None;
        self.slots.clear();
        self.slots.extend(
            columns
                .vm_keys
                .iter()
                .zip(columns.metric_keys)
                .zip(columns.values)
                .zip(columns.times.values())
                .map(|(((&vk, &mk), v), &t)| {
                    let metric = self.metric_map[mk as usize];
                    let vm = self.vm_map[vk as usize];
                    if metric == UNSCORED {
                        unscored += 1;
                        SKIP
                    } else if vm == NO_VM {
                        unlisted += 1;
                        SKIP
                    } else if !v.is_finite() || t < 0 {
                        invalid += 1;
                        SKIP
                    } else {
                        newest = Some(newest.map_or(t, |n: i64| n.max(t)));
                        vm * m + metric as u32
                    }
                }),
        );
        self.stats.rows_in += batch.num_rows() as u64;
        self.stats.rows_unscored += unscored;
        self.stats.rows_invalid += invalid;
        self.stats.rows_unlisted_dropped += unlisted;

        self.windows
            .add(&self.slots, columns.times.values(), columns.values);
        if let Some(max) = newest {
            self.watermark.observe(input, max);
        }
        Ok(())
    }

    fn set_idle(&mut self, input: InputId, idle: bool) {
        self.watermark.set_idle(input, idle);
    }

    fn on_watermark(&mut self) -> Result<Vec<ScoredWindow>, OperatorError> {
        let mut out = Vec::new();
        while let Some(window) = self.next_window()? {
            out.push(window);
        }
        Ok(out)
    }
}
