//! `bellwether eval rollouts`: the whole system over many seeded simulated
//! rollouts (a good patch and every fault per seed, embedded, as `bellwether
//! demo` runs them), and what an SRE would ask of it: were bad patches
//! stopped in the canary stage, were healthy VMs rolled back, did any VM
//! crash before it was rolled back, and what triggered the rollbacks.

use crate::config::Config;
use crate::demo::{DemoError, DemoOptions, run_demo};
use crate::simulator::{EventKind, FaultKind, FleetEvent, PatchQuality};
use crate::summary::DemoSummary;
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
    /// Every healthy VM rolled back: which rollout, and why.
    pub false_alarms: Vec<FalseAlarm>,
}

/// A healthy VM rolled back, with the seed that reproduces it (the same
/// patch through `evaluate_patches` with that seed: its fleet and, with
/// events, its [`seeded_event`]).
#[derive(Debug, Clone, Serialize)]
pub struct FalseAlarm {
    /// The rollout's seed.
    pub seed: u64,
    /// The VM.
    pub vm_id: String,
    /// What set it off.
    pub trigger: RollbackTrigger,
    /// The rollback's reason.
    pub reason: String,
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
        self.false_alarms.extend(other.false_alarms.iter().cloned());
    }

    /// Share of healthy patched VMs rolled back.
    pub fn healthy_rolled_back_share(&self) -> f64 {
        self.healthy_rolled_back as f64 / self.healthy_patched.max(1) as f64
    }
}

/// Runs a good patch and every fault for each seed; returns one line per
/// scenario and, last, the bad patches together. With `events`, every
/// second seed (the odd ones) also gets a fleet-wide event during the
/// canary stage ([`seeded_event`]), the good patch and the bad ones alike.
/// `progress` hears of each rollout as it ends.
pub fn evaluate(
    config: &Config,
    seeds: &[u64],
    events: bool,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<RolloutTotals>, DemoError> {
    evaluate_patches(config, seeds, &every_patch(), events, progress)
}

/// The good patch, then one bad patch per fault.
pub fn every_patch() -> Vec<PatchQuality> {
    std::iter::once(PatchQuality::Good)
        .chain(FaultKind::ALL.into_iter().map(PatchQuality::Bad))
        .collect()
}

/// As [`evaluate`], for the patches `qualities` only (e.g. the good patch
/// alone, to count false alarms on a large fleet sooner).
pub fn evaluate_patches(
    config: &Config,
    seeds: &[u64],
    qualities: &[PatchQuality],
    events: bool,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<RolloutTotals>, DemoError> {
    evaluate_over(
        config,
        seeds,
        qualities,
        |config, quality| {
            let mut config = config.clone();
            if let Some(event) = seeded_event(config.simulation.seed).filter(|_| events) {
                config.simulation.events.push(event);
            }
            run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {})
        },
        progress,
    )
}

/// The fleet-wide event of an odd seed (None for even ones): a kind, a
/// start 20 to 150 minutes after the patch (inside the canary stage: the
/// first wave bakes 120 minutes, the second 60), 30 to 90 minutes long,
/// at 0.6 to 1.4 of its named size; all drawn from the seed.
pub fn seeded_event(seed: u64) -> Option<FleetEvent> {
    use rand::{Rng, SeedableRng};
    if seed.is_multiple_of(2) {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x000e_7e47_5eed);
    let kind = EventKind::ALL[rng.random_range(0..EventKind::ALL.len())];
    Some(FleetEvent {
        start_minutes: rng.random_range(20.0..150.0),
        duration_minutes: rng.random_range(30.0..90.0),
        size: rng.random_range(0.6..1.4),
        ..FleetEvent::new(kind, 0.0)
    })
}

/// As [`evaluate`], with each rollout run by `run` (given the config with
/// its seed, and the patch).
pub fn evaluate_with(
    config: &Config,
    seeds: &[u64],
    run: impl FnMut(&Config, PatchQuality) -> Result<DemoSummary, DemoError>,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<RolloutTotals>, DemoError> {
    evaluate_over(config, seeds, &every_patch(), run, progress)
}

fn evaluate_over(
    config: &Config,
    seeds: &[u64],
    qualities: &[PatchQuality],
    mut run: impl FnMut(&Config, PatchQuality) -> Result<DemoSummary, DemoError>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<RolloutTotals>, DemoError> {
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
            let s = run(&config, quality)?;
            lines[i].add(&totals_of(&s));
            done += 1;
            progress(done, total);
        }
    }
    let bad_lines: Vec<&RolloutTotals> = qualities
        .iter()
        .zip(&lines)
        .filter(|(q, _)| matches!(q, PatchQuality::Bad(_)))
        .map(|(_, l)| l)
        .collect();
    if bad_lines.len() > 1 {
        let mut bad = RolloutTotals {
            scenario: ALL_BAD.into(),
            ..RolloutTotals::default()
        };
        for line in bad_lines {
            bad.add(line);
        }
        lines.push(bad);
    }
    Ok(lines)
}

/// The figures of one rollout.
fn totals_of(s: &DemoSummary) -> RolloutTotals {
    let broken = s.ground_truth.affected_patched.len();
    let by = |trigger| s.rollbacks.iter().filter(|r| r.trigger == trigger).count();
    RolloutTotals {
        rollouts: 1,
        left_canary_stage: usize::from(s.left_canary_stage),
        completed: usize::from(s.outcome == crate::summary::RolloutOutcome::Completed),
        healthy_patched: s.vms_patched - broken,
        healthy_rolled_back: s.ground_truth.healthy_rolled_back.len(),
        broken_patched: broken,
        broken_rolled_back: s.ground_truth.affected_rolled_back,
        crashes: s.ground_truth.crashes.len(),
        anomaly_rollbacks: by(RollbackTrigger::Anomaly),
        predicted_failure_rollbacks: by(RollbackTrigger::PredictedFailure),
        false_alarms: s
            .rollbacks
            .iter()
            .filter(|r| s.ground_truth.healthy_rolled_back.contains(&r.vm_id))
            .map(|r| FalseAlarm {
                seed: s.seed,
                vm_id: r.vm_id.clone(),
                trigger: r.trigger,
                reason: r.reason.clone(),
            })
            .collect(),
        ..RolloutTotals::default()
    }
}

/// The totals as the table `bellwether eval rollouts` prints.
pub fn table(lines: &[RolloutTotals]) -> String {
    let mut out = crate::table::render(
        &[
            "scenario",
            "rollouts",
            "completed",
            "past canary",
            "broken VMs rolled back",
            "healthy VMs rolled back",
            "healthy share",
            "crashes",
            "predicted-failure rollbacks",
        ],
        lines
            .iter()
            .map(|l| {
                vec![
                    l.scenario.clone(),
                    l.rollouts.to_string(),
                    l.completed.to_string(),
                    l.left_canary_stage.to_string(),
                    format!("{}/{}", l.broken_rolled_back, l.broken_patched),
                    format!("{}/{}", l.healthy_rolled_back, l.healthy_patched),
                    format!("{:.2}%", 100.0 * l.healthy_rolled_back_share()),
                    l.crashes.to_string(),
                    l.predicted_failure_rollbacks.to_string(),
                ]
            })
            .collect(),
    );
    // The bad patches' line repeats its faults' false alarms.
    for (l, a) in lines
        .iter()
        .filter(|l| l.scenario != ALL_BAD)
        .flat_map(|l| l.false_alarms.iter().map(move |a| (l, a)))
    {
        out += &format!(
            "healthy VM rolled back: {} patch, seed {}, {} ({}): {}\n",
            l.scenario,
            a.seed,
            a.vm_id,
            a.trigger.as_str(),
            a.reason
        );
    }
    out
}

/// The scenario of the bad patches' totals.
const ALL_BAD: &str = "all bad patches";

#[cfg(test)]
mod tests {
    use super::*;

    /// Each header sits over its own column: every line has as many
    /// column separators as the header line, and each figure lines up
    /// under its header.
    #[test]
    fn the_table_has_one_header_per_column() {
        let line = |scenario: &str, healthy: usize| RolloutTotals {
            scenario: scenario.into(),
            rollouts: 10,
            completed: 9,
            healthy_patched: 3000,
            healthy_rolled_back: healthy,
            ..RolloutTotals::default()
        };
        let text = table(&[line("good", 1), line(ALL_BAD, 12)]);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains('|')).collect();
        assert_eq!(lines.len(), 3, "{text}");
        let separators = |l: &str| l.match_indices('|').map(|(i, _)| i).collect::<Vec<_>>();
        let header = separators(lines[0]);
        assert_eq!(header.len(), 8, "{text}");
        for l in &lines[1..] {
            assert_eq!(separators(l), header, "{text}");
        }
        assert!(lines[2].starts_with(ALL_BAD), "{text}");
        assert!(lines[2].contains("12/3000"), "{text}");
    }
}
