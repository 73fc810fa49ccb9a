//! `bellwether demo` as a user runs it: the JSON summary's contract.

use std::process::Command;

fn demo(args: &[&str]) -> serde_json::Value {
    demo_env(args, &[])
}

/// As [`demo`], with environment variables (config overrides).
fn demo_env(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .arg("demo")
        .args(args)
        .args(["--format", "json", "--no-history"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn the_default_demo_catches_a_bad_patch_and_explains_each_rollback() {
    let s = demo(&[]);
    assert_eq!(s["outcome"], "halted");
    assert_eq!(s["fleet_size"], 300);
    assert!(s["vms_patched"].as_u64().unwrap() < 300);
    let rollbacks = s["rollbacks"].as_array().unwrap();
    assert_eq!(
        rollbacks.len() as u64,
        s["vms_rolled_back"].as_u64().unwrap()
    );
    assert!(!rollbacks.is_empty());
    for r in rollbacks {
        assert!(r["vm_id"].as_str().unwrap().starts_with("vm-"));
        assert!(r["critical"].is_boolean());
        assert!(r["reason"].as_str().unwrap().contains("expected"), "{r}");
    }
}

#[test]
fn flags_choose_the_scenario_fleet_and_seed() {
    let s = demo(&["--scenario", "good", "--vms", "120", "--seed", "11"]);
    assert_eq!(s["outcome"], "completed");
    assert_eq!(s["fleet_size"], 120);
    assert_eq!(s["vms_patched"], 120);
    assert_eq!(s["vms_rolled_back"], 0);
    assert_eq!(s["seed"], 11);
}

#[test]
fn two_rollouts_side_by_side_each_end_on_their_own() {
    let s = demo(&["--rollouts", "2"]);
    let rollouts = s["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 2, "{rollouts:?}");
    let (bad, good) = (&rollouts[0], &rollouts[1]);
    assert_eq!(
        (&bad["patch"], &good["patch"]),
        (&"bad".into(), &"good".into())
    );
    assert_ne!(bad["canary_groups"], good["canary_groups"]);
    assert_ne!(bad["rollout_id"], good["rollout_id"]);
    // Both started when approved: side by side, not one after the other.
    for r in rollouts {
        assert_eq!(r["waves"][0]["started_at"], s["patch_approved_at"], "{r}");
    }
    // The bad patch halted its own rollout alone, rolling back only what
    // it broke; the good one went through the whole fleet.
    assert_eq!(bad["outcome"], "halted");
    assert!(bad["vms_rolled_back"].as_u64().unwrap() > 0);
    assert_eq!(bad["healthy_rolled_back"], 0);
    assert_eq!(good["outcome"], "completed");
    assert_eq!(good["vms_patched"], s["fleet_size"]);
    assert_eq!(good["vms_rolled_back"], 0);
    // The summary's top level is the scenario's rollout.
    assert_eq!(s["rollout_id"], bad["rollout_id"]);
    assert_eq!(demo(&[])["rollouts"].as_array().unwrap().len(), 1);
}

#[test]
fn with_one_rollout_at_a_time_the_second_waits_behind_the_halted_first() {
    let s = demo_env(
        &["--rollouts", "2"],
        &[("BELLWETHER__ROLLOUT__MAX_PARALLEL", "1")],
    );
    let rollouts = s["rollouts"].as_array().unwrap();
    // A halted rollout keeps its place until an operator closes it.
    assert_eq!(rollouts.len(), 1, "{rollouts:?}");
    assert_eq!(rollouts[0]["outcome"], "halted");
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["demo", "--fault", "gremlins"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory-leak"));
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["demo", "--scenario", "good", "--fault", "cpu-spike"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fault only applies"));
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["demo", "--rollouts", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rollouts"));
}

#[test]
fn a_fault_takes_a_size_in_its_unit_and_a_wrong_unit_is_refused() {
    let s = demo(&[
        "--fault",
        "error-rate-rise",
        "--size",
        "0.5pp",
        "--vms",
        "60",
    ]);
    assert_eq!(s["fault"], "error-rate-rise");
    assert_eq!(s["fault_size"], "0.5pp");
    let s = demo(&["--vms", "60"]);
    assert!(s["fault_size"].is_null(), "unsized: the fault's own size");
    for (args, says) in [
        (vec!["--fault", "error-rate-rise", "--size", "5%"], "pp"),
        (
            vec!["--fault", "cpu-spike", "--size", "250"],
            "at most 100pp",
        ),
        (
            vec!["--scenario", "good", "--size", "5%"],
            "--size only applies",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
            .arg("demo")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
