//! What the actor's unit tests share: a 20-VM fleet, an actuator that
//! records what it carried out, and the control topic's echo.

use super::RolloutActor;
use crate::ControlConfig;
use crate::inventory::Inventory;
use crate::rollout::actuator::{Actuator, ActuatorError};
use bellwether_schemas::{
    Approval, ApprovalDecision, CommandId, ControlMessage, Criticality, EventTime, FleetNoise,
    ManualAction, ManualCommand, Patch, PatchCommand, PatchSubmission, RollbackCommand,
    RollbackReason, RollbackTrigger, VmRecord, WindowReport,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// 2026-11-02T00:00Z: midnight, where the kit's clock starts.
pub const T0: EventTime = EventTime(1_793_577_600_000);
/// The canary group's VMs (`tags.ring == "canary"`).
pub const CANARIES: [&str; 2] = ["vm-00", "vm-01"];
const VMS: usize = 20;

/// Carries out every command and records it (action, VM); patches on
/// the VMs in `failing` fail.
#[derive(Clone, Default)]
pub struct Recorder(
    Arc<Mutex<Vec<(&'static str, String)>>>,
    Arc<Mutex<std::collections::HashSet<String>>>,
);

impl Actuator for Recorder {
    fn patch(&mut self, command: &PatchCommand) -> Result<(), ActuatorError> {
        if self.1.lock().unwrap().contains(&command.vm_id) {
            return Err(ActuatorError {
                command: "patch",
                vm_id: command.vm_id.clone(),
                reason: "the deploy tool said no".into(),
            });
        }
        self.0
            .lock()
            .unwrap()
            .push(("patch", command.vm_id.clone()));
        Ok(())
    }

    fn roll_back(&mut self, command: &RollbackCommand) -> Result<(), ActuatorError> {
        self.0
            .lock()
            .unwrap()
            .push(("rollback", command.vm_id.clone()));
        Ok(())
    }
}

/// An actor over the kit's fleet, with what it published.
pub struct Kit {
    pub actor: RolloutActor<Recorder>,
    recorder: Recorder,
    published: Vec<ControlMessage>,
    vms: Vec<String>,
}

impl Kit {
    /// The default config with three waves (2 VMs, half, all; the first
    /// is the canary stage) and no control holdback.
    pub fn config() -> ControlConfig {
        let mut config = crate::testkit::default_config();
        config.rollout.waves = ["2", "50%", "100%"]
            .iter()
            .map(|w| w.parse().unwrap())
            .collect();
        config.rollout.canary_waves = 1;
        config.rollout.control_holdback = None;
        config.rollout.max_parallel = 1;
        config
    }

    /// vm-00 to vm-19; vm-00 and vm-01 in the canary ring; every fifth
    /// VM critical.
    pub fn new(config: ControlConfig) -> Kit {
        let vms: Vec<VmRecord> = (0..VMS)
            .map(|i| VmRecord {
                id: format!("vm-{i:02}"),
                tags: BTreeMap::from([(
                    "ring".to_string(),
                    if i < 2 { "canary" } else { "main" }.to_string(),
                )]),
                instance_type: "m6i.large".into(),
                region: "eu-west-1".into(),
                criticality: if i % 5 == 0 {
                    Criticality::Critical
                } else {
                    Criticality::Standard
                },
            })
            .collect();
        let ids = vms.iter().map(|v| v.id.clone()).collect();
        let inventory = Arc::new(Inventory::with_groups(vms, &config.canary.groups).unwrap());
        let recorder = Recorder::default();
        Kit {
            actor: RolloutActor::new(&config, inventory, recorder.clone()),
            recorder,
            published: Vec::new(),
            vms: ids,
        }
    }

    /// Hands `message` to the actor, then what it publishes, as the
    /// control topic would, until it publishes nothing more.
    pub fn handle(&mut self, message: ControlMessage) {
        self.handle_all(vec![message]);
    }

    /// Hands `messages` to the actor together (as read from the topic in
    /// one poll), then what it publishes, until it publishes nothing more.
    pub fn handle_all(&mut self, messages: Vec<ControlMessage>) {
        self.actor.handle_all(messages);
        loop {
            let out = self.actor.take_outbox();
            if out.is_empty() {
                return;
            }
            self.published.extend(out.iter().cloned());
            self.actor.handle_all(out);
        }
    }

    /// Messages the actor published that match.
    pub fn published(&self, matches: impl Fn(&ControlMessage) -> bool) -> usize {
        self.published.iter().filter(|m| matches(m)).count()
    }

    /// What the actuator carried out, in order.
    pub fn actuator_calls(&self) -> Vec<(&'static str, String)> {
        self.recorder.0.lock().unwrap().clone()
    }

    /// Makes patches on `vm` fail from now on.
    pub fn fail_patches_on(&self, vm: &str) {
        self.recorder.1.lock().unwrap().insert(vm.to_string());
    }

    /// Most patch commands issued at once.
    pub fn widest_step(&self) -> usize {
        self.actor.run.widest_patch_step
    }

    pub fn is_critical(&self, vm: &str) -> bool {
        self.actor.inventory.vm(vm).is_some_and(|v| v.is_critical())
    }

    /// A window ending `minutes` after [`T0`] in which every VM reported.
    pub fn report_at(&mut self, minutes: i64) {
        self.report_missing_at(minutes, &[]);
    }

    /// A window ending `minutes` after [`T0`] without `missing`'s metrics.
    pub fn report_missing_at(&mut self, minutes: i64, missing: &[String]) {
        let report = self.window_report(minutes, missing);
        self.handle(ControlMessage::WindowReport(report));
    }

    /// A window ending `minutes` after [`T0`] in which the fleet's noise
    /// measured `noise`.
    pub fn report_noise_at(&mut self, minutes: i64, noise: FleetNoise) {
        let report = WindowReport {
            noise: Some(noise),
            ..self.window_report(minutes, &[])
        };
        self.handle(ControlMessage::WindowReport(report));
    }

    fn window_report(&self, minutes: i64, missing: &[String]) -> WindowReport {
        let end = T0.plus_ms(minutes * EventTime::MINUTE_MS);
        let reported: Vec<String> = self
            .vms
            .iter()
            .filter(|v| !missing.contains(v))
            .cloned()
            .collect();
        WindowReport {
            window_start: end.plus_ms(-5 * EventTime::MINUTE_MS),
            window_end: end,
            vms_scored: reported.len(),
            patched_scored: 0,
            anomalous: vec![],
            missing: missing.to_vec(),
            reported,
            late_rows_total: 0,
            noise: None,
        }
    }
}

fn patch() -> Patch {
    Patch {
        id: "p1".into(),
        title: "a patch".into(),
        classification: "security".into(),
        severity: "low".into(),
        product: "x".into(),
    }
}

/// Rollout `id` approved at [`T0`].
pub fn approval(id: &str) -> ControlMessage {
    ControlMessage::Approval(Approval {
        rollout_id: id.into(),
        patch: patch(),
        approved_by: "ops".into(),
        approved_at: T0,
    })
}

/// Rollout `id` submitted at [`T0`], decided already or not.
pub fn submission(id: &str, decision: Option<ApprovalDecision>) -> ControlMessage {
    ControlMessage::Submission(PatchSubmission {
        rollout_id: id.into(),
        patch: patch(),
        decision,
        released_at: None,
        submitted_by: "ops".into(),
        submitted_at: T0,
        canary_groups: None,
    })
}

/// Left to a human.
pub fn manual_decision() -> ApprovalDecision {
    ApprovalDecision::Manual {
        by: "no rule applies".into(),
    }
}

/// An operator's control of rollout `id`.
pub fn manual_command(id: &str, action: ManualAction) -> ControlMessage {
    ControlMessage::Manual(ManualCommand {
        rollout_id: id.into(),
        action,
        by: "ops".into(),
        reason: "test".into(),
        at: T0,
    })
}

/// The scorer's rollback of `vm` in rollout r1 on an anomaly.
pub fn rollback_of(vm: &str, critical: bool) -> ControlMessage {
    rollback_in("r1", vm, critical)
}

/// The scorer's rollback of `vm` in rollout `rollout` on an anomaly.
pub fn rollback_in(rollout: &str, vm: &str, critical: bool) -> ControlMessage {
    ControlMessage::Rollback(RollbackCommand {
        command_id: CommandId::rollback(rollout, vm),
        rollout_id: rollout.into(),
        vm_id: vm.into(),
        critical,
        priority: if critical { 1999 } else { 999 },
        reason: RollbackReason {
            trigger: RollbackTrigger::Anomaly,
            summary: "error rate above its forecast".into(),
            evidence: vec![],
            failure: None,
            wave: None,
        },
        issued_at: T0,
    })
}
