//! Two pipeline instances in one consumer group decide exactly what one
//! instance decides: the same input (a recorded fleet with a bad patch on
//! its canary VMs) is scored once by a lone instance and once by a group of
//! two that split the partitions, and the rollback commands and scores of
//! both are compared.

use crate::common;

use bellwether::config::Config;
use bellwether::demo::DEMO_START;
use bellwether::kafka::admin::ensure_topics;
use bellwether::kafka::sink::SharedProducer;
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FaultKind, FleetSimulator, PatchQuality};
use bellwether_schemas::wire::json;
use bellwether_schemas::{CommandId, ControlMessage, PatchCommand};
use common::{Bellwether, Broker, control_messages, eventually, read_topic, write_config};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

pub(crate) const METRICS: &str = "replay.metrics";
pub(crate) const HOUR_MS: i64 = 3_600_000;
const PATCH_AT_HOUR: i64 = 30;
const HOURS: i64 = 34;
const ROLLOUT: &str = "rollout-group-test";

/// The recorded fleet: its metric messages (key, payload) in publishing
/// order, the patch commands of its canary and the canary VMs the patch broke.
struct Recording {
    messages: Vec<(String, Vec<u8>)>,
    patches: Vec<ControlMessage>,
    broken_canaries: BTreeSet<String>,
}

/// 34 h of a 60-VM fleet (as in `write_config`); at hour 30 a latency
/// regression reaches 12 canary VMs, half of them ones it breaks.
fn record_fleet() -> Recording {
    let mut config = Config::default_config();
    config.fleet.vms = 60;
    let mut fleet = FleetSimulator::new(
        &config.fleet,
        &config.simulation,
        PatchQuality::Bad(FaultKind::LatencyRegression),
    );
    let affected: BTreeSet<String> = fleet.affected_vms().into_iter().collect();
    let ids: Vec<String> = fleet.inventory().into_iter().map(|v| v.id).collect();
    let canary: Vec<String> = ids
        .iter()
        .filter(|id| affected.contains(*id))
        .take(6)
        .chain(ids.iter().filter(|id| !affected.contains(*id)).take(6))
        .cloned()
        .collect();
    assert_eq!(canary.len(), 12, "the fleet has too few broken VMs");
    let patch_at = DEMO_START.plus_ms(PATCH_AT_HOUR * HOUR_MS);
    let end = DEMO_START.plus_ms(HOURS * HOUR_MS);
    let step = config.fleet.sample_interval_secs as i64 * 1000;
    let mut messages = Vec::new();
    let mut now = DEMO_START;
    while now < end {
        if now == patch_at {
            for vm in &canary {
                fleet.patch(vm, now).unwrap();
            }
        }
        for batch in fleet.tick(now) {
            for s in snapshots(&batch).unwrap() {
                messages.push((s.vm_id.clone(), json::encode_snapshot(&s)));
            }
        }
        now = now.plus_ms(step);
    }
    let patches = canary
        .iter()
        .map(|vm| {
            ControlMessage::Patch(PatchCommand {
                command_id: CommandId::patch(ROLLOUT, vm),
                rollout_id: ROLLOUT.into(),
                patch_id: "KB-TEST".into(),
                vm_id: vm.clone(),
                wave: 0,
                issued_at: patch_at,
            })
        })
        .collect();
    Recording {
        messages,
        patches,
        broken_canaries: canary
            .into_iter()
            .filter(|v| affected.contains(v))
            .collect(),
    }
}

fn producer(broker: &Broker) -> SharedProducer {
    let mut config = Config::default_config();
    config.kafka.brokers = broker.address.clone();
    SharedProducer::new(&config.kafka).unwrap()
}

/// One replay setup: its own consumer group, control and scores topics.
pub(crate) fn setup(dir: &Path, broker: &Broker, name: &str) -> String {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(
        &dir,
        broker,
        &format!(
            r#"group_id = "{name}"
control_topic = "{name}.control"
scores_topic = "{name}.scores"
metrics_topics = [{{ name = "{METRICS}", format = "json" }}]"#
        ),
    );
    // A partition goes idle only once the recording is exhausted: while it
    // is read, event time waits for every partition, so no row is late.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("idle_partition_secs = 5", "idle_partition_secs = 120");
    std::fs::write(&config, text).unwrap();
    // Its topics exist before the patch commands are published.
    ensure_topics(&bellwether::config::load(Some(&config)).unwrap().kafka).unwrap();
    config.to_str().unwrap().to_string()
}

fn start(dir: &Path, name: &str, config: &str) -> Bellwether {
    Bellwether::spawn(dir, name, &["run", "--config", config, "--no-actor"])
}

/// The partition count of the instance's last assignment.
pub(crate) fn assigned(b: &Bellwether) -> Option<usize> {
    let log = b.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("partitions assigned"))?;
    line.split("partitions=").nth(1)?.trim().parse().ok()
}

/// Rollback commands up to `cutoff`, as (command id, VM, window, evidence).
fn rollbacks(broker: &Broker, topic: &str, cutoff: i64) -> BTreeSet<String> {
    control_messages(broker, topic)
        .into_iter()
        .filter(|m| m["type"] == "rollback" && m["issued_at"].as_i64().unwrap() <= cutoff)
        .map(|m| {
            format!(
                "{} {} at {}: {}",
                m["command_id"],
                m["vm_id"],
                m["issued_at"],
                own_view(m["reason"]["summary"].as_str().unwrap_or(""))
            )
        })
        .collect()
}

/// The metrics a rollback reason cites. Each instance of a group draws a
/// VM's control from the unpatched VMs of its own partitions, so the
/// numbers (the peers', and while a cohort moves together what unpatched
/// VMs learned) may differ between one instance and two; the decision and
/// what it rests on do not.
fn own_view(summary: &str) -> String {
    summary
        .split("; ")
        .filter(|part| part.contains(" expected ("))
        .filter_map(|part| part.split_whitespace().next())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Score records up to `cutoff`: which VM, which window, and whether it
/// was anomalous. (What a VM's peers did depends on the partitions an
/// instance owns, see [`own_view`], and so, while a cohort moves together,
/// do what unpatched VMs learn and the numbers that follow from it.)
fn scores(broker: &Broker, topic: &str, cutoff: i64) -> BTreeSet<String> {
    read_topic(broker, topic)
        .into_iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .filter(|s| s["window_end"].as_i64().unwrap() <= cutoff)
        .map(|s| format!("{} {} {}", s["vm_id"], s["window_end"], s["anomalous"]))
        .collect()
}

/// Window reports closing at `cutoff`.
pub(crate) fn reports_at(broker: &Broker, topic: &str, cutoff: i64) -> Vec<Value> {
    control_messages(broker, topic)
        .into_iter()
        .filter(|m| m["type"] == "window_report" && m["window_end"].as_i64() == Some(cutoff))
        .collect()
}

#[test]
fn two_pipeline_instances_in_one_group_decide_exactly_what_one_decides() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let recording = record_fleet();
    let dir = tempfile::tempdir().unwrap();
    let alone = setup(dir.path(), &broker, "alone");
    let pair = setup(dir.path(), &broker, "pair");

    // The canary's patch commands are on both control topics before any
    // instance starts (each reads its control topic at start).
    let p = producer(&broker);
    for name in ["alone", "pair"] {
        let topic = format!("{name}.control");
        for patch in &recording.patches {
            p.send(
                &topic,
                Some(ROLLOUT.as_bytes()),
                &serde_json::to_vec(patch).unwrap(),
                None,
            )
            .unwrap();
        }
    }
    p.flush().unwrap();

    let one = start(dir.path(), "alone", &alone);
    let a = start(dir.path(), "pair-a", &pair);
    eventually(Duration::from_secs(60), "pair-a to start", || {
        a.log_text().contains("bellwether is running").then_some(())
    });
    // Each instance writes its own history folder (one writer per folder).
    let pair_b = dir.path().join("pair/pair-b.toml");
    let text = std::fs::read_to_string(&pair).unwrap();
    let history = dir.path().join("pair/history");
    let own = dir.path().join("pair/history-b");
    std::fs::write(
        &pair_b,
        text.replace(
            &format!("dir = \"{}\"", history.display()),
            &format!("dir = \"{}\"", own.display()),
        ),
    )
    .unwrap();
    let b = start(dir.path(), "pair-b", pair_b.to_str().unwrap());
    // The pair has split the partitions before the first metric arrives,
    // so no partition changes hands while the recording is read.
    eventually(
        Duration::from_secs(120),
        "the pair to split the partitions",
        || {
            (assigned(&one) == Some(4) && assigned(&a) == Some(2) && assigned(&b) == Some(2))
                .then_some(())
        },
    );

    for (key, payload) in &recording.messages {
        p.send(METRICS, Some(key.as_bytes()), payload, None)
            .unwrap();
    }
    p.flush().unwrap();

    // Wait until every instance has closed the window ending an hour
    // before the recording does.
    let cutoff = DEMO_START.plus_ms((HOURS - 1) * HOUR_MS).0;
    let alone_report = eventually(
        Duration::from_secs(300),
        "the lone instance's report",
        || reports_at(&broker, "alone.control", cutoff).pop(),
    );
    let pair_reports = eventually(Duration::from_secs(300), "both reports of the pair", || {
        let r = reports_at(&broker, "pair.control", cutoff);
        (r.len() >= 2).then_some(r)
    });
    // Each of the pair scored part of the fleet, together all of it, and
    // no instance dropped a sample as late.
    let scored: Vec<u64> = pair_reports
        .iter()
        .map(|r| r["vms_scored"].as_u64().unwrap())
        .collect();
    assert!(scored.iter().all(|n| *n > 0), "{pair_reports:?}");
    assert_eq!(
        scored.iter().sum::<u64>(),
        alone_report["vms_scored"].as_u64().unwrap(),
        "{pair_reports:?} vs {alone_report}"
    );
    assert_eq!(alone_report["vms_scored"], 60);
    for r in pair_reports.iter().chain([&alone_report]) {
        assert_eq!(r["late_rows_total"], 0, "{r}");
    }

    // The lone instance caught the patch: it rolled back every broken
    // canary VM and nothing else.
    let one_rollbacks = rollbacks(&broker, "alone.control", cutoff);
    let rolled_back: BTreeSet<String> = control_messages(&broker, "alone.control")
        .into_iter()
        .filter(|m| m["type"] == "rollback")
        .map(|m| m["vm_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !rolled_back.is_empty(),
        "the lone instance rolled nothing back"
    );
    assert_eq!(
        rolled_back, recording.broken_canaries,
        "rolled back vs broken canary VMs"
    );

    // The pair decided exactly the same: the same rollbacks, in the same
    // windows, citing the same metrics, and
    // the same VMs scored in the same windows with the same verdicts.
    assert_eq!(rollbacks(&broker, "pair.control", cutoff), one_rollbacks);
    let one_scores = scores(&broker, "alone.scores", cutoff);
    assert!(!one_scores.is_empty());
    assert_eq!(scores(&broker, "pair.scores", cutoff), one_scores);
}
