//! Replaying a recorded history through the scorer, to learn from and to
//! judge models on what really happened.
//!
//! A history folder holds every sample, every patch and rollback the actor
//! executed, and every outcome reported (crashes, health-check losses,
//! operator marks). Replaying it feeds the samples, in time order, through
//! a [`CanaryScorer`] built from a config (so with any forecaster or
//! failure model), telling it of each patch and rollback when it was
//! executed; each judged window of a patched VM becomes one row: its
//! failure features, whether the anomaly rule flagged it, and which
//! *episode* (one VM from its patch to its rollback or the end) it
//! belongs to.
//!
//! Labels come from the outcomes: an episode *failed* at the first of a
//! reported failure (simulated crash, health check, operator mark) or its
//! rollback, unless an operator marked that rollback a false alarm. An
//! episode that ended without either stayed healthy.

use super::data::DataError;
use super::failure::{FailureExamples, FailureTrainingError};
use crate::config::Config;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use bellwether_operators::failure::feature_names;
use bellwether_operators::{CanaryScorer, Operator};
use bellwether_schemas::EventTime;
use bellwether_schemas::wire::SampleBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A patch or rollback the actor executed.
#[derive(Debug, Clone, PartialEq)]
struct Execution {
    /// When a patch was executed; when a rollback was decided.
    at: i64,
    vm: String,
    rollback: bool,
    command_id: String,
}

/// An outcome someone reported.
#[derive(Debug, Clone, PartialEq)]
struct Reported {
    at: i64,
    vm: String,
    false_alarm: bool,
    command_id: Option<String>,
}

/// One history folder, read into memory for replay.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Samples as `(t, vm_id, metric, value)` batches, in time order.
    samples: Vec<RecordBatch>,
    executions: Vec<Execution>,
    outcomes: Vec<Reported>,
}

/// One VM from its patch to its rollback (or the end of the history).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Which of the replayed histories it comes from.
    pub source: usize,
    /// The VM.
    pub vm: String,
    /// When the patch was executed (ms).
    pub patched_at: i64,
    /// When it was rolled back (ms), if it was.
    pub rolled_back_at: Option<i64>,
    /// When it failed (ms): a reported failure, or a rollback nobody
    /// marked a false alarm.
    pub failed_at: Option<i64>,
    /// An operator marked its rollback a false alarm.
    pub false_alarm: bool,
}

fn utf8(batch: &RecordBatch, column: usize) -> Result<arrow::array::ArrayRef, DataError> {
    arrow::compute::cast(batch.column(column), &DataType::Utf8)
        .map_err(|e| DataError::History(e.to_string()))
}

fn query(root: &Path, sql: &str) -> Result<Vec<RecordBatch>, DataError> {
    crate::history::sql::query_once(root, sql)
        .map_err(|e| DataError::History(format!("{}: {e}", root.display())))
}

impl Recorded {
    /// Reads the samples, executions and outcomes of the history at `root`.
    pub fn load(root: &Path) -> Result<Recorded, DataError> {
        let samples = query(
            root,
            "SELECT CAST(time AS BIGINT) AS t, vm_id, metric, value FROM samples ORDER BY t",
        )?;
        let mut executions = Vec::new();
        // A rollback counts from when it was decided (its command, issued
        // at the end of the window that triggered it): the scorer stopped
        // judging the VM then; the actor carried it out a little later.
        for b in query(
            root,
            "SELECT CAST(coalesce(c.issued_at, e.executed_at) AS BIGINT) AS t, e.vm_id, \
             e.action, e.command_id FROM executions e LEFT JOIN \
             (SELECT command_id, min(issued_at) AS issued_at FROM commands \
              WHERE action = 'rollback' GROUP BY command_id) c \
             ON e.command_id = c.command_id ORDER BY t",
        )? {
            let (vm, action, id) = (utf8(&b, 1)?, utf8(&b, 2)?, utf8(&b, 3)?);
            let at = b.column(0).as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                executions.push(Execution {
                    at: at.value(row),
                    vm: vm.as_string::<i32>().value(row).to_string(),
                    rollback: action.as_string::<i32>().value(row) == "rollback",
                    command_id: id.as_string::<i32>().value(row).to_string(),
                });
            }
        }
        let mut outcomes = Vec::new();
        for b in query(
            root,
            "SELECT CAST(time AS BIGINT), vm_id, kind, command_id FROM outcomes ORDER BY 1",
        )? {
            let (vm, kind, id) = (utf8(&b, 1)?, utf8(&b, 2)?, utf8(&b, 3)?);
            let (kind, id) = (kind.as_string::<i32>(), id.as_string::<i32>());
            let at = b.column(0).as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                outcomes.push(Reported {
                    at: at.value(row),
                    vm: vm.as_string::<i32>().value(row).to_string(),
                    false_alarm: kind.value(row) == "false_alarm",
                    command_id: id.is_valid(row).then(|| id.value(row).to_string()),
                });
            }
        }
        if samples.iter().all(|b| b.num_rows() == 0) {
            return Err(DataError::History(format!(
                "{}: no samples recorded (history.samples = \"none\"?)",
                root.display()
            )));
        }
        Ok(Recorded {
            samples,
            executions,
            outcomes,
        })
    }

    /// The patch episodes of this history, labelled by its outcomes.
    fn episodes(&self, source: usize) -> Vec<Episode> {
        let mut episodes: Vec<Episode> = Vec::new();
        let mut open: HashMap<&str, usize> = HashMap::new();
        let mut rollback_of: HashMap<&str, usize> = HashMap::new();
        for x in &self.executions {
            if x.rollback {
                if let Some(e) = open.remove(x.vm.as_str()) {
                    episodes[e].rolled_back_at = Some(x.at);
                    rollback_of.insert(x.command_id.as_str(), e);
                }
            } else if !open.contains_key(x.vm.as_str()) {
                open.insert(&x.vm, episodes.len());
                episodes.push(Episode {
                    source,
                    vm: x.vm.clone(),
                    patched_at: x.at,
                    rolled_back_at: None,
                    failed_at: None,
                    false_alarm: false,
                });
            }
        }
        for o in &self.outcomes {
            if o.false_alarm {
                let judged = o.command_id.as_deref().and_then(|c| rollback_of.get(c));
                if let Some(&e) = judged {
                    episodes[e].false_alarm = true;
                }
                continue;
            }
            // The VM's latest episode that had begun when it failed; a
            // failure reported after the rollback counts at the rollback.
            let episode = episodes
                .iter_mut()
                .filter(|e| e.vm == o.vm && e.patched_at <= o.at)
                .max_by_key(|e| e.patched_at);
            if let Some(e) = episode {
                let at = e.rolled_back_at.map_or(o.at, |r| r.min(o.at));
                e.failed_at = Some(e.failed_at.map_or(at, |f| f.min(at)));
            }
        }
        for e in &mut episodes {
            if let (Some(r), false) = (e.rolled_back_at, e.false_alarm) {
                e.failed_at = Some(e.failed_at.map_or(r, |f| f.min(r)));
            }
        }
        episodes
    }
}

/// What a replay saw: one row per judged window of a patched VM.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// Failure features and labels (`rollout` is the source history,
    /// `crashes` each source's episode failures).
    pub examples: FailureExamples,
    /// The episode of each row.
    pub episode: Vec<usize>,
    /// Whether the anomaly rule flagged the VM in that window.
    pub anomalous: Vec<bool>,
    /// Every episode of every history.
    pub episodes: Vec<Episode>,
}

impl Replayed {
    /// The rows of the episodes `keep` says yes to, with only their failures.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> Replayed {
        let w = self.examples.features.len();
        let mut out = Replayed {
            examples: FailureExamples {
                features: self.examples.features.clone(),
                crashes: vec![Vec::new(); self.examples.crashes.len()],
                ..FailureExamples::default()
            },
            episodes: self.episodes.clone(),
            ..Replayed::default()
        };
        for row in 0..self.episode.len() {
            let e = self.episode[row];
            if keep(e) {
                out.examples
                    .x
                    .extend_from_slice(&self.examples.x[row * w..(row + 1) * w]);
                out.examples.y.push(self.examples.y[row]);
                out.examples.rollout.push(self.examples.rollout[row]);
                out.examples.at.push(self.examples.at[row].clone());
                out.episode.push(e);
                out.anomalous.push(self.anomalous[row]);
            }
        }
        for (e, episode) in self.episodes.iter().enumerate() {
            if let (true, Some(f)) = (keep(e), episode.failed_at) {
                out.examples.crashes[episode.source].push((episode.vm.clone(), f));
            }
        }
        out
    }
}

/// The replay of one history through one scorer.
struct Replayer<'a> {
    scorer: CanaryScorer,
    source: usize,
    settle: i64,
    /// Rollbacks by decision time, and how many were applied.
    rollbacks: Vec<&'a Execution>,
    applied: usize,
    /// The episode each patched VM is in.
    active: HashMap<String, usize>,
}

impl Replayer<'_> {
    /// Scores every window the samples so far closed, one at a time; after
    /// each, the rollbacks decided at its end take effect, as they did live.
    fn drain(&mut self, out: &mut Replayed) -> Result<(), FailureTrainingError> {
        while let Some(window) = self.scorer.next_window()? {
            let features = self.scorer.failure_features();
            for vm in 0..window.vm_count() {
                let Some(&e) = self.active.get(window.vm_ids[vm].as_ref()) else {
                    continue;
                };
                if window.judged.value(vm) && window.has_data.value(vm) {
                    out.examples.x.extend_from_slice(features.row(vm));
                    out.examples.y.push(0.0);
                    out.examples.rollout.push(self.source as u32);
                    out.examples
                        .at
                        .push((window.vm_ids[vm].to_string(), window.range.end_ms));
                    out.episode.push(e);
                    out.anomalous.push(window.vm_anomalous.value(vm));
                }
            }
            while let Some(x) = self
                .rollbacks
                .get(self.applied)
                .filter(|x| x.at <= window.range.end_ms)
            {
                self.scorer.rolled_back(&x.vm, x.at, self.settle);
                self.active.remove(&x.vm);
                self.applied += 1;
            }
        }
        Ok(())
    }

    fn feed(
        &mut self,
        builder: &mut SampleBuilder,
        out: &mut Replayed,
    ) -> Result<(), FailureTrainingError> {
        if !builder.is_empty() {
            self.scorer.process_batch(0, &builder.finish())?;
        }
        self.drain(out)
    }
}

/// Replays the history folders `roots` (one at a time: each is read, then
/// dropped) through the scorer `config` builds (its forecaster, thresholds
/// and failure model), labelling each row with whether its episode failed
/// within `horizon_minutes` after the window's end (a rollback decided at
/// that end counts: it judged that very window).
pub fn replay(
    config: &Config,
    roots: &[PathBuf],
    horizon_minutes: u32,
) -> Result<Replayed, FailureTrainingError> {
    let horizon_ms = horizon_minutes as i64 * EventTime::MINUTE_MS;
    let mut out = Replayed {
        examples: FailureExamples {
            features: feature_names(&config.thresholds.metrics),
            ..FailureExamples::default()
        },
        ..Replayed::default()
    };
    for (source, root) in roots.iter().enumerate() {
        let history = Recorded::load(root)?;
        let first_episode = out.episodes.len();
        let episodes = history.episodes(source);
        let choice = crate::model::choose_forecaster(config);
        let mut rollbacks: Vec<&Execution> =
            history.executions.iter().filter(|x| x.rollback).collect();
        rollbacks.sort_by_key(|x| x.at);
        let mut r = Replayer {
            scorer: CanaryScorer::new(
                crate::scoring::scorer_config_with(config, &choice.learned_thresholds)?,
                choice.forecaster,
            )?
            .keep_failure_features(),
            source,
            settle: config.rollout.settle_minutes as i64 * EventTime::MINUTE_MS,
            rollbacks,
            applied: 0,
            active: HashMap::new(),
        };
        let mut patches = history.executions.iter().filter(|x| !x.rollback).peekable();
        let mut next_episode = first_episode;
        let mut builder = SampleBuilder::new();
        for batch in &history.samples {
            let (vm, metric) = (utf8(batch, 1)?, utf8(batch, 2)?);
            let (vm, metric) = (vm.as_string::<i32>(), metric.as_string::<i32>());
            let t = batch.column(0).as_primitive::<Int64Type>();
            let v = batch.column(3).as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                let now = t.value(row);
                // A patch takes effect between the samples before and after it.
                while let Some(x) = patches.next_if(|x| x.at <= now) {
                    r.feed(&mut builder, &mut out)?;
                    if !r.active.contains_key(&x.vm) {
                        // Episodes were numbered in this same order.
                        r.scorer.patched(&x.vm, x.at, r.settle);
                        r.active.insert(x.vm.clone(), next_episode);
                        next_episode += 1;
                    }
                }
                builder.append(vm.value(row), now, metric.value(row), v.value(row));
                if builder.is_full() {
                    r.feed(&mut builder, &mut out)?;
                }
            }
        }
        r.feed(&mut builder, &mut out)?;
        out.episodes.extend(episodes);
        out.examples.crashes.push(
            out.episodes[first_episode..]
                .iter()
                .filter_map(|e| e.failed_at.map(|f| (e.vm.clone(), f)))
                .collect(),
        );
    }
    for row in 0..out.episode.len() {
        let t = out.examples.at[row].1;
        let failed = out.episodes[out.episode[row]].failed_at;
        out.examples.y[row] = match failed {
            Some(f) if f >= t && f - t <= horizon_ms => 1.0,
            _ => 0.0,
        };
    }
    Ok(out)
}
