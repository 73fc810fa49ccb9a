//! Interop with Kafka clients nobody here wrote: kafka-python (pure
//! Python) and confluent-kafka (PyPI) publish line protocol and JSON
//! metrics that bellwether scores, and read bellwether's control topic.
//! `./scripts/test` installs both into a virtualenv and names its python
//! in `BELLWETHER_PYTHON`.

use crate::common;

use common::{Bellwether, Broker, eventually, write_config};
use std::process::Command;
use std::time::Duration;

#[test]
fn python_clients_publish_metrics_and_read_the_control_topic() {
    let Some(python) = common::python("kafka-python and confluent-kafka") else {
        return;
    };
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broker,
        r#"metrics_topics = [
  { name = "py.json", format = "json" },
  { name = "py.influx", format = "line_protocol", line_protocol = { prefix_measurement = false } },
]"#,
    );
    let run = Bellwether::spawn(
        dir.path(),
        "run",
        &["run", "--config", config.to_str().unwrap(), "--no-actor"],
    );
    eventually(Duration::from_secs(60), "the pipeline to start", || {
        run.log_text()
            .contains("bellwether is running")
            .then_some(())
    });
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/clients.py"
        ))
        .args([
            &broker.address,
            "py.json",
            "py.influx",
            "bellwether.control",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for client in ["kafka_python", "confluent_kafka"] {
        let reports = seen[client].as_array().unwrap();
        assert!(
            reports.iter().any(|r| r["vms_scored"] == 2),
            "{client} saw no window scored with both VMs: {seen}\n{}",
            run.log_tail()
        );
    }
    assert!(
        !run.log_text().contains("dead-lettered"),
        "{}",
        run.log_tail()
    );
}
