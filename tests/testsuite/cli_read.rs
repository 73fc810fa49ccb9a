//! The read commands against a running bellwether (`demo --serve`): what
//! `rollout list|status`, `patch list` and `vm list` print is what the
//! demo did; and the demo's history answers `/api/sql` while it runs.

use crate::common::{self, Bellwether, eventually};
use serde_json::Value;
use std::time::Duration;

fn read(url: &str, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    common::bellwether_output(&all)
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = read(url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&ok(url, &all)).unwrap()
}

#[test]
fn the_read_commands_show_what_a_serving_demo_did() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Bellwether::serving_demo(dir.path(), "100000");
    let url = demo.dashboard_url();
    // The scenario ends (its summary printed); the page stays up.
    let summary = eventually(Duration::from_secs(120), "the demo's summary", || {
        let out = std::fs::read_to_string(dir.path().join("demo.out")).ok()?;
        out.contains("Outcome:").then_some(out)
    });

    let rollouts = json(&url, &["rollout", "list"]);
    let r = &rollouts[0];
    assert_eq!(rollouts.as_array().unwrap().len(), 1, "{rollouts}");
    assert_eq!(r["state"], "halted", "{rollouts}");
    let id = r["id"].as_str().unwrap();
    let rolled_back = r["rolled_back"].as_u64().unwrap();
    assert!(rolled_back >= 1, "{rollouts}");
    let table = ok(&url, &["rollout", "list"]);
    assert!(table.contains(id) && table.contains("halted"), "{table}");

    // Status: the waves count rolled-back VMs as such, and each rollback
    // the summary printed is there with its reason.
    let status = json(&url, &["rollout", "status", id]);
    let waves = status["waves"].as_array().unwrap();
    assert_eq!(waves[0]["wave"], 1, "{status}");
    let back: u64 = waves
        .iter()
        .map(|w| w["rolled_back"].as_u64().unwrap())
        .sum();
    assert_eq!(back, rolled_back, "{status}");
    for w in waves {
        assert!(
            w["patched"].as_u64().unwrap() + w["rolled_back"].as_u64().unwrap()
                <= w["vms"].as_u64().unwrap(),
            "{w}"
        );
    }
    let decided = status["rollbacks"][0]["decided_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(decided).is_ok(),
        "{decided}"
    );
    let text = ok(&url, &["rollout", "status", id]);
    let vm = status["rollbacks"][0]["vm"].as_str().unwrap();
    assert!(summary.contains(vm), "{vm} not in the summary: {summary}");
    assert!(text.contains(vm) && text.contains("rolled back"), "{text}");
    assert!(
        text.contains(status["rollbacks"][0]["reason"].as_str().unwrap()),
        "{text}"
    );

    let unknown = read(&url, &["rollout", "status", "rollout-nope"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("404") && err.contains("rollout-nope"), "{err}");

    let patches = json(&url, &["patch", "list"]);
    assert_eq!(patches[0]["rollout_id"], id, "{patches}");
    assert_eq!(patches[0]["state"], "halted", "{patches}");

    // VMs with what puts them in their groups.
    let vms = json(&url, &["vm", "list"]);
    let vms = vms.as_array().unwrap();
    assert_eq!(vms.len(), 300);
    for v in vms {
        let groups: Vec<&str> = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert_eq!(
            v["criticality"] == "critical",
            groups.contains(&"critical-systems"),
            "{v}"
        );
    }
    let table = ok(&url, &["vm", "list"]);
    assert!(
        table.lines().next().unwrap().contains("criticality"),
        "{table}"
    );
    assert_eq!(table.lines().filter(|l| l.contains("vm-")).count(), 300);
    demo.kill();

    // No server there: the error says where it looked and what to start.
    let err = read(&url, &["rollout", "list"]);
    assert!(!err.status.success());
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains("cannot reach bellwether"), "{err}");
}

#[test]
fn a_paced_demo_answers_sql_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut demo = Bellwether::spawn(
        dir.path(),
        "demo",
        &[
            "demo",
            "--serve",
            "127.0.0.1:0",
            "--speed",
            "300",
            "--history",
            history.to_str().unwrap(),
        ],
    );
    let url = demo.dashboard_url();
    // Patch commands are in the history before the demo ends.
    let patched = eventually(Duration::from_secs(120), "patch commands in SQL", || {
        let rows: Value = ureq::get(&format!("{url}api/sql"))
            .query(
                "q",
                "SELECT count(*) AS n FROM commands WHERE action = 'patch'",
            )
            .call()
            .ok()?
            .body_mut()
            .read_json()
            .ok()?;
        let n = rows[0]["n"].as_u64()?;
        (n > 0).then_some(n)
    });
    let out = std::fs::read_to_string(dir.path().join("demo.out")).unwrap_or_default();
    assert!(
        !out.contains("Outcome:"),
        "the demo had ended before SQL saw its {patched} patch commands"
    );
    demo.wait(Duration::from_secs(300));
}
