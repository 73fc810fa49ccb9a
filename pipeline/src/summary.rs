//! The demo's final summary, as JSON and as text for humans.

use crate::config::Config;
use crate::demo::ScoreTally;
use crate::rollout::{Actuator, RolloutActor};
use crate::scoring::{ScoringStage, describe};
use crate::simulator::{CrashEvent, FleetSimulator, PatchQuality};
use bellwether_schemas::{EventTime, MetricVerdict, RolloutState};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

/// One wave, as it went.
#[derive(Debug, Clone, Serialize)]
pub struct WaveSummary {
    /// 1-based wave number.
    pub wave: usize,
    /// Part of the canary stage.
    pub canary: bool,
    /// VMs patched in the wave.
    pub vms: usize,
    /// When it started.
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub started_at: EventTime,
    /// True when it baked healthy for its full bake time.
    pub baked: bool,
}

/// One rollback, as carried out.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackSummary {
    /// 1 for the first.
    pub order: usize,
    /// The VM.
    pub vm_id: String,
    /// True for critical VMs.
    pub critical: bool,
    /// What set it off (`anomaly`, `predicted_failure`, `wave`, ...).
    pub trigger: bellwether_schemas::RollbackTrigger,
    /// One line of why.
    pub reason: String,
    /// The metrics that went wrong.
    pub evidence: Vec<MetricVerdict>,
    /// The predicted failure risk when it was decided, with its drivers.
    pub failure: Option<bellwether_schemas::FailureRisk>,
    /// The wave test that stopped it (trigger `wave`): the rollout's
    /// patched VMs together against their peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<bellwether_schemas::WaveEvidence>,
    /// When the anomaly was decided.
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub detected_at: EventTime,
    /// When the rollback was carried out.
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub executed_at: EventTime,
}

/// What the simulator knows and bellwether had to find out.
#[derive(Debug, Clone, Serialize)]
pub struct GroundTruth {
    /// Patched VMs the bad patch broke.
    pub affected_patched: Vec<String>,
    /// Of those, rolled back.
    pub affected_rolled_back: usize,
    /// Rolled-back VMs the patch had not broken (false alarms).
    pub healthy_rolled_back: Vec<String>,
    /// Crashes (memory leaks).
    pub crashes: Vec<CrashEvent>,
}

/// Pipeline counters.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineCounters {
    /// Samples received.
    pub samples_in: u64,
    /// Samples that arrived after their window closed.
    pub late_rows: u64,
    /// Windows scored.
    pub windows_scored: u64,
    /// Score records emitted.
    pub scores_emitted: u64,
    /// Commands skipped as repeats.
    pub duplicate_commands_skipped: usize,
}

/// What became of a rollout, in one word: the same in the demo's summary,
/// `eval`, the API and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutOutcome {
    /// Every wave deployed and baked: the patch runs on the fleet (less
    /// any VM rolled back on its own).
    Completed,
    /// Stopped before its last wave baked (by an anomaly, a failed wave
    /// or an operator), with VMs still on the patch: an operator decides
    /// what next (resume, roll back).
    Halted,
    /// Stopped, and every VM it patched runs the old version again.
    RolledBack,
    /// Still moving when the demo's time ran out.
    Unfinished,
}

impl RolloutOutcome {
    /// The outcome of a rollout in `state` that patched `patched` VMs, of
    /// which `on_patch` still run it.
    pub fn of(state: RolloutState, patched: usize, on_patch: usize) -> RolloutOutcome {
        match state {
            RolloutState::Completed => RolloutOutcome::Completed,
            RolloutState::RolledBack => RolloutOutcome::RolledBack,
            s if s.is_final() && patched > 0 && on_patch == 0 => RolloutOutcome::RolledBack,
            s if s.is_final() => RolloutOutcome::Halted,
            _ => RolloutOutcome::Unfinished,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutOutcome::Completed => "completed",
            RolloutOutcome::Halted => "halted",
            RolloutOutcome::RolledBack => "rolled_back",
            RolloutOutcome::Unfinished => "unfinished",
        }
    }
}

/// One rollout of a demo (several with `--rollouts`).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutSummary {
    /// Rollout id.
    pub rollout_id: String,
    /// The patch it rolled out.
    pub patch_id: String,
    /// `good` or `bad` (the simulated truth).
    pub patch: String,
    /// The groups its canary stage patched first.
    pub canary_groups: Vec<String>,
    /// What became of it.
    pub outcome: RolloutOutcome,
    /// Its final state.
    pub final_state: RolloutState,
    /// Waves deployed (with VMs).
    pub waves: Vec<WaveSummary>,
    /// Waves planned.
    pub waves_planned: usize,
    /// VMs that received its patch.
    pub vms_patched: usize,
    /// VMs it rolled back.
    pub vms_rolled_back: usize,
    /// VMs running its patch at the end.
    pub vms_on_patch: usize,
    /// VMs whose patch the actuator failed.
    pub vms_failed_to_patch: usize,
    /// VMs it rolled back that its patch did not break (false alarms).
    pub healthy_rolled_back: usize,
}

/// The demo's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// What became of the rollout (see [`RolloutOutcome`]).
    pub outcome: RolloutOutcome,
    /// The rollout's final state.
    pub final_state: RolloutState,
    /// `good` or `bad`.
    pub scenario: String,
    /// The fault of a bad patch.
    pub fault: Option<String>,
    /// Its size in its unit (`0.5pp`), when one was given
    /// (`simulation.fault_size`, `--size`).
    pub fault_size: Option<String>,
    /// Seed.
    pub seed: u64,
    /// VMs in the fleet.
    pub fleet_size: usize,
    /// Forecaster used.
    pub forecaster: String,
    /// The failure model that predicted failure risks, if one was loaded.
    pub failure_model: Option<String>,
    /// Rollout id.
    pub rollout_id: String,
    /// Fleet time when the patch was approved.
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub patch_approved_at: EventTime,
    /// Fleet time at the end.
    #[serde(with = "bellwether_schemas::time::rfc3339")]
    pub ended_at: EventTime,
    /// Hours of fleet time simulated (history included).
    pub fleet_hours: f64,
    /// Wall-clock seconds the demo took.
    pub wall_seconds: f64,
    /// VMs that received the patch.
    pub vms_patched: usize,
    /// VMs rolled back.
    pub vms_rolled_back: usize,
    /// VMs still running the patch at the end.
    pub vms_on_patch: usize,
    /// VMs whose patch the actuator failed (after its retries): they
    /// count against the wave (`rollback.on_anomaly`).
    pub vms_failed_to_patch: Vec<String>,
    /// True when a wave past the canary stage was deployed.
    pub left_canary_stage: bool,
    /// Waves.
    pub waves: Vec<WaveSummary>,
    /// What `rollout.detect` planned the canary stage to catch (None
    /// where it is not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_stage: Option<String>,
    /// The fleet's noise the scoring stage measured on unpatched VMs, at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<bellwether_schemas::FleetNoise>,
    /// Rollbacks in the order carried out.
    pub rollbacks: Vec<RollbackSummary>,
    /// Ground truth from the simulator.
    pub ground_truth: GroundTruth,
    /// Every rollout of the demo, the scenario's first (one, unless
    /// `--rollouts`); the fields above are the scenario's.
    pub rollouts: Vec<RolloutSummary>,
    /// Counters.
    pub pipeline: PipelineCounters,
}

/// The waves of rollout `id` that had VMs, baked or not (by its events).
fn wave_summaries<A: Actuator>(
    actor: &RolloutActor<A>,
    id: &str,
    waves: &[bellwether_schemas::Wave],
) -> Vec<WaveSummary> {
    let baked: BTreeSet<usize> = actor
        .events()
        .iter()
        .filter(|e| e.rollout_id == id)
        .filter_map(|e| match e.kind {
            bellwether_schemas::RolloutEventKind::WaveBaked { wave } => Some(wave),
            _ => None,
        })
        .collect();
    waves
        .iter()
        .filter(|w| !w.vms.is_empty())
        .map(|w| WaveSummary {
            wave: w.index + 1,
            canary: w.canary,
            vms: w.vms.len(),
            started_at: w.started_at,
            baked: baked.contains(&w.index),
        })
        .collect()
}

/// Builds the summary at the end of a demo.
#[allow(clippy::too_many_arguments)]
pub fn summarize<A: Actuator>(
    config: &Config,
    qualities: &[(String, PatchQuality)],
    fleet: &FleetSimulator,
    actor: &RolloutActor<A>,
    stage: &ScoringStage,
    scores: &ScoreTally,
    patch_at: EventTime,
    ended: EventTime,
    wall: Duration,
) -> DemoSummary {
    let (scenario_id, quality) = qualities
        .first()
        .map_or(("", PatchQuality::Good), |q| (q.0.as_str(), q.1));
    // The top level is the scenario's rollout (the demo's first).
    let nothing = BTreeSet::new();
    let (state, scenario_waves, ever_patched, on_patch, scenario_rollbacks, failed) =
        match actor.rollout_view(scenario_id) {
            Some(v) => (
                v.state,
                v.waves,
                v.ever_patched,
                v.patched,
                v.rollbacks,
                v.failed_patches,
            ),
            None => (
                RolloutState::Pending,
                &[][..],
                &nothing,
                &nothing,
                &[][..],
                &nothing,
            ),
        };
    let waves = wave_summaries(actor, scenario_id, scenario_waves);
    let affected: BTreeSet<String> = fleet.affected_vms().into_iter().collect();
    let rollouts = actor
        .rollouts()
        .iter()
        .map(|r| {
            let quality = qualities
                .iter()
                .find(|q| q.0 == r.rollout.id)
                .map_or(PatchQuality::Good, |q| q.1);
            let broken = |vm: &String| quality != PatchQuality::Good && affected.contains(vm);
            RolloutSummary {
                rollout_id: r.rollout.id.clone(),
                patch_id: r.rollout.patch.id.clone(),
                patch: match quality {
                    PatchQuality::Good => "good".into(),
                    PatchQuality::Bad(_) => "bad".into(),
                },
                canary_groups: r.rollout.canary_groups.clone(),
                outcome: RolloutOutcome::of(r.state, r.ever_patched.len(), r.patched.len()),
                final_state: r.state,
                waves: wave_summaries(actor, &r.rollout.id, r.waves),
                waves_planned: r.planned_waves,
                vms_patched: r.ever_patched.len(),
                vms_rolled_back: r.rollbacks.len(),
                vms_on_patch: r.patched.len(),
                vms_failed_to_patch: r.failed_patches.len(),
                healthy_rolled_back: r.rollbacks.iter().filter(|b| !broken(&b.vm_id)).count(),
            }
        })
        .collect();
    let rolled_back: BTreeSet<&String> = scenario_rollbacks.iter().map(|r| &r.vm_id).collect();
    let affected_patched: Vec<String> = ever_patched
        .iter()
        .filter(|v| affected.contains(*v))
        .cloned()
        .collect();
    let stats = stage.stats();
    DemoSummary {
        outcome: RolloutOutcome::of(state, ever_patched.len(), on_patch.len()),
        final_state: state,
        scenario: match quality {
            PatchQuality::Good => "good".into(),
            PatchQuality::Bad(_) => "bad".into(),
        },
        fault: match quality {
            PatchQuality::Good => None,
            PatchQuality::Bad(kind) => Some(kind.to_string()),
        },
        fault_size: match (quality, config.simulation.fault_size) {
            (PatchQuality::Bad(kind), Some(size)) => Some(format!("{size}{}", kind.unit())),
            _ => None,
        },
        seed: config.simulation.seed,
        fleet_size: fleet.inventory().len(),
        forecaster: stage.forecaster_name().to_string(),
        failure_model: stage.failure_model_name().map(str::to_string),
        rollout_id: scenario_id.to_string(),
        patch_approved_at: patch_at,
        ended_at: ended,
        fleet_hours: (ended.0 - crate::simulator::DEMO_START.0) as f64 / EventTime::HOUR_MS as f64,
        wall_seconds: wall.as_secs_f64(),
        vms_patched: ever_patched.len(),
        vms_rolled_back: scenario_rollbacks.len(),
        vms_on_patch: on_patch.len(),
        vms_failed_to_patch: failed.iter().cloned().collect(),
        left_canary_stage: scenario_waves
            .iter()
            .any(|w| !w.canary && !w.vms.is_empty()),
        waves,
        canary_stage: actor
            .events()
            .iter()
            .filter(|e| e.rollout_id == scenario_id)
            .find_map(|e| match &e.kind {
                bellwether_schemas::RolloutEventKind::CanaryStagePlanned { detects, .. } => {
                    Some(detects.clone())
                }
                _ => None,
            }),
        noise: stage.noise(),
        rollbacks: scenario_rollbacks
            .iter()
            .map(|r| RollbackSummary {
                order: r.order,
                vm_id: r.vm_id.clone(),
                critical: r.critical,
                trigger: r.reason.trigger,
                reason: r.reason.summary.clone(),
                evidence: r.reason.evidence.clone(),
                failure: r.reason.failure.clone(),
                wave: r.reason.wave.clone(),
                detected_at: r.detected_at,
                executed_at: r.executed_at,
            })
            .collect(),
        rollouts,
        ground_truth: GroundTruth {
            affected_rolled_back: affected_patched
                .iter()
                .filter(|v| rolled_back.contains(v))
                .count(),
            healthy_rolled_back: rolled_back
                .iter()
                .filter(|v| !affected.contains(**v))
                .map(|v| v.to_string())
                .collect(),
            affected_patched,
            crashes: fleet.crashes().to_vec(),
        },
        pipeline: PipelineCounters {
            samples_in: stats.rows_in,
            late_rows: stats.late_rows,
            windows_scored: stats.windows_closed,
            scores_emitted: scores.count,
            duplicate_commands_skipped: actor.duplicates_skipped(),
        },
    }
}

/// A failure risk worth a line beside a rollback another trigger set off.
const NOTABLE_RISK: f64 = 0.5;

/// What the simulator knows against what bellwether did, in every
/// scenario: a healthy VM rolled back is a false alarm, named.
fn ground_truth_line(s: &DemoSummary) -> String {
    let g = &s.ground_truth;
    let false_alarms = match g.healthy_rolled_back.len() {
        0 => "no false alarm (no healthy VM rolled back)".to_string(),
        n => format!(
            "{n} false alarm(s): healthy VM(s) rolled back: {}",
            g.healthy_rolled_back.join(", ")
        ),
    };
    if s.fault.is_some() {
        format!(
            "  ground truth: the patch broke {} of the {} VMs it reached; {} of them rolled back; {false_alarms}\n",
            g.affected_patched.len(),
            s.vms_patched,
            g.affected_rolled_back,
        )
    } else {
        format!("  ground truth: a good patch, it broke no VM; {false_alarms}\n")
    }
}

/// The summary as text for a terminal.
pub fn render_text(s: &DemoSummary) -> String {
    let mut out = String::new();
    let scenario = match (&s.fault, &s.fault_size) {
        (Some(fault), Some(size)) => format!("bad patch ({fault}, {size})"),
        (Some(fault), None) => format!("bad patch ({fault})"),
        (None, _) => "good patch".to_string(),
    };
    let _ = writeln!(
        out,
        "\nbellwether demo: {scenario}, {} VMs, seed {}",
        s.fleet_size, s.seed
    );
    let _ = writeln!(
        out,
        "  patch approved {}; fleet time simulated {:.1} h in {:.1} s; forecaster {}; failure model {}",
        s.patch_approved_at,
        s.fleet_hours,
        s.wall_seconds,
        s.forecaster,
        s.failure_model.as_deref().unwrap_or("none")
    );
    if s.rollouts.len() > 1 {
        let _ = writeln!(out, "\nRollouts side by side");
        for r in &s.rollouts {
            let _ = writeln!(
                out,
                "  {:<26} {} patch, canary {}: {} · {}/{} waves · {} VMs patched · {} rolled back ({} healthy)",
                r.rollout_id,
                r.patch,
                r.canary_groups.join(", "),
                r.outcome.as_str(),
                r.waves.len(),
                r.waves_planned,
                r.vms_patched,
                r.vms_rolled_back,
                r.healthy_rolled_back
            );
        }
        let _ = writeln!(out, "\nWaves of {}", s.rollout_id);
    } else {
        let _ = writeln!(out, "\nWaves");
    }
    for w in &s.waves {
        let _ = writeln!(
            out,
            "  {} {:<7} {:>4} VMs  started {}  {}",
            w.wave,
            if w.canary { "canary" } else { "fleet" },
            w.vms,
            w.started_at,
            if w.baked {
                "baked healthy"
            } else {
                "did not finish baking"
            }
        );
    }
    if let Some(stage) = &s.canary_stage {
        let _ = writeln!(out, "  canary stage (rollout.detect): {stage}");
    }
    let _ = writeln!(out, "\nRollbacks ({})", s.rollbacks.len());
    if s.rollbacks.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for r in &s.rollbacks {
        let _ = writeln!(
            out,
            "  {:>2}. {}{}  detected {}, rolled back {}",
            r.order,
            r.vm_id,
            if r.critical { " [critical]" } else { "" },
            r.detected_at,
            r.executed_at
        );
        if let Some(f) = &r.failure {
            if r.trigger == bellwether_schemas::RollbackTrigger::PredictedFailure {
                let _ = writeln!(out, "        {}", crate::scoring::describe_risk(f));
            } else if f.risk >= NOTABLE_RISK {
                let _ = writeln!(
                    out,
                    "        also: failure risk {:.2} within {} min",
                    f.risk, f.horizon_minutes
                );
            }
        }
        if let Some(w) = &r.wave {
            let _ = writeln!(out, "        stopped with its rollout's patched VMs: {w}");
        }
        for e in &r.evidence {
            let prefix = if r.wave.is_some() { "this VM: " } else { "" };
            let _ = writeln!(out, "        {prefix}{}", describe(e));
        }
    }
    let _ = writeln!(
        out,
        "\nOutcome: {}",
        s.outcome.as_str().replace('_', " ").to_uppercase()
    );
    let _ = writeln!(
        out,
        "  {} of {} VMs received the patch; {} rolled back; {} still run it; {}",
        s.vms_patched,
        s.fleet_size,
        s.vms_rolled_back,
        s.vms_on_patch,
        if s.left_canary_stage {
            "the rollout went past the canary stage"
        } else {
            "the patch never left the canary stage"
        }
    );
    if !s.vms_failed_to_patch.is_empty() {
        let _ = writeln!(
            out,
            "  the patch failed on {} VM(s): {}",
            s.vms_failed_to_patch.len(),
            s.vms_failed_to_patch.join(", ")
        );
    }
    out += &ground_truth_line(s);
    if !s.ground_truth.crashes.is_empty() {
        let _ = writeln!(out, "  crashes: {}", s.ground_truth.crashes.len());
    }
    let _ = writeln!(
        out,
        "  pipeline: {} samples, {} windows scored, {} late rows",
        s.pipeline.samples_in, s.pipeline.windows_scored, s.pipeline.late_rows
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_schemas::{FailureRisk, RollbackTrigger};

    fn summary(fault: Option<&str>, healthy_rolled_back: &[&str]) -> DemoSummary {
        let t = EventTime(1_793_685_600_000);
        DemoSummary {
            outcome: RolloutOutcome::Completed,
            final_state: RolloutState::Completed,
            scenario: if fault.is_some() { "bad" } else { "good" }.into(),
            fault: fault.map(str::to_string),
            fault_size: None,
            seed: 7,
            fleet_size: 300,
            forecaster: "f".into(),
            failure_model: None,
            rollout_id: "r".into(),
            patch_approved_at: t,
            ended_at: t.plus_ms(3_600_000),
            fleet_hours: 1.0,
            wall_seconds: 0.1,
            vms_patched: 300,
            vms_rolled_back: 1,
            vms_on_patch: 299,
            vms_failed_to_patch: Vec::new(),
            left_canary_stage: true,
            waves: Vec::new(),
            canary_stage: None,
            noise: None,
            rollbacks: vec![RollbackSummary {
                order: 1,
                vm_id: "vm-0007".into(),
                critical: false,
                trigger: RollbackTrigger::Anomaly,
                reason: "response_time_ms 200 vs 100 expected".into(),
                evidence: Vec::new(),
                failure: Some(FailureRisk {
                    risk: 0.0,
                    horizon_minutes: 30,
                    model: "m".into(),
                    drivers: Vec::new(),
                }),
                wave: None,
                detected_at: t,
                executed_at: t,
            }],
            rollouts: Vec::new(),
            ground_truth: GroundTruth {
                affected_patched: Vec::new(),
                affected_rolled_back: 0,
                healthy_rolled_back: healthy_rolled_back.iter().map(|s| s.to_string()).collect(),
                crashes: Vec::new(),
            },
            pipeline: PipelineCounters {
                samples_in: 0,
                late_rows: 0,
                windows_scored: 0,
                scores_emitted: 0,
                duplicate_commands_skipped: 0,
            },
        }
    }

    #[test]
    fn a_good_patch_shows_its_false_alarms_and_no_idle_risk_line() {
        let text = render_text(&summary(None, &["vm-0007"]));
        assert!(
            text.contains("ground truth: a good patch, it broke no VM; 1 false alarm(s): healthy VM(s) rolled back: vm-0007"),
            "{text}"
        );
        // An anomaly rollback with a risk of 0.00: no risk line.
        assert!(!text.contains("failure risk"), "{text}");
        let mut notable = summary(None, &[]);
        notable.rollbacks[0].failure.as_mut().unwrap().risk = 0.8;
        let text = render_text(&notable);
        assert!(
            text.contains("also: failure risk 0.80 within 30 min"),
            "{text}"
        );
        assert!(text.contains("no false alarm"), "{text}");
        let bad = render_text(&summary(Some("latency-regression"), &[]));
        assert!(
            bad.contains("the patch broke 0 of the 300 VMs it reached"),
            "{bad}"
        );
    }

    #[test]
    fn the_outcome_means_one_thing() {
        use RolloutOutcome as O;
        assert_eq!(O::of(RolloutState::Completed, 300, 290), O::Completed);
        assert_eq!(O::of(RolloutState::Halted, 3, 2), O::Halted);
        // Halted with nothing left on the patch is a rollout rolled back.
        assert_eq!(O::of(RolloutState::Halted, 3, 0), O::RolledBack);
        assert_eq!(O::of(RolloutState::RolledBack, 3, 0), O::RolledBack);
        assert_eq!(O::of(RolloutState::Baking, 300, 300), O::Unfinished);
        let json = serde_json::to_value(summary(None, &[])).unwrap();
        assert_eq!(json["outcome"], "completed");
        assert_eq!(json["patch_approved_at"], "2026-11-03T06:00:00Z");
        assert_eq!(json["rollbacks"][0]["executed_at"], "2026-11-03T06:00:00Z");
    }
}
