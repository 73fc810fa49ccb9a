//! Approval rules on Kafka: a patch an auto-approval rule matches starts
//! its canary rollout as soon as it is submitted; one that needs a human
//! does not start until `bellwether patch approve`; a rejected one never.

use crate::common;

use common::{Bellwether, Broker, control_messages, eventually, write_config};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const CONTROL: &str = "bellwether.control";

const RULES: &str = r#"
[approval]
reject = ["KB-BROKEN"]

[[approval.rules]]
name = "critical security at once"
classifications = ["security"]
severities = ["critical"]
action = "approve"

[[approval.rules]]
name = "features by hand"
classifications = ["feature"]
action = "manual"
"#;

fn config(dir: &Path, broker: &Broker) -> String {
    let path = write_config(dir, broker, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(RULES);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Control messages of `kind` for `rollout`.
fn messages(broker: &Broker, kind: &str, rollout: &str) -> Vec<Value> {
    control_messages(broker, CONTROL)
        .into_iter()
        .filter(|m| m["type"] == kind && m["rollout_id"] == rollout)
        .collect()
}

fn submit(dir: &Path, config: &str, id: &str, classification: &str) -> String {
    let mut submit = Bellwether::spawn(
        dir,
        &format!("submit-{id}"),
        &[
            "patch",
            "submit",
            "--config",
            config,
            "--id",
            id,
            "--classification",
            classification,
            "--severity",
            "critical",
            "--product",
            "debian-12",
        ],
    );
    submit.wait(Duration::from_secs(120))
}

/// The rollout actor's decision on `rollout`'s submission.
fn decided(broker: &Broker, rollout: &str) -> Value {
    eventually(Duration::from_secs(60), "the decided submission", || {
        messages(broker, "submission", rollout)
            .into_iter()
            .find(|s| !s["decision"].is_null())
            .map(|s| s["decision"].clone())
    })
}

/// `bellwether patch approve --id ID` as alice.
fn approve(dir: &Path, config: &str, id: &str) -> String {
    let mut approve = Bellwether::spawn(
        dir,
        &format!("approve-{id}"),
        &[
            "patch", "approve", "--config", config, "--id", id, "--by", "alice",
        ],
    );
    approve.wait(Duration::from_secs(120))
}

#[test]
fn an_auto_approval_rule_starts_a_canary_rollout() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker);
    let run = Bellwether::spawn(dir.path(), "run", &["run", "--config", &config]);
    let out = submit(dir.path(), &config, "KB-SEC", "security");
    assert!(
        out.contains("approved by rule `critical security at once`: rollout rollout-kb-sec starts"),
        "{out}"
    );
    // The submission is kept on the control topic; the rollout actor
    // decides it with the rules in force, publishes the approval and starts
    // the rollout.
    assert_eq!(decided(&broker, "rollout-kb-sec")["decision"], "approve");
    let approvals = eventually(Duration::from_secs(60), "the approval", || {
        let a = messages(&broker, "approval", "rollout-kb-sec");
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(
        approvals[0]["approved_by"],
        "rule `critical security at once`"
    );
    assert_eq!(approvals[0]["patch"]["classification"], "security");
    // The actor starts the rollout: the first canary wave's patch commands.
    let patches = eventually(Duration::from_secs(120), "patch commands", || {
        let p = messages(&broker, "patch", "rollout-kb-sec");
        (!p.is_empty()).then_some(p)
    });
    // Waves are numbered from 1 on the topic too.
    assert!(patches.iter().all(|p| p["wave"] == 1), "{patches:?}");
    // A rejected patch is recorded, never approved, and a human's approve
    // does not override it.
    let out = submit(dir.path(), &config, "KB-BROKEN", "security");
    assert!(out.contains("rejected by the reject list"), "{out}");
    assert_eq!(decided(&broker, "rollout-kb-broken")["decision"], "reject");
    approve(dir.path(), &config, "KB-BROKEN");
    std::thread::sleep(Duration::from_secs(5));
    assert!(messages(&broker, "approval", "rollout-kb-broken").is_empty());
    assert!(messages(&broker, "patch", "rollout-kb-broken").is_empty());
    drop(run);
}

#[test]
fn a_manual_approval_patch_waits_for_a_human() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker);
    let run = Bellwether::spawn(dir.path(), "run", &["run", "--config", &config]);
    let out = submit(dir.path(), &config, "KB-FEAT", "feature");
    assert!(
        out.contains("waits for a human (rule `features by hand`)"),
        "{out}"
    );
    // Give the actor time to (wrongly) start something.
    std::thread::sleep(Duration::from_secs(5));
    assert!(messages(&broker, "approval", "rollout-kb-feat").is_empty());
    assert!(messages(&broker, "patch", "rollout-kb-feat").is_empty());
    // A human approves: now it starts, with the submitted patch.
    let out = approve(dir.path(), &config, "KB-FEAT");
    assert!(out.contains("approval sent: rollout-kb-feat"), "{out}");
    eventually(Duration::from_secs(120), "patch commands", || {
        let p = messages(&broker, "patch", "rollout-kb-feat");
        (!p.is_empty()).then_some(p)
    });
    let approval = &messages(&broker, "approval", "rollout-kb-feat")[0];
    assert_eq!(approval["approved_by"], "alice (by hand)");
    assert_eq!(approval["patch"]["classification"], "feature");
    drop(run);
}
