//! Malformed metrics on a real broker: JSON and line protocol that do not
//! decode land in the dead-letter topic, whole, with headers saying why and
//! where they came from, and the stream goes on.

use crate::common;

use common::{Bellwether, Broker, eventually, producer, read_topic, send, write_config};
use std::time::Duration;

const START_MS: i64 = 1_793_577_600_000;

#[test]
fn malformed_json_and_line_protocol_are_dead_lettered_and_the_stream_goes_on() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broker,
        r#"metrics_topics = [
  { name = "m.json", format = "json" },
  { name = "m.influx", format = "line_protocol", line_protocol = { vm_tag = "host", precision = "ms", prefix_measurement = false } },
]"#,
    );
    let config = config.to_str().unwrap();
    let run = Bellwether::spawn(
        dir.path(),
        "run",
        &["run", "--config", config, "--no-actor"],
    );

    let p = producer(&broker);
    let bad_json = br#"{"vm_id":"vm-a","time":1793578200000,"metrics":{"cpu_percent":"high"}}"#;
    let bad_line = b"vm,host=vm-b cpu_percent=lots 1793578200000";
    let names: Vec<String> = (0..5_000).map(|i| format!(r#""m{i}":1"#)).collect();
    let many_metrics = format!(
        r#"{{"vm_id":"vm-a","time":1793578800000,"metrics":{{{}}}}}"#,
        names.join(",")
    );
    let far_future =
        br#"{"vm_id":"vm-a","time":9000000000000000,"metric":"nobody_scores","value":1}"#;
    eventually(
        Duration::from_secs(60),
        "the pipeline to create its topics",
        || {
            run.log_text()
                .contains("bellwether is running")
                .then_some(())
        },
    );
    for minute in 0..45 {
        let t = START_MS + minute * 60_000;
        let json = format!(
            r#"{{"vm_id":"vm-a","time":{t},"metrics":{{"cpu_percent":{},"response_time_ms":120}}}}"#,
            40 + minute % 3
        );
        send(&p, "m.json", "vm-a", json.as_bytes());
        let line = format!(
            "vm,host=vm-b cpu_percent={},response_time_ms=80 {t}",
            30 + minute % 2
        );
        send(&p, "m.influx", "vm-b", line.as_bytes());
        if minute == 10 {
            send(&p, "m.json", "vm-a", bad_json);
            send(&p, "m.influx", "vm-b", bad_line);
        }
        if minute == 20 {
            // Hostile: thousands of metric names in one message (once a
            // crash loop), and a time in the year 287168 (once the end of
            // detection).
            send(&p, "m.json", "vm-a", many_metrics.as_bytes());
            send(&p, "m.json", "vm-a", far_future);
        }
    }

    let dead = eventually(Duration::from_secs(60), "four dead letters", || {
        let d = read_topic(&broker, "bellwether.dead-letter");
        (d.len() >= 4).then_some(d)
    });
    assert_eq!(dead.len(), 4, "{dead:?}");
    let reason_of = |payload: &[u8]| {
        dead.iter()
            .find(|d| d.payload == payload)
            .map(|d| d.headers["bellwether.error"].clone())
            .unwrap_or_else(|| {
                panic!(
                    "not dead-lettered: {}",
                    String::from_utf8_lossy(&payload[..60])
                )
            })
    };
    let why = reason_of(many_metrics.as_bytes());
    assert!(
        why.contains("more than 1000 distinct metric names"),
        "{why}"
    );
    let why = reason_of(far_future);
    assert!(
        why.contains("row 0: time 9000000000000000 ms is past"),
        "{why}"
    );
    let json = dead
        .iter()
        .find(|d| d.headers["bellwether.source.topic"] == "m.json")
        .unwrap();
    assert!(!run.log_text().contains("panicked"), "{}", run.log_tail());
    assert_eq!(
        json.payload,
        bad_json.to_vec(),
        "the original bytes are kept"
    );
    assert_eq!(json.key.as_deref(), Some(&b"vm-a"[..]));
    assert!(
        json.headers["bellwether.error"].contains("metric `cpu_percent`"),
        "{:?}",
        json.headers
    );
    assert_eq!(json.headers["bellwether.source.offset"], "11");
    assert_eq!(
        json.headers["bellwether.source.partition"],
        json_partition(&broker)
    );
    let line = dead
        .iter()
        .find(|d| d.headers["bellwether.source.topic"] == "m.influx")
        .unwrap();
    assert_eq!(line.payload, bad_line.to_vec());
    assert!(
        line.headers["bellwether.error"].contains("line 1: field `cpu_percent`"),
        "{:?}",
        line.headers
    );

    // The stream went on: windows after the bad messages were scored with
    // both VMs, one from each topic.
    let later = START_MS + 35 * 60_000;
    eventually(
        Duration::from_secs(60),
        "window reports after the bad messages",
        || {
            common::control_messages(&broker, "bellwether.control")
                .into_iter()
                .find(|m| {
                    m["type"] == "window_report"
                        && m["window_end"].as_i64().unwrap() >= later
                        && m["vms_scored"] == 2
                })
        },
    );
}

/// The partition vm-a's messages went to (the only one holding m.json data).
fn json_partition(broker: &Broker) -> String {
    read_topic(broker, "m.json")
        .first()
        .map(|r| r.partition.to_string())
        .unwrap()
}
