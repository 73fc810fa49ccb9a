//! Canary groups: `bellwether group preview|list` and the groups API show
//! exactly the VMs a selector matches, before it is used.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn bellwether(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A small fleet in an inventory file, a config naming it and one group.
fn setup(dir: &Path) {
    let vms = json!([
        { "id": "web-1", "region": "eu-west-1", "instance_type": "m6i.large", "tags": { "role": "web", "env": "prod" } },
        { "id": "web-2", "region": "us-east-1", "instance_type": "m6i.large", "tags": { "role": "web", "env": "prod" } },
        { "id": "web-3", "region": "eu-west-1", "instance_type": "c6i.xlarge", "tags": { "role": "web", "env": "staging" } },
        { "id": "db-1", "region": "eu-west-1", "instance_type": "r6i.2xlarge", "criticality": "critical", "tags": { "role": "db", "env": "prod" } },
        { "id": "cache-1", "region": "us-east-1", "instance_type": "r6i.large", "criticality": "high", "tags": { "role": "cache" } }
    ]);
    std::fs::write(dir.join("inventory.json"), vms.to_string()).unwrap();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[actor]\ninventory_file = \"{}\"\n\n[rollout]\ncanary_groups = [\"critical-systems\", \"eu-web\"]\n\n[[canary.groups]]\nname = \"eu-web\"\nregions = [\"eu-west-1\"]\ntags = {{ role = \"web\" }}\n",
            dir.join("inventory.json").display()
        ),
    )
    .unwrap();
}

fn members(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_selector_matches_exactly_the_expected_vms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let preview = |extra: &[&str]| {
        let mut args = vec!["group", "preview", "--config", "c.toml", "--json"];
        args.extend_from_slice(extra);
        members(&bellwether(d, &args))
    };
    assert_eq!(preview(&["--group", "eu-web"]), ["web-1", "web-3"]);
    assert_eq!(preview(&["--group", "critical-systems"]), ["db-1"]);
    assert_eq!(
        preview(&[
            "--expression",
            r#"tags.role == "web" && tags.env == "prod""#
        ]),
        ["web-1", "web-2"]
    );
    assert_eq!(
        preview(&[
            "--expression",
            r#"critical || instance_type in ["r6i.large"]"#
        ]),
        ["db-1", "cache-1"]
    );
    assert_eq!(
        preview(&["--tag", "env=prod", "--region", "eu-west-1"]),
        ["web-1", "db-1"]
    );
    assert_eq!(
        preview(&["--criticality", "high", "--criticality", "critical"]),
        ["db-1", "cache-1"]
    );
    assert!(preview(&["--tag", "role=queue"]).is_empty());

    // Mistakes are named.
    let out = bellwether(
        d,
        &[
            "group",
            "preview",
            "--config",
            "c.toml",
            "--expression",
            "tags.role = \"web\"",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expression"));
    let out = bellwether(
        d,
        &["group", "preview", "--config", "c.toml", "--group", "nope"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("eu-web"), "{err}");

    let out = bellwether(d, &["group", "list", "--config", "c.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("critical-systems") && lines[0].contains(" 1 VMs"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("eu-web") && lines[1].contains(" 2 VMs"),
        "{text}"
    );
}

#[test]
fn an_expression_nested_too_deep_is_refused_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for expression in [
        format!("{}critical", "!".repeat(50_000)),
        format!("{}critical{}", "(".repeat(30_000), ")".repeat(30_000)),
    ] {
        let out = bellwether(
            d,
            &[
                "group",
                "preview",
                "--config",
                "c.toml",
                "--expression",
                &expression,
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("nested more than 64 deep"), "{err}");
    }
    // A long flat chain is no problem (kept under one argument's 128 KB).
    let chain = vec!["critical"; 8_000].join(" || ");
    let out = bellwether(
        d,
        &[
            "group",
            "preview",
            "--config",
            "c.toml",
            "--json",
            "--expression",
            &chain,
        ],
    );
    assert_eq!(members(&out), ["db-1"]);
}

#[test]
fn the_wave_preview_plans_rollout_detect_from_a_noise_file() {
    // The noise a demo measured (its JSON summary), passed back to the
    // offline preview of the same simulated fleet.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("detect.toml"),
        "[rollout.detect]\nshifts = { response_time_ms = \"5%\", cpu_percent = \"3pp\" }\nmax_canaries = \"20%\"\n",
    )
    .unwrap();
    let demo = bellwether(
        d,
        &[
            "demo",
            "--config",
            "detect.toml",
            "--format",
            "json",
            "--no-history",
        ],
    );
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    std::fs::write(d.join("summary.json"), &demo.stdout).unwrap();
    let preview = |extra: &[&str]| {
        let mut args = vec!["group", "preview", "--waves", "--config", "detect.toml"];
        args.extend_from_slice(extra);
        bellwether(d, &args)
    };
    let out = preview(&["--noise", "summary.json", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let canaries = plan["detection"]["canary_vms"].as_u64().expect("planned") as usize;
    let in_canary_waves: usize = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["stage"] == "canary")
        .map(|w| w["vms"].as_array().unwrap().len())
        .sum();
    assert_eq!(in_canary_waves, canaries, "{plan}");
    assert!((3..=60).contains(&canaries), "{canaries}");
    // The same for people, and what it was planned from comes back.
    let text = String::from_utf8(preview(&["--noise", "summary.json"]).stdout).unwrap();
    assert!(
        text.contains(&format!("with {canaries} canaries and "))
            && text.contains("chance to catch +5% response_time_ms"),
        "{text}"
    );
    assert_eq!(plan["noise"]["window_minutes"], 5.0, "{plan}");
    // Without it: the configured stage, and why.
    let text = String::from_utf8(preview(&[]).stdout).unwrap();
    assert!(text.contains("not measured here"), "{text}");
    // A file that is no noise is named.
    std::fs::write(d.join("bad.json"), "{\"noise\": 3}").unwrap();
    let out = preview(&["--noise", "bad.json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--noise bad.json: not the fleet's noise"),
        "{err}"
    );
}
