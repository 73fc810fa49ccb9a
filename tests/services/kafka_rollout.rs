//! The Kafka path end to end on a real broker (tansu): `bellwether
//! simulate` publishes a fleet that gets a bad patch, `bellwether run`
//! scores it and its rollout actor rolls the broken VMs back through the
//! control topic; then the same with the pipeline SIGKILLed mid-rollout,
//! and with the broker frozen mid-rollout.

use crate::common;

use common::{
    Bellwether, Broker, HTTP_TOKEN, control_messages, eventually, history_sql, read_topic,
    write_config,
};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const CONTROL: &str = "bellwether.control";

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn of_type<'a>(messages: &'a [Value], kind: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

/// Checks what a user checks after a bad patch: rollbacks on the control
/// topic, each executed once, only broken VMs rolled back, and no broken
/// VM left on the patch.
fn assert_bad_patch_rolled_back(broker: &Broker, report: &Value) {
    let affected = strings(&report["affected_vms"]);
    let still_patched = strings(&report["patched_vms"]);
    let rolled_back: Vec<String> = report["rolled_back_vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!rolled_back.is_empty(), "nothing rolled back: {report}");

    let messages = control_messages(broker, CONTROL);
    let commands: BTreeSet<String> = of_type(&messages, "rollback")
        .iter()
        .map(|c| c["vm_id"].as_str().unwrap().to_string())
        .collect();
    let mut executions: HashMap<String, usize> = HashMap::new();
    for e in of_type(&messages, "execution") {
        *executions
            .entry(e["command_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (id, n) in &executions {
        assert_eq!(*n, 1, "{id} executed {n} times");
    }
    for vm in &rolled_back {
        assert!(
            affected.contains(vm),
            "{vm} rolled back but the patch did not break it"
        );
        assert!(
            commands.contains(vm),
            "{vm} rolled back without a rollback command"
        );
        let id = format!("rollout-kb-2026-1102/rollback/{vm}");
        assert_eq!(
            executions.get(&id),
            Some(&1),
            "{id} not executed exactly once"
        );
    }
    let broken_left: Vec<&String> = still_patched.intersection(&affected).collect();
    assert!(
        broken_left.is_empty(),
        "broken VMs still on the patch: {broken_left:?}"
    );
    // Every rollback command carries its evidence.
    for c in of_type(&messages, "rollback") {
        assert!(
            c["reason"]["summary"]
                .as_str()
                .unwrap()
                .contains("expected"),
            "{c}"
        );
        assert!(
            !c["reason"]["evidence"].as_array().unwrap().is_empty(),
            "{c}"
        );
    }
}

/// `bellwether simulate` of a bad patch: 30 h of history, then 4 h at `speed`x.
fn simulate(dir: &std::path::Path, config: &str, speed: &str) -> Bellwether {
    Bellwether::spawn(
        dir,
        "simulate",
        &[
            "simulate", "--config", config, "--speed", speed, "--hours", "34",
        ],
    )
}

/// Rows of a query over `run`'s history through its HTTP API (`None`
/// while it cannot answer yet).
fn api_sql(url: &str, query: &str) -> Option<Vec<Value>> {
    ureq::get(&format!("{url}api/sql"))
        .query("q", query)
        .call()
        .ok()?
        .into_body()
        .read_json()
        .ok()
}

/// The JSON report `simulate` prints when it ends.
fn report_of(sim: &mut Bellwether) -> Value {
    let out = sim.wait(Duration::from_secs(600));
    serde_json::from_str(out.lines().last().expect("a report")).unwrap()
}

#[test]
fn a_bad_patch_published_by_simulate_is_rolled_back_through_the_control_topic() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, "");
    let config = config.to_str().unwrap();
    let run = Bellwether::spawn(dir.path(), "run", &["run", "--config", config]);
    let mut sim = simulate(dir.path(), config, "600");
    let report = report_of(&mut sim);
    assert_bad_patch_rolled_back(&broker, &report);
    assert!(run.log_text().contains("halted"), "{}", run.log_tail());

    // `bellwether run` serves the rollout to Prometheus and the dashboard.
    let url = run.dashboard_url();
    let metrics = ureq::get(&format!("{url}metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    for series in [
        "bellwether_records_in_total{partition=\"0\",topic=\"bellwether.metrics\"}",
        "bellwether_consumer_lag_records{partition=\"0\",topic=\"bellwether.metrics\"}",
        "bellwether_window_latency_seconds_count",
        "bellwether_rollout_patched_ratio{rollout=\"rollout-kb-2026-1102\"}",
        "bellwether_history_rows_written{table=\"samples\"}",
        "bellwether_history_write_errors_total 0",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    let rolled_back = metrics
        .lines()
        .find(|l| l.starts_with("bellwether_rollout_vms_rolled_back{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(
        rolled_back as usize,
        report["rolled_back_vms"].as_array().unwrap().len()
    );
    let snapshot: Value = ureq::get(&format!("{url}api/snapshot"))
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    assert_eq!(snapshot["rollouts"][0]["state"], "halted", "{snapshot}");

    // Its history answers "which VMs were rolled back, and why" over HTTP.
    let rolled_back = strings(&report["rolled_back_vms"]);
    let rows: Vec<Value> = eventually(Duration::from_secs(60), "rollbacks in history", || {
        let rows = api_sql(
            &url,
            "SELECT vm_id, reason FROM commands WHERE action = 'rollback'",
        )?;
        (rows.len() == rolled_back.len()).then_some(rows)
    });
    for row in rows {
        assert!(
            rolled_back.contains(row["vm_id"].as_str().unwrap()),
            "{row}"
        );
        assert!(
            row["reason"].as_str().unwrap().contains("expected"),
            "{row}"
        );
    }

    // An operator marks one rollback a false alarm: the outcome goes out on
    // the control topic and lands in run's history, naming the rollback.
    let vm = rolled_back.iter().next().unwrap().clone();
    let mut mark = Bellwether::spawn(
        dir.path(),
        "mark",
        &[
            "mark",
            "--config",
            config,
            "--vm",
            &vm,
            "--outcome",
            "false-alarm",
            "--rollout-id",
            "rollout-kb-2026-1102",
            "--note",
            "cache warm-up, not the patch",
        ],
    );
    let out = mark.wait(Duration::from_secs(120));
    assert!(out.contains(&format!("marked: {vm}")), "{out}");
    let outcomes = control_messages(&broker, CONTROL)
        .into_iter()
        .filter(|m| m["type"] == "outcome")
        .collect::<Vec<_>>();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["kind"], "false_alarm");
    assert_eq!(
        outcomes[0]["command_id"],
        format!("rollout-kb-2026-1102/rollback/{vm}")
    );
    let rows: Vec<Value> = eventually(Duration::from_secs(60), "the outcome in history", || {
        let rows = api_sql(
            &url,
            "SELECT vm_id, kind, source, command_id, note FROM outcomes",
        )?;
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["vm_id"], vm.as_str());
    assert_eq!(rows[0]["kind"], "false_alarm");
    assert_eq!(rows[0]["source"], "operator");
    assert_eq!(rows[0]["note"], "cache warm-up, not the patch");

    // The same over HTTP: refused without the token, taken with it.
    let other = rolled_back.iter().nth(1).unwrap_or(&vm).clone();
    let body = format!(r#"{{"vm_id": "{other}", "outcome": "failed", "note": "kernel panic"}}"#);
    let refused = ureq::post(&format!("{url}api/outcomes"))
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(body.as_str())
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let taken = ureq::post(&format!("{url}api/outcomes"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {HTTP_TOKEN}"))
        .send(body.as_str())
        .unwrap();
    assert_eq!(taken.status().as_u16(), 202);
    let rows: Vec<Value> = eventually(Duration::from_secs(60), "the HTTP mark in history", || {
        let rows = api_sql(
            &url,
            "SELECT vm_id, kind, source, note FROM outcomes WHERE note = 'kernel panic'",
        )?;
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["vm_id"], other.as_str());
    assert_eq!(rows[0]["kind"], "failed");
    assert_eq!(rows[0]["source"], "operator");
}

/// Checks the history `run` wrote against what went through Kafka: every
/// metric message's samples once, one score per VM and window, and every
/// control-topic message once, however often `run` was restarted.
fn assert_history_exact(broker: &Broker, history: &std::path::Path, report: &Value) {
    let n = |q: &str| history_sql(history, q)[0]["n"].as_u64().unwrap();
    let messages = report["messages"].as_u64().unwrap();
    // The restarted run catches up on its own time: on a loaded machine
    // (three Kafka tests at once on 2 cores) that can take minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let held = n("SELECT count(*) AS n FROM (SELECT DISTINCT vm_id, time FROM samples)");
        if held == messages {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 300 s the history holds {held} of the {messages} metric messages"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        n("SELECT count(*) AS n FROM samples"),
        n("SELECT count(*) AS n FROM (SELECT DISTINCT vm_id, time, metric FROM samples)"),
        "samples written twice"
    );
    let scores = n("SELECT count(*) AS n FROM scores");
    assert!(scores > 0);
    assert_eq!(
        scores,
        n("SELECT count(*) AS n FROM (SELECT DISTINCT vm_id, window_end FROM scores)"),
        "scores written twice"
    );
    assert_eq!(
        n("SELECT count(*) AS n FROM rollout_events"),
        n("SELECT count(*) AS n FROM (SELECT DISTINCT * FROM rollout_events)"),
        "rollout events written twice"
    );
    // The control topic, message for message (it may itself hold repeats
    // a restarted producer sent; the history holds what the topic holds).
    let count = |messages: &[Value], kinds: &[&str]| {
        messages
            .iter()
            .filter(|m| kinds.contains(&m["type"].as_str().unwrap_or("")))
            .count() as u64
    };
    eventually(
        Duration::from_secs(60),
        "the control topic in history",
        || {
            let topic = control_messages(broker, CONTROL);
            let got = [
                n("SELECT count(*) AS n FROM commands"),
                n("SELECT count(*) AS n FROM executions"),
                n("SELECT count(*) AS n FROM window_reports"),
            ];
            let want = [
                count(&topic, &["patch", "rollback"]),
                count(&topic, &["execution"]),
                count(&topic, &["window_report"]),
            ];
            (got == want).then_some(())
        },
    );
    // Small files were merged while the pipeline ran.
    let merged = common::files_named(history, "compact-");
    assert!(merged > 0, "no merged file in {}", history.display());
}

#[test]
fn a_pipeline_killed_mid_rollout_loses_no_rollback_and_repeats_none() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, "");
    let config = config.to_str().unwrap();
    let mut run = Bellwether::spawn(dir.path(), "run-1", &["run", "--config", config]);
    let mut sim = simulate(dir.path(), config, "300");
    // Kill as soon as the first rollback is on the control topic: others
    // are still to be decided or executed.
    eventually(Duration::from_secs(400), "a first rollback command", || {
        let m = control_messages(&broker, CONTROL);
        (!of_type(&m, "rollback").is_empty()).then_some(())
    });
    run.kill();
    let restarted = Bellwether::spawn(dir.path(), "run-2", &["run", "--config", config]);
    let report = report_of(&mut sim);
    assert_bad_patch_rolled_back(&broker, &report);
    // The restarted actor read back what it had executed before the kill.
    let log = restarted.log_text();
    let before: usize = log
        .split("executed_before_restart=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no ledger line in the restarted log:\n{}",
                restarted.log_tail()
            )
        });
    assert!(before > 0, "the ledger was empty after the restart");
    // The history resumed where the killed pipeline left it: nothing lost,
    // nothing twice.
    assert_history_exact(&broker, &dir.path().join("history"), &report);
}

#[test]
fn a_broker_that_stops_answering_mid_rollout_loses_nothing_and_is_logged() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &broker, "");
    let config = config.to_str().unwrap();
    let mut run = Bellwether::spawn(dir.path(), "run", &["run", "--config", config]);
    let mut sim = simulate(dir.path(), config, "300");
    // Freeze the broker as soon as the rollout has begun, for longer than
    // bellwether's request timeout (15 s) but shorter than a consumer
    // group session (45 s): every client sees it go away and come back.
    eventually(Duration::from_secs(400), "the first patch command", || {
        let m = control_messages(&broker, CONTROL);
        (!of_type(&m, "patch").is_empty()).then_some(())
    });
    broker.pause();
    std::thread::sleep(Duration::from_secs(30));
    broker.resume();

    let report = report_of(&mut sim);
    assert_bad_patch_rolled_back(&broker, &report);
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "bellwether run gave up: {}",
        run.log_tail()
    );
    // It said what was wrong while it waited.
    assert!(
        run.log_text().contains("brokers are down (retrying)"),
        "{}",
        run.log_tail()
    );
    // Nothing the fleet published was lost or written twice.
    let published = report["messages"].as_u64().unwrap();
    assert_eq!(
        read_topic(&broker, "bellwether.metrics").len() as u64,
        published
    );
    // Every five-minute window was scored, the frozen stretch included.
    let ends: BTreeSet<i64> = of_type(&control_messages(&broker, CONTROL), "window_report")
        .iter()
        .map(|r| r["window_end"].as_i64().unwrap())
        .collect();
    let ends: Vec<i64> = ends.into_iter().collect();
    let gaps: Vec<&[i64]> = ends.windows(2).filter(|w| w[1] - w[0] != 300_000).collect();
    assert!(gaps.is_empty(), "windows missing between {gaps:?}");
}
