//! Parquet history and SQL over it: what the demo wrote is what `bellwether
//! sql` returns, a crash mid-write leaves nothing corrupt in sight, and
//! statements other than queries are refused.

mod common;

use common::Bellwether;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bellwether(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("bellwether runs")
}

/// Rows of a query, as JSON objects.
fn sql(history: &Path, query: &str) -> Vec<Value> {
    let out = bellwether(&[
        "sql",
        "--history",
        history.to_str().unwrap(),
        "--format",
        "json",
        query,
    ]);
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn demo(history: &Path) -> Value {
    let out = bellwether(&[
        "demo",
        "--json",
        "--vms",
        "60",
        "--seed",
        "1",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn what_the_demo_wrote_is_what_sql_returns() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let summary = demo(&history);

    // Rollbacks: the same VMs, reasons and times as the demo's summary.
    let rows = sql(
        &history,
        "SELECT c.vm_id, c.reason, c.critical, e.executed_at IS NOT NULL AS executed \
         FROM commands c LEFT JOIN executions e ON e.command_id = c.command_id \
         WHERE c.action = 'rollback' ORDER BY c.vm_id",
    );
    let from_sql: BTreeSet<(String, String, bool)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["executed"], true, "{r}");
            (
                r["vm_id"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
                r["critical"].as_bool().unwrap(),
            )
        })
        .collect();
    let from_demo: BTreeSet<(String, String, bool)> = summary["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["vm_id"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
                r["critical"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(!from_demo.is_empty(), "the demo rolled nothing back");
    assert_eq!(from_sql, from_demo);

    // Every VM that got the patch has a patch command and its execution.
    let patched = sql(
        &history,
        "SELECT count(DISTINCT vm_id) AS n FROM executions WHERE action = 'patch'",
    );
    assert_eq!(patched[0]["n"], summary["vms_patched"]);
    // Every sample the pipeline took in, and every score it emitted.
    let samples = sql(&history, "SELECT count(*) AS n FROM samples");
    assert_eq!(samples[0]["n"], summary["pipeline"]["samples_in"]);
    let scores = sql(&history, "SELECT count(*) AS n FROM scores");
    assert_eq!(scores[0]["n"], summary["pipeline"]["scores_emitted"]);
    // Partitions are columns: samples by date and hour.
    let hours = sql(
        &history,
        "SELECT count(DISTINCT date || ' ' || hour) AS n FROM samples",
    );
    assert!(hours[0]["n"].as_u64().unwrap() >= 30, "{hours:?}");
    // The approval and the actor's state changes are rollout events.
    let events = sql(
        &history,
        "SELECT event FROM rollout_events ORDER BY time, event",
    );
    assert_eq!(events[0]["event"], "approved", "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "state_changed"));
    // Files are ZSTD Parquet, renamed into place: no temporary file left.
    let leftovers: Vec<_> = walk(&history)
        .into_iter()
        .filter(|p| !p.ends_with(".parquet"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn a_crash_mid_write_leaves_no_visible_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    // A writer killed mid-file leaves a truncated temporary file.
    let part = history.join("samples/date=2026-11-02/hour=00");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join("part-1-000001.parquet.tmp"), b"PAR1\x00\x01half").unwrap();
    // And a real one: the demo SIGKILLed while it writes.
    let mut run = Bellwether::spawn(
        dir.path(),
        "demo",
        &[
            "demo",
            "--vms",
            "300",
            "--history",
            history.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    run.kill();
    // Readers see only complete files.
    let n = sql(&history, "SELECT count(*) AS n FROM samples");
    assert!(n[0]["n"].as_u64().is_some(), "{n:?}");
    // The next writer clears what the crash left, and its files are whole.
    let summary = demo(&history);
    assert!(walk(&history).iter().all(|p| p.ends_with(".parquet")));
    let rollbacks = sql(
        &history,
        "SELECT count(*) AS n FROM commands WHERE action = 'rollback'",
    );
    assert!(
        rollbacks[0]["n"].as_u64().unwrap()
            >= summary["rollbacks"].as_array().unwrap().len() as u64
    );
}

#[test]
fn statements_other_than_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    std::fs::create_dir_all(&history).unwrap();
    for statement in [
        "DROP TABLE samples",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO commands SELECT * FROM commands",
        "COPY samples TO '/tmp/x.parquet'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let out = bellwether(&["sql", "--history", history.to_str().unwrap(), statement]);
        assert!(!out.status.success(), "{statement} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("only queries"), "{statement}: {err}");
    }
    // Queries on an empty history work.
    assert_eq!(sql(&history, "SELECT count(*) AS n FROM scores")[0]["n"], 0);
}

#[test]
fn pyarrow_reads_the_same_rows() {
    let python = match std::env::var("BELLWETHER_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var_os("BELLWETHER_REQUIRE_BROKER").is_some() => {
            panic!("BELLWETHER_PYTHON is not set; run ./scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: BELLWETHER_PYTHON (with pyarrow) is not set");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    demo(&history);
    let tables = ["samples", "scores", "verdicts", "commands", "executions"];
    let mut args = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_history.py").to_string(),
        history.to_str().unwrap().to_string(),
    ];
    args.extend(tables.iter().map(|t| t.to_string()));
    let out = Command::new(python).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();

    for table in tables {
        let n = sql(&history, &format!("SELECT count(*) AS n FROM {table}"));
        assert_eq!(read["rows"][table], n[0]["n"], "{table}");
    }
    let ours: Vec<Value> = sql(
        &history,
        "SELECT vm_id, reason, date FROM commands WHERE action = 'rollback' ORDER BY vm_id, reason",
    )
    .into_iter()
    .map(|r| serde_json::json!([r["vm_id"], r["reason"], r["date"]]))
    .collect();
    assert!(!ours.is_empty());
    assert_eq!(read["rollbacks"], Value::Array(ours));
    assert_eq!(read["samples_schema"]["time"], "timestamp[ms, tz=UTC]");
    assert_eq!(read["samples_schema"]["value"], "double");
}
