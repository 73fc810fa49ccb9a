//! Retraining from recorded history, shadow evaluation and promotion.
//!
//! `bellwether retrain` (and `[retrain] every_hours` in `bellwether run`)
//! trains a new failure model on the episodes the history recorded, and a
//! new LSTM forecaster on its unpatched samples, and writes both into the
//! models folder, where every version is kept with its figures. Neither
//! acts yet: each is first run in *shadow* on the latest episodes, held out
//! from its training (replayed through the scorer, scored and logged,
//! never acting), beside the model in use. A candidate is promoted only if
//! it beats the current model there: at least the same recall of failed
//! episodes with fewer false rollbacks of healthy ones, or the same false
//! rollbacks with a better recall. Each shadow run is logged next to the
//! candidate (`<bundle>.shadow.json`: per held-out episode, when each model
//! would first have acted and its highest risk).

use super::failure::{FailureTrainOptions, train_failure};
use super::failure_bundle::FailureBundle;
use super::replay::{Replayed, replay};
use super::versions::{self, FAILURE_POINTER, LSTM_POINTER};
use crate::config::Config;
use anyhow::{Context, bail};
use bellwether_operators::failure::FailureModel;
use bellwether_schemas::EventTime;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to retrain, from what, into which folder.
#[derive(Debug, Clone)]
pub struct RetrainRequest {
    /// History folders, oldest first (the latest episodes are held out).
    pub histories: Vec<PathBuf>,
    /// The models folder: candidates are written there, pointers moved on promotion.
    pub models: PathBuf,
    /// Retrain the LSTM forecaster.
    pub forecaster: bool,
    /// Retrain the failure model.
    pub failure: bool,
    /// Share of the latest episodes held out for the shadow run.
    pub held_out_share: f64,
    /// Version of the candidates (default: the UTC time).
    pub version: Option<String>,
    /// Epochs of the LSTM's training at most.
    pub lstm_epochs: usize,
}

impl RetrainRequest {
    /// The request `[retrain]` describes, from `history.dir`.
    pub fn from_config(config: &Config) -> RetrainRequest {
        let r = &config.retrain;
        RetrainRequest {
            histories: vec![config.history.dir.clone()],
            models: r.models.clone(),
            forecaster: r.forecaster,
            failure: r.failure,
            held_out_share: r.held_out_share,
            version: None,
            lstm_epochs: r.lstm_epochs,
        }
    }
}

/// The reports as a table, one line per model and its verdict.
pub fn describe(reports: &[ShadowReport]) -> String {
    let mut out = format!(
        "{:<8} {:<34} {:>8} {:>8} {:>9} {:>6}  {}\n",
        "model", "version", "episodes", "caught", "false rb", "lead", "role"
    );
    for r in reports {
        for (j, role) in [(&r.current, "in use"), (&r.candidate, "shadow")] {
            out += &format!(
                "{:<8} {:<34} {:>8} {:>8} {:>9} {:>5.0}m  {role}\n",
                r.kind,
                j.model,
                j.episodes,
                format!("{}/{}", j.caught, j.failed),
                j.false_rollbacks,
                j.median_lead_minutes
            );
        }
        out += &format!("{}: {} ({})\n", r.kind, r.verdict, r.candidate_file);
    }
    out
}

/// How a model did on the held-out episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Judgement {
    /// The model's name.
    pub model: String,
    /// Held-out episodes.
    pub episodes: usize,
    /// Of those, failed.
    pub failed: usize,
    /// Failed episodes it would have acted on before the failure.
    pub caught: usize,
    /// Healthy episodes it would have rolled back.
    pub false_rollbacks: usize,
    /// Median minutes between its first action and the failure.
    pub median_lead_minutes: f64,
}

impl Judgement {
    /// True when `self` is better than `current`: no worse on either
    /// count and better on one.
    pub fn beats(&self, current: &Judgement) -> bool {
        self.caught >= current.caught
            && self.false_rollbacks <= current.false_rollbacks
            && (self.caught > current.caught || self.false_rollbacks < current.false_rollbacks)
    }
}

/// One model kind's retraining: the candidate, its shadow run, the decision.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    /// `failure` or `lstm`.
    pub kind: &'static str,
    /// The candidate's bundle in the models folder.
    pub candidate_file: String,
    /// The model in use, on the held-out episodes.
    pub current: Judgement,
    /// The candidate, on the same episodes, in shadow.
    pub candidate: Judgement,
    /// Whether the candidate was promoted.
    pub promoted: bool,
    /// Why, in a sentence.
    pub verdict: String,
}

/// Per held-out episode: when each model would first have acted.
#[derive(Debug, Clone, Serialize)]
struct ShadowEpisode {
    vm: String,
    source: String,
    patched_at: i64,
    failed_at: Option<i64>,
    false_alarm: bool,
    current_first_action: Option<i64>,
    candidate_first_action: Option<i64>,
    current_max_risk: Option<f64>,
    candidate_max_risk: Option<f64>,
}

/// The decisions a model would take, per row of a replay.
struct Actions {
    name: String,
    acts: Vec<bool>,
    risk: Option<Vec<f64>>,
}

/// Judges per-row actions on the episodes of `replayed` that `held_out` keeps.
fn judge(replayed: &Replayed, actions: &Actions, held_out: &[usize]) -> Judgement {
    let mut j = Judgement {
        model: actions.name.clone(),
        episodes: held_out.len(),
        ..Judgement::default()
    };
    let mut leads = Vec::new();
    for &e in held_out {
        let episode = &replayed.episodes[e];
        let first = first_action(replayed, actions, e, episode.failed_at);
        match (episode.failed_at, first) {
            (Some(f), Some(t)) => {
                j.failed += 1;
                j.caught += 1;
                leads.push((f - t) as f64 / EventTime::MINUTE_MS as f64);
            }
            (Some(_), None) => j.failed += 1,
            (None, Some(_)) => j.false_rollbacks += 1,
            (None, None) => {}
        }
    }
    leads.sort_by(f64::total_cmp);
    j.median_lead_minutes = leads.get(leads.len() / 2).copied().unwrap_or(0.0);
    j
}

/// The first window end (at or before `until`) at which `actions` act on episode `e`.
fn first_action(
    replayed: &Replayed,
    actions: &Actions,
    e: usize,
    until: Option<i64>,
) -> Option<i64> {
    (0..replayed.episode.len())
        .filter(|&row| replayed.episode[row] == e && actions.acts[row])
        .map(|row| replayed.examples.at[row].1)
        .filter(|t| until.is_none_or(|f| *t <= f))
        .min()
}

fn max_risk(replayed: &Replayed, actions: &Actions, e: usize) -> Option<f64> {
    let risk = actions.risk.as_ref()?;
    (0..replayed.episode.len())
        .filter(|&row| replayed.episode[row] == e)
        .map(|row| risk[row])
        .max_by(f64::total_cmp)
}

/// The config with a models folder's promoted models in use (where it has them).
pub fn current_config(config: &Config, models: &Path) -> Config {
    let mut current = config.clone();
    let folder = models.to_string_lossy().into_owned();
    if models.join(FAILURE_POINTER).is_file() {
        current.failure.model = folder.clone();
    }
    if models.join(LSTM_POINTER).is_file() {
        current.forecast.model = folder;
    }
    current
}

/// What a failure model would do per row (rows of a replay with `config`).
fn failure_actions(
    config: &Config,
    model: Option<(&FailureModel, f64)>,
    replayed: &Replayed,
) -> Actions {
    match model {
        None => Actions {
            name: "none".into(),
            acts: vec![false; replayed.episode.len()],
            risk: None,
        },
        Some((model, learned)) => {
            let at = config.failure.risk_threshold.unwrap_or(learned);
            let risk = model.risk(&replayed.examples.x);
            Actions {
                name: model.name.clone(),
                acts: risk.iter().map(|r| *r >= at).collect(),
                risk: Some(risk),
            }
        }
    }
}

/// What the whole scorer would do per row: roll back on an anomaly, or on
/// a predicted failure when the config acts on it.
fn system_actions(config: &Config, replayed: &Replayed, name: String) -> Actions {
    let failure = super::choose_failure_model(config);
    let risk = failure.model.as_ref().map(|m| m.risk(&replayed.examples.x));
    let acts = (0..replayed.episode.len())
        .map(|row| {
            replayed.anomalous[row]
                || matches!((&risk, failure.act_at), (Some(r), Some(t)) if r[row] >= t)
        })
        .collect();
    Actions { name, acts, risk }
}

/// Writes the shadow run's log: the report, and per held-out episode what
/// each model would have done (`current` and `candidate` each with the
/// replay its actions are rows of).
fn log_shadow(
    path: &Path,
    histories: &[PathBuf],
    held_out: &[usize],
    current: (&Replayed, &Actions),
    candidate: (&Replayed, &Actions),
    report: &ShadowReport,
) -> anyhow::Result<()> {
    let episodes: Vec<ShadowEpisode> = held_out
        .iter()
        .map(|&e| {
            let ep = &current.0.episodes[e];
            ShadowEpisode {
                vm: ep.vm.clone(),
                source: histories[ep.source].display().to_string(),
                patched_at: ep.patched_at,
                failed_at: ep.failed_at,
                false_alarm: ep.false_alarm,
                current_first_action: first_action(current.0, current.1, e, ep.failed_at),
                candidate_first_action: first_action(candidate.0, candidate.1, e, ep.failed_at),
                current_max_risk: max_risk(current.0, current.1, e),
                candidate_max_risk: max_risk(candidate.0, candidate.1, e),
            }
        })
        .collect();
    let body = serde_json::json!({ "report": report, "episodes": episodes });
    std::fs::write(path, serde_json::to_string_pretty(&body)?)
        .with_context(|| path.display().to_string())
}

/// Episodes split by age: (training, validation, held out).
fn split(replayed: &Replayed, held_out_share: f64) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    // Episodes are numbered in history order, then execution order.
    let n = replayed.episodes.len();
    let held = ((n as f64 * held_out_share).ceil() as usize).clamp(1, n.saturating_sub(1).max(1));
    let (earlier, latest) = (0..n).partition::<Vec<usize>, _>(|&e| e < n - held);
    let (train, validation) = earlier.into_iter().partition(|e| e % 4 != 3);
    (train, validation, latest)
}

fn promote_if_better(models: &Path, report: &mut ShadowReport) -> anyhow::Result<()> {
    let (c, k) = (&report.candidate, &report.current);
    report.promoted = c.beats(k);
    report.verdict = if report.promoted {
        versions::promote(models, &report.candidate_file)?;
        format!(
            "promoted: caught {}/{} (was {}/{}), false rollbacks {} (was {})",
            c.caught, c.failed, k.caught, k.failed, c.false_rollbacks, k.false_rollbacks
        )
    } else {
        format!(
            "kept {}: the candidate caught {}/{} with {} false rollbacks, the current {}/{} with {}",
            k.model, c.caught, c.failed, c.false_rollbacks, k.caught, k.failed, k.false_rollbacks
        )
    };
    Ok(())
}

/// Judges the model in use and the candidate (each with the replay its
/// actions are rows of) on the held-out episodes, promotes the candidate
/// if it beats the model in use, and logs the shadow run next to it.
fn shadow_run(
    kind: &'static str,
    file: &str,
    request: &RetrainRequest,
    held_out: &[usize],
    current: (&Replayed, &Actions),
    candidate: (&Replayed, &Actions),
) -> anyhow::Result<ShadowReport> {
    let mut report = ShadowReport {
        kind,
        candidate_file: file.to_string(),
        current: judge(current.0, current.1, held_out),
        candidate: judge(candidate.0, candidate.1, held_out),
        promoted: false,
        verdict: String::new(),
    };
    promote_if_better(&request.models, &mut report)?;
    log_shadow(
        &request.models.join(format!("{file}.shadow")),
        &request.histories,
        held_out,
        current,
        candidate,
        &report,
    )?;
    Ok(report)
}

/// Retrains what `request` asks for from its histories, runs each candidate
/// in shadow on the held-out episodes and promotes it if it beats the
/// model in use. Returns one report per model kind.
pub fn retrain(config: &Config, request: &RetrainRequest) -> anyhow::Result<Vec<ShadowReport>> {
    if request.histories.is_empty() {
        bail!("no history folder to retrain from");
    }
    if !(request.held_out_share > 0.0 && request.held_out_share < 1.0) {
        bail!(
            "held-out share {} must be between 0 and 1",
            request.held_out_share
        );
    }
    std::fs::create_dir_all(&request.models)
        .with_context(|| request.models.display().to_string())?;
    let version = request
        .version
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let current = current_config(config, &request.models);
    let histories = &request.histories;
    let horizon = FailureTrainOptions::default().horizon_minutes;
    let replayed = replay(&current, histories, horizon)?;
    if replayed.episodes.len() < 2 {
        bail!(
            "the history holds {} patched VM(s): nothing to learn from and hold out yet",
            replayed.episodes.len()
        );
    }
    let (train, validation, held_out) = split(&replayed, request.held_out_share);
    let mut reports = Vec::new();
    if request.failure {
        let pick = |set: &[usize]| {
            let set: std::collections::HashSet<usize> = set.iter().copied().collect();
            replayed.subset(|e| set.contains(&e))
        };
        let (t, v) = (pick(&train), pick(&validation));
        let options = FailureTrainOptions::default();
        let trained = train_failure(&t.examples, &v.examples, &options, &version)
            .context("training the failure model on the recorded episodes")?;
        let bundle = FailureBundle::new(
            &trained,
            &version,
            format!(
                "recorded history {}: {} episodes to train, {} to validate, {} held out",
                request
                    .histories
                    .iter()
                    .map(|h| h.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                train.len(),
                validation.len(),
                held_out.len()
            ),
        );
        let file = format!("failure-{version}.json");
        bundle.save(&request.models.join(&file))?;
        // The model in use with the threshold it acts at (also when
        // `failure.act` is off: the comparison is of what each would do).
        let in_use = match current.failure.model.as_str() {
            "none" => None,
            location => FailureBundle::load(location)
                .ok()
                .map(|b| (b.model(), b.threshold)),
        };
        let now = failure_actions(&current, in_use.as_ref().map(|(m, t)| (m, *t)), &replayed);
        let candidate = failure_actions(
            &current,
            Some((&trained.model, trained.threshold)),
            &replayed,
        );
        reports.push(shadow_run(
            "failure",
            &file,
            request,
            &held_out,
            (&replayed, &now),
            (&replayed, &candidate),
        )?);
    }
    if request.forecaster {
        let train_request = super::command::TrainRequest {
            from: super::command::TrainingSource::History,
            // The latest history: the fleet as it is now.
            history: request.histories.last().cloned(),
            csv: None,
            seed: 0,
            hours: 0.0,
            out: request.models.clone(),
            promote: false,
            version: Some(version.clone()),
            options: super::train::TrainOptions {
                epochs: request.lstm_epochs,
                ..super::train::TrainOptions::default()
            },
            quiet: true,
            report_to_stderr: true,
        };
        let path = super::command::run_train(&current, &train_request)?;
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut shadow_config = current.clone();
        shadow_config.forecast.kind = crate::config::ForecastKind::Lstm;
        shadow_config.forecast.model = path.to_string_lossy().into_owned();
        let shadow = replay(&shadow_config, histories, horizon)?;
        let name = super::choose_forecaster(&current)
            .forecaster
            .name()
            .to_string();
        let now = system_actions(&current, &replayed, name);
        let candidate = system_actions(&shadow_config, &shadow, format!("lstm-{version}"));
        reports.push(shadow_run(
            "lstm",
            &file,
            request,
            &held_out,
            (&replayed, &now),
            (&shadow, &candidate),
        )?);
    }
    Ok(reports)
}
