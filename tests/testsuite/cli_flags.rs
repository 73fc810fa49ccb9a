//! The flags every command takes (`--config`, `--format`) and the one way to
//! approve a patch, as a user types them.

use std::process::{Command, Output};

fn bellwether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn config_is_taken_before_or_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my.toml");
    std::fs::write(&file, "[fleet]\nvms = 77\n").unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec!["--config", file, "config", "show"],
        vec!["config", "--config", file, "show"],
        vec!["config", "show", "--config", file],
    ] {
        let shown: serde_json::Value = serde_json::from_str(&stdout(&bellwether(&args))).unwrap();
        assert_eq!(shown["fleet"]["vms"], 77, "{args:?}");
    }
}

#[test]
fn format_json_prints_json_and_csv_is_refused_outside_sql() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().to_str().unwrap();
    let listed = stdout(&bellwether(&[
        "model", "list", "--models", models, "--format", "json",
    ]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["versions"], serde_json::json!([]), "{listed}");
    // The built-in models, and which model each service loads with the
    // default config: the built-in ones.
    let builtin: Vec<&str> = listed["builtin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(builtin, ["builtin-1", "builtin-2"], "{listed}");
    let in_use = |kind: &str| {
        listed["in_use"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["kind"] == kind)
            .map(|u| u["model"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(in_use("forecaster"), "lstm-builtin-1");
    assert_eq!(in_use("failure"), "failure-builtin-2");
    let text = stdout(&bellwether(&["model", "list", "--models", models]));
    assert!(text.contains("no model bundle"), "{text}");
    assert!(text.contains("lstm-builtin-1"), "{text}");

    // Refused before any work, naming the flag and where CSV is printed.
    let out = bellwether(&["--format", "csv", "eval", "rollouts", "--seeds", "50"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--format csv") && err.contains("sql"), "{err}");
    let out = bellwether(&["demo", "--format", "yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("yaml"));
}

#[test]
fn one_way_to_approve_is_listed_and_the_old_ones_are_hidden() {
    let help = stdout(&bellwether(&["--help"]));
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"patch"), "{help}");
    assert!(!commands.contains(&"approve"), "{help}");
    let patch = stdout(&bellwether(&["patch", "--help"]));
    assert!(patch.contains("approve"), "{patch}");
    let rollout = stdout(&bellwether(&["rollout", "--help"]));
    assert!(rollout.contains("deprecated"), "{rollout}");
    // The hidden alias still parses (it fails later, on the missing broker
    // config, not on the command line).
    let out = bellwether(&["approve", "--help"]);
    assert!(out.status.success());
}

#[test]
fn eval_sensitivity_refuses_a_bad_grid_naming_the_flag() {
    for (args, says) in [
        (vec!["--seeds", "0"], "--seeds"),
        (vec!["--canary", "0"], "--canary"),
        (vec!["--canary", "5000"], "300 VMs"),
        (vec!["--bake", "0"], "--bake"),
        (vec!["--faults", "memory-leak"], "memory-leak"),
        (vec!["--plot", "/no/such/folder/s.svg"], "no such folder"),
    ] {
        let out = bellwether(&[&["eval", "sensitivity"], &args[..]].concat());
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A one-rollout grid runs and prints the table, as JSON when asked.
    let out = stdout(&bellwether(&[
        "eval",
        "sensitivity",
        "--seeds",
        "1",
        "--vms",
        "40",
        "--canary",
        "10",
        "--faults",
        "error-rate-rise",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["detections"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["false_halts"][0]["rollouts"], 1, "{v}");
}
