//! `bellwether train` as a user runs it: train on a small simulated fleet,
//! promote the bundle, and run the demo on it.

use std::path::Path;
use std::process::{Command, Output};

fn bellwether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .output()
        .unwrap()
}

fn small_fleet(dir: &Path, model: &str) -> String {
    let path = dir.join("small.toml");
    std::fs::write(
        &path,
        format!("[fleet]\nvms = 40\n[forecast]\nmodel = \"{model}\"\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_trained_and_promoted_model_scores_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let config = small_fleet(dir.path(), models.to_str().unwrap());
    let out = bellwether(&[
        "train",
        "--config",
        &config,
        "--hours",
        "36",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        models.to_str().unwrap(),
        "--promote",
        "--version",
        "t1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("model lstm-t1"), "{stdout}");
    for metric in ["cpu_percent", "response_time_ms", "error_rate_percent"] {
        assert!(stdout.contains(metric), "{stdout}");
    }
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("lstm-t1.json")).unwrap()).unwrap();
    assert_eq!(bundle["version"], "t1");
    assert_eq!(bundle["training"]["vms"], 40);
    assert!(bundle["training"]["validation_rmse"].as_f64().unwrap() > 0.0);
    assert_eq!(bundle["thresholds"].as_object().unwrap().len(), 7);
    assert_eq!(
        std::fs::read_to_string(models.join("promoted"))
            .unwrap()
            .trim(),
        "lstm-t1.json"
    );

    let out = bellwether(&["demo", "--config", &config, "--json", "--no-history"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["forecaster"], "lstm-t1");
}

#[test]
fn a_damaged_model_falls_back_to_the_statistical_forecaster_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("broken.json");
    std::fs::write(
        &bundle,
        "{\"format\": \"bellwether-lstm-bundle/1\", \"weights\": [",
    )
    .unwrap();
    let config = small_fleet(dir.path(), bundle.to_str().unwrap());
    let out = bellwether(&["demo", "--config", &config, "--json", "--no-history"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("falling back to the statistical forecaster"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.json"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["forecaster"], "seasonal-regression");
    // The fallback still catches the bad patch: the rollout stopped (all
    // of the small fleet's patched VMs rolled back, or some).
    assert!(
        matches!(s["outcome"].as_str(), Some("halted" | "rolled_back")),
        "{s}"
    );
    assert!(s["vms_rolled_back"].as_u64().unwrap() >= 1, "{s}");
}

#[test]
fn bad_training_data_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("samples.csv");
    std::fs::write(
        &csv,
        "timestamp,vm_id,metric,value\n2026-11-01T00:00:00Z,vm-1,cpu_percent,12.5\n2026-11-01T00:01:00Z,vm-1,cpu_percent,high\n",
    )
    .unwrap();
    let out = bellwether(&[
        "train",
        "--from",
        "csv",
        "--csv",
        csv.to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("samples.csv:3") && stderr.contains("high"),
        "{stderr}"
    );
}
