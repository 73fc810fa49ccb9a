//! `bellwether eval rollouts`: the whole system over many seeded simulated
//! rollouts (a good patch and every fault per seed, embedded, as `bellwether
//! demo` runs them), and what an SRE would ask of it: were bad patches
//! stopped in the canary stage, were healthy VMs rolled back, did any VM
//! crash before it was rolled back, and what triggered the rollbacks.

use crate::config::Config;
use crate::demo::{DemoError, DemoOptions, run_demo};
use crate::simulator::{FaultKind, PatchQuality};
use bellwether_schemas::RollbackTrigger;
use serde::Serialize;

/// Totals over the rollouts of one patch kind (or all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolloutTotals {
    /// `good`, a fault's name, or `all bad`.
    pub scenario: String,
    /// Rollouts run.
    pub rollouts: usize,
    /// Rollouts that went past the canary stage.
    pub left_canary_stage: usize,
    /// Rollouts that completed (every wave).
    pub completed: usize,
    /// Patched VMs the patch did not break.
    pub healthy_patched: usize,
    /// Of those, rolled back (false alarms).
    pub healthy_rolled_back: usize,
    /// Patched VMs the patch broke.
    pub broken_patched: usize,
    /// Of those, rolled back.
    pub broken_rolled_back: usize,
    /// Crashes of patched VMs (a VM that crashed was not rolled back in time).
    pub crashes: usize,
    /// Rollbacks triggered by an anomaly.
    pub anomaly_rollbacks: usize,
    /// Rollbacks triggered by a predicted failure.
    pub predicted_failure_rollbacks: usize,
}

impl RolloutTotals {
    fn add(&mut self, other: &RolloutTotals) {
        self.rollouts += other.rollouts;
        self.left_canary_stage += other.left_canary_stage;
        self.completed += other.completed;
        self.healthy_patched += other.healthy_patched;
        self.healthy_rolled_back += other.healthy_rolled_back;
        self.broken_patched += other.broken_patched;
        self.broken_rolled_back += other.broken_rolled_back;
        self.crashes += other.crashes;
        self.anomaly_rollbacks += other.anomaly_rollbacks;
        self.predicted_failure_rollbacks += other.predicted_failure_rollbacks;
    }

    /// Share of healthy patched VMs rolled back.
    pub fn healthy_rolled_back_share(&self) -> f64 {
        self.healthy_rolled_back as f64 / self.healthy_patched.max(1) as f64
    }
}

/// Runs a good patch and every fault for each seed; returns one line per
/// scenario and, last, the bad patches together. `progress` hears of each
/// rollout as it ends.
pub fn evaluate(
    config: &Config,
    seeds: &[u64],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<RolloutTotals>, DemoError> {
    let qualities: Vec<PatchQuality> = std::iter::once(PatchQuality::Good)
        .chain(FaultKind::ALL.into_iter().map(PatchQuality::Bad))
        .collect();
    let total = seeds.len() * qualities.len();
    let mut lines: Vec<RolloutTotals> = qualities
        .iter()
        .map(|q| RolloutTotals {
            scenario: match q {
                PatchQuality::Good => "good".into(),
                PatchQuality::Bad(kind) => kind.to_string(),
            },
            ..RolloutTotals::default()
        })
        .collect();
    let mut done = 0;
    for &seed in seeds {
        for (i, &quality) in qualities.iter().enumerate() {
            let mut config = config.clone();
            config.simulation.seed = seed;
            let s = run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {})?;
            let broken = s.ground_truth.affected_patched.len();
            let line = RolloutTotals {
                rollouts: 1,
                left_canary_stage: usize::from(s.left_canary_stage),
                completed: usize::from(s.outcome == "completed"),
                healthy_patched: s.vms_patched - broken,
                healthy_rolled_back: s.ground_truth.healthy_rolled_back.len(),
                broken_patched: broken,
                broken_rolled_back: s.ground_truth.affected_rolled_back,
                crashes: s.ground_truth.crashes.len(),
                anomaly_rollbacks: s
                    .rollbacks
                    .iter()
                    .filter(|r| r.trigger == RollbackTrigger::Anomaly)
                    .count(),
                predicted_failure_rollbacks: s
                    .rollbacks
                    .iter()
                    .filter(|r| r.trigger == RollbackTrigger::PredictedFailure)
                    .count(),
                ..RolloutTotals::default()
            };
            lines[i].add(&line);
            done += 1;
            progress(done, total);
        }
    }
    let mut bad = RolloutTotals {
        scenario: "all bad patches".into(),
        ..RolloutTotals::default()
    };
    for line in &lines[1..] {
        bad.add(line);
    }
    lines.push(bad);
    Ok(lines)
}
