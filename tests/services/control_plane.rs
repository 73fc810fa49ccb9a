//! The control plane from the API and the CLI alone, on Kafka, across a
//! restart: an operator defines a canary group and approval rules, submits
//! a patch that a rule approves to roll out from that group, watches its rollout
//! advance wave by wave, kills and restarts bellwether mid-rollout, and
//! sees the bad patch rolled back by the rollback policy.

use crate::common;

use common::webhook::{SECRET, endpoint, signed};
use common::{Bellwether, Broker, HTTP_TOKEN, control_messages, eventually, write_config};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const CONTROL: &str = "bellwether.control";
const ROLLOUT: &str = "rollout-kb-2026-1130";
/// Simulated fleet time of `simulate`'s first sample (2026-11-02T00:00Z).
const FLEET_START_MS: i64 = 1_793_577_600_000;

/// The operator's config: an approval rule, short bakes so waves advance
/// before the patch's damage shows, and a policy that takes every patched
/// VM back after an anomaly.
const POLICY: &str = r#"
[simulation]
affected_share = 1.0

[rollout]
waves = ["1", "4", "12", "100%"]
canary_waves = 2
first_bake_minutes = 5
bake_minutes = 5
settle_minutes = 5

[rollback]
on_anomaly = "roll-back-all"
scope = "group"
max_concurrent = 20

[approval]
[[approval.rules]]
name = "everything by hand"
action = "manual"
"#;

/// The rules the operator puts in force over the API.
const RULES: &str = r#"{"rules": [
    {"name": "security at once", "classifications": ["security"], "action": "approve"},
    {"name": "the rest by hand", "action": "manual"}
]}"#;

/// The config, with commands carried out by a webhook at `hook`.
fn config(dir: &Path, broker: &Broker, hook: &str) -> String {
    let path = write_config(dir, broker, "");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[actor]\n", "[actor]\nactuator = \"webhook\"\n");
    text.push_str(POLICY);
    text.push_str(&format!(
        "\n[actor.webhook]\nurl = \"{hook}\"\nsecret = \"{SECRET}\"\nretries = 3\nbackoff_ms = 50\n"
    ));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn get(url: &str) -> Option<Value> {
    ureq::get(url).call().ok()?.into_body().read_json().ok()
}

/// Sends `body` with `method` (POST or PUT), with the bearer `token` if any.
fn send(method: &str, url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = if method == "PUT" {
        agent.put(url)
    } else {
        agent.post(url)
    }
    .header("Content-Type", "application/json");
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    send("POST", url, token, body)
}

fn put(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    send("PUT", url, token, body)
}

fn of_rollout<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages
        .iter()
        .filter(|m| m["type"] == kind && m["rollout_id"] == ROLLOUT)
        .collect()
}

/// Waves (numbered from 1) whose patch commands are on the control topic.
fn waves_started(broker: &Broker) -> BTreeSet<u64> {
    let messages = control_messages(broker, CONTROL);
    of_rollout(&messages, "patch")
        .iter()
        .map(|p| p["wave"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_patch_submitted_over_the_api_advances_by_waves_and_is_rolled_back_by_policy_across_a_restart()
{
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The deployment system's webhook: its first call fails (503), then it works.
    let (hook, calls) = endpoint(vec![503, 200]);
    let config = config(dir.path(), &broker, &hook);
    let mut run = Bellwether::spawn(dir.path(), "run-1", &["run", "--config", &config]);
    let url = run.dashboard_url();

    // A canary group, previewed from the API, then defined from the CLI:
    // the running bellwether has it once the control topic does.
    let (status, preview) = post(
        &format!("{url}api/groups/preview"),
        None,
        r#"{"regions": ["eu-west-1"]}"#,
    );
    assert_eq!(status, 200, "{preview}");
    let mut define = Bellwether::spawn(
        dir.path(),
        "define",
        &[
            "group",
            "define",
            "--config",
            &config,
            "--name",
            "eu-canary",
            "--region",
            "eu-west-1",
        ],
    );
    let out = define.wait(Duration::from_secs(60));
    assert!(out.contains("group eu-canary defined"), "{out}");
    let group = |url: &str| {
        get(&format!("{url}api/groups"))?
            .as_array()?
            .iter()
            .find(|g| g["name"] == "eu-canary")
            .cloned()
    };
    let defined = eventually(Duration::from_secs(60), "the group defined", || group(&url));
    assert_eq!(defined["vms"], preview["vms"], "what the preview showed");
    let eu: BTreeSet<String> = serde_json::from_value(defined["vms"].clone()).unwrap();
    assert!(eu.len() >= 4 && eu.len() < 60, "{eu:?}");

    // A fleet with 30 h of history; nobody approves its patch but us.
    let mut sim = Bellwether::spawn(
        dir.path(),
        "simulate",
        &[
            "simulate",
            "--config",
            &config,
            "--no-approval",
            "--speed",
            "120",
            "--hours",
            "32",
        ],
    );
    let warm = FLEET_START_MS + 30 * 3_600_000 - 600_000;
    eventually(
        Duration::from_secs(400),
        "the warm-up history scored",
        || {
            let snapshot = get(&format!("{url}api/snapshot"))?;
            let t = chrono::DateTime::parse_from_rfc3339(snapshot["fleet_time"].as_str()?)
                .ok()?
                .timestamp_millis();
            (t >= warm).then_some(())
        },
    );

    // Approval rules put in force over the API (the config leaves
    // everything to a human).
    let rules_url = format!("{url}api/approval/rules");
    assert_eq!(put(&rules_url, None, RULES).0, 401);
    let (status, answer) = put(
        &rules_url,
        Some(HTTP_TOKEN),
        r#"{"rules": [{"name": "x", "action": "manual", "after_days": 2}]}"#,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("rules[0].after_days"),
        "{answer}"
    );
    let (status, answer) = put(&rules_url, Some(HTTP_TOKEN), RULES);
    assert_eq!(status, 202, "{answer}");
    let in_force = |url: &str| get(&format!("{url}api/approval/rules"));
    eventually(Duration::from_secs(60), "the rules in force", || {
        (in_force(&url)?["rules"][0]["name"] == "security at once").then_some(())
    });

    // Submitted over the API: refused without the token, approved by the rule.
    let patches = format!("{url}api/patches");
    let body = r#"{"id": "KB-2026-1130", "title": "openssl 3.0.15", "classification": "security", "severity": "important", "product": "debian-12", "canary_groups": ["eu-canary"]}"#;
    assert_eq!(post(&patches, None, body).0, 401);
    let (status, answer) = post(
        &patches,
        Some(HTTP_TOKEN),
        &body.replace("eu-canary", "mars-canary"),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("canary_groups"), "{answer}");
    let (status, answer) = post(&patches, Some(HTTP_TOKEN), body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["decision"]["decision"], "approve", "{answer}");
    assert_eq!(answer["rollout_id"], ROLLOUT);

    // The rollout advances wave by wave; bellwether is killed in the middle.
    eventually(Duration::from_secs(300), "the second wave", || {
        (waves_started(&broker).len() >= 2).then_some(())
    });
    let listed = get(&patches).unwrap();
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["rollout_id"] == ROLLOUT)
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(ours["approval"], "approved by rule `security at once`");
    run.kill();
    let run = Bellwether::spawn(dir.path(), "run-2", &["run", "--config", &config]);
    let url = run.dashboard_url();
    let report: Value = serde_json::from_str(
        sim.wait(Duration::from_secs(600))
            .lines()
            .last()
            .expect("a report"),
    )
    .unwrap();

    // The waves the rollout reached were started in order, the whole canary
    // stage (1 + 3 VMs) at least; a wave issued as the anomaly hit is not
    // carried out.
    let messages = control_messages(&broker, CONTROL);
    let waves = waves_started(&broker);
    assert!(waves.len() >= 2, "{waves:?}");
    assert_eq!(
        waves.iter().copied().collect::<Vec<_>>(),
        (1..=waves.len() as u64).collect::<Vec<_>>()
    );
    let patched: BTreeSet<String> = of_rollout(&messages, "execution")
        .iter()
        .filter(|e| e["action"] == "patch")
        .map(|e| e["vm_id"].as_str().unwrap().to_string())
        .collect();
    assert!(patched.len() >= 4, "{patched:?}");
    let canary: BTreeSet<String> = of_rollout(&messages, "patch")
        .iter()
        .filter(|p| p["wave"].as_u64().unwrap() <= 2)
        .map(|p| p["vm_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(canary.len(), 4);
    assert!(
        canary.is_subset(&eu),
        "the canary stage came from eu-canary: {canary:?}"
    );

    // The bad patch was rolled back by policy: an anomaly, then every
    // other patched VM with trigger `policy`, each executed exactly once.
    let rollbacks = of_rollout(&messages, "rollback");
    let triggers: BTreeSet<&str> = rollbacks
        .iter()
        .map(|r| r["reason"]["trigger"].as_str().unwrap())
        .collect();
    assert!(triggers.contains("policy"), "{triggers:?}");
    assert!(
        triggers.contains("anomaly") || triggers.contains("predicted_failure"),
        "{triggers:?}"
    );
    let executed: Vec<String> = of_rollout(&messages, "execution")
        .iter()
        .filter(|e| e["action"] == "rollback")
        .map(|e| e["vm_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = executed.iter().collect();
    assert_eq!(unique.len(), executed.len(), "a VM rolled back twice");
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        patched,
        "every patched VM rolled back:\n{}",
        run.log_tail()
    );
    assert!(
        report["patched_vms"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // Every command carried out went through the webhook, signed; the
    // first was retried after the 503 under the same idempotency key.
    let calls = calls.lock().unwrap();
    let mut called = BTreeSet::new();
    for (headers, body) in calls.iter() {
        assert!(signed(headers, body), "unsigned call: {body}");
        let call: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            headers["x-bellwether-command-id"].to_str().unwrap(),
            call["command_id"]
        );
        called.insert(call["command_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        calls[1].0["x-bellwether-attempt"].to_str().unwrap(),
        "2",
        "the 503 was retried"
    );
    assert_eq!(
        calls[0].0["x-bellwether-command-id"],
        calls[1].0["x-bellwether-command-id"]
    );
    let executed: BTreeSet<String> = of_rollout(&messages, "execution")
        .iter()
        .map(|e| e["command_id"].as_str().unwrap().to_string())
        .collect();
    assert!(executed.is_subset(&called), "{executed:?} vs {called:?}");
    drop(calls);

    // The restarted bellwether kept the group, and shows the rollout over
    // the API: rolled back, with the waves it reached.
    assert_eq!(group(&url).unwrap()["vms"], defined["vms"]);
    assert_eq!(
        in_force(&url).unwrap()["rules"][0]["name"],
        "security at once"
    );
    let state = eventually(Duration::from_secs(60), "the final state", || {
        let list = get(&format!("{url}api/patches"))?;
        let p = list
            .as_array()?
            .iter()
            .find(|p| p["rollout_id"] == ROLLOUT)?
            .clone();
        (p["state"] == "rolled_back").then_some(p)
    });
    assert_eq!(state["patch_id"], "KB-2026-1130");
    let snapshot = get(&format!("{url}api/snapshot")).unwrap();
    let rollout = snapshot["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ROLLOUT)
        .unwrap();
    assert_eq!(
        rollout["waves"].as_array().unwrap().len(),
        waves.len(),
        "{rollout}"
    );

    // What `run` serves an operator: the rollout list the CLI reads, and
    // the rollout's canary report.
    let out = common::bellwether_output(&["rollout", "list", "--format", "json", "--url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ROLLOUT)
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(mine["state"], "rolled_back", "{listed}");
    let report = get(&format!("{url}api/rollouts/{ROLLOUT}/report")).unwrap();
    assert_eq!(report["rollout_id"], ROLLOUT, "{report}");
}
