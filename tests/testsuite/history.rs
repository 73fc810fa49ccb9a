//! Parquet history and SQL over it: what the demo wrote is what `bellwether
//! sql` returns, a crash mid-write leaves nothing corrupt in sight, and
//! statements other than queries are refused.

use crate::common;

use common::{Bellwether, history_sql as sql};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn demo(history: &Path) -> Value {
    common::demo_into(history, &[])
}

fn demo_with(history: &Path, more: &[&str]) -> Value {
    common::demo_into(history, more)
}

fn bellwether(args: &[&str]) -> std::process::Output {
    common::bellwether_output(args)
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
    // Each score keeps the failure model's risk and what drove it.
    let risks = sql(
        &history,
        "SELECT count(*) AS n, min(failure_risk) AS lo, max(failure_risk) AS hi, \
         min(failure_drivers) AS drivers FROM scores WHERE failure_risk IS NOT NULL",
    );
    assert_eq!(
        risks[0]["n"], summary["pipeline"]["scores_emitted"],
        "{risks:?}"
    );
    assert!(risks[0]["lo"].as_f64().unwrap() >= 0.0 && risks[0]["hi"].as_f64().unwrap() <= 1.0);
    assert!(
        risks[0]["drivers"].as_str().unwrap().starts_with('['),
        "{risks:?}"
    );
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
    let leftovers: Vec<_> = common::walk(&history)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| {
            !p.ends_with(".parquet")
                && !p.ends_with("/_checkpoint.json")
                && !p.ends_with("/_writer.lock")
                && !p.ends_with("/_demo")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Waves are numbered from 1, as in the summary and on the dashboard.
    let waves = sql(
        &history,
        "SELECT min(wave) AS first FROM commands WHERE action = 'patch'",
    );
    assert_eq!(waves[0]["first"], summary["waves"][0]["wave"], "{waves:?}");
    assert_eq!(waves[0]["first"], 1, "{waves:?}");

    // A second demo into the folder starts it afresh: its samples once.
    let again = demo(&history);
    let samples = sql(&history, "SELECT count(*) AS n FROM samples");
    assert_eq!(samples[0]["n"], again["pipeline"]["samples_in"]);
}

#[test]
fn a_crash_mid_write_leaves_no_visible_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    // A writer killed mid-file leaves a truncated temporary file.
    let part = history.join("samples/date=2026-11-02/hour=00");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join("part-1-000001.parquet.tmp"), b"PAR1\x00\x01half").unwrap();
    // (A demo wrote it: the next demo may start the folder afresh.)
    std::fs::write(history.join("_demo"), "").unwrap();
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
    assert!(
        common::walk(&history)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tmp"))
    );
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
    // Queries on an empty history work, SHOW and DESCRIBE too.
    assert_eq!(sql(&history, "SELECT count(*) AS n FROM scores")[0]["n"], 0);
    let columns: Vec<Value> = sql(&history, "DESCRIBE commands")
        .iter()
        .map(|c| c["column_name"].clone())
        .collect();
    assert!(columns.contains(&"wave".into()), "{columns:?}");
    let tables = sql(&history, "SHOW TABLES");
    assert!(tables.iter().any(|t| t["table_name"] == "rollout_events"));
}

/// The prompt: statements over several lines from a pipe; on a terminal
/// (a pty from util-linux's `script`), Up recalls the last statement.
#[test]
fn the_sql_prompt_runs_statements_and_recalls_them_with_up() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    std::fs::create_dir_all(&history).unwrap();
    let h = history.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["sql", "--history", h, "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 41 + 1\n AS answer;\nSELECT nonsense;\nSELECT 7 AS seven;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "answer\n42\nseven\n7\n", "{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains("nonsense"),
        "{stderr}"
    );

    let Ok(script) = which("script") else {
        eprintln!("skipped the terminal half: no `script` (util-linux)");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(script)
        .args(["-q", "-e", "-c"])
        .arg(format!(
            "{} sql --history {h} --format csv",
            env!("CARGO_BIN_EXE_bellwether")
        ))
        .arg("/dev/null")
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Typed, with a pause for the editor to draw its prompt: a query, then
    // Up and Enter to run it again, then Ctrl-D.
    for keys in [&b"SELECT 6 * 7 AS answer;\r"[..], b"\x1b[A", b"\r", b"\x04"] {
        std::thread::sleep(Duration::from_millis(400));
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.matches("42").count(), 2, "{shown}");
    let kept = std::fs::read_to_string(home.path().join(".bellwether_sql_history")).unwrap();
    assert!(kept.contains("SELECT 6 * 7 AS answer;"), "{kept}");
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn a_query_too_deep_or_too_heavy_is_refused_or_stopped_and_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    std::fs::create_dir_all(&history).unwrap();
    let h = history.to_str().unwrap();
    let terms = vec!["1"; 5_000].join("+");
    let ors = vec!["vm_id = 'x'"; 1_000].join(" OR ");
    let unions = vec!["SELECT 1"; 2_000].join(" UNION ALL ");
    for query in [
        format!("SELECT {terms}"),
        format!("SELECT * FROM scores WHERE {ors}"),
        unions,
    ] {
        let out = bellwether(&["sql", "--history", h, &query]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", &query[..40]);
        assert!(err.contains("too complex"), "{err}");
    }
    // A heavy query is refused, or stopped at its timeout, with the reason.
    let parse_stopper = format!("SELECT {}", "F[void .Cd.d#SE_i .Cd.d#.Cd.Cd.".repeat(4));
    for (query, timeout, says) in [
        (
            "SELECT length(repeat('x', 2000000000))",
            "30",
            "repeat(...) would make",
        ),
        (
            "SELECT cardinality(range(1, 2000000000))",
            "30",
            "range(...) would make",
        ),
        (
            "SELECT * FROM generate_series(1, 2000000000)",
            "30",
            "larger than 64 MB",
        ),
        (
            "SELECT count(*) FROM generate_series(1, 200000000000)",
            "2",
            "ran past 2 s (sql.timeout_secs)",
        ),
        // 140 bytes sqlparser spends minutes on (found by fuzzing): cut off
        // at the parser's 2 s, well before the query's timeout.
        (&*parse_stopper, "60", "could not read this query in 2 s"),
    ] {
        let asked = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
            .args(["sql", "--history", h, query])
            .env("BELLWETHER__SQL__TIMEOUT_SECS", timeout)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{query}: {err}");
        assert!(err.contains(says), "{query}: {err}");
        // Stopped, not left to run: a generous bound for a shared machine.
        assert!(
            asked.elapsed().as_secs() < 45,
            "{query} took {:?}",
            asked.elapsed()
        );
    }
    // SHOW, as the manual lists it (docs/src/operating/history-sql.md).
    let tables = sql(&history, "SHOW TABLES");
    assert!(
        tables.iter().any(|t| t["table_name"] == "verdicts"),
        "{tables:?}"
    );
    // Under the limit, a deep expression plans and runs.
    let terms = vec!["1"; 400].join("+");
    assert_eq!(sql(&history, &format!("SELECT {terms} AS n"))[0]["n"], 400);
    // `bellwether sql ... | head -1`: the reader goes away early.
    let mut child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args([
            "sql",
            "--history",
            h,
            "--format",
            "csv",
            "SELECT * FROM generate_series(1, 200000)",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn downsampled_history_holds_each_buckets_aggregate_of_the_raw_samples() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let down = dir.path().join("down");
    demo(&raw);
    let config = dir.path().join("downsampled.toml");
    std::fs::write(
        &config,
        "[history]\nsamples = \"downsampled\"\ndownsample_secs = 600\n\
         downsample_aggregate = \"mean\"\n\
         downsample_per_metric = { error_rate_percent = \"max\" }\n",
    )
    .unwrap();
    // The same seed: the same fleet, sample for sample.
    demo_with(&down, &["--config", config.to_str().unwrap()]);

    let bucketed = |metric: &str, aggregate: &str| {
        sql(
            &raw,
            &format!(
                "SELECT vm_id, date_bin(INTERVAL '10 minutes', time) AS t, {aggregate}(value) AS v \
                 FROM samples WHERE metric = '{metric}' GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        )
    };
    let stored = |metric: &str| {
        sql(
            &down,
            &format!(
                "SELECT vm_id, time AS t, value AS v FROM samples \
                 WHERE metric = '{metric}' ORDER BY 1, 2"
            ),
        )
    };
    for (metric, aggregate) in [("cpu_percent", "avg"), ("error_rate_percent", "max")] {
        let want = bucketed(metric, aggregate);
        let got = stored(metric);
        assert!(want.len() > 60 * 30 * 6, "{metric}: {} buckets", want.len());
        assert_eq!(got.len(), want.len(), "{metric}: one row per VM and bucket");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g["vm_id"], &g["t"]), (&w["vm_id"], &w["t"]));
            let (g, w) = (g["v"].as_f64().unwrap(), w["v"].as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{metric}: {g} vs {w}"
            );
        }
    }
    // One row per VM, metric and bucket the raw samples touch, no more.
    let n = |h: &Path, q: &str| sql(h, q)[0]["n"].as_u64().unwrap();
    let buckets = n(
        &raw,
        "SELECT count(*) AS n FROM (SELECT DISTINCT vm_id, metric, \
         date_bin(INTERVAL '10 minutes', time) FROM samples)",
    );
    assert_eq!(n(&down, "SELECT count(*) AS n FROM samples"), buckets);
    assert!(n(&raw, "SELECT count(*) AS n FROM samples") > buckets * 9);
}

#[test]
fn the_http_sql_endpoint_answers_queries_and_refuses_the_rest_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let demo = Bellwether::spawn(
        dir.path(),
        "demo",
        &[
            "demo",
            "--vms",
            "60",
            "--seed",
            "1",
            "--serve",
            "127.0.0.1:0",
            "--speed",
            "1000000",
            "--keep-serving",
            "--history",
            history.to_str().unwrap(),
        ],
    );
    let url = demo.dashboard_url();
    common::eventually(Duration::from_secs(120), "the demo's end", || {
        demo.log_text().contains("still serving").then_some(())
    });
    let rollbacks_sql =
        "SELECT vm_id, reason FROM commands WHERE action = 'rollback' ORDER BY vm_id";
    // GET with the query in the URL: a JSON array of rows, as the CLI sees them.
    let got: Vec<Value> = ureq::get(&format!("{url}api/sql"))
        .query("q", rollbacks_sql)
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    assert!(!got.is_empty());
    assert_eq!(got, sql(&history, rollbacks_sql));
    // POST with the query as the body, as CSV.
    let csv = ureq::post(&format!("{url}api/sql?format=csv"))
        .header("Content-Type", "application/sql")
        .send("SELECT count(*) AS n FROM scores")
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let n = sql(&history, "SELECT count(*) AS n FROM scores")[0]["n"].to_string();
    assert_eq!(csv, format!("n\n{n}\n"));
    // Anything but a query: 400 and why.
    for (statement, says) in [
        ("DROP TABLE samples", "only queries"),
        (
            "INSERT INTO commands SELECT * FROM commands",
            "only queries",
        ),
        ("COPY samples TO '/tmp/x.parquet'", "only queries"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("", "empty body"),
    ] {
        let response = ureq::post(&format!("{url}api/sql"))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "text/plain")
            .send(statement)
            .unwrap();
        assert_eq!(response.status(), 400, "{statement}");
        let body: Value = response.into_body().read_json().unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{statement}: {error}");
    }
    // The history is untouched.
    assert_eq!(
        sql(&history, "SELECT count(*) AS n FROM scores")[0]["n"].to_string(),
        n
    );
}

#[test]
fn crashes_are_recorded_as_outcomes_with_the_metrics_before_them() {
    // A leak the anomaly rule is blind to and the failure model may not
    // act on: VMs crash, and each crash is an outcome in the history.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blind.toml");
    std::fs::write(
        &config,
        "[failure]\nact = false\n\n[thresholds.per_metric.memory_percent]\n\
         direction = \"increase\"\nmin_change = 3.0\nspread_floor = 0.3\nsigma = 1000.0\n",
    )
    .unwrap();
    let history = dir.path().join("history");
    let out = bellwether(&[
        "demo",
        "--json",
        "--seed",
        "1",
        "--fault",
        "memory-leak",
        "--config",
        config.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let crashes = summary["ground_truth"]["crashes"].as_array().unwrap();
    assert!(!crashes.is_empty(), "{summary}");
    let outcomes = sql(
        &history,
        "SELECT vm_id, kind, source FROM outcomes WHERE source = 'simulator' ORDER BY time, vm_id",
    );
    assert_eq!(outcomes.len(), crashes.len(), "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o["kind"] == "failed"));
    // The pipeline saw crashes for itself: a patched VM went silent, which
    // is a lost health check, reported as a failure. Each such report is a
    // real crash (within 10 minutes of one); a VM rolled back (on other
    // symptoms) as it crashed is no longer watched.
    let unexplained = sql(
        &history,
        "SELECT h.vm_id, h.time FROM outcomes h WHERE h.source = 'health_check' AND NOT EXISTS \
         (SELECT 1 FROM outcomes c WHERE c.source = 'simulator' AND c.vm_id = h.vm_id \
          AND h.time BETWEEN c.time - INTERVAL '5 minutes' AND c.time + INTERVAL '10 minutes')",
    );
    assert!(
        unexplained.is_empty(),
        "health-check losses without a crash: {unexplained:?}"
    );
    let lost = sql(
        &history,
        "SELECT count(*) AS n FROM outcomes WHERE source = 'health_check' AND kind = 'failed'",
    );
    assert!(
        2 * lost[0]["n"].as_u64().unwrap() >= crashes.len() as u64,
        "{lost:?} health-check losses for {} crashes",
        crashes.len()
    );
    // What preceded each failure is there to learn from: the VM's memory
    // in the half hour before it crashed.
    let before = sql(
        &history,
        "SELECT count(*) AS n FROM outcomes o JOIN samples s ON s.vm_id = o.vm_id \
         AND s.metric = 'memory_percent' \
         AND s.time BETWEEN o.time - INTERVAL '30 minutes' AND o.time",
    );
    assert!(
        before[0]["n"].as_u64().unwrap() >= 20 * crashes.len() as u64,
        "{before:?}"
    );
}
