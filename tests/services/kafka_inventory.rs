//! A CMDB's inventory topic: VM records register and remove VMs in the
//! running bellwether, a record that is not one is dead-lettered with the
//! reason, and a restart keeps what was registered without repeating it.

use crate::common;

use common::{
    Bellwether, Broker, control_messages, eventually, producer, read_topic, send, write_config,
};
use serde_json::Value;
use std::time::Duration;

const TOPIC: &str = "cmdb.vms";

fn vm_ids(url: &str) -> Option<Vec<String>> {
    let vms: Value = ureq::get(&format!("{url}api/vms"))
        .call()
        .ok()?
        .into_body()
        .read_json()
        .ok()?;
    Some(
        vms.as_array()?
            .iter()
            .map(|v| v["id"].as_str().unwrap_or_default().to_string())
            .collect(),
    )
}

fn inventory_messages(broker: &Broker) -> usize {
    control_messages(broker, "bellwether.control")
        .iter()
        .filter(|m| m["type"] == "inventory" && m["by"] == "inventory topic")
        .count()
}

#[test]
fn a_cmdb_registers_and_removes_vms_through_the_inventory_topic() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &broker,
        &format!("inventory_topic = \"{TOPIC}\""),
    );
    let config = config.to_str().unwrap();
    let mut run = Bellwether::spawn(dir.path(), "run-1", &["run", "--config", config]);
    let url = run.dashboard_url();
    let before = vm_ids(&url).unwrap();
    assert_eq!(before.len(), 60);
    assert!(before.contains(&"vm-0001".to_string()));

    let cmdb = producer(&broker);
    let record = br#"{"id": "db-cmdb-1", "instance_type": "r6i.2xlarge", "region": "eu-west-1", "criticality": "critical", "tags": {"role": "db"}}"#;
    send(&cmdb, TOPIC, "db-cmdb-1", record);
    send(
        &cmdb,
        TOPIC,
        "vm-0001",
        br#"{"id": "vm-0001", "removed": true}"#,
    );
    send(&cmdb, TOPIC, "vm-bad", br#"{"id": "vm-bad", "region": 5}"#);
    send(&cmdb, TOPIC, "junk", b"not json at all");

    let ids = eventually(Duration::from_secs(60), "the CMDB's changes", || {
        let ids = vm_ids(&url)?;
        (ids.contains(&"db-cmdb-1".to_string()) && !ids.contains(&"vm-0001".to_string()))
            .then_some(ids)
    });
    assert_eq!(ids.len(), 60);
    // The registered VM is in the built-in critical group at once.
    let groups: Value = ureq::get(&format!("{url}api/groups"))
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    let critical = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "critical-systems")
        .unwrap();
    assert!(
        critical["vms"]
            .as_array()
            .unwrap()
            .contains(&Value::from("db-cmdb-1")),
        "{critical}"
    );

    // What was not a VM record is dead-lettered with the reason; the stream went on.
    let dead = eventually(Duration::from_secs(60), "two dead letters", || {
        let d: Vec<_> = read_topic(&broker, "bellwether.dead-letter")
            .into_iter()
            .filter(|d| d.headers["bellwether.source.topic"] == TOPIC)
            .collect();
        (d.len() >= 2).then_some(d)
    });
    assert_eq!(dead.len(), 2);
    let bad = dead
        .iter()
        .find(|d| d.payload.starts_with(b"{\"id\": \"vm-bad\""))
        .unwrap();
    assert!(
        bad.headers["bellwether.error"].contains("not a VM record"),
        "{:?}",
        bad.headers
    );
    assert_eq!(inventory_messages(&broker), 2);

    // A restart replays the control topic: the changes stay, and the CMDB's
    // records, read again, are not published twice.
    run.kill();
    let run = Bellwether::spawn(dir.path(), "run-2", &["run", "--config", config]);
    let url = run.dashboard_url();
    let ids = eventually(
        Duration::from_secs(60),
        "the inventory after the restart",
        || {
            let ids = vm_ids(&url)?;
            ids.contains(&"db-cmdb-1".to_string()).then_some(ids)
        },
    );
    assert!(!ids.contains(&"vm-0001".to_string()));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(inventory_messages(&broker), 2, "nothing published twice");
}
