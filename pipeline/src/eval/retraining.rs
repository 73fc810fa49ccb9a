//! `bellwether eval retraining`: does the feedback loop learn?
//!
//! 1. *Earlier rollouts*: a good patch and every fault on each training
//!    seed, run as `bellwether demo` runs them with the models in use, each
//!    into its own history folder. A simulated operator then marks every
//!    rollback of a VM the patch had not broken a false alarm (the
//!    simulator knows), as `bellwether mark` would.
//! 2. *Retraining* from those histories (`bellwether retrain`): candidates
//!    run in shadow on the latest episodes; promoted only if they beat the
//!    models in use.
//! 3. *Later rollouts* on other seeds, once with the models in use before
//!    and once with what the models folder promotes after: the system's
//!    figures before and after, and the failure model's own precision,
//!    recall and lead time on the same seeds simulated without rollbacks.

use super::rollouts::{RolloutTotals, evaluate, evaluate_with};
use crate::config::Config;
use crate::demo::{DemoError, DemoOptions, run_demo};
use crate::history::{History, HistoryOptions};
use crate::model::failure::{FailureQuality, SimulationPlan, quality, simulate_examples};
use crate::model::retrain::{RetrainRequest, ShadowReport, retrain};
use anyhow::Context;
use bellwether_schemas::{CommandId, ControlMessage, Outcome, OutcomeKind, OutcomeSource};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the loop did, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainingEval {
    /// The earlier rollouts (recorded, then learned from).
    pub earlier: Vec<RolloutTotals>,
    /// False alarms the simulated operator marked.
    pub marked_false_alarms: usize,
    /// Retraining's shadow runs and decisions.
    pub retraining: Vec<ShadowReport>,
    /// Later rollouts with the models in use before retraining.
    pub before: Vec<RolloutTotals>,
    /// The same later rollouts with the models promoted after it.
    pub after: Vec<RolloutTotals>,
    /// The failure model in use before, on the later seeds without rollbacks.
    pub failure_model_before: Option<FailureQuality>,
    /// The failure model promoted after (the same one if none was).
    pub failure_model_after: Option<FailureQuality>,
}

/// Settings of the evaluation.
#[derive(Debug, Clone)]
pub struct RetrainingPlan {
    /// Seeds of the earlier (recorded) rollouts.
    pub earlier_seeds: Vec<u64>,
    /// Seeds of the later rollouts.
    pub later_seeds: Vec<u64>,
    /// Working folder: `history/<seed>-<scenario>` and `models`.
    pub work: PathBuf,
    /// Retrain the LSTM forecaster too (slower).
    pub forecaster: bool,
}

/// Runs one rollout into its own history folder, then marks its false alarms.
fn recorded_rollout(
    config: &Config,
    quality: crate::simulator::PatchQuality,
    dir: &Path,
    marked: &mut usize,
) -> Result<crate::summary::DemoSummary, DemoError> {
    let options = HistoryOptions::from_config(
        &config.history,
        config.window.allowed_lateness_secs as i64 * 1000,
        false,
    );
    let history = Arc::new(Mutex::new(History::open(dir, options)?));
    let summary = run_demo(
        config,
        DemoOptions::new(quality),
        None,
        Some(&history),
        &mut |_| {},
    )?;
    let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
    for r in &summary.rollbacks {
        if summary.ground_truth.healthy_rolled_back.contains(&r.vm_id) {
            h.control(
                &ControlMessage::Outcome(Outcome {
                    vm_id: r.vm_id.clone(),
                    rollout_id: Some(summary.rollout_id.clone()),
                    kind: OutcomeKind::FalseAlarm,
                    source: OutcomeSource::Operator,
                    at: r.executed_at,
                    command_id: Some(CommandId::rollback(&summary.rollout_id, &r.vm_id)),
                    note: "simulated operator: the patch had not broken this VM".into(),
                }),
                None,
            );
            *marked += 1;
        }
    }
    h.flush()?;
    Ok(summary)
}

/// The failure model `config` loads, judged on `seeds` simulated without rollbacks.
fn failure_quality(config: &Config, seeds: &[u64]) -> anyhow::Result<Option<FailureQuality>> {
    let location = config.failure.model.as_str();
    if location == "none" {
        return Ok(None);
    }
    let bundle = crate::model::failure_bundle::FailureBundle::load(location)?;
    let model = bundle.model();
    let threshold = config.failure.risk_threshold.unwrap_or(bundle.threshold);
    let examples = simulate_examples(
        config,
        &SimulationPlan::all_faults(seeds),
        model.horizon_minutes,
    )?;
    let risks = model.risk(&examples.x);
    Ok(Some(quality(
        &examples,
        &risks,
        threshold,
        model.horizon_minutes,
    )))
}

/// Runs the whole loop (see the module's documentation).
pub fn evaluate_retraining(
    config: &Config,
    plan: &RetrainingPlan,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<RetrainingEval> {
    let histories = plan.work.join("history");
    let models = plan.work.join("models");
    if plan.work.exists() {
        std::fs::remove_dir_all(&plan.work).with_context(|| plan.work.display().to_string())?;
    }
    std::fs::create_dir_all(&histories).with_context(|| histories.display().to_string())?;
    let mut folders = Vec::new();
    let mut marked = 0;
    progress("earlier rollouts, recorded");
    let earlier = evaluate_with(
        config,
        &plan.earlier_seeds,
        |config, quality| {
            let name = match quality {
                crate::simulator::PatchQuality::Good => "good".to_string(),
                crate::simulator::PatchQuality::Bad(kind) => kind.to_string(),
            };
            let dir = histories.join(format!("{}-{name}", config.simulation.seed));
            folders.push(dir.clone());
            recorded_rollout(config, quality, &dir, &mut marked)
        },
        |_, _| {},
    )?;
    progress("retraining from the recorded history");
    let request = RetrainRequest {
        histories: folders,
        models: models.clone(),
        forecaster: plan.forecaster,
        failure: true,
        held_out_share: config.retrain.held_out_share,
        version: Some("retrained-1".into()),
        lstm_epochs: config.retrain.lstm_epochs,
    };
    let retraining = retrain(config, &request)?;
    let after_config = crate::model::retrain::current_config(config, &models);
    progress("later rollouts, models before retraining");
    let before = evaluate(config, &plan.later_seeds, false, |_, _| {})?;
    progress("later rollouts, models after retraining");
    let after = evaluate(&after_config, &plan.later_seeds, false, |_, _| {})?;
    progress("failure models on the later seeds without rollbacks");
    Ok(RetrainingEval {
        earlier,
        marked_false_alarms: marked,
        retraining,
        before,
        after,
        failure_model_before: failure_quality(config, &plan.later_seeds)?,
        failure_model_after: failure_quality(&after_config, &plan.later_seeds)?,
    })
}
