//! The webhook and shell actuators against real parts: an HTTP server that
//! checks signatures and fails on purpose, and `sh`.

use crate::common;

use bellwether::config::{ShellConfig, WebhookConfig};
use bellwether::rollout::actuator::Actuator;
use bellwether::rollout::shell::ShellActuator;
use bellwether::rollout::webhook::WebhookActuator;
use bellwether_schemas::{CommandId, EventTime, PatchCommand};
use common::webhook::{SECRET, endpoint, signed};
use std::sync::Arc;

fn patch_command(vm: &str) -> PatchCommand {
    PatchCommand {
        command_id: CommandId(format!("r1/patch/{vm}")),
        rollout_id: "r1".into(),
        patch_id: "KB-1".into(),
        vm_id: vm.into(),
        wave: 0,
        issued_at: EventTime(1_793_577_600_000),
    }
}

fn webhook(url: &str, retries: u32) -> WebhookActuator {
    WebhookActuator::new(WebhookConfig {
        url: url.into(),
        secret: SECRET.into(),
        timeout_secs: 5.0,
        retries,
        backoff_ms: 10,
    })
}

#[test]
fn a_webhook_gets_signed_calls_and_a_failing_one_is_retried() {
    let (url, calls) = endpoint(vec![500, 503, 200]);
    webhook(&url, 3)
        .patch(&patch_command("vm-0042"))
        .expect("the third attempt succeeds");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    for (i, (headers, body)) in calls.iter().enumerate() {
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        // The endpoint checks the signature with the shared secret.
        assert!(
            signed(headers, body),
            "{}",
            header("x-bellwether-signature")
        );
        assert_eq!(header("x-bellwether-command-id"), "r1/patch/vm-0042");
        assert_eq!(header("x-bellwether-attempt"), (i + 1).to_string());
        assert_eq!(header("content-type"), "application/json");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["action"], "patch");
        assert_eq!(json["vm_id"], "vm-0042");
        assert_eq!(json["command"]["patch_id"], "KB-1");
    }
}

#[test]
fn a_webhook_that_keeps_failing_fails_the_command_with_the_reason() {
    let (url, calls) = endpoint(vec![500]);
    let err = webhook(&url, 2)
        .patch(&patch_command("vm-1"))
        .unwrap_err()
        .to_string();
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert!(
        err.contains("after 3 attempt(s)") && err.contains("500"),
        "{err}"
    );
    // A refusal (4xx other than 429) is not retried.
    let (url, calls) = endpoint(vec![403]);
    let err = webhook(&url, 2)
        .patch(&patch_command("vm-2"))
        .unwrap_err()
        .to_string();
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert!(err.contains("403"), "{err}");
    // Nobody listening: retried, then failed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = webhook(&format!("http://127.0.0.1:{port}/x"), 1)
        .patch(&patch_command("vm-3"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("after 2 attempt(s)"), "{err}");
}

#[test]
fn the_shell_actuator_runs_its_template_with_quoted_values() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let shell = |patch: &str, timeout_secs: f64| {
        ShellActuator::new(ShellConfig {
            patch: patch.into(),
            rollback: "true".into(),
            timeout_secs,
        })
    };
    let mut ok = shell(
        &format!(
            "printf '%s|%s\\n' {{vm_id}} {{patch_id}} >> {}",
            log.display()
        ),
        10.0,
    );
    ok.patch(&patch_command("vm-0042")).unwrap();
    // A value cannot run code of its own: it arrives as one argument.
    ok.patch(&patch_command("x'; touch pwned; echo '")).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "vm-0042|KB-1\nx'; touch pwned; echo '|KB-1\n");
    assert!(!dir.path().join("pwned").exists() && !std::path::Path::new("pwned").exists());

    let err = shell("echo 'disk full' >&2; exit 3", 10.0)
        .patch(&patch_command("vm-1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exit status: 3") && err.contains("disk full"),
        "{err}"
    );
    let err = shell("sleep 5", 0.3)
        .patch(&patch_command("vm-2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out"), "{err}");
}

/// The actor records a command its actuator could not carry out (after the
/// webhook's retries) as a rollout event, publishes no execution for it,
/// and halts the rollout (`rollback.on_anomaly = "halt"`).
#[test]
fn a_failed_actuation_is_a_recorded_event() {
    use bellwether::rollout::RolloutActor;
    use bellwether_schemas::{ControlMessage, Patch, RolloutEventKind};
    let (url, calls) = endpoint(vec![502]);
    let config = bellwether::config::Config::default_config();
    let fleet = bellwether::simulator::FleetSimulator::new(
        &config.fleet,
        &config.simulation,
        bellwether::simulator::PatchQuality::Good,
    );
    let inventory = Arc::new(
        bellwether::inventory::Inventory::with_groups(fleet.inventory(), &config.canary.groups)
            .unwrap(),
    );
    let mut actor = RolloutActor::new(&config.control(), inventory, webhook(&url, 1));
    let patch = Patch {
        id: "p1".into(),
        title: "t".into(),
        classification: "security".into(),
        severity: "low".into(),
        product: "x".into(),
    };
    actor.start("r1", patch, EventTime(1_793_577_600_000));
    let commands = actor.take_outbox();
    let patches = commands
        .iter()
        .filter(|m| matches!(m, ControlMessage::Patch(_)))
        .count();
    assert!(patches > 0);
    // The wave's commands come back from the topic together.
    actor.handle_all(commands);
    assert_eq!(calls.lock().unwrap().len(), 2 * patches, "each tried twice");
    assert_eq!(
        actor.state(),
        bellwether_schemas::RolloutState::Halted,
        "a deploy that fails is not baked"
    );
    assert_eq!(actor.failed_patches().len(), patches);
    let failed = actor
        .events()
        .iter()
        .filter(|e| {
            matches!(&e.kind, RolloutEventKind::ActuationFailed { action, reason, .. }
            if action == "patch" && reason.contains("502"))
        })
        .count();
    assert_eq!(failed, patches);
    assert!(
        !actor
            .take_outbox()
            .iter()
            .any(|m| matches!(m, ControlMessage::Execution(_))),
        "no execution is published for a failed command"
    );
}

/// An operator's emergency rollback of 1,500 VMs through the webhook
/// actuator, against an endpoint taking 200 ms a rollback: every VM goes
/// back, critical ones first, at `actor.workers` calls at once and with no
/// window report. The time it took is printed (benches/README, "Emergency
/// rollback"); one at a time it would take 300 s.
#[test]
fn an_emergency_rollback_of_1500_vms_goes_through_the_webhook_critical_first() {
    use bellwether::inventory::Inventory;
    use bellwether::rollout::RolloutActor;
    use bellwether_schemas::{
        ControlMessage, Criticality, ManualAction, ManualCommand, Patch, RolloutState, VmRecord,
    };
    use std::time::{Duration, Instant};
    const VMS: usize = 1500;
    let (url, arrivals) = common::webhook::slow_endpoint(Duration::from_millis(200));
    let vms: Vec<VmRecord> = (0..VMS)
        .map(|i| VmRecord {
            id: format!("vm-{i:04}"),
            tags: Default::default(),
            instance_type: "m6i.large".into(),
            region: "eu-west-1".into(),
            // One in ten critical, spread through the fleet.
            criticality: if i % 10 == 7 {
                Criticality::Critical
            } else {
                Criticality::Standard
            },
        })
        .collect();
    let mut config = bellwether::config::Config::default_config();
    config.rollout.waves = vec!["100%".parse().unwrap()];
    config.rollout.canary_waves = 1;
    config.rollout.canary_groups = Vec::new();
    config.rollout.control_holdback = None;
    let inventory = Arc::new(Inventory::with_groups(vms, &config.canary.groups).unwrap());
    let workers = config.actor.workers;
    let actuator = webhook(&url, 0).with_workers(workers);
    let mut actor = RolloutActor::new(&config.control(), inventory, actuator);
    let patch = Patch {
        id: "p1".into(),
        title: "t".into(),
        classification: "security".into(),
        severity: "high".into(),
        product: "x".into(),
    };
    let t0 = EventTime(1_793_577_600_000);
    actor.start("r1", patch, t0);
    let echo = |actor: &mut RolloutActor<WebhookActuator>| loop {
        let out = actor.take_outbox();
        if out.is_empty() {
            break;
        }
        actor.handle_all(out);
    };
    echo(&mut actor);
    assert_eq!(actor.patched().len(), VMS, "the whole fleet is patched");
    arrivals.lock().unwrap().clear();

    let started = Instant::now();
    actor.handle(ControlMessage::Manual(ManualCommand {
        rollout_id: "r1".into(),
        action: ManualAction::Rollback,
        by: "on-call".into(),
        reason: "emergency".into(),
        at: t0,
    }));
    echo(&mut actor);
    let took = started.elapsed();
    eprintln!(
        "emergency rollback of {VMS} VMs through the webhook (200 ms a call, {workers} workers): {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(actor.state(), RolloutState::RolledBack);
    assert!(actor.patched().is_empty());
    assert_eq!(actor.rollbacks().len(), VMS);
    assert!(actor.rollbacks().iter().all(|r| r.succeeded));
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), VMS, "one call a VM");
    // Critical first: every critical VM's call started before any other
    // but those already in flight beside the last critical ones.
    let critical = arrivals.iter().filter(|(_, _, c)| *c).count();
    assert_eq!(critical, VMS / 10);
    let last_critical = arrivals.iter().rposition(|(_, _, c)| *c).unwrap();
    assert!(
        last_critical < critical + workers,
        "the last critical VM's rollback was call {} of {VMS}",
        last_critical + 1
    );
}
