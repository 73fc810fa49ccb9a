//! A fleet bellwether's simulator did not make, on a real broker: 40 VMs
//! with their own daily shapes, published by kafka-python, get a good patch.
//! - A fleet-wide surge (response time x2.2, CPU +25 points, latency x1.8
//!   on every VM, patched or not) hits 40 minutes into the first bake.
//!   Judged against their own forecasts alone the canaries would be rolled
//!   back; against their unpatched peers they are not, and the patch
//!   reaches every VM.
//! - With 14 hours of history and no event, the daily shape is not yet
//!   known for the afternoon: the forecast's interval says so, and no
//!   healthy VM is rolled back on a normal afternoon rise.

use crate::common;

use common::{Bellwether, Broker, control_messages, eventually, history_sql, write_config};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CONTROL: &str = "bellwether.control";
const START_MS: i64 = 1_793_577_600_000;

#[test]
fn a_good_patch_completes_through_a_fleet_wide_surge_on_a_fleet_made_outside() {
    let Some(dir) = good_patch_completes(30, 60) else {
        return;
    };
    // The surge was there, and the peers took it out: a patched canary's
    // response time moved far from its own forecast in the same windows as
    // its unpatched peers'.
    let rows = history_sql(
        &dir.path().join("history"),
        "SELECT max(deviation) AS own, max(peer_deviation) AS peers, max(abs(vs_peers)) AS vs \
         FROM verdicts WHERE metric = 'response_time_ms' AND peer_deviation IS NOT NULL",
    );
    let own = rows[0]["own"].as_f64().unwrap_or(0.0);
    let peers = rows[0]["peers"].as_f64().unwrap_or(0.0);
    assert!(
        own > 10.0 && peers > 10.0,
        "the surge did not show: {rows:?}"
    );
}

#[test]
fn a_good_patch_completes_on_a_fleet_with_only_14_hours_of_history() {
    good_patch_completes(14, 0);
}

/// Publishes the fleet with `history_hours` of history and a surge of
/// `surge_minutes` (0: none), approves a good patch, and asserts it
/// completes with no rollback; the run's folder, once it has stopped.
fn good_patch_completes(history_hours: i64, surge_minutes: u32) -> Option<tempfile::TempDir> {
    // One fleet at a time: two at 600x on a 2-core machine would starve
    // each other's partitions.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let python = common::python("kafka-python")?;
    let broker = Broker::start()?;
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    let go = dir.path().join("go");
    let config = write_config(
        dir.path(),
        &broker,
        r#"metrics_topics = [{ name = "fleet.metrics", format = "json" }]"#,
    );
    // Partitions stay live while the fleet waits for the approval: at 600x
    // a partition that went idle and wakes a fetch late would let a window
    // close without its VMs.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "[actor]\n",
            &format!("[actor]\ninventory_file = \"{}\"\n", inventory.display()),
        )
        .replace("idle_partition_secs = 5", "idle_partition_secs = 120");
    std::fs::write(&config, text).unwrap();

    let mut fleet = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/fleet.py"
        ))
        .args([&broker.address, "fleet.metrics"])
        .arg(&inventory)
        .arg(&go)
        .args(["40", &history_hours.to_string(), "8", "40"])
        .args([&surge_minutes.to_string(), "600"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fleet.stdout.take().unwrap()).lines();
    let first = lines.next().expect("fleet.py printed nothing").unwrap();
    assert_eq!(first, "history published");

    let config = config.to_str().unwrap();
    let run = Bellwether::spawn(dir.path(), "run", &["run", "--config", config]);
    // Approve once bellwether has scored the whole history (the actor's
    // clock is the fleet's).
    let history_end = START_MS + history_hours * 3_600_000;
    eventually(Duration::from_secs(300), "the history scored", || {
        control_messages(&broker, CONTROL)
            .iter()
            .filter(|m| m["type"] == "window_report")
            .filter_map(|m| m["window_end"].as_i64())
            .any(|t| t >= history_end - 600_000)
            .then_some(())
    });
    let mut approve = Bellwether::spawn(
        dir.path(),
        "approve",
        &[
            "approve", "--config", config, "--patch", "KB-PEERS", "--by", "test",
        ],
    );
    approve.wait(Duration::from_secs(120));
    std::fs::write(&go, "").unwrap();

    let url = run.dashboard_url();
    let state = eventually(Duration::from_secs(400), "the rollout to end", || {
        let snapshot: serde_json::Value = ureq::get(&format!("{url}api/snapshot"))
            .call()
            .ok()?
            .body_mut()
            .read_json()
            .ok()?;
        let rollout = snapshot["rollouts"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == "rollout-kb-peers")?
            .clone();
        let state = rollout["state"].as_str()?.to_string();
        matches!(state.as_str(), "completed" | "halted" | "rolled_back").then_some((state, rollout))
    });
    let rollbacks: Vec<serde_json::Value> = control_messages(&broker, CONTROL)
        .into_iter()
        .filter(|m| m["type"] == "rollback")
        .collect();
    assert_eq!(
        state.0,
        "completed",
        "{:#?}\n{rollbacks:#?}\n{}",
        state.1,
        run.log_tail()
    );
    assert!(rollbacks.is_empty(), "{rollbacks:#?}");

    let _ = fleet.wait();
    drop(run);
    Some(dir)
}
