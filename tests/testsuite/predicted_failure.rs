//! Predictive failure analysis end to end: a memory leak the anomaly rule
//! is blind to (memory's threshold set out of reach) is still rolled back
//! before any VM crashes, because the failure model predicts the crash;
//! with the model told not to act, the same leak crashes VMs.

use bellwether::config::Config;
use bellwether::demo::{DemoOptions, run_demo};
use bellwether::simulator::{FaultKind, PatchQuality};
use bellwether::summary::DemoSummary;
use bellwether_schemas::RollbackTrigger;

/// The demo with memory's anomaly threshold out of reach.
fn blind_to_memory(seed: u64, act: bool) -> DemoSummary {
    let mut config = Config::default_config();
    config.simulation.seed = seed;
    config
        .thresholds
        .per_metric
        .get_mut("memory_percent")
        .unwrap()
        .sigma = Some(1000.0);
    config.failure.act = act;
    run_demo(
        &config,
        DemoOptions::new(PatchQuality::Bad(FaultKind::MemoryLeak)),
        None,
        None,
        &mut |_| {},
    )
    .expect("demo runs")
}

#[test]
fn a_predicted_failure_rolls_a_leaking_vm_back_before_it_crashes() {
    let s = blind_to_memory(1, true);
    assert_eq!(s.failure_model.as_deref(), Some("failure-builtin-2"));
    assert_eq!(s.outcome.as_str(), "halted");
    assert!(!s.left_canary_stage);
    assert!(
        s.ground_truth.crashes.is_empty(),
        "{:?}",
        s.ground_truth.crashes
    );
    assert!(s.ground_truth.healthy_rolled_back.is_empty());
    assert_eq!(
        s.ground_truth.affected_rolled_back,
        s.ground_truth.affected_patched.len()
    );
    assert!(!s.rollbacks.is_empty());
    for r in &s.rollbacks {
        assert_eq!(r.trigger, RollbackTrigger::PredictedFailure, "{r:?}");
        assert!(r.reason.starts_with("predicted failure: risk"), "{r:?}");
        let failure = r
            .failure
            .as_ref()
            .expect("the risk comes with the rollback");
        assert!(failure.risk >= 0.5 && failure.risk <= 1.0, "{failure:?}");
        assert_eq!(failure.horizon_minutes, 30);
        assert!(
            failure.drivers[0].feature.starts_with("memory_percent"),
            "{failure:?}"
        );
    }
}

#[test]
fn risks_that_are_not_acted_on_let_the_leak_crash() {
    let s = blind_to_memory(1, false);
    assert!(
        s.rollbacks
            .iter()
            .all(|r| r.trigger != RollbackTrigger::PredictedFailure),
        "{:?}",
        s.rollbacks
    );
    assert!(
        !s.ground_truth.crashes.is_empty(),
        "without the failure model acting, a leak the anomaly rule misses crashes"
    );
}
