//! The Parquet history read by another program: pyarrow (PyPI) reads the
//! same rows as bellwether's SQL.

use crate::common;
use common::history_sql as sql;
use serde_json::Value;
use std::process::Command;

#[test]
fn pyarrow_reads_the_same_rows() {
    let Some(python) = common::python("pyarrow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    common::demo_into(&history, &[]);
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
    // UTC by convention, untagged (see docs/src/operating/history-sql.md).
    assert_eq!(read["samples_schema"]["time"], "timestamp[ms]");
    assert_eq!(read["samples_schema"]["value"], "double");
}
