//! `bellwether eval rollouts`: a good patch and every fault on seeded
//! fleets, and the totals an SRE asks for.

use serde_json::Value;
use std::process::Command;

#[test]
fn bad_patches_stay_in_the_canary_stage_and_healthy_vms_stay_patched() {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["eval", "rollouts", "--seeds", "1", "--vms", "120", "--json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let scenarios: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        scenarios,
        [
            "good",
            "latency-regression",
            "error-rate-rise",
            "cpu-spike",
            "memory-leak",
            "slow-drift",
            "all bad patches"
        ]
    );
    let good = &lines[0];
    assert_eq!(good["completed"], 1, "{good}");
    assert_eq!(good["healthy_patched"], 120, "{good}");
    assert_eq!(good["healthy_rolled_back"], 0, "{good}");
    let bad = &lines[6];
    assert_eq!(bad["rollouts"], 5, "{bad}");
    assert_eq!(bad["left_canary_stage"], 0, "{bad}");
    assert_eq!(bad["broken_rolled_back"], bad["broken_patched"], "{bad}");
    assert!(bad["broken_patched"].as_u64().unwrap() >= 5, "{bad}");
    assert_eq!(bad["healthy_rolled_back"], 0, "{bad}");
    assert_eq!(bad["crashes"], 0, "{bad}");
}

#[test]
fn a_bad_seed_count_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["eval", "rollouts", "--seeds", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seeds"));
}
