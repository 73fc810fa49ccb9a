//! The rollout actor: deploys waves, executes commands, holds or advances.
//!
//! It consumes the control topic. Patch commands (which it issued itself)
//! and rollback commands (from the scoring stage) are executed through the
//! [`Actuator`] once per command id; window reports move its clock, which
//! decides when a wave has baked. The actor never reads the wall clock, so
//! a simulated day and a real one follow the same rules.

use super::actuator::Actuator;
use super::planner::{Holdback, plan_waves};
use super::state::allowed;
use super::window::MaintenanceWindow;
use crate::config::{
    Config, OnAnomaly, OnMissingData, RollbackConfig, RollbackOrder, RollbackScope, RolloutConfig,
};
use crate::inventory::Inventory;
use bellwether_schemas::{
    Action, Approval, ApprovalDecision, CommandId, ControlMessage, EventTime, Execution,
    ManualAction, ManualCommand, Patch, PatchCommand, PatchSubmission, RollbackCommand,
    RollbackReason, RollbackTrigger, Rollout, RolloutEvent, RolloutEventKind, RolloutState, Wave,
    WavePlan,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A rollback the actor carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackRecord {
    /// 1 for the first rollback of the rollout, and so on.
    pub order: usize,
    /// The VM.
    pub vm_id: String,
    /// True when the VM is critical.
    pub critical: bool,
    /// Why.
    pub reason: RollbackReason,
    /// The command.
    pub command_id: CommandId,
    /// When the anomaly was decided.
    pub detected_at: EventTime,
    /// When the rollback was carried out.
    pub executed_at: EventTime,
    /// False when the actuator failed.
    pub succeeded: bool,
}

/// A submitted patch that is not approved yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingPatch {
    /// The submission.
    pub submission: PatchSubmission,
    /// When its rule's approval takes effect on the actor's clock (None:
    /// it waits for a human).
    pub due: Option<EventTime>,
}

/// The rollout actor.
pub struct RolloutActor<A: Actuator> {
    rollout_config: RolloutConfig,
    /// Control cohorts, for the holdback.
    judge: crate::config::JudgeConfig,
    rollback_config: RollbackConfig,
    inventory: Arc<Inventory>,
    actuator: A,
    executed: HashSet<CommandId>,
    executed_before: HashSet<CommandId>,
    newly_executed: Vec<CommandId>,
    clock: EventTime,
    rollout: Option<Rollout>,
    planned: Vec<Vec<String>>,
    waves: Vec<Wave>,
    wave_unexecuted: HashSet<String>,
    /// VMs of the current wave not issued yet (`rollout.max_concurrency`,
    /// or the maintenance window closed mid-wave).
    wave_queue: VecDeque<String>,
    /// The maintenance window waves start in (none: any time).
    window: Option<MaintenanceWindow>,
    /// The wave waiting for the window, once reported.
    waiting_for_window: Option<usize>,
    patched: BTreeSet<String>,
    ever_patched: BTreeSet<String>,
    /// Most patch commands the rollout issued at once: it rolls back at
    /// least as fast as it patched.
    widest_patch_step: usize,
    pending: Vec<RollbackCommand>,
    rollbacks: Vec<RollbackRecord>,
    events: Vec<RolloutEvent>,
    outbox: Vec<ControlMessage>,
    duplicates: usize,
    sequence: usize,
    /// An operator paused the rollout: no next wave starts.
    paused: bool,
    /// Every patched VM goes back (an operator's emergency rollback, or
    /// `rollback.on_anomaly = "roll-back-all"`): the rollout ends rolled back.
    emergency: bool,
    /// Patched VMs sent no metrics (`on_missing_data = "wait"`): the next
    /// wave waits.
    waiting_for_data: bool,
    /// Submitted patches waiting for a human or for their rule's delay.
    waiting: Vec<WaitingPatch>,
    /// Approved rollouts waiting for the running one to end (one rollout
    /// at a time).
    queued: VecDeque<Approval>,
    /// Rejected rollouts, with who rejected them.
    rejected: HashMap<String, String>,
    /// Rollouts that ran before the current one.
    finished: HashSet<String>,
    /// An operator aborted the current rollout.
    aborted: bool,
    /// Canary groups a submission chose for its rollout.
    canary_groups_of: HashMap<String, Vec<String>>,
    /// The approval rules in force: the config's, then the last set put in
    /// force on the control topic.
    rules: crate::approval::rules::ApprovalConfig,
    /// Patched VMs not yet seen reporting after their patch (it may have
    /// rebooted them), with when the patch was carried out: the command's
    /// status is not trusted until the VM's metrics come back.
    awaiting_recheck: BTreeMap<String, EventTime>,
}

impl<A: Actuator> RolloutActor<A> {
    /// An idle actor.
    pub fn new(config: &Config, inventory: Arc<Inventory>, actuator: A) -> RolloutActor<A> {
        RolloutActor {
            rollout_config: config.rollout.clone(),
            judge: config.judge.clone(),
            rollback_config: config.rollback.clone(),
            inventory,
            actuator,
            executed: HashSet::new(),
            executed_before: HashSet::new(),
            newly_executed: Vec::new(),
            clock: EventTime(i64::MIN),
            rollout: None,
            planned: Vec::new(),
            waves: Vec::new(),
            wave_unexecuted: HashSet::new(),
            wave_queue: VecDeque::new(),
            // Validated with the config: a window that does not parse
            // never gets here.
            window: config
                .rollout
                .maintenance_window
                .as_ref()
                .and_then(|w| MaintenanceWindow::parse(w).ok()),
            waiting_for_window: None,
            patched: BTreeSet::new(),
            ever_patched: BTreeSet::new(),
            widest_patch_step: 0,
            pending: Vec::new(),
            rollbacks: Vec::new(),
            events: Vec::new(),
            outbox: Vec::new(),
            duplicates: 0,
            paused: false,
            emergency: false,
            waiting_for_data: false,
            waiting: Vec::new(),
            queued: VecDeque::new(),
            rejected: HashMap::new(),
            finished: HashSet::new(),
            aborted: false,
            canary_groups_of: HashMap::new(),
            rules: config.approval.clone(),
            awaiting_recheck: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// Commands executed before a restart (from the actor's ledger). When
    /// the control topic is replayed, they update the actor's state as
    /// executed but are not carried out again.
    pub fn with_executed_before(mut self, ids: impl IntoIterator<Item = CommandId>) -> Self {
        self.executed_before.extend(ids);
        self
    }

    /// Command ids executed since the last call, to be recorded durably once
    /// their execution records are published.
    pub fn take_newly_executed(&mut self) -> Vec<CommandId> {
        std::mem::take(&mut self.newly_executed)
    }

    /// Carries out a command unless it ran before a restart: true when the
    /// actuator was called (the outcome record is queued in the outbox).
    fn carry_out(
        &mut self,
        id: &CommandId,
        vm_id: &str,
        action: Action,
        run: impl FnOnce(&mut A) -> Result<(), super::actuator::ActuatorError>,
    ) -> Option<bool> {
        self.executed.insert(id.clone());
        if self.executed_before.contains(id) {
            return None;
        }
        let ok = match run(&mut self.actuator) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("{e}");
                self.record(RolloutEventKind::ActuationFailed {
                    vm_id: vm_id.to_string(),
                    command_id: id.clone(),
                    action: e.command.to_string(),
                    reason: e.reason.clone(),
                });
                false
            }
        };
        self.newly_executed.push(id.clone());
        if ok {
            self.sequence += 1;
            self.outbox.push(ControlMessage::Execution(Execution {
                command_id: id.clone(),
                rollout_id: self.rollout_id(),
                vm_id: vm_id.to_string(),
                action,
                executed_at: self.clock,
                sequence: self.sequence,
            }));
        }
        Some(ok)
    }

    /// The wave plan from the config.
    pub fn wave_plan(&self) -> WavePlan {
        let c = &self.rollout_config;
        WavePlan::new(
            &c.wave_sizes(),
            c.first_bake_minutes,
            c.bake_minutes,
            c.canary_waves,
        )
    }

    /// Starts rolling `patch` out at `now`: plans the waves and issues the
    /// first wave's patch commands (see [`RolloutActor::take_outbox`]).
    /// A finished rollout before it is kept as done; its VMs keep the patch.
    pub fn start(&mut self, rollout_id: &str, patch: Patch, now: EventTime) {
        if let Some(previous) = self.rollout.take() {
            self.finished.insert(previous.id);
            self.planned.clear();
            self.waves.clear();
            self.wave_unexecuted.clear();
            self.wave_queue.clear();
            self.waiting_for_window = None;
            self.patched.clear();
            self.ever_patched.clear();
            self.widest_patch_step = 0;
            self.awaiting_recheck.clear();
            self.pending.clear();
            self.rollbacks.clear();
            self.paused = false;
            self.emergency = false;
            self.waiting_for_data = false;
            self.aborted = false;
        }
        let plan = self.wave_plan();
        self.clock = self.clock.max(now);
        let canary_groups = self
            .canary_groups_of
            .get(rollout_id)
            .cloned()
            .unwrap_or_else(|| self.rollout_config.canary_groups.clone());
        let holdback = Holdback::from_config(&self.rollout_config, &self.judge);
        self.planned = plan_waves(&self.inventory, &plan, &canary_groups, rollout_id, holdback);
        self.rollout = Some(Rollout {
            id: rollout_id.to_string(),
            patch,
            canary_groups,
            plan,
            state: RolloutState::Pending,
            created_at: now,
        });
        self.issue_next_wave();
    }

    /// Handles one message from the control topic.
    pub fn handle(&mut self, message: ControlMessage) {
        self.dispatch(message);
        // A rollout halted by an anomaly stays the actor's (its VMs may still
        // need rolling back) until an operator aborts or rolls it back.
        let done = self.is_settled() && (self.state() != RolloutState::Halted || self.aborted);
        if done && let Some(next) = self.queued.pop_front() {
            tracing::info!(rollout = %next.rollout_id, "the previous rollout ended; the next approved one starts");
            let now = self.now_or(next.approved_at);
            self.start(&next.rollout_id, next.patch, now);
        }
    }

    /// The actor's clock, or `t` before any window was reported. Wall-clock
    /// times of approvals and operators' requests do not move the clock:
    /// a simulated fleet's day stays its own.
    fn now_or(&self, t: EventTime) -> EventTime {
        if self.clock.0 == i64::MIN {
            t
        } else {
            self.clock
        }
    }

    /// Submitted patches waiting for a human or for their rule's delay.
    pub fn waiting_patches(&self) -> &[WaitingPatch] {
        &self.waiting
    }

    /// Approved rollouts waiting for the running one to end.
    pub fn queued_rollouts(&self) -> impl Iterator<Item = &str> {
        self.queued.iter().map(|a| a.rollout_id.as_str())
    }

    fn is_known(&self, rollout_id: &str) -> bool {
        self.rollout.as_ref().is_some_and(|r| r.id == rollout_id)
            || self.finished.contains(rollout_id)
            || self.queued.iter().any(|a| a.rollout_id == rollout_id)
            || self
                .waiting
                .iter()
                .any(|w| w.submission.rollout_id == rollout_id)
            || self.rejected.contains_key(rollout_id)
    }

    fn record_for(&mut self, rollout_id: &str, kind: RolloutEventKind) {
        self.events.push(RolloutEvent {
            rollout_id: rollout_id.to_string(),
            time: self.clock,
            kind,
        });
    }

    fn on_submission(&mut self, mut s: PatchSubmission) {
        if self.is_known(&s.rollout_id) {
            tracing::debug!(rollout = %s.rollout_id, "submission seen again; ignored");
            return;
        }
        // Undecided: the rules in force decide, and the decided submission
        // is published for the audit trail and the dashboards.
        let decision = crate::approval::submit::decide(&self.rules, &s);
        if s.decision.is_none() {
            s.decision = Some(decision.clone());
            self.outbox.push(ControlMessage::Submission(s.clone()));
        }
        tracing::info!(rollout = %s.rollout_id, patch = %s.patch.id, decision = %crate::approval::rules::describe(&decision), "patch submitted");
        if let Some(groups) = &s.canary_groups {
            self.canary_groups_of
                .insert(s.rollout_id.clone(), groups.clone());
        }
        match decision {
            ApprovalDecision::Reject { by } => {
                self.rejected.insert(s.rollout_id.clone(), by);
            }
            ApprovalDecision::Manual { .. } => self.waiting.push(WaitingPatch {
                submission: s,
                due: None,
            }),
            ApprovalDecision::Approve { at, by } => {
                // The delay left when it was submitted, counted on the
                // actor's clock from now.
                let delay = at.0 - s.submitted_at.0;
                if delay <= 0 {
                    self.approve(s, by);
                } else {
                    let due = self.now_or(s.submitted_at).plus_ms(delay);
                    self.waiting.push(WaitingPatch {
                        submission: s,
                        due: Some(due),
                    });
                }
            }
        }
    }

    /// Approves a submitted patch: the approval is published (for the
    /// audit trail and the dashboards) and the rollout starts, or queues
    /// behind the running one.
    fn approve(&mut self, s: PatchSubmission, by: String) {
        // `on_approval` takes it off the waiting list.
        let approval = Approval {
            rollout_id: s.rollout_id,
            patch: s.patch,
            approved_by: by,
            approved_at: self.now_or(s.submitted_at),
        };
        self.outbox.push(ControlMessage::Approval(approval.clone()));
        self.on_approval(approval);
    }

    /// Approves the waiting patches whose rule's delay is over.
    fn approve_due(&mut self) {
        let clock = self.clock;
        let due: Vec<WaitingPatch> = self
            .waiting
            .iter()
            .filter(|w| w.due.is_some_and(|d| d <= clock))
            .cloned()
            .collect();
        for w in due {
            let by = match &w.submission.decision {
                Some(ApprovalDecision::Approve { by, .. }) => by.clone(),
                _ => "its rule".into(),
            };
            self.approve(w.submission, by);
        }
    }

    fn on_manual_approve(&mut self, cmd: ManualCommand) {
        let waiting = self
            .waiting
            .iter()
            .find(|w| w.submission.rollout_id == cmd.rollout_id)
            .cloned();
        let applied = waiting.is_some();
        self.record_for(
            &cmd.rollout_id,
            RolloutEventKind::ManualControl {
                action: cmd.action.as_str().to_string(),
                by: cmd.by.clone(),
                reason: cmd.reason.clone(),
                applied,
            },
        );
        match waiting {
            Some(w) => self.approve(w.submission, format!("{} (by hand)", cmd.by)),
            None => match self.rejected.get(&cmd.rollout_id) {
                Some(by) => {
                    tracing::warn!(rollout = %cmd.rollout_id, "rejected by {by}: an approval does not override a rejection; ignored")
                }
                None => {
                    tracing::warn!(rollout = %cmd.rollout_id, "no submitted patch waits under this rollout id; approval ignored")
                }
            },
        }
    }

    fn dispatch(&mut self, message: ControlMessage) {
        match message {
            ControlMessage::Submission(s) => self.on_submission(s),
            ControlMessage::ApprovalRules(u) => {
                use crate::approval::rules::Rules;
                match u.rules.problem() {
                    Some((key, reason)) => {
                        tracing::warn!(by = %u.by, "approval rules not put in force: {key}: {reason}")
                    }
                    None => {
                        tracing::info!(by = %u.by, rules = u.rules.rules.len(), "approval rules in force");
                        self.rules = u.rules;
                    }
                }
            }
            // The next rollout plans over the inventory as it is then.
            ControlMessage::Inventory(u) => {
                match Arc::make_mut(&mut self.inventory).apply(&u.change) {
                    Ok(()) => tracing::info!(by = %u.by, change = ?u.change, "inventory changed"),
                    Err(e) => tracing::warn!("inventory change not applied: {e}"),
                }
            }
            ControlMessage::Approval(approval) => self.on_approval(approval),
            // Outcomes are for learning; they do not move a rollout.
            ControlMessage::Execution(_) | ControlMessage::Outcome(_) => {}
            ControlMessage::Patch(cmd) => self.on_patch(cmd),
            ControlMessage::Rollback(cmd) => self.on_rollback(cmd),
            ControlMessage::WindowReport(report) => {
                self.clock = self.clock.max(report.window_end);
                self.approve_due();
                self.recheck(&report);
                self.on_missing_data(&report.missing);
                self.execute_rollbacks();
                self.advance();
            }
            ControlMessage::Manual(cmd) => self.on_manual(cmd),
        }
    }

    /// Re-checks VMs after their patch: a VM is confirmed by the first
    /// window that starts at or after its patch and has its metrics; a VM
    /// missing from that window did not come back (a reboot gone wrong,
    /// whatever the command's status said) and is rolled back (trigger
    /// `recheck`). A window that covers no patched VM at all (no metrics
    /// from anywhere) decides nothing.
    fn recheck(&mut self, report: &bellwether_schemas::WindowReport) {
        if self.awaiting_recheck.is_empty() {
            return;
        }
        let due: Vec<(String, EventTime)> = self
            .awaiting_recheck
            .iter()
            .filter(|(_, at)| report.window_start >= **at)
            .map(|(vm, at)| (vm.clone(), *at))
            .collect();
        for (vm, patched_at) in due {
            if report.reported.contains(&vm) {
                self.awaiting_recheck.remove(&vm);
                tracing::debug!(vm = %vm, "reports again after its patch");
            } else if report.missing.contains(&vm) {
                self.awaiting_recheck.remove(&vm);
                if !self.patched.contains(&vm) {
                    continue;
                }
                let minutes = report.window_end.minutes_since(patched_at);
                let summary = format!(
                    "no metrics for {minutes} min after its patch: it did not come back (the patch command reported success)"
                );
                tracing::warn!(vm = %vm, "{summary}");
                let command = self.own_rollback(&vm, RollbackTrigger::Recheck, summary, self.clock);
                self.outbox.push(ControlMessage::Rollback(command));
            }
        }
    }

    /// Applies `rollout.on_missing_data` to the patched VMs among `missing`
    /// (not to VMs still to be re-checked after their patch).
    fn on_missing_data(&mut self, missing: &[String]) {
        let silent: Vec<&String> = missing
            .iter()
            .filter(|vm| self.patched.contains(*vm) && !self.awaiting_recheck.contains_key(*vm))
            .collect();
        let moving = matches!(
            self.state(),
            RolloutState::Canary | RolloutState::Baking | RolloutState::Advancing
        );
        if silent.is_empty() {
            if std::mem::take(&mut self.waiting_for_data) {
                tracing::info!("every patched VM reports again; the rollout may advance");
            }
            return;
        }
        let names = silent
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match self.rollout_config.on_missing_data {
            OnMissingData::Proceed => {}
            OnMissingData::Halt if moving => self.transition(
                RolloutState::Halted,
                format!("no metrics from patched VM(s) {names}: halted (on_missing_data = halt)"),
            ),
            OnMissingData::Wait if moving && !self.waiting_for_data => {
                self.waiting_for_data = true;
                tracing::warn!(vms = %names, "no metrics from patched VMs: inconclusive, the next wave waits");
            }
            OnMissingData::Halt | OnMissingData::Wait => {}
        }
    }

    /// True while an operator has the rollout paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn on_manual(&mut self, cmd: ManualCommand) {
        if cmd.action == ManualAction::Approve {
            return self.on_manual_approve(cmd);
        }
        let running = self
            .rollout
            .as_ref()
            .is_some_and(|r| r.id == cmd.rollout_id);
        let state = self.state();
        let applied = running
            && match cmd.action {
                ManualAction::Pause => {
                    !state.is_final() && !std::mem::replace(&mut self.paused, true)
                }
                ManualAction::Resume => {
                    std::mem::replace(&mut self.paused, false)
                        | std::mem::replace(&mut self.waiting_for_data, false)
                }
                ManualAction::Promote => state == RolloutState::Baking,
                // Aborting a halted rollout closes it: the next approved
                // one may start.
                ManualAction::Abort => !state.is_final() || state == RolloutState::Halted,
                ManualAction::Rollback => state != RolloutState::RolledBack,
                ManualAction::Approve => false,
            };
        self.record(RolloutEventKind::ManualControl {
            action: cmd.action.as_str().to_string(),
            by: cmd.by.clone(),
            reason: cmd.reason.clone(),
            applied,
        });
        if !applied {
            tracing::warn!(rollout = %cmd.rollout_id, action = cmd.action.as_str(), state = state.as_str(), "manual control not applicable; ignored");
            return;
        }
        let why = format!("{} by {}: {}", cmd.action.as_str(), cmd.by, cmd.reason);
        match cmd.action {
            ManualAction::Approve => {}
            ManualAction::Pause | ManualAction::Resume => {
                tracing::info!(rollout = %cmd.rollout_id, "{why}");
                if cmd.action == ManualAction::Resume {
                    self.advance();
                }
            }
            ManualAction::Promote => {
                let index = self.waves.last().map_or(0, |w| w.index);
                self.record(RolloutEventKind::WaveBaked { wave: index });
                self.paused = false;
                self.issue_next_wave();
            }
            ManualAction::Abort => {
                self.aborted = true;
                self.pending.clear();
                self.wave_queue.clear();
                self.transition(RolloutState::Halted, why);
            }
            ManualAction::Rollback => {
                self.roll_back_everything(
                    RollbackTrigger::Operator,
                    &format!("emergency rollback: {why}"),
                    self.now_or(cmd.at),
                );
                self.transition(RolloutState::RollingBack, why);
                if self.patched.is_empty() {
                    self.transition(RolloutState::RolledBack, "nothing was patched".into());
                }
            }
        }
    }

    /// A rollback command the actor decides itself (a policy's or an
    /// operator's), critical VMs first.
    fn own_rollback(
        &self,
        vm: &str,
        trigger: RollbackTrigger,
        summary: String,
        at: EventTime,
    ) -> RollbackCommand {
        let rollout_id = self.rollout_id();
        let v = self.inventory.vm(vm);
        let rank = v.map_or(1, |v| v.criticality as u32);
        RollbackCommand {
            command_id: CommandId::rollback(&rollout_id, vm),
            rollout_id,
            vm_id: vm.to_string(),
            critical: v.is_some_and(|v| v.is_critical()),
            priority: rank * 1000 + 999,
            reason: RollbackReason {
                trigger,
                summary,
                evidence: Vec::new(),
                failure: None,
            },
            issued_at: at,
        }
    }

    /// Every patched VM back, critical first: the rollout ends rolled back.
    fn roll_back_everything(&mut self, trigger: RollbackTrigger, summary: &str, at: EventTime) {
        self.emergency = true;
        self.wave_queue.clear();
        let mut commands: Vec<RollbackCommand> = self
            .patched
            .iter()
            .filter(|vm| !self.pending.iter().any(|p| &p.vm_id == *vm))
            .map(|vm| self.own_rollback(vm, trigger, summary.to_string(), at))
            .collect();
        commands.sort_by(|a, b| {
            (b.critical, b.priority)
                .cmp(&(a.critical, a.priority))
                .then(a.vm_id.cmp(&b.vm_id))
        });
        self.outbox
            .extend(commands.into_iter().map(ControlMessage::Rollback));
    }

    /// `rollback.scope`: the other patched VMs an anomaly on `vm` takes
    /// back with it, as rollback commands of trigger `policy`.
    fn widen_rollback(&mut self, vm: &str, summary: &str, at: EventTime) {
        let (scope, others): (String, Vec<String>) = match self.rollback_config.scope {
            RollbackScope::Vm => return,
            RollbackScope::Rollout => (
                "rollback.scope = rollout".into(),
                self.patched.iter().cloned().collect(),
            ),
            RollbackScope::Group => {
                let record = self.inventory.vm(vm);
                let groups: Vec<&crate::inventory::selector::Selector> = self
                    .rollout
                    .iter()
                    .flat_map(|r| r.canary_groups.iter())
                    .filter_map(|g| self.inventory.group(g))
                    .filter(|g| record.is_some_and(|v| g.matches(v)))
                    .collect();
                if groups.is_empty() {
                    // Outside the canary groups, a VM's group is its wave.
                    let Some(wave) = self.waves.iter().find(|w| w.vms.iter().any(|v| v == vm))
                    else {
                        return;
                    };
                    (
                        format!("rollback.scope = group: wave {}", wave.index + 1),
                        wave.vms
                            .iter()
                            .filter(|v| self.patched.contains(*v))
                            .cloned()
                            .collect(),
                    )
                } else {
                    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
                    (
                        format!("rollback.scope = group: canary group {}", names.join(", ")),
                        self.patched
                            .iter()
                            .filter(|p| {
                                self.inventory
                                    .vm(p)
                                    .is_some_and(|v| groups.iter().any(|g| g.matches(v)))
                            })
                            .cloned()
                            .collect(),
                    )
                }
            }
        };
        for other in others {
            if other == vm || self.pending.iter().any(|p| p.vm_id == other) {
                continue;
            }
            let command = self.own_rollback(
                &other,
                RollbackTrigger::Policy,
                format!("rolled back with {vm} ({scope}): {summary}"),
                at,
            );
            self.outbox.push(ControlMessage::Rollback(command));
        }
    }

    /// Commands the actor decided and wants published on the control topic.
    pub fn take_outbox(&mut self) -> Vec<ControlMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// The rollout, if one was started.
    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// The rollout's state (`Pending` before any).
    pub fn state(&self) -> RolloutState {
        self.rollout
            .as_ref()
            .map_or(RolloutState::Pending, |r| r.state)
    }

    /// True when the rollout stopped moving and no rollback waits.
    pub fn is_settled(&self) -> bool {
        self.state().is_final() && self.pending.is_empty()
    }

    /// The actor's clock (end of the last window reported).
    pub fn clock(&self) -> EventTime {
        self.clock
    }

    /// Waves deployed so far.
    pub fn waves(&self) -> &[Wave] {
        &self.waves
    }

    /// Waves planned (VM ids per wave).
    pub fn planned_waves(&self) -> &[Vec<String>] {
        &self.planned
    }

    /// VMs running the patch now.
    pub fn patched(&self) -> &BTreeSet<String> {
        &self.patched
    }

    /// VMs that received the patch at some point.
    pub fn ever_patched(&self) -> &BTreeSet<String> {
        &self.ever_patched
    }

    /// Rollbacks carried out, in order.
    pub fn rollbacks(&self) -> &[RollbackRecord] {
        &self.rollbacks
    }

    /// The audit trail.
    pub fn events(&self) -> &[RolloutEvent] {
        &self.events
    }

    /// Commands skipped because their id had been executed before.
    pub fn duplicates_skipped(&self) -> usize {
        self.duplicates
    }

    fn rollout_id(&self) -> String {
        self.rollout
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    fn record(&mut self, kind: RolloutEventKind) {
        self.events.push(RolloutEvent {
            rollout_id: self.rollout_id(),
            time: self.clock,
            kind,
        });
    }

    fn transition(&mut self, to: RolloutState, why: String) {
        let Some(rollout) = self.rollout.as_mut() else {
            return;
        };
        let from = rollout.state;
        if from == to || !allowed(from, to) {
            tracing::debug!(
                from = from.as_str(),
                to = to.as_str(),
                "state change not allowed; ignored"
            );
            return;
        }
        rollout.state = to;
        tracing::info!(rollout = %rollout.id, from = from.as_str(), to = to.as_str(), "{why}");
        self.record(RolloutEventKind::StateChanged { from, to, why });
    }

    fn is_duplicate(&mut self, id: &CommandId) -> bool {
        if self.executed.contains(id) || self.pending.iter().any(|p| &p.command_id == id) {
            self.duplicates += 1;
            self.record(RolloutEventKind::DuplicateCommandSkipped {
                command_id: id.clone(),
            });
            return true;
        }
        false
    }

    fn issue_next_wave(&mut self) {
        let Some(rollout) = self.rollout.as_ref() else {
            return;
        };
        let (id, patch_id) = (rollout.id.clone(), rollout.patch.id.clone());
        let plan = rollout.plan.clone();
        // Waves that add no VM (tiny fleets) are skipped.
        let Some(index) =
            (self.waves.len()..self.planned.len()).find(|&i| !self.planned[i].is_empty())
        else {
            self.transition(
                RolloutState::Completed,
                "every wave deployed and baked healthy".into(),
            );
            return;
        };
        if let Some(w) = &self.window
            && !w.is_open(self.clock)
        {
            if self.waiting_for_window != Some(index) {
                self.waiting_for_window = Some(index);
                let opens_at = w.next_open(self.clock);
                let window = w.to_string();
                tracing::info!(wave = index + 1, opens_at = ?opens_at.map(|t| t.to_string()), "the next wave waits for the maintenance window {window}");
                self.record(RolloutEventKind::WaitingForWindow {
                    wave: index,
                    opens_at,
                    window,
                });
            }
            return;
        }
        self.waiting_for_window = None;
        let spec = plan.waves[index];
        let vms = self.planned[index].clone();
        let target = if spec.canary {
            RolloutState::Canary
        } else {
            RolloutState::Advancing
        };
        self.transition(
            target,
            format!("deploying wave {} ({} VMs)", index + 1, vms.len()),
        );
        while self.waves.len() < index {
            // Record skipped empty waves so indexes line up with the plan.
            let i = self.waves.len();
            self.waves.push(Wave {
                index: i,
                vms: Vec::new(),
                started_at: self.clock,
                bake_minutes: 0,
                canary: plan.waves[i].canary,
            });
        }
        self.wave_queue = vms.iter().cloned().collect();
        self.wave_unexecuted = vms.iter().cloned().collect();
        self.waves.push(Wave {
            index,
            vms: vms.clone(),
            started_at: self.clock,
            bake_minutes: spec.bake_minutes,
            canary: spec.canary,
        });
        self.record(RolloutEventKind::WaveStarted {
            wave: index,
            vms,
            canary: spec.canary,
        });
        self.issue_queued(&id, &patch_id);
    }

    /// Issues the current wave's queued patch commands, up to
    /// `rollout.max_concurrency` in flight, while the rollout moves, is not
    /// paused, and the maintenance window is open.
    fn issue_queued(&mut self, rollout_id: &str, patch_id: &str) {
        if self.wave_queue.is_empty()
            || self.paused
            || !matches!(
                self.state(),
                RolloutState::Canary | RolloutState::Advancing | RolloutState::Baking
            )
            || self.window.as_ref().is_some_and(|w| !w.is_open(self.clock))
        {
            return;
        }
        let limit = match self.rollout_config.max_concurrency {
            0 => usize::MAX,
            n => n,
        };
        let wave = self.waves.last().map_or(0, |w| w.index);
        let mut in_flight = self.wave_unexecuted.len() - self.wave_queue.len();
        let mut issued = 0;
        while in_flight < limit {
            let Some(vm) = self.wave_queue.pop_front() else {
                break;
            };
            self.outbox.push(ControlMessage::Patch(PatchCommand {
                command_id: CommandId::patch(rollout_id, &vm),
                rollout_id: rollout_id.to_string(),
                patch_id: patch_id.to_string(),
                vm_id: vm,
                wave,
                issued_at: self.clock,
            }));
            in_flight += 1;
            issued += 1;
        }
        self.widest_patch_step = self.widest_patch_step.max(issued);
    }

    fn issue_more(&mut self) {
        if let Some(r) = &self.rollout {
            let (id, patch) = (r.id.clone(), r.patch.id.clone());
            self.issue_queued(&id, &patch);
        }
    }

    fn on_approval(&mut self, mut approval: Approval) {
        let id = approval.rollout_id.clone();
        // An approval settles a submitted patch waiting under its rollout
        // id; the submission knows the patch best.
        if let Some(w) = self.waiting.iter().find(|w| w.submission.rollout_id == id) {
            approval.patch = w.submission.patch.clone();
        }
        self.waiting.retain(|w| w.submission.rollout_id != id);
        if let Some(by) = self.rejected.get(&id) {
            tracing::warn!(rollout = %id, "rejected by {by}: an approval does not override a rejection; ignored");
            return;
        }
        if self.is_known(&id) {
            tracing::debug!(rollout = %id, "approval seen again; ignored");
            return;
        }
        if let Some(running) = self.rollout.as_ref().filter(|_| !self.is_settled()) {
            tracing::info!(running = %running.id, approved = %id, "a rollout is running; the approved one starts after it (one rollout at a time)");
            self.queued.push_back(approval);
            return;
        }
        tracing::info!(rollout = %id, patch = %approval.patch.id, by = %approval.approved_by, "patch approved; rollout starts");
        let now = self.now_or(approval.approved_at);
        self.start(&id, approval.patch, now);
    }

    /// True when `rollout_id` is the running rollout (commands of earlier
    /// rollouts are not carried out in this one).
    fn is_current(&self, rollout_id: &str) -> bool {
        let current = self.rollout.as_ref().is_some_and(|r| r.id == rollout_id);
        if !current {
            tracing::debug!(rollout = %rollout_id, "command of a rollout that is not running; ignored");
        }
        current
    }

    fn on_patch(&mut self, cmd: PatchCommand) {
        if !self.is_current(&cmd.rollout_id) || self.is_duplicate(&cmd.command_id) {
            return;
        }
        // A patch issued before the rollout stopped (halted, aborted, or
        // rolling everything back) is not carried out.
        let state = self.state();
        if state.is_final()
            || self.emergency
            || (state == RolloutState::RollingBack
                && self.rollback_config.on_anomaly != OnAnomaly::Continue)
        {
            self.executed.insert(cmd.command_id.clone());
            self.wave_unexecuted.remove(&cmd.vm_id);
            tracing::info!(vm = %cmd.vm_id, state = state.as_str(), "patch command not carried out: the rollout stopped deploying");
            return;
        }
        let outcome = self.carry_out(&cmd.command_id, &cmd.vm_id, Action::Patch, |a| {
            a.patch(&cmd)
        });
        // A patch executed before a restart counts as deployed.
        if outcome != Some(false) {
            self.patched.insert(cmd.vm_id.clone());
            self.ever_patched.insert(cmd.vm_id.clone());
            self.awaiting_recheck.insert(cmd.vm_id.clone(), self.clock);
        }
        self.wave_unexecuted.remove(&cmd.vm_id);
        self.issue_more();
        if self.wave_unexecuted.is_empty()
            && matches!(self.state(), RolloutState::Canary | RolloutState::Advancing)
        {
            let wave = self.waves.len();
            self.transition(
                RolloutState::Baking,
                format!("wave {wave} deployed; baking"),
            );
        }
    }

    fn on_rollback(&mut self, cmd: RollbackCommand) {
        if !self.is_current(&cmd.rollout_id) || self.is_duplicate(&cmd.command_id) {
            return;
        }
        let why = format!("anomaly on {}: {}", cmd.vm_id, cmd.reason.summary);
        let widen = !matches!(
            cmd.reason.trigger,
            RollbackTrigger::Policy | RollbackTrigger::Operator
        ) && !self.emergency;
        let (vm, summary, at) = (cmd.vm_id.clone(), cmd.reason.summary.clone(), cmd.issued_at);
        self.pending.push(cmd);
        if widen {
            self.widen_rollback(&vm, &summary, at);
        }
        if matches!(
            self.state(),
            RolloutState::Canary
                | RolloutState::Baking
                | RolloutState::Advancing
                | RolloutState::Halted
        ) {
            self.transition(RolloutState::RollingBack, why);
        }
    }

    fn execute_rollbacks(&mut self) {
        match self.rollback_config.order {
            // Stable sort: among equals, detection order stands.
            RollbackOrder::CriticalFirst => self
                .pending
                .sort_by_key(|c| std::cmp::Reverse((c.critical, c.priority))),
            RollbackOrder::AsDetected => {}
        }
        // A wave patched at once is rolled back at once if it must be: a
        // leak that crashes VMs within the hour does not wait in a queue
        // the patch never waited in.
        let limit = self
            .rollback_config
            .max_concurrent
            .max(self.widest_patch_step);
        let take = self.pending.len().min(limit);
        for cmd in self.pending.drain(..take).collect::<Vec<_>>() {
            if !self.patched.contains(&cmd.vm_id) {
                self.executed.insert(cmd.command_id.clone());
                tracing::warn!(vm = %cmd.vm_id, "rollback for a VM this rollout has not patched; skipped");
                continue;
            }
            let succeeded = self
                .carry_out(&cmd.command_id, &cmd.vm_id, Action::Rollback, |a| {
                    a.roll_back(&cmd)
                })
                .unwrap_or(true);
            if succeeded {
                self.patched.remove(&cmd.vm_id);
                self.awaiting_recheck.remove(&cmd.vm_id);
            }
            self.rollbacks.push(RollbackRecord {
                order: self.rollbacks.len() + 1,
                vm_id: cmd.vm_id.clone(),
                critical: cmd.critical,
                reason: cmd.reason.clone(),
                command_id: cmd.command_id.clone(),
                detected_at: cmd.issued_at,
                executed_at: self.clock,
                succeeded,
            });
            self.record(RolloutEventKind::VmRolledBack {
                vm_id: cmd.vm_id,
                command_id: cmd.command_id,
                critical: cmd.critical,
                reason: cmd.reason,
                succeeded,
            });
        }
        if self.pending.is_empty() && self.state() == RolloutState::RollingBack {
            let n = self.rollbacks.len();
            if self.emergency {
                if self.patched.is_empty() {
                    self.transition(
                        RolloutState::RolledBack,
                        format!("emergency rollback done: {n} VM(s) rolled back"),
                    );
                }
                return;
            }
            let budget = self
                .rollback_config
                .error_budget
                .map(|b| b.cumulative_vms(self.ever_patched.len().max(1)));
            if let (OnAnomaly::Continue, Some(budget)) = (self.rollback_config.on_anomaly, budget)
                && n > budget
            {
                self.transition(
                    RolloutState::Halted,
                    format!("error budget exceeded: {n} rollbacks, budget {budget}; halted"),
                );
                return;
            }
            match self.rollback_config.on_anomaly {
                OnAnomaly::RollBackAll => {
                    let at = self.clock;
                    self.roll_back_everything(
                        RollbackTrigger::Policy,
                        &format!("rollback.on_anomaly = roll-back-all, after {n} rollback(s)"),
                        at,
                    );
                    if self.patched.is_empty() {
                        self.transition(
                            RolloutState::RolledBack,
                            format!("{n} VM(s) rolled back; none left patched"),
                        );
                    }
                }
                OnAnomaly::Halt => self.transition(
                    RolloutState::Halted,
                    format!("halted after {n} rollback(s); nothing more is deployed"),
                ),
                OnAnomaly::Continue => self.transition(
                    RolloutState::Baking,
                    format!("{n} VM(s) rolled back; continuing without them"),
                ),
            }
        }
    }

    fn advance(&mut self) {
        if self.paused || self.waiting_for_data {
            return;
        }
        match self.state() {
            // Approved, waiting for the maintenance window.
            RolloutState::Pending if self.rollout.is_some() && self.waves.is_empty() => {
                return self.issue_next_wave();
            }
            RolloutState::Canary | RolloutState::Advancing => return self.issue_more(),
            RolloutState::Baking => {}
            _ => return,
        }
        if self.waiting_for_window.is_some() {
            return self.issue_next_wave();
        }
        if !self.wave_unexecuted.is_empty() {
            // Continuing after a rollback with VMs of the wave still queued.
            return self.issue_more();
        }
        let Some(wave) = self.waves.last() else {
            return;
        };
        // The next wave waits until every VM of this one was seen again.
        if let Some(vm) = wave
            .vms
            .iter()
            .find(|vm| self.awaiting_recheck.contains_key(*vm))
        {
            tracing::debug!(vm = %vm, "the wave waits for the re-check of its VMs");
            return;
        }
        let baked_at = wave
            .started_at
            .plus_ms(wave.bake_minutes as i64 * EventTime::MINUTE_MS);
        if self.clock < baked_at {
            return;
        }
        let index = wave.index;
        self.record(RolloutEventKind::WaveBaked { wave: index });
        self.issue_next_wave();
    }
}
