//! The failure-pattern model's examples: simulated rollouts labelled by
//! the crashes that followed (the model itself, its trainer and its
//! measures are `bellwether_models::failure`).
//!
//! Each example is one patched, judged VM in one window: its failure
//! features ([`bellwether_operators::failure`], read from the scorer
//! exactly as the pipeline computes them) and whether the VM crashed
//! within the horizon after the window closed. Rollouts are simulated
//! without rollbacks, so every failure the patch causes happens and is
//! seen; good patches and faults that do not crash (latency, errors, CPU,
//! drift) are the negatives that keep "anomalous" apart from "about to
//! fail".

use crate::config::Config;
use crate::simulator::{FaultKind, FleetSimulator, PatchQuality};
use bellwether_operators::failure::feature_names;
use bellwether_operators::{CanaryScorer, Operator};
use bellwether_schemas::EventTime;
use std::collections::HashMap;

pub use bellwether_models::failure::{
    FailureExamples, FailureQuality, FailureTrainOptions, FailureTrainingError, quality,
    train_failure,
};

/// One simulated rollout to learn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedRollout {
    /// Fleet seed.
    pub seed: u64,
    /// The patch.
    pub quality: PatchQuality,
}

/// How the examples are simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationPlan {
    /// The rollouts.
    pub rollouts: Vec<SimulatedRollout>,
    /// VMs per fleet.
    pub vms: usize,
    /// Share of the fleet patched (every fifth VM per 0.2).
    pub patched_share: f64,
    /// Hours of history before the patch (baselines need `baseline.min_hours`).
    pub warmup_hours: f64,
    /// Hours watched after the patch.
    pub observe_hours: f64,
}

impl SimulationPlan {
    /// Every fault and a good patch, for each of `seeds`.
    pub fn all_faults(seeds: &[u64]) -> SimulationPlan {
        let qualities: Vec<PatchQuality> = FaultKind::ALL
            .into_iter()
            .map(PatchQuality::Bad)
            .chain([PatchQuality::Good])
            .collect();
        SimulationPlan {
            rollouts: seeds
                .iter()
                .flat_map(|&seed| {
                    qualities
                        .iter()
                        .map(move |&quality| SimulatedRollout { seed, quality })
                })
                .collect(),
            vms: 100,
            patched_share: 0.4,
            warmup_hours: 14.0,
            observe_hours: 4.0,
        }
    }
}

/// Simulates `plan`'s rollouts (no rollbacks) through the configured scorer
/// and labels every patched, judged VM-window with whether the VM crashed
/// within `horizon_minutes` after it.
pub fn simulate_examples(
    config: &Config,
    plan: &SimulationPlan,
    horizon_minutes: u32,
) -> Result<FailureExamples, FailureTrainingError> {
    let horizon_ms = horizon_minutes as i64 * EventTime::MINUTE_MS;
    let mut out = FailureExamples {
        features: feature_names(&config.thresholds.metrics),
        ..FailureExamples::default()
    };
    for (r, rollout) in plan.rollouts.iter().enumerate() {
        let mut config = config.clone();
        config.simulation.seed = rollout.seed;
        config.fleet.vms = plan.vms;
        let choice = crate::model::choose_forecaster(&config);
        let mut scorer = CanaryScorer::new(
            crate::scoring::scorer_config_with(&config, &choice.learned_thresholds)?,
            choice.forecaster,
        )?
        .keep_failure_features();
        let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, rollout.quality);
        let every = (1.0 / plan.patched_share.clamp(0.01, 1.0)).round().max(1.0) as usize;
        let patched: Vec<String> = fleet
            .inventory()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(_, vm)| vm.id)
            .collect();
        let interval = config.fleet.sample_interval_secs as i64 * 1000;
        let settle = config.rollout.settle_minutes as i64 * EventTime::MINUTE_MS;
        let patch_at = crate::simulator::DEMO_START.0;
        let start = patch_at - (plan.warmup_hours * EventTime::HOUR_MS as f64) as i64;
        let end = patch_at + (plan.observe_hours * EventTime::HOUR_MS as f64) as i64;
        let first_row = out.y.len();
        let mut now = start;
        while now < end {
            if now == patch_at {
                for vm in &patched {
                    // The ids come from the fleet's own inventory.
                    let _ = fleet.patch(vm, EventTime(now));
                    scorer.patched(vm, now, settle);
                }
            }
            for (input, batch) in fleet.tick(EventTime(now)).iter().enumerate() {
                scorer.process_batch(input, batch)?;
            }
            while let Some(window) = scorer.next_window()? {
                let features = scorer.failure_features();
                for vm in 0..window.vm_count() {
                    if window.judged.value(vm) && window.has_data.value(vm) {
                        out.x.extend_from_slice(features.row(vm));
                        out.y.push(0.0);
                        out.rollout.push(r as u32);
                        out.at
                            .push((window.vm_ids[vm].to_string(), window.range.end_ms));
                    }
                }
            }
            now += interval;
        }
        let crashes: Vec<(String, i64)> = fleet
            .crashes()
            .iter()
            .map(|c| (c.vm_id.clone(), c.time.0))
            .collect();
        let mut by_vm: HashMap<&str, Vec<i64>> = HashMap::new();
        for (vm, t) in &crashes {
            by_vm.entry(vm.as_str()).or_default().push(*t);
        }
        for row in first_row..out.y.len() {
            let (vm, t) = &out.at[row];
            let soon = by_vm
                .get(vm.as_str())
                .is_some_and(|times| times.iter().any(|c| *c > *t && *c - *t <= horizon_ms));
            out.y[row] = if soon { 1.0 } else { 0.0 };
        }
        out.crashes.push(crashes);
    }
    if out.is_empty() {
        return Err(FailureTrainingError::Empty(
            "no patched VM was judged: simulate longer (baselines need baseline.min_hours)".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaking_vms_are_predicted_to_fail_before_they_crash() {
        let mut config = crate::config::load(None).unwrap();
        config.forecast.kind = crate::config::ForecastKind::SeasonalRegression;
        let horizon = 30;
        let plan = |seed| SimulationPlan {
            rollouts: [
                PatchQuality::Bad(FaultKind::MemoryLeak),
                PatchQuality::Bad(FaultKind::CpuSpike),
                PatchQuality::Good,
            ]
            .into_iter()
            .map(|quality| SimulatedRollout { seed, quality })
            .collect(),
            vms: 40,
            ..SimulationPlan::all_faults(&[])
        };
        let train = simulate_examples(&config, &plan(1), horizon).unwrap();
        let validation = simulate_examples(&config, &plan(2), horizon).unwrap();
        assert!(train.y.iter().any(|y| *y > 0.5), "leaks crash in 4 h");
        assert!(train.crashes[1].is_empty() && train.crashes[2].is_empty());
        let trained =
            train_failure(&train, &validation, &FailureTrainOptions::default(), "t").unwrap();
        let q = trained.validation;
        assert!(q.failures > 0);
        assert!(q.recall >= 0.9, "{q:?}");
        assert!(q.precision >= 0.8, "{q:?}");
        assert!(q.median_lead_minutes >= 5.0, "{q:?}");
        // The strongest driver of a leaking VM's risk is memory.
        let row = (0..validation.len())
            .find(|&i| validation.y[i] > 0.5)
            .unwrap();
        let w = validation.features.len();
        let drivers = trained
            .model
            .drivers(&validation.x[row * w..(row + 1) * w], 3);
        assert!(drivers[0].feature.contains("memory"), "{drivers:?}");
    }
}
