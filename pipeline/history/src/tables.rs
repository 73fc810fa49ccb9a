//! The history tables: their Arrow schemas and how records become rows.
//! Column by column documentation is in the manual, docs/src/operating/history-sql.md.

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bellwether_schemas::{ControlMessage, RolloutEvent, ScoreRecord};
use std::sync::Arc;

/// Table names, in the order `bellwether sql` lists them.
pub const TABLES: [&str; 9] = [
    "samples",
    "scores",
    "verdicts",
    "commands",
    "executions",
    "window_reports",
    "rollout_events",
    "model_versions",
    "outcomes",
];

/// The order rows are written in within a file: a query for one VM (or
/// one metric) then reads only the pages that hold it (Parquet page and
/// row-group statistics), and sorted ids compress better.
pub fn sort_key(table: &str) -> &'static [&'static str] {
    match table {
        "samples" => &["vm_id", "metric", "time"],
        "scores" => &["vm_id", "window_end"],
        "verdicts" => &["vm_id", "metric", "window_end"],
        _ => &[],
    }
}

/// A time column: milliseconds, UTC by convention and without a time-zone
/// tag (as InfluxDB 3 stores `time`): DataFusion truncates and bins
/// untagged timestamps several times faster (`date_trunc('hour', time)`
/// over 11 M rows: 0.1 s instead of 1.2 s on the benchmark machine).
fn ts(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        false,
    )
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn float(name: &str) -> Field {
    Field::new(name, DataType::Float64, false)
}

/// The schema of `table`.
pub fn schema(table: &str) -> SchemaRef {
    let fields = match table {
        "samples" => vec![
            ts("time"),
            text("vm_id", false),
            text("metric", false),
            float("value"),
        ],
        "scores" => vec![
            ts("window_start"),
            ts("window_end"),
            text("rollout_id", true),
            text("vm_id", false),
            text("forecaster", false),
            float("residual_rmse"),
            float("anomaly_score"),
            Field::new("anomalous", DataType::Boolean, false),
            Field::new("failure_risk", DataType::Float64, true),
            text("failure_drivers", true),
        ],
        "verdicts" => vec![
            ts("window_end"),
            text("rollout_id", true),
            text("vm_id", false),
            text("metric", false),
            float("observed"),
            float("forecast"),
            float("baseline_mean"),
            float("deviation"),
            float("threshold"),
            Field::new("anomalous", DataType::Boolean, false),
            text("peer_cohort", true),
            Field::new("control_vms", DataType::Int64, true),
            Field::new("peer_deviation", DataType::Float64, true),
            Field::new("vs_peers", DataType::Float64, true),
        ],
        "commands" => vec![
            ts("issued_at"),
            text("command_id", false),
            text("rollout_id", false),
            text("vm_id", false),
            text("action", false),
            Field::new("wave", DataType::Int64, true),
            Field::new("critical", DataType::Boolean, true),
            Field::new("priority", DataType::Int64, true),
            text("trigger", true),
            text("reason", true),
            text("evidence", true),
        ],
        "executions" => vec![
            ts("executed_at"),
            text("command_id", false),
            text("rollout_id", false),
            text("vm_id", false),
            text("action", false),
            Field::new("sequence", DataType::Int64, false),
        ],
        "window_reports" => vec![
            ts("window_start"),
            ts("window_end"),
            Field::new("vms_scored", DataType::Int64, false),
            Field::new("patched_scored", DataType::Int64, false),
            text("anomalous", false),
            text("missing", false),
            Field::new("late_rows_total", DataType::Int64, false),
        ],
        "rollout_events" => vec![
            ts("time"),
            text("rollout_id", false),
            text("event", false),
            text("detail", false),
        ],
        "model_versions" => vec![
            ts("loaded_at"),
            text("forecaster", false),
            text("version", false),
            text("detail", false),
        ],
        "outcomes" => vec![
            ts("time"),
            text("vm_id", false),
            text("rollout_id", true),
            text("kind", false),
            text("source", false),
            text("command_id", true),
            text("note", false),
        ],
        other => panic!("no history table {other}"),
    };
    Arc::new(Schema::new(fields))
}

fn batch(table: &str, columns: Vec<ArrayRef>) -> RecordBatch {
    // Columns are built right above in schema order: a mismatch is a defect.
    RecordBatch::try_new(schema(table), columns)
        .unwrap_or_else(|e| panic!("history table {table}: {e}"))
}

/// Score and verdict rows of `scores`.
pub fn score_rows(scores: &[&ScoreRecord]) -> (RecordBatch, RecordBatch) {
    let mut s = (
        TimestampMillisecondBuilder::new(),
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        BooleanBuilder::new(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    let mut v = (
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        BooleanBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    for r in scores {
        s.0.append_value(r.window_start.0);
        s.1.append_value(r.window_end.0);
        s.2.append_option(r.rollout_id.as_deref());
        s.3.append_value(&r.vm_id);
        s.4.append_value(&r.forecaster);
        s.5.append_value(r.residual_rmse);
        s.6.append_value(r.anomaly_score);
        s.7.append_value(r.anomalous);
        s.8.append_option(r.failure.as_ref().map(|f| f.risk));
        s.9.append_option(
            r.failure
                .as_ref()
                .map(|f| serde_json::to_string(&f.drivers).unwrap_or_default()),
        );
        for m in &r.verdicts {
            v.0.append_value(r.window_end.0);
            v.1.append_option(r.rollout_id.as_deref());
            v.2.append_value(&r.vm_id);
            v.3.append_value(&m.metric);
            v.4.append_value(m.observed);
            v.5.append_value(m.forecast);
            v.6.append_value(m.baseline_mean);
            v.7.append_value(m.deviation);
            v.8.append_value(m.threshold);
            v.9.append_value(m.anomalous);
            let peers = m.peers.as_ref();
            v.10.append_option(peers.map(|p| p.cohort.as_str()));
            v.11.append_option(peers.map(|p| p.control_vms as i64));
            v.12.append_option(peers.map(|p| p.peer_deviation));
            v.13.append_option(peers.map(|p| p.vs_peers));
        }
    }
    (
        batch(
            "scores",
            vec![
                Arc::new(s.0.finish()),
                Arc::new(s.1.finish()),
                Arc::new(s.2.finish()),
                Arc::new(s.3.finish()),
                Arc::new(s.4.finish()),
                Arc::new(s.5.finish()),
                Arc::new(s.6.finish()),
                Arc::new(s.7.finish()),
                Arc::new(s.8.finish()),
                Arc::new(s.9.finish()),
            ],
        ),
        batch(
            "verdicts",
            vec![
                Arc::new(v.0.finish()),
                Arc::new(v.1.finish()),
                Arc::new(v.2.finish()),
                Arc::new(v.3.finish()),
                Arc::new(v.4.finish()),
                Arc::new(v.5.finish()),
                Arc::new(v.6.finish()),
                Arc::new(v.7.finish()),
                Arc::new(v.8.finish()),
                Arc::new(v.9.finish()),
                Arc::new(v.10.finish()),
                Arc::new(v.11.finish()),
                Arc::new(v.12.finish()),
                Arc::new(v.13.finish()),
            ],
        ),
    )
}

/// The event time a control message is filed under.
pub fn control_time(m: &ControlMessage) -> i64 {
    match m {
        ControlMessage::Approval(a) => a.approved_at.0,
        ControlMessage::Patch(p) => p.issued_at.0,
        ControlMessage::Rollback(r) => r.issued_at.0,
        ControlMessage::Execution(e) => e.executed_at.0,
        ControlMessage::WindowReport(w) => w.window_end.0,
        ControlMessage::Outcome(o) => o.at.0,
        ControlMessage::Manual(m) => m.at.0,
        ControlMessage::Submission(s) => s.submitted_at.0,
        ControlMessage::Inventory(u) => u.at.0,
        ControlMessage::ApprovalRules(u) => u.at.0,
    }
}

/// Rows of the control-topic tables: (commands, executions, window_reports,
/// approvals as rollout events, outcomes).
pub fn control_rows(messages: &[&ControlMessage]) -> [RecordBatch; 5] {
    let mut o = (
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut c = (
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        BooleanBuilder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut e = (
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
    );
    let mut w = (
        TimestampMillisecondBuilder::new(),
        TimestampMillisecondBuilder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
    );
    let mut events = Vec::new();
    for m in messages {
        match m {
            ControlMessage::Patch(p) => {
                c.0.append_value(p.issued_at.0);
                c.1.append_value(&p.command_id.0);
                c.2.append_value(&p.rollout_id);
                c.3.append_value(&p.vm_id);
                c.4.append_value("patch");
                c.5.append_value(p.wave as i64 + 1);
                c.6.append_null();
                c.7.append_null();
                c.8.append_null();
                c.9.append_null();
                c.10.append_null();
            }
            ControlMessage::Rollback(r) => {
                c.0.append_value(r.issued_at.0);
                c.1.append_value(&r.command_id.0);
                c.2.append_value(&r.rollout_id);
                c.3.append_value(&r.vm_id);
                c.4.append_value("rollback");
                c.5.append_null();
                c.6.append_value(r.critical);
                c.7.append_value(r.priority as i64);
                c.8.append_value(r.reason.trigger.as_str());
                c.9.append_value(&r.reason.summary);
                c.10.append_value(serde_json::to_string(&r.reason.evidence).unwrap_or_default());
            }
            ControlMessage::Execution(x) => {
                e.0.append_value(x.executed_at.0);
                e.1.append_value(&x.command_id.0);
                e.2.append_value(&x.rollout_id);
                e.3.append_value(&x.vm_id);
                e.4.append_value(match x.action {
                    bellwether_schemas::Action::Patch => "patch",
                    bellwether_schemas::Action::Rollback => "rollback",
                });
                e.5.append_value(x.sequence as i64);
            }
            ControlMessage::WindowReport(r) => {
                w.0.append_value(r.window_start.0);
                w.1.append_value(r.window_end.0);
                w.2.append_value(r.vms_scored as i64);
                w.3.append_value(r.patched_scored as i64);
                w.4.append_value(r.anomalous.join(","));
                w.5.append_value(r.missing.join(","));
                w.6.append_value(r.late_rows_total as i64);
            }
            ControlMessage::Outcome(x) => {
                let name = |v: serde_json::Result<serde_json::Value>| {
                    v.ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                };
                o.0.append_value(x.at.0);
                o.1.append_value(&x.vm_id);
                o.2.append_option(x.rollout_id.as_deref());
                o.3.append_value(name(serde_json::to_value(x.kind)));
                o.4.append_value(name(serde_json::to_value(x.source)));
                o.5.append_option(x.command_id.as_ref().map(|c| c.0.as_str()));
                o.6.append_value(&x.note);
            }
            ControlMessage::Approval(a) => events.push((
                a.approved_at.0,
                a.rollout_id.clone(),
                "approved".to_string(),
                serde_json::json!({"patch": a.patch, "approved_by": a.approved_by}).to_string(),
            )),
            ControlMessage::Manual(m) => events.push((
                m.at.0,
                m.rollout_id.clone(),
                format!("manual_{}", m.action.as_str()),
                serde_json::json!({"by": m.by, "reason": m.reason}).to_string(),
            )),
            ControlMessage::Submission(s) => events.push((
                s.submitted_at.0,
                s.rollout_id.clone(),
                "submitted".to_string(),
                serde_json::json!({"patch": s.patch, "decision": s.decision, "submitted_by": s.submitted_by}).to_string(),
            )),
            ControlMessage::Inventory(u) => events.push((
                u.at.0,
                String::new(),
                "inventory_changed".to_string(),
                serde_json::to_string(u).unwrap_or_default(),
            )),
            ControlMessage::ApprovalRules(u) => events.push((
                u.at.0,
                String::new(),
                "approval_rules_changed".to_string(),
                serde_json::to_string(u).unwrap_or_default(),
            )),
        }
    }
    [
        batch(
            "commands",
            vec![
                Arc::new(c.0.finish()),
                Arc::new(c.1.finish()),
                Arc::new(c.2.finish()),
                Arc::new(c.3.finish()),
                Arc::new(c.4.finish()),
                Arc::new(c.5.finish()),
                Arc::new(c.6.finish()),
                Arc::new(c.7.finish()),
                Arc::new(c.8.finish()),
                Arc::new(c.9.finish()),
                Arc::new(c.10.finish()),
            ],
        ),
        batch(
            "executions",
            vec![
                Arc::new(e.0.finish()),
                Arc::new(e.1.finish()),
                Arc::new(e.2.finish()),
                Arc::new(e.3.finish()),
                Arc::new(e.4.finish()),
                Arc::new(e.5.finish()),
            ],
        ),
        batch(
            "window_reports",
            vec![
                Arc::new(w.0.finish()),
                Arc::new(w.1.finish()),
                Arc::new(w.2.finish()),
                Arc::new(w.3.finish()),
                Arc::new(w.4.finish()),
                Arc::new(w.5.finish()),
                Arc::new(w.6.finish()),
            ],
        ),
        event_rows(&events),
        batch(
            "outcomes",
            vec![
                Arc::new(o.0.finish()),
                Arc::new(o.1.finish()),
                Arc::new(o.2.finish()),
                Arc::new(o.3.finish()),
                Arc::new(o.4.finish()),
                Arc::new(o.5.finish()),
                Arc::new(o.6.finish()),
            ],
        ),
    ]
}

/// Rows of `rollout_events` from the actor's events.
pub fn rollout_event_rows(events: &[&RolloutEvent]) -> RecordBatch {
    let rows: Vec<(i64, String, String, String)> = events
        .iter()
        .map(|e| {
            let detail = serde_json::to_value(&e.kind).unwrap_or_default();
            let name = detail["event"].as_str().unwrap_or("unknown").to_string();
            (e.time.0, e.rollout_id.clone(), name, detail.to_string())
        })
        .collect();
    event_rows(&rows)
}

fn event_rows(rows: &[(i64, String, String, String)]) -> RecordBatch {
    let mut t = TimestampMillisecondBuilder::new();
    let (mut r, mut k, mut d) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for (time, rollout, kind, detail) in rows {
        t.append_value(*time);
        r.append_value(rollout);
        k.append_value(kind);
        d.append_value(detail);
    }
    batch(
        "rollout_events",
        vec![
            Arc::new(t.finish()),
            Arc::new(r.finish()),
            Arc::new(k.finish()),
            Arc::new(d.finish()),
        ],
    )
}

/// One `model_versions` row.
pub fn model_version_row(
    loaded_at_ms: i64,
    forecaster: &str,
    version: &str,
    detail: &str,
) -> RecordBatch {
    let mut t = TimestampMillisecondBuilder::new();
    t.append_value(loaded_at_ms);
    let col = |v: &str| {
        let mut b = StringBuilder::new();
        b.append_value(v);
        Arc::new(b.finish()) as ArrayRef
    };
    batch(
        "model_versions",
        vec![
            Arc::new(t.finish()),
            col(forecaster),
            col(version),
            col(detail),
        ],
    )
}
