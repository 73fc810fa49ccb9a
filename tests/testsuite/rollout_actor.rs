//! The rollout actor against the simulated fleet: rollback ordering and
//! idempotent commands.

use bellwether::config::Config;
use bellwether::demo::SimulatorActuator;
use bellwether::inventory::Inventory;
use bellwether::rollout::RolloutActor;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, Patch, RollbackCommand, RollbackReason, RollbackTrigger,
    RolloutState, WindowReport,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

struct Setup {
    fleet: Arc<Mutex<FleetSimulator>>,
    actor: RolloutActor<SimulatorActuator>,
    inventory: Arc<Inventory>,
}

fn setup(config: &Config) -> Setup {
    let fleet = Arc::new(Mutex::new(FleetSimulator::new(
        &config.fleet,
        &config.simulation,
        PatchQuality::Good,
    )));
    let inventory = Arc::new(
        Inventory::with_groups(fleet.lock().unwrap().inventory(), &config.canary.groups).unwrap(),
    );
    let actor = RolloutActor::new(
        &config.control(),
        inventory.clone(),
        SimulatorActuator::new(fleet.clone()),
    );
    Setup {
        fleet,
        actor,
        inventory,
    }
}

fn patch() -> Patch {
    Patch {
        id: "p1".into(),
        title: "t".into(),
        classification: "security".into(),
        severity: "low".into(),
        product: "x".into(),
    }
}

/// Starts a rollout and executes its first wave's patch commands.
fn start(s: &mut Setup, now: EventTime) -> Vec<String> {
    s.actor.start("r1", patch(), now);
    for m in s.actor.take_outbox() {
        s.actor.handle(m);
    }
    s.actor.patched().iter().cloned().collect()
}

fn rollback(vm: &str, critical: bool, priority: u32, at: EventTime) -> ControlMessage {
    ControlMessage::Rollback(RollbackCommand {
        command_id: CommandId::rollback("r1", vm),
        rollout_id: "r1".into(),
        vm_id: vm.into(),
        critical,
        priority,
        reason: RollbackReason {
            trigger: RollbackTrigger::Anomaly,
            summary: "test".into(),
            evidence: vec![],
            failure: None,
            wave: None,
        },
        issued_at: at,
    })
}

/// Every VM of the default fleet (what these tests run on).
fn fleet_vms() -> &'static [String] {
    static VMS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VMS.get_or_init(|| {
        let config = Config::default_config();
        FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good)
            .inventory()
            .into_iter()
            .map(|v| v.id)
            .collect()
    })
}

/// A window report: every VM sent metrics but `missing`.
fn report_missing(at: EventTime, missing: &[String]) -> ControlMessage {
    ControlMessage::WindowReport(WindowReport {
        window_start: at.plus_ms(-300_000),
        window_end: at,
        vms_scored: fleet_vms().len() - missing.len(),
        patched_scored: 0,
        anomalous: vec![],
        missing: missing.to_vec(),
        reported: fleet_vms()
            .iter()
            .filter(|v| !missing.contains(v))
            .cloned()
            .collect(),
        late_rows_total: 0,
        noise: None,
    })
}

/// A window report: every VM sent metrics.
fn report(at: EventTime) -> ControlMessage {
    report_missing(at, &[])
}

#[test]
fn critical_vms_are_rolled_back_first() {
    let mut config = Config::default_config();
    // A first wave large enough to hold critical and non-critical VMs.
    config.rollout.waves = vec!["20%".parse().unwrap(), "100%".parse().unwrap()];
    config.rollout.canary_waves = 1;
    config.rollout.canary_groups = vec!["critical-systems".into(), "canary-ring".into()];
    let mut s = setup(&config);
    let now = EventTime(1_000_000);
    let patched = start(&mut s, now);
    let critical: Vec<&String> = patched
        .iter()
        .filter(|v| s.inventory.vm(v).unwrap().is_critical())
        .collect();
    let standard: Vec<&String> = patched
        .iter()
        .filter(|v| !s.inventory.vm(v).unwrap().is_critical())
        .collect();
    assert!(
        critical.len() >= 2 && standard.len() >= 2,
        "wave holds both kinds"
    );

    // Detected in one window in this order: two standard VMs (one
    // worse), then two critical ones; carried out at once, no window
    // report needed.
    s.actor.handle_all([
        rollback(standard[0], false, 1100, now),
        rollback(standard[1], false, 1900, now),
        rollback(critical[0], true, 3100, now),
        rollback(critical[1], true, 3500, now),
    ]);
    let order: Vec<&str> = s
        .actor
        .rollbacks()
        .iter()
        .map(|r| r.vm_id.as_str())
        .collect();
    assert_eq!(
        order,
        [
            critical[1].as_str(),
            critical[0].as_str(),
            standard[1].as_str(),
            standard[0].as_str()
        ]
    );
    assert_eq!(s.actor.state(), RolloutState::Halted);
    let fleet = s.fleet.lock().unwrap();
    for vm in order {
        assert!(!fleet.is_patched(vm), "{vm} was rolled back on the fleet");
    }
}

#[test]
fn a_repeated_command_is_executed_once() {
    let config = Config::default_config();
    let mut s = setup(&config);
    let now = EventTime(1_000_000);
    let patched = start(&mut s, now);
    let vm = patched[0].clone();
    s.actor.handle(rollback(&vm, false, 1, now));
    s.actor.handle(report(now.plus_ms(300_000)));
    assert_eq!(s.actor.rollbacks().len(), 1);
    assert!(!s.fleet.lock().unwrap().is_patched(&vm));

    // Re-patch the VM behind the actor's back: executing the repeated
    // rollback again would undo this, a no-op must not.
    s.fleet
        .lock()
        .unwrap()
        .patch(&vm, now.plus_ms(400_000))
        .unwrap();
    s.actor.handle(rollback(&vm, false, 1, now));
    s.actor.handle(report(now.plus_ms(600_000)));
    assert_eq!(s.actor.rollbacks().len(), 1, "the repeat was not executed");
    assert_eq!(s.actor.duplicates_skipped(), 1);
    assert!(
        s.fleet.lock().unwrap().is_patched(&vm),
        "the fleet saw no second rollback"
    );

    // A repeated patch command is skipped the same way.
    let repeat = ControlMessage::Patch(bellwether_schemas::PatchCommand {
        command_id: CommandId::patch("r1", &vm),
        rollout_id: "r1".into(),
        patch_id: "p1".into(),
        vm_id: vm.clone(),
        wave: 0,
        issued_at: now,
    });
    s.actor.handle(repeat);
    assert_eq!(s.actor.duplicates_skipped(), 2);
}

#[test]
fn a_wave_advances_only_after_its_bake_time() {
    let config = Config::default_config();
    let mut s = setup(&config);
    let now = EventTime(0);
    start(&mut s, now);
    assert_eq!(s.actor.state(), RolloutState::Baking);
    let bake_ms = config.rollout.first_bake_minutes as i64 * 60_000;
    s.actor.handle(report(now.plus_ms(bake_ms - 300_000)));
    assert_eq!(s.actor.waves().len(), 1, "still baking");
    s.actor.handle(report(now.plus_ms(bake_ms)));
    assert_eq!(s.actor.waves().len(), 2, "baked healthy: next wave");
}

#[test]
fn the_continue_policy_rolls_back_and_goes_on_without_the_vm() {
    let mut config = Config::default_config();
    config.rollback.on_anomaly = bellwether::config::OnAnomaly::Continue;
    let mut s = setup(&config);
    let now = EventTime(0);
    let patched = start(&mut s, now);
    let vm = patched[0].clone();
    s.actor
        .handle(rollback(&vm, false, 1, now.plus_ms(600_000)));
    s.actor.handle(report(now.plus_ms(600_000)));
    assert_eq!(
        s.actor.state(),
        RolloutState::Baking,
        "back to baking without the VM"
    );
    assert!(!s.actor.patched().contains(&vm));
    let bake_ms = config.rollout.first_bake_minutes as i64 * 60_000;
    s.actor.handle(report(now.plus_ms(bake_ms)));
    assert_eq!(s.actor.waves().len(), 2, "the rollout went on");
    assert!(!s.actor.waves()[1].vms.contains(&vm));
}

fn manual(action: bellwether_schemas::ManualAction, at: EventTime) -> ControlMessage {
    ControlMessage::Manual(bellwether_schemas::ManualCommand {
        rollout_id: "r1".into(),
        action,
        by: "alice".into(),
        reason: "change freeze".into(),
        at,
    })
}

/// Feeds the actor's own commands back (as the control topic would, a
/// poll at a time) until it publishes nothing more.
fn echo(s: &mut Setup) {
    loop {
        let out = s.actor.take_outbox();
        if out.is_empty() {
            return;
        }
        s.actor.handle_all(out);
    }
}

#[test]
fn an_operator_pauses_resumes_and_promotes_a_rollout() {
    use bellwether_schemas::ManualAction::*;
    let config = Config::default_config();
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    start(&mut s, t0);
    assert_eq!(s.actor.state(), RolloutState::Baking);
    assert_eq!(s.actor.waves().len(), 1);
    let first_bake = config.rollout.first_bake_minutes as i64 * EventTime::MINUTE_MS;

    // Paused: the bake ends, and still no next wave.
    s.actor.handle(manual(Pause, t0));
    s.actor.handle(report(t0.plus_ms(first_bake + 600_000)));
    assert_eq!(s.actor.waves().len(), 1, "paused: no next wave");
    assert!(s.actor.is_paused());
    // Resumed: the next wave starts at once.
    s.actor.handle(manual(Resume, t0));
    echo(&mut s);
    assert_eq!(s.actor.waves().len(), 2);
    // Promote: the second wave's bake is cut short.
    s.actor.handle(manual(Promote, t0));
    echo(&mut s);
    assert_eq!(s.actor.waves().len(), 3);
    // Each control is in the audit trail, with who and why.
    let controls: Vec<(String, bool)> = s
        .actor
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            bellwether_schemas::RolloutEventKind::ManualControl {
                action,
                by,
                applied,
                ..
            } => {
                assert_eq!(by, "alice");
                Some((action.clone(), *applied))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        controls,
        [
            ("pause".to_string(), true),
            ("resume".to_string(), true),
            ("promote".to_string(), true)
        ]
    );
}

#[test]
fn an_emergency_rollback_takes_every_patched_vm_back_critical_first() {
    use bellwether_schemas::ManualAction::*;
    let mut config = Config::default_config();
    config.rollout.waves = vec!["20%".parse().unwrap(), "100%".parse().unwrap()];
    config.rollout.canary_waves = 1;
    config.rollout.canary_groups = vec!["critical-systems".into(), "canary-ring".into()];
    config.rollback.max_concurrent = 1000;
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    let patched = start(&mut s, t0);
    assert!(patched.len() >= 4);
    s.actor.handle(manual(Rollback, t0));
    assert_eq!(s.actor.state(), RolloutState::RollingBack);
    echo(&mut s);
    s.actor.handle(report(t0.plus_ms(300_000)));
    assert_eq!(s.actor.state(), RolloutState::RolledBack);
    assert!(s.actor.patched().is_empty());
    let order: Vec<bool> = s.actor.rollbacks().iter().map(|r| r.critical).collect();
    assert_eq!(order.len(), patched.len());
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "critical first: {order:?}"
    );
    assert!(s.actor.rollbacks().iter().all(|r| {
        r.reason.trigger == RollbackTrigger::Operator
            && r.reason.summary.starts_with("emergency rollback")
    }));
    let fleet = s.fleet.lock().unwrap();
    assert!(patched.iter().all(|vm| !fleet.is_patched(vm)));
}

#[test]
fn an_aborted_rollout_stops_and_controls_for_others_are_ignored() {
    use bellwether_schemas::ManualAction::*;
    let config = Config::default_config();
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    start(&mut s, t0);
    // A control naming another rollout changes nothing.
    s.actor
        .handle(ControlMessage::Manual(bellwether_schemas::ManualCommand {
            rollout_id: "other".into(),
            action: Abort,
            by: "bob".into(),
            reason: String::new(),
            at: t0,
        }));
    assert_eq!(s.actor.state(), RolloutState::Baking);
    s.actor.handle(manual(Abort, t0));
    assert_eq!(s.actor.state(), RolloutState::Halted);
    s.actor.handle(report(t0.plus_ms(10 * 3_600_000)));
    assert_eq!(s.actor.waves().len(), 1, "nothing more is deployed");
    // Promote on a halted rollout is recorded as not applied.
    s.actor.handle(manual(Promote, t0));
    assert!(matches!(
        s.actor.events().last().unwrap().kind,
        bellwether_schemas::RolloutEventKind::ManualControl { applied: false, .. }
    ));
}

#[test]
fn missing_metrics_halt_by_default_or_hold_the_next_wave_or_are_ignored() {
    use bellwether::config::OnMissingData;
    let t0 = EventTime(1_793_577_600_000);
    let run = |policy: OnMissingData| {
        let mut config = Config::default_config();
        config.rollout.on_missing_data = policy;
        let mut s = setup(&config);
        let patched = start(&mut s, t0);
        // Every VM reports after its patch (re-checked)...
        s.actor.handle(report(t0.plus_ms(300_000)));
        let first_bake = config.rollout.first_bake_minutes as i64 * EventTime::MINUTE_MS;
        // ...then one goes silent just after its bake ended.
        s.actor
            .handle(report_missing(t0.plus_ms(first_bake), &patched[..1]));
        echo(&mut s);
        let during = (s.actor.state(), s.actor.waves().len());
        // It reports again.
        s.actor.handle(report(t0.plus_ms(first_bake + 300_000)));
        echo(&mut s);
        (during, (s.actor.state(), s.actor.waves().len()))
    };
    let (during, after) = run(OnMissingData::Halt);
    assert_eq!(during, (RolloutState::Halted, 1));
    assert_eq!(after, (RolloutState::Halted, 1), "halted stays halted");
    let (during, after) = run(OnMissingData::Wait);
    assert_eq!(during, (RolloutState::Baking, 1), "inconclusive: waits");
    assert_eq!(after.1, 2, "data back: the next wave starts");
    let (during, _) = run(OnMissingData::Proceed);
    assert_eq!(during.1, 2, "proceeds at once");
}

#[test]
fn the_error_budget_halts_a_continuing_rollout_once_exceeded() {
    use bellwether::config::OnAnomaly;
    let t0 = EventTime(1_793_577_600_000);
    let run = |rollbacks: usize| {
        let mut config = Config::default_config();
        config.rollout.waves = vec!["20%".parse().unwrap(), "100%".parse().unwrap()];
        config.rollout.canary_waves = 1;
        config.rollback.on_anomaly = OnAnomaly::Continue;
        config.rollback.error_budget = Some("2".parse().unwrap());
        let mut s = setup(&config);
        let patched = start(&mut s, t0);
        for vm in patched.iter().take(rollbacks) {
            s.actor.handle(rollback(vm, false, 1500, t0));
        }
        s.actor.handle(report(t0.plus_ms(300_000)));
        s.actor.state()
    };
    assert_eq!(run(2), RolloutState::Baking, "within the budget: continues");
    assert_eq!(run(3), RolloutState::Halted, "over the budget: halts");
}

#[test]
fn an_exponential_plan_doubles_each_wave() {
    let mut config = Config::default_config();
    config.rollout.plan = bellwether::config::WavePlanKind::Exponential;
    config.rollout.canary_waves = 2;
    let mut s = setup(&config);
    let fleet = s.inventory.vms().len();
    let sizes: Vec<usize> = s
        .actor
        .wave_plan()
        .wave_sizes(fleet)
        .into_iter()
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(&sizes[..5], [1, 2, 4, 8, 16], "{sizes:?}");
    assert_eq!(
        sizes.iter().sum::<usize>(),
        fleet,
        "the whole fleet in the end"
    );
    // The rollout deploys those waves: the first patches one VM.
    let first = start(&mut s, EventTime(1_793_577_600_000));
    assert_eq!(first.len(), 1);
    let planned: Vec<usize> = s
        .actor
        .planned_waves()
        .iter()
        .map(Vec::len)
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(planned, sizes);
    assert!(s.actor.waves()[0].canary);
}

/// A config whose first wave holds critical and canary-ring VMs alike.
fn wide_canary_config() -> Config {
    let mut config = Config::default_config();
    config.rollout.waves = vec!["20%".parse().unwrap(), "100%".parse().unwrap()];
    config.rollout.canary_waves = 1;
    config.rollout.canary_groups = vec!["critical-systems".into(), "canary-ring".into()];
    config.rollback.max_concurrent = 1000;
    config
}

/// Echoes the actor's commands and reports windows until nothing new
/// comes out: what a quiet control topic would do.
fn settle(s: &mut Setup, mut at: EventTime) {
    for _ in 0..10 {
        echo(s);
        at = at.plus_ms(300_000);
        s.actor.handle(report(at));
        if s.actor
            .take_outbox()
            .into_iter()
            .map(|m| s.actor.handle(m))
            .count()
            == 0
        {
            break;
        }
    }
}

#[test]
fn each_rollback_scope_takes_back_what_it_names() {
    use bellwether::config::RollbackScope;
    let t0 = EventTime(1_793_577_600_000);
    let run = |scope: RollbackScope| {
        let mut config = wide_canary_config();
        config.rollback.scope = scope;
        let mut s = setup(&config);
        let patched = start(&mut s, t0);
        // A canary-ring VM that is not critical: its group is the ring.
        let ring = s.inventory.group("canary-ring").unwrap().clone();
        let critical = s.inventory.group("critical-systems").unwrap().clone();
        let vm = patched
            .iter()
            .find(|v| {
                let r = s.inventory.vm(v).unwrap();
                ring.matches(r) && !critical.matches(r)
            })
            .expect("a ring VM in the first wave")
            .clone();
        s.actor.handle(rollback(&vm, false, 1500, t0));
        settle(&mut s, t0);
        let back: BTreeSet<String> = s
            .actor
            .rollbacks()
            .iter()
            .map(|r| r.vm_id.clone())
            .collect();
        let ring_members: BTreeSet<String> = patched
            .iter()
            .filter(|v| ring.matches(s.inventory.vm(v).unwrap()))
            .cloned()
            .collect();
        for r in s.actor.rollbacks() {
            let expected = if r.vm_id == vm {
                RollbackTrigger::Anomaly
            } else {
                RollbackTrigger::Policy
            };
            assert_eq!(r.reason.trigger, expected, "{}", r.reason.summary);
        }
        (s.actor.state(), patched, vm, back, ring_members)
    };
    let (state, _, vm, back, _) = run(RollbackScope::Vm);
    assert_eq!(back, BTreeSet::from([vm]), "scope vm: the VM alone");
    assert_eq!(state, RolloutState::Halted);

    let (state, patched, vm, back, ring) = run(RollbackScope::Group);
    assert!(ring.len() >= 2 && ring.len() < patched.len(), "{ring:?}");
    assert!(back.contains(&vm));
    assert_eq!(back, ring, "scope group: the VM's canary group, no more");
    assert_eq!(state, RolloutState::Halted);

    let (state, patched, _, back, _) = run(RollbackScope::Rollout);
    assert_eq!(
        back,
        patched.into_iter().collect::<BTreeSet<_>>(),
        "scope rollout: every patched VM"
    );
    assert_eq!(state, RolloutState::Halted);
}

#[test]
fn roll_back_all_after_an_anomaly_ends_the_rollout_rolled_back_critical_first() {
    let mut config = wide_canary_config();
    config.rollback.on_anomaly = bellwether::config::OnAnomaly::RollBackAll;
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    let patched = start(&mut s, t0);
    s.actor.handle(rollback(&patched[0], false, 1500, t0));
    settle(&mut s, t0);
    assert_eq!(s.actor.state(), RolloutState::RolledBack);
    assert!(s.actor.patched().is_empty());
    let records = s.actor.rollbacks();
    assert_eq!(records.len(), patched.len());
    assert_eq!(records[0].vm_id, patched[0], "the affected VM first");
    assert_eq!(records[0].reason.trigger, RollbackTrigger::Anomaly);
    let rest: Vec<bool> = records[1..].iter().map(|r| r.critical).collect();
    assert!(
        rest.windows(2).all(|w| w[0] >= w[1]),
        "critical first: {rest:?}"
    );
    assert!(records[1..].iter().all(|r| {
        r.reason.trigger == RollbackTrigger::Policy && r.reason.summary.contains("roll-back-all")
    }));
}

#[test]
fn max_concurrency_patches_a_wave_a_few_vms_at_a_time() {
    let mut config = wide_canary_config();
    config.rollout.max_concurrency = 2;
    let mut s = setup(&config);
    s.actor.start("r1", patch(), EventTime(1_793_577_600_000));
    let wave = s.actor.planned_waves()[0].len();
    assert!(wave > 4, "{wave}");
    let mut rounds = 0;
    loop {
        let out = s.actor.take_outbox();
        let issued = out
            .iter()
            .filter(|m| matches!(m, ControlMessage::Patch(_)))
            .count();
        if issued == 0 {
            break;
        }
        assert!(issued <= 2, "{issued} patch commands in flight");
        rounds += 1;
        for m in out {
            s.actor.handle(m);
        }
    }
    assert_eq!(rounds, wave.div_ceil(2), "two at a time");
    assert_eq!(s.actor.patched().len(), wave);
    assert_eq!(s.actor.state(), RolloutState::Baking);
}

#[test]
fn waves_start_only_inside_the_maintenance_window() {
    use bellwether_schemas::RolloutEventKind;
    let mut config = Config::default_config();
    config.rollout.maintenance_window = Some(bellwether::config::MaintenanceWindowConfig {
        cron: "0 2 * * *".to_string().try_into().unwrap(),
        timezone: "UTC".to_string().try_into().unwrap(),
        duration_minutes: 60,
    });
    let mut s = setup(&config);
    let midnight = EventTime(1_793_577_600_000); // 2026-11-02T00:00Z
    let hour = 3_600_000;
    s.actor.start("r1", patch(), midnight);
    assert!(s.actor.take_outbox().is_empty(), "nothing before 02:00");
    assert_eq!(s.actor.state(), RolloutState::Pending);
    let waiting: Vec<_> = s
        .actor
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            RolloutEventKind::WaitingForWindow { wave, opens_at, .. } => Some((*wave, *opens_at)),
            _ => None,
        })
        .collect();
    assert_eq!(waiting, vec![(0, Some(midnight.plus_ms(2 * hour)))]);
    s.actor.handle(report(midnight.plus_ms(2 * hour - 300_000)));
    assert!(s.actor.waves().is_empty());
    s.actor.handle(report(midnight.plus_ms(2 * hour)));
    echo(&mut s);
    assert_eq!(s.actor.waves().len(), 1, "the window opened: wave 1");
    assert_eq!(s.actor.state(), RolloutState::Baking);
    // The first wave bakes two hours, past the window's end at 03:00: the
    // second wave waits for the next night.
    s.actor.handle(report(midnight.plus_ms(4 * hour)));
    assert_eq!(s.actor.waves().len(), 1);
    s.actor.handle(report(midnight.plus_ms(20 * hour)));
    assert_eq!(s.actor.waves().len(), 1);
    s.actor.handle(report(midnight.plus_ms(26 * hour)));
    assert_eq!(s.actor.waves().len(), 2, "next night at 02:00");
    assert_eq!(s.actor.waves()[1].started_at, midnight.plus_ms(26 * hour));
}

fn submission(
    rollout: &str,
    decision: bellwether_schemas::ApprovalDecision,
    at: EventTime,
) -> ControlMessage {
    ControlMessage::Submission(bellwether_schemas::PatchSubmission {
        rollout_id: rollout.into(),
        patch: Patch {
            id: rollout.to_uppercase(),
            ..patch()
        },
        decision: Some(decision),
        released_at: None,
        submitted_by: "ci".into(),
        submitted_at: at,
        canary_groups: None,
    })
}

fn patch_commands(out: &[ControlMessage], rollout: &str) -> usize {
    out.iter()
        .filter(|m| matches!(m, ControlMessage::Patch(p) if p.rollout_id == rollout))
        .count()
}

fn approve_by_hand(rollout: &str, at: EventTime) -> ControlMessage {
    ControlMessage::Manual(bellwether_schemas::ManualCommand {
        rollout_id: rollout.into(),
        action: bellwether_schemas::ManualAction::Approve,
        by: "alice".into(),
        reason: "reviewed".into(),
        at,
    })
}

#[test]
fn a_submitted_patch_starts_when_its_approval_takes_effect() {
    use bellwether_schemas::ApprovalDecision::*;
    let config = Config::default_config();
    let fleet_t0 = EventTime(1_793_577_600_000);
    // Operators submit on the wall clock, weeks after the simulated fleet's day.
    let wall = fleet_t0.plus_ms(28 * 86_400_000);
    let hour = 3_600_000;

    // Approved at once.
    let mut s = setup(&config);
    s.actor.handle(report(fleet_t0));
    let by = "rule `security at once`".to_string();
    s.actor.handle(submission(
        "r-now",
        Approve {
            at: wall,
            by: by.clone(),
        },
        wall,
    ));
    let out = s.actor.take_outbox();
    let approvals: Vec<_> = out
        .iter()
        .filter_map(|m| match m {
            ControlMessage::Approval(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approved_by, by);
    assert_eq!(approvals[0].patch.id, "R-NOW", "the submitted patch");
    assert!(patch_commands(&out, "r-now") > 0, "the first wave starts");
    assert_eq!(
        s.actor.rollout().unwrap().created_at,
        fleet_t0,
        "on the fleet's clock, not the wall clock"
    );

    // Approved two hours after submission: it starts two hours later on the
    // fleet's clock.
    let mut s = setup(&config);
    s.actor.handle(report(fleet_t0));
    s.actor.handle(submission(
        "r-later",
        Approve {
            at: wall.plus_ms(2 * hour),
            by: "rule `after two hours`".into(),
        },
        wall,
    ));
    assert!(s.actor.take_outbox().is_empty());
    assert_eq!(s.actor.waiting_patches().len(), 1);
    assert_eq!(
        s.actor.waiting_patches()[0].due,
        Some(fleet_t0.plus_ms(2 * hour))
    );
    s.actor.handle(report(fleet_t0.plus_ms(2 * hour - 300_000)));
    assert!(s.actor.rollout().is_none());
    s.actor.handle(report(fleet_t0.plus_ms(2 * hour)));
    assert_eq!(s.actor.rollout().unwrap().id, "r-later");
    assert!(patch_commands(&s.actor.take_outbox(), "r-later") > 0);
    assert!(s.actor.waiting_patches().is_empty());

    // Left to a human: nothing until approved by hand.
    let mut s = setup(&config);
    s.actor.handle(report(fleet_t0));
    s.actor.handle(submission(
        "r-manual",
        Manual {
            by: "rule `features by hand`".into(),
        },
        wall,
    ));
    s.actor.handle(report(fleet_t0.plus_ms(48 * hour)));
    assert!(s.actor.rollout().is_none(), "no rule approves it");
    s.actor.handle(approve_by_hand("r-manual", wall));
    assert_eq!(s.actor.rollout().unwrap().id, "r-manual");
    let out = s.actor.take_outbox();
    assert!(
        out.iter().any(
            |m| matches!(m, ControlMessage::Approval(a) if a.approved_by == "alice (by hand)")
        )
    );
    assert!(patch_commands(&out, "r-manual") > 0);

    // Rejected: neither a human's approve nor an approval starts it.
    let mut s = setup(&config);
    s.actor.handle(report(fleet_t0));
    s.actor.handle(submission(
        "r-rejected",
        Reject {
            by: "the reject list".into(),
        },
        wall,
    ));
    s.actor.handle(approve_by_hand("r-rejected", wall));
    s.actor
        .handle(ControlMessage::Approval(bellwether_schemas::Approval {
            rollout_id: "r-rejected".into(),
            patch: patch(),
            approved_by: "bob".into(),
            approved_at: wall,
        }));
    assert!(s.actor.rollout().is_none());
    assert!(s.actor.events().iter().any(|e| matches!(
        &e.kind,
        bellwether_schemas::RolloutEventKind::ManualControl { applied: false, .. }
    ) && e.rollout_id == "r-rejected"));
}

#[test]
fn a_second_approved_rollout_waits_for_the_first_to_end() {
    use bellwether_schemas::ManualAction::Abort;
    // One rollout at a time (side by side, see the actor's unit tests).
    let mut config = Config::default_config();
    config.rollout.max_parallel = 1;
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    let first = start(&mut s, t0);
    s.actor
        .handle(ControlMessage::Approval(bellwether_schemas::Approval {
            rollout_id: "r2".into(),
            patch: patch(),
            approved_by: "bob".into(),
            approved_at: t0,
        }));
    assert_eq!(s.actor.rollout().unwrap().id, "r1", "r1 keeps running");
    assert_eq!(s.actor.queued_rollouts().collect::<Vec<_>>(), ["r2"]);
    // An anomaly halts r1: its VMs may still need rolling back, so r2 waits.
    s.actor.handle(rollback(&first[0], false, 1500, t0));
    s.actor.handle(report(t0.plus_ms(300_000)));
    assert_eq!(s.actor.state(), RolloutState::Halted);
    assert_eq!(
        s.actor.rollout().unwrap().id,
        "r1",
        "halted r1 is still watched"
    );
    // An operator aborts (closes) it: r2 starts.
    s.actor.handle(manual(Abort, t0));
    assert_eq!(s.actor.rollout().unwrap().id, "r2", "r1 ended: r2 starts");
    assert!(s.actor.patched().is_empty(), "r2 has patched nothing yet");
    // A late rollback for r1 does not touch r2.
    s.actor.handle(rollback(&first[1], false, 1500, t0));
    echo(&mut s);
    s.actor.handle(report(t0.plus_ms(300_000)));
    assert_eq!(s.actor.state(), RolloutState::Baking);
    assert!(s.actor.rollbacks().is_empty());
}

#[test]
fn patches_issued_before_a_rollout_stopped_are_not_carried_out() {
    let mut config = Config::default_config();
    config.rollback.on_anomaly = bellwether::config::OnAnomaly::RollBackAll;
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    let first = start(&mut s, t0);
    // The first wave baked: the second wave's commands are issued...
    let bake_ms = config.rollout.first_bake_minutes as i64 * 60_000;
    s.actor.handle(report(t0.plus_ms(bake_ms)));
    let second = s.actor.take_outbox();
    assert!(patch_commands(&second, "r1") > 0);
    // ...but an anomaly on the first wave rolls everything back before they arrive.
    s.actor
        .handle(rollback(&first[0], false, 1500, t0.plus_ms(bake_ms)));
    s.actor.handle(report(t0.plus_ms(bake_ms + 300_000)));
    echo(&mut s);
    for m in second {
        s.actor.handle(m);
    }
    s.actor.handle(report(t0.plus_ms(bake_ms + 600_000)));
    assert_eq!(s.actor.state(), RolloutState::RolledBack);
    assert!(s.actor.patched().is_empty(), "{:?}", s.actor.patched());
    let fleet = s.fleet.lock().unwrap();
    assert!(
        s.actor.planned_waves()[1]
            .iter()
            .all(|vm| !fleet.is_patched(vm)),
        "the second wave was never patched"
    );
}

#[test]
fn a_vm_is_rechecked_after_its_patch_instead_of_trusting_the_command() {
    let config = Config::default_config();
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    s.actor.handle(report(t0));
    let patched = start(&mut s, t0);
    assert!(patched.len() >= 2);
    let (down, back) = (patched[0].clone(), patched[1..].to_vec());
    // The first window after the patch: one VM never came back from its
    // reboot, whatever the command's status said.
    s.actor.handle(report_missing(
        t0.plus_ms(300_000),
        std::slice::from_ref(&down),
    ));
    let out = s.actor.take_outbox();
    let rollbacks: Vec<&RollbackCommand> = out
        .iter()
        .filter_map(|m| match m {
            ControlMessage::Rollback(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rollbacks.len(), 1, "{out:?}");
    assert_eq!(rollbacks[0].vm_id, down);
    assert_eq!(rollbacks[0].reason.trigger, RollbackTrigger::Recheck);
    assert!(
        rollbacks[0].reason.summary.contains("did not come back"),
        "{}",
        rollbacks[0].reason.summary
    );
    // The others reported: no rollback for them, and not halted for missing data.
    assert!(
        back.iter()
            .all(|vm| rollbacks.iter().all(|r| &r.vm_id != vm))
    );

    // A VM that is silent in the window it was patched in, but back in the
    // next, is fine; the wave waits for its re-check before advancing.
    let mut config = Config::default_config();
    config.rollout.first_bake_minutes = 5;
    let mut s = setup(&config);
    s.actor.handle(report(t0));
    let patched = start(&mut s, t0);
    let rollbacks = |out: Vec<ControlMessage>| {
        out.into_iter()
            .filter(|m| matches!(m, ControlMessage::Rollback(_)))
            .count()
    };
    s.actor.take_outbox();
    // A report of the window before the patch decides nothing.
    s.actor.handle(report_missing(t0, &patched));
    assert_eq!(rollbacks(s.actor.take_outbox()), 0);
    // Fleet-wide silence (no VM reported) decides nothing either.
    s.actor.handle(ControlMessage::WindowReport(WindowReport {
        window_start: t0,
        window_end: t0.plus_ms(300_000),
        vms_scored: 0,
        patched_scored: 0,
        anomalous: vec![],
        missing: vec![],
        reported: vec![],
        late_rows_total: 0,
        noise: None,
    }));
    assert_eq!(s.actor.waves().len(), 1, "baked, but not re-checked: waits");
    assert_eq!(rollbacks(s.actor.take_outbox()), 0);
    s.actor.handle(report(t0.plus_ms(600_000)));
    assert_eq!(s.actor.waves().len(), 2, "re-checked: the next wave");
}

#[test]
fn starting_a_rollout_is_approving_its_patch() {
    use bellwether_schemas::ManualAction;
    assert_eq!("start".parse::<ManualAction>(), Ok(ManualAction::Approve));
    assert_eq!("approve".parse::<ManualAction>(), Ok(ManualAction::Approve));
    let e = "launch".parse::<ManualAction>().unwrap_err();
    assert!(e.contains("launch") && e.contains("start"), "{e}");
}

#[test]
fn the_rules_in_force_decide_undecided_submissions() {
    use bellwether::approval::rules::{ApprovalConfig, ApprovalRule, RuleAction};
    use bellwether_schemas::{ApprovalDecision, ApprovalRulesUpdate, PatchSubmission};
    // No rules: everything by hand; one rollout at a time.
    let mut config = Config::default_config();
    config.rollout.max_parallel = 1;
    let mut s = setup(&config);
    let t0 = EventTime(1_793_577_600_000);
    s.actor.handle(report(t0));
    let undecided = |rollout: &str| {
        ControlMessage::Submission(PatchSubmission {
            rollout_id: rollout.into(),
            patch: patch(),
            decision: None,
            released_at: None,
            submitted_by: "ci".into(),
            submitted_at: t0,
            canary_groups: None,
        })
    };
    s.actor.handle(undecided("r-a"));
    let decided: Vec<PatchSubmission> = s
        .actor
        .take_outbox()
        .into_iter()
        .filter_map(|m| match m {
            ControlMessage::Submission(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), 1, "the decided submission is published");
    assert!(matches!(
        decided[0].decision,
        Some(ApprovalDecision::Manual { .. })
    ));
    assert!(s.actor.rollout().is_none());

    // An operator puts rules in force: security patches at once.
    let rules = |action, name: &str| {
        ControlMessage::ApprovalRules(ApprovalRulesUpdate {
            rules: ApprovalConfig {
                rules: vec![ApprovalRule {
                    name: name.into(),
                    classifications: vec!["security".into()],
                    severities: vec![],
                    products: vec![],
                    action,
                    after_days: 0,
                }],
                ..Default::default()
            },
            by: "alice".into(),
            at: t0,
        })
    };
    s.actor
        .handle(rules(RuleAction::Approve, "security at once"));
    s.actor.handle(undecided("r-b"));
    assert_eq!(s.actor.rollout().map(|r| r.id.as_str()), Some("r-b"));
    // A rule set that does not check out is not put in force.
    s.actor.handle(rules(RuleAction::Approve, " "));
    s.actor.handle(undecided("r-c"));
    assert_eq!(
        s.actor.queued_rollouts().collect::<Vec<_>>(),
        ["r-c"],
        "still approved by the rules in force, queued behind r-b"
    );
    // The earlier submission keeps its decision.
    assert_eq!(s.actor.waiting_patches()[0].submission.rollout_id, "r-a");
}

#[test]
fn rollbacks_are_carried_out_as_decided_without_waiting_for_metrics() {
    // A canary wave of 20%, patched three at a time; two rollbacks in
    // flight at most.
    let mut config = Config::default_config();
    config.rollout.waves = vec!["20%".parse().unwrap(), "100%".parse().unwrap()];
    config.rollout.canary_waves = 1;
    config.rollout.canary_groups = vec!["canary-ring".into()];
    config.rollout.max_concurrency = 3;
    config.rollback.max_concurrent = 2;
    config.rollback.on_anomaly = bellwether::config::OnAnomaly::Continue;
    let mut s = setup(&config);
    let now = EventTime(1_793_577_600_000);
    s.actor.start("r1", patch(), now);
    echo(&mut s);
    let patched: Vec<String> = s.actor.patched().iter().cloned().collect();
    assert!(patched.len() > 4, "{}", patched.len());
    // Every VM of the wave caught in one window, and no window report
    // after it (the metrics stopped): all go back at once.
    s.actor.handle_all(
        patched
            .iter()
            .enumerate()
            .map(|(i, vm)| rollback(vm, false, 1000 + i as u32, now)),
    );
    assert_eq!(s.actor.rollbacks().len(), patched.len());
    assert!(s.actor.patched().is_empty());
    assert!(s.actor.rollbacks().iter().all(|r| r.succeeded));
}
