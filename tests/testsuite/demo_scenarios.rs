//! The embedded canary rollout end to end: good patches complete, bad ones
//! are caught in the canary stage and only the VMs they broke are rolled back.

use bellwether::cli::EVENT_START_MINUTES;
use bellwether::config::Config;
use bellwether::demo::{DemoOptions, run_demo};
use bellwether::simulator::{EventKind, FaultKind, FleetEvent, PatchQuality};
use bellwether::summary::DemoSummary;
use std::collections::BTreeSet;

/// A good patch rolled out under `config`.
fn good_patch(config: &Config) -> DemoSummary {
    run_demo(
        config,
        DemoOptions::new(PatchQuality::Good),
        None,
        None,
        &mut |_| {},
    )
    .expect("demo runs")
}

fn demo(quality: PatchQuality, seed: u64) -> DemoSummary {
    let mut config = Config::default_config();
    config.simulation.seed = seed;
    run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {}).expect("demo runs")
}

#[test]
fn a_good_patch_reaches_the_whole_fleet_with_no_rollback() {
    for seed in [1, 2] {
        let s = demo(PatchQuality::Good, seed);
        assert_eq!(s.outcome.as_str(), "completed", "seed {seed}");
        assert_eq!(s.vms_patched, s.fleet_size, "seed {seed}: every VM patched");
        assert_eq!(s.vms_on_patch, s.fleet_size);
        assert_eq!(
            s.vms_rolled_back, 0,
            "seed {seed}: rollbacks {:?}",
            s.rollbacks
        );
        assert!(s.waves.iter().all(|w| w.baked), "every wave baked healthy");
        assert_eq!(s.waves.len(), 4);
    }
}

#[test]
fn every_fault_is_halted_in_the_canary_stage_rolling_back_only_broken_vms() {
    for fault in FaultKind::ALL {
        for seed in [1, 3] {
            let s = demo(PatchQuality::Bad(fault), seed);
            let context = format!("{fault} seed {seed}");
            assert_eq!(s.outcome.as_str(), "halted", "{context}");
            assert!(
                !s.left_canary_stage,
                "{context}: the patch left the canary stage"
            );
            assert!(s.waves.iter().all(|w| w.canary), "{context}");
            assert!(s.vms_rolled_back > 0, "{context}: nothing rolled back");
            assert!(
                s.ground_truth.healthy_rolled_back.is_empty(),
                "{context}: healthy VMs rolled back"
            );
            let affected: BTreeSet<&String> = s.ground_truth.affected_patched.iter().collect();
            for r in &s.rollbacks {
                assert!(
                    affected.contains(&r.vm_id),
                    "{context}: {} was not broken",
                    r.vm_id
                );
                assert!(
                    !r.evidence.is_empty() && !r.reason.is_empty(),
                    "{context}: rollback without evidence"
                );
            }
            if fault == FaultKind::MemoryLeak {
                assert!(
                    s.ground_truth.crashes.is_empty(),
                    "{context}: a leaking VM crashed before its rollback"
                );
            }
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let a = demo(PatchQuality::Bad(FaultKind::ErrorRateRise), 5);
    let b = demo(PatchQuality::Bad(FaultKind::ErrorRateRise), 5);
    let ids = |s: &DemoSummary| {
        s.rollbacks
            .iter()
            .map(|r| (r.vm_id.clone(), r.executed_at))
            .collect::<Vec<_>>()
    };
    assert!(
        !ids(&a).is_empty(),
        "the scenario must decide something to compare"
    );
    assert_eq!(ids(&a), ids(&b));
}

fn demo_with_event(quality: PatchQuality, seed: u64, kind: EventKind) -> DemoSummary {
    let mut config = Config::default_config();
    config.simulation.seed = seed;
    config
        .simulation
        .events
        .push(FleetEvent::new(kind, EVENT_START_MINUTES));
    run_demo(&config, DemoOptions::new(quality), None, None, &mut |_| {}).expect("demo runs")
}

#[test]
fn a_good_patch_completes_through_every_fleet_wide_event() {
    for kind in EventKind::ALL {
        let s = demo_with_event(PatchQuality::Good, 1, kind);
        assert_eq!(
            (s.outcome.as_str(), s.vms_rolled_back),
            ("completed", 0),
            "{kind}: rollbacks {:#?}",
            s.rollbacks
        );
        assert_eq!(s.vms_patched, s.fleet_size, "{kind}");
    }
}

/// `eval rollouts --events` seed 15 drew a late batch job (CPU and disk up
/// on every worker, patched or not) that once had the failure model roll
/// back a healthy patched worker on its disk trend.
#[test]
fn a_batch_job_on_every_worker_is_no_predicted_failure_of_the_patched_ones() {
    let mut config = Config::default_config();
    config.simulation.seed = 15;
    let event = bellwether::eval::rollouts::seeded_event(15).expect("an odd seed has an event");
    assert_eq!(event.kind, EventKind::Batch);
    config.simulation.events.push(event);
    let s = good_patch(&config);
    assert!(
        s.failure_model.is_some(),
        "the built-in failure model is in use"
    );
    assert_eq!(
        (s.outcome.as_str(), s.vms_rolled_back),
        ("completed", 0),
        "rollbacks {:#?}",
        s.rollbacks
    );
}

#[test]
fn a_bad_patch_during_a_surge_is_still_halted_with_only_broken_vms_rolled_back() {
    for seed in [1, 3] {
        let s = demo_with_event(
            PatchQuality::Bad(FaultKind::LatencyRegression),
            seed,
            EventKind::Surge,
        );
        let context = format!("seed {seed}");
        assert_eq!(s.outcome.as_str(), "halted", "{context}");
        assert!(
            !s.left_canary_stage,
            "{context}: the patch left the canary stage"
        );
        assert!(s.vms_rolled_back > 0, "{context}");
        assert!(
            s.ground_truth.healthy_rolled_back.is_empty(),
            "{context}: healthy VMs rolled back: {:?}",
            s.ground_truth.healthy_rolled_back
        );
        // Every rollback says what the peers did in the same window.
        for r in &s.rollbacks {
            assert!(
                r.reason.contains("unpatched peers"),
                "{context}: {}",
                r.reason
            );
        }
    }
}

#[test]
fn rollout_detect_sizes_the_canary_stage_from_the_noise_the_pipeline_measured() {
    // The scoring stage measures the fleet's noise from the first windows;
    // the actor plans the canary stage from it when the patch is approved.
    let mut config = Config::default_config();
    config.simulation.seed = 1;
    config.rollout.detect = Some(
        toml::from_str(
            r#"shifts = { response_time_ms = "5%", error_rate_percent = "0.5pp" }
               max_canaries = "20%""#,
        )
        .unwrap(),
    );
    let s = good_patch(&config);
    let stage = s
        .canary_stage
        .clone()
        .expect("the canary stage was planned");
    let canary_vms = s
        .waves
        .iter()
        .filter(|w| w.canary)
        .map(|w| w.vms)
        .sum::<usize>();
    assert!(
        stage.starts_with(&format!("with {canary_vms} canaries and ")),
        "the stage deployed is the one planned: {canary_vms} VMs, {stage}"
    );
    assert!(
        stage.contains("chance to catch +5% response_time_ms"),
        "{stage}"
    );
    assert!(
        stage.contains("chance to catch +0.5pp error_rate_percent"),
        "{stage}"
    );
    assert!(
        (3..=s.fleet_size / 5).contains(&canary_vms),
        "between the wave test's 3 and max_canaries: {canary_vms}"
    );
    assert_eq!(s.outcome.as_str(), "completed", "{:?}", s.rollbacks);
}
