//! The rollout actor: deploys waves, executes commands, holds or advances.
//!
//! It consumes the control topic. Patch commands (which it issued itself)
//! and rollback commands (from the scoring stage) are executed through the
//! [`Actuator`] once per command id; window reports move its clock, which
//! decides when a wave has baked. The actor never reads the wall clock, so
//! a simulated day and a real one follow the same rules.
//!
//! One concern per module: [`approvals`] (submissions, rules, the queue of
//! approved rollouts), [`waves`] (planning, issuing and baking waves),
//! [`rollbacks`], [`controls`] (an operator's pause, resume, promote,
//! abort and emergency rollback), [`rechecks`] (VMs seen again after their
//! patch, missing metrics), all moving one state machine ([`phase`]).

mod approvals;
mod controls;
pub(crate) mod phase;
mod rechecks;
mod rollbacks;
#[cfg(test)]
mod testkit;
mod waves;

pub use approvals::WaitingPatch;
pub use rollbacks::RollbackRecord;

use super::actuator::{Actuation, Actuator};
use super::window::MaintenanceWindow;
use crate::ControlConfig;
use crate::inventory::Inventory;
use crate::judge::JudgeConfig;
use crate::rollout::config::{RollbackConfig, RolloutConfig};
use approvals::Approvals;
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, Execution, PatchCommand, RollbackCommand, Rollout,
    RolloutEvent, RolloutEventKind, RolloutState, Wave,
};
use phase::{Halt, Hold, Phase};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

/// The rollout actor.
pub struct RolloutActor<A: Actuator> {
    rollout_config: RolloutConfig,
    /// Control cohorts, for the holdback.
    judge: JudgeConfig,
    rollback_config: RollbackConfig,
    /// The maintenance window waves start in (none: any time).
    window: Option<MaintenanceWindow>,
    inventory: Arc<Inventory>,
    actuator: A,
    /// End of the last window reported.
    clock: EventTime,
    commands: Commands,
    approvals: Approvals,
    /// The rollout a message is being handled for (between messages: the
    /// one started last).
    run: Run,
    /// The other rollouts running beside it (`rollout.max_parallel`), then
    /// the last few that ended, each swapped into `run` while a message for
    /// it is handled.
    parked: Vec<Run>,
    events: Vec<RolloutEvent>,
    outbox: Vec<ControlMessage>,
    /// The fleet's noise as the scoring stage last reported it (for `rollout.detect`).
    noise: Option<bellwether_schemas::FleetNoise>,
}

/// Commands carried out, each once.
#[derive(Default)]
struct Commands {
    executed: HashSet<CommandId>,
    /// Executed before a restart (the actor's ledger): replayed as
    /// executed, not carried out again.
    executed_before: HashSet<CommandId>,
    newly_executed: Vec<CommandId>,
    duplicates: usize,
    sequence: usize,
}

/// One rollout as the actor holds it (see [`RolloutActor::rollouts`]).
#[derive(Debug, Clone, Copy)]
pub struct RolloutView<'a> {
    /// The rollout.
    pub rollout: &'a Rollout,
    /// Its state.
    pub state: RolloutState,
    /// Waves planned.
    pub planned_waves: usize,
    /// Waves deployed so far.
    pub waves: &'a [Wave],
    /// VMs that received its patch at some point.
    pub ever_patched: &'a BTreeSet<String>,
    /// VMs running its patch now.
    pub patched: &'a BTreeSet<String>,
    /// Its rollbacks, in order.
    pub rollbacks: &'a [RollbackRecord],
    /// VMs whose patch the actuator failed.
    pub failed_patches: &'a BTreeSet<String>,
    /// True while an operator has it paused.
    pub paused: bool,
}

impl RolloutView<'_> {
    /// When the wave baking now has baked (None: nothing bakes).
    pub fn bake_ends(&self) -> Option<EventTime> {
        if self.state != RolloutState::Baking {
            return None;
        }
        let w = self.waves.last()?;
        Some(
            w.started_at
                .plus_ms(w.bake_minutes as i64 * EventTime::MINUTE_MS),
        )
    }
}

/// One rollout's progress; a new rollout starts from an empty one.
#[derive(Default)]
struct Run {
    rollout: Option<Rollout>,
    phase: Phase,
    /// VM ids per planned wave.
    planned: Vec<Vec<String>>,
    waves: Vec<Wave>,
    /// Waves `..baked` have baked.
    baked: usize,
    /// The wave whose wait for the maintenance window was recorded.
    window_wait_recorded: Option<usize>,
    wave_unexecuted: HashSet<String>,
    /// VMs of the current wave not issued yet (`rollout.max_concurrency`,
    /// or the maintenance window closed mid-wave).
    wave_queue: VecDeque<String>,
    patched: BTreeSet<String>,
    ever_patched: BTreeSet<String>,
    /// Most patch commands the rollout issued at once: it rolls back at
    /// least as fast as it patched.
    widest_patch_step: usize,
    /// Patched VMs not yet seen reporting after their patch (it may have
    /// rebooted them), with when the patch was carried out: the command's
    /// status is not trusted until the VM's metrics come back.
    awaiting_recheck: BTreeMap<String, EventTime>,
    /// Rollbacks decided, not carried out yet.
    pending: Vec<RollbackCommand>,
    /// Patch commands received, not carried out yet.
    patches_waiting: Vec<PatchCommand>,
    /// The ids of `pending` and `patches_waiting`, for the duplicate
    /// check (a wave of 50,000 VMs arrives in one poll).
    waiting_ids: HashSet<CommandId>,
    rollbacks: Vec<RollbackRecord>,
    /// VMs whose patch the actuator failed (after its retries).
    failed_patches: BTreeSet<String>,
}

impl Run {
    /// Stopped moving, with no rollback waiting.
    fn is_settled(&self) -> bool {
        self.phase.is_final() && self.pending.is_empty()
    }

    /// Running, rolling back, or halted by a policy (an operator closes
    /// it): it counts against `rollout.max_parallel`.
    fn holds_a_place(&self) -> bool {
        self.rollout.is_some() && (!self.is_settled() || self.phase == Phase::Halted(Halt::Stopped))
    }

    /// What a caller may see of it, once it has a rollout.
    fn view(&self) -> Option<RolloutView<'_>> {
        Some(RolloutView {
            rollout: self.rollout.as_ref()?,
            state: self.phase.state(),
            planned_waves: self.planned.len(),
            waves: &self.waves,
            ever_patched: &self.ever_patched,
            patched: &self.patched,
            rollbacks: &self.rollbacks,
            failed_patches: &self.failed_patches,
            paused: self.phase.hold() == Hold::Paused,
        })
    }
}

impl<A: Actuator> RolloutActor<A> {
    /// An idle actor acting on `config`'s policies.
    pub fn new(config: &ControlConfig, inventory: Arc<Inventory>, actuator: A) -> RolloutActor<A> {
        RolloutActor {
            rollout_config: config.rollout.clone(),
            judge: config.judge.clone(),
            rollback_config: config.rollback.clone(),
            window: config
                .rollout
                .maintenance_window
                .as_ref()
                .map(MaintenanceWindow::new),
            inventory,
            actuator,
            clock: EventTime(i64::MIN),
            commands: Commands::default(),
            approvals: Approvals::new(config.approval.clone()),
            run: Run::default(),
            parked: Vec::new(),
            events: Vec::new(),
            outbox: Vec::new(),
            noise: None,
        }
    }

    /// Commands executed before a restart (from the actor's ledger). When
    /// the control topic is replayed, they update the actor's state as
    /// executed but are not carried out again.
    pub fn with_executed_before(mut self, ids: impl IntoIterator<Item = CommandId>) -> Self {
        self.commands.executed_before.extend(ids);
        self
    }

    /// Command ids executed since the last call, to be recorded durably once
    /// their execution records are published.
    pub fn take_newly_executed(&mut self) -> Vec<CommandId> {
        std::mem::take(&mut self.commands.newly_executed)
    }

    /// Handles one message from the control topic, then carries out what
    /// it decided ([`RolloutActor::receive`], then [`RolloutActor::act`]).
    pub fn handle(&mut self, message: ControlMessage) {
        self.receive(message);
        self.act();
    }

    /// Handles the messages read from the control topic together, then
    /// carries out what they decided at once: the rollbacks of a window
    /// go out critical first, through the actuator's pool.
    pub fn handle_all(&mut self, messages: impl IntoIterator<Item = ControlMessage>) {
        for message in messages {
            self.receive(message);
        }
        self.act();
    }

    /// Takes one message from the control topic into the actor's state;
    /// the commands it brings wait for [`RolloutActor::act`].
    pub fn receive(&mut self, message: ControlMessage) {
        let current = self.rollout_id();
        self.dispatch(message);
        self.switch_to(&current);
        self.start_queued_if_done();
    }

    /// Carries out what waits: every decided rollback at once (critical
    /// first, `rollback.max_concurrent` in flight), then the patch
    /// commands received. Rollbacks never wait for a window report; the
    /// actor's own rollback commands are carried out once the control
    /// topic brings them back, all together.
    pub fn act(&mut self) {
        let own_rollbacks_unread = self
            .outbox
            .iter()
            .any(|m| matches!(m, ControlMessage::Rollback(_)));
        self.each_run(|actor| {
            if !own_rollbacks_unread && actor.execute_rollbacks() {
                actor.advance();
            }
            actor.execute_patches();
        });
        self.start_queued_if_done();
    }

    /// Starts approved rollouts from the queue while fewer than
    /// `rollout.max_parallel` run. A rollout halted by a policy stays the
    /// actor's (its VMs may still need rolling back) until an operator
    /// aborts or rolls it back; any other settled rollout makes way.
    fn start_queued_if_done(&mut self) {
        while self.queued_rollouts().next().is_some() && self.has_a_free_place() {
            self.start_queued();
        }
    }

    /// Fewer rollouts hold a place (running, rolling back, or halted by a
    /// policy) than `rollout.max_parallel`.
    fn has_a_free_place(&self) -> bool {
        let holding = std::iter::once(&self.run)
            .chain(&self.parked)
            .filter(|r| r.holds_a_place())
            .count();
        holding < self.rollout_config.max_parallel.max(1)
    }

    /// Makes `rollout_id`'s run the current one (the current one is
    /// parked); false when there is none of that id.
    fn switch_to(&mut self, rollout_id: &str) -> bool {
        if self
            .run
            .rollout
            .as_ref()
            .is_some_and(|r| r.id == rollout_id)
        {
            return true;
        }
        let Some(i) = self
            .parked
            .iter()
            .position(|r| r.rollout.as_ref().is_some_and(|r| r.id == rollout_id))
        else {
            return false;
        };
        std::mem::swap(&mut self.run, &mut self.parked[i]);
        true
    }

    /// Runs `f` for every rollout that has not ended, each as the current
    /// one; the current one is current again after.
    fn each_run(&mut self, mut f: impl FnMut(&mut Self)) {
        f(self);
        for i in 0..self.parked.len() {
            if !self.parked[i].holds_a_place() {
                continue;
            }
            std::mem::swap(&mut self.run, &mut self.parked[i]);
            f(self);
            std::mem::swap(&mut self.run, &mut self.parked[i]);
        }
    }

    /// The VMs other rollouts hold now: those of their current wave until
    /// it has baked. A VM of this rollout's wave among them waits.
    fn claimed_by_others(&self) -> HashSet<String> {
        self.parked
            .iter()
            .filter(|r| r.phase.is_deploying() || matches!(r.phase, Phase::Baking(_)))
            .filter(|r| r.baked < r.waves.len())
            .filter_map(|r| r.waves.last())
            .flat_map(|w| w.vms.iter().cloned())
            .collect()
    }

    /// Puts the current run aside for a new one: beside it while it runs,
    /// else among the ended ones (the last 16 are kept, for summaries).
    fn park_current(&mut self) {
        let previous = std::mem::take(&mut self.run);
        let Some(rollout) = &previous.rollout else {
            return;
        };
        if !previous.holds_a_place() {
            self.approvals.finished.insert(rollout.id.clone());
        }
        self.parked.push(previous);
        let ended: Vec<usize> = (0..self.parked.len())
            .filter(|&i| !self.parked[i].holds_a_place())
            .collect();
        if ended.len() > 16 {
            let oldest = self.parked.remove(ended[0]);
            // Forgotten, but known: it is not started again.
            if let Some(r) = oldest.rollout {
                self.approvals.finished.insert(r.id);
            }
        }
    }

    fn dispatch(&mut self, message: ControlMessage) {
        match message {
            ControlMessage::Submission(s) => self.on_submission(s),
            ControlMessage::ApprovalRules(u) => self.approvals.put_in_force(u),
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
            ControlMessage::Patch(cmd) => {
                self.switch_to(&cmd.rollout_id);
                self.on_patch(cmd)
            }
            ControlMessage::Rollback(cmd) => {
                self.switch_to(&cmd.rollout_id);
                self.on_rollback(cmd)
            }
            ControlMessage::WindowReport(report) => {
                self.clock = self.clock.max(report.window_end);
                if let Some(noise) = &report.noise {
                    self.noise = Some(noise.clone());
                }
                self.approve_due();
                self.each_run(|actor| {
                    actor.recheck(&report);
                    actor.on_missing_data(&report.missing);
                    actor.advance();
                });
            }
            ControlMessage::Manual(cmd) => {
                self.switch_to(&cmd.rollout_id);
                self.on_manual(cmd)
            }
        }
    }

    /// Carries out `commands` through the actuator (at most `in_flight`
    /// at once), each unless it ran before a restart: per command
    /// `Some(true)` when the actuator succeeded (its execution record is
    /// queued in the outbox), `Some(false)` when it failed (recorded as
    /// `actuation_failed`), `None` when it ran before.
    fn carry_out_all(&mut self, commands: &[Actuation<'_>], in_flight: usize) -> Vec<Option<bool>> {
        let before = &self.commands.executed_before;
        let fresh: Vec<Actuation<'_>> = commands
            .iter()
            .filter(|c| !before.contains(c.command_id()))
            .copied()
            .collect();
        let mut results = self.actuator.carry_out_all(&fresh, in_flight).into_iter();
        let mut outcomes = Vec::with_capacity(commands.len());
        for c in commands {
            let id = c.command_id();
            self.commands.executed.insert(id.clone());
            if self.commands.executed_before.contains(id) {
                outcomes.push(None);
                continue;
            }
            let ok = match results.next() {
                Some(Ok(())) => true,
                Some(Err(e)) => {
                    tracing::warn!("{e}");
                    self.record(RolloutEventKind::ActuationFailed {
                        vm_id: c.vm_id().to_string(),
                        command_id: id.clone(),
                        action: e.command.to_string(),
                        reason: e.reason.clone(),
                    });
                    false
                }
                None => {
                    tracing::error!(command = %id.0, "the actuator returned fewer results than commands");
                    false
                }
            };
            self.commands.newly_executed.push(id.clone());
            if ok {
                self.commands.sequence += 1;
                self.outbox.push(ControlMessage::Execution(Execution {
                    command_id: id.clone(),
                    rollout_id: self.rollout_id(),
                    vm_id: c.vm_id().to_string(),
                    action: c.action(),
                    executed_at: self.clock,
                    sequence: self.commands.sequence,
                }));
            }
            outcomes.push(Some(ok));
        }
        outcomes
    }

    /// True (and counted) when command `id` ran or waits already.
    fn is_duplicate(&mut self, id: &CommandId) -> bool {
        if self.commands.executed.contains(id) || self.run.waiting_ids.contains(id) {
            self.commands.duplicates += 1;
            self.record(RolloutEventKind::DuplicateCommandSkipped {
                command_id: id.clone(),
            });
            return true;
        }
        false
    }

    /// True when `rollout_id` is the running rollout (commands of earlier
    /// rollouts are not carried out in this one).
    fn is_current(&self, rollout_id: &str) -> bool {
        let current = self
            .run
            .rollout
            .as_ref()
            .is_some_and(|r| r.id == rollout_id);
        if !current {
            tracing::debug!(rollout = %rollout_id, "command of a rollout that is not running; ignored");
        }
        current
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

    /// Commands the actor decided and wants published on the control topic.
    pub fn take_outbox(&mut self) -> Vec<ControlMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// The rollout, if one was started.
    pub fn rollout(&self) -> Option<&Rollout> {
        self.run.rollout.as_ref()
    }

    /// The rollout's state (`Pending` before any).
    pub fn state(&self) -> RolloutState {
        self.run.phase.state()
    }

    /// The rollout's state with what holds it.
    pub fn phase(&self) -> Phase {
        self.run.phase
    }

    /// True while an operator has the rollout paused.
    pub fn is_paused(&self) -> bool {
        self.run.phase.hold() == Hold::Paused
    }

    /// True when every rollout stopped moving and no rollback waits.
    pub fn is_settled(&self) -> bool {
        self.run.is_settled() && self.parked.iter().all(Run::is_settled)
    }

    /// Rollout `id`, if the actor holds it (running or among the last
    /// ended).
    pub fn rollout_view(&self, id: &str) -> Option<RolloutView<'_>> {
        self.rollouts().into_iter().find(|r| r.rollout.id == id)
    }

    /// Every rollout the actor holds, the one started last first: those
    /// running side by side, then the last ones that ended.
    pub fn rollouts(&self) -> Vec<RolloutView<'_>> {
        std::iter::once(&self.run)
            .chain(self.parked.iter().rev())
            .filter_map(Run::view)
            .collect()
    }

    /// VMs whose patch the actuator failed (after its retries).
    pub fn failed_patches(&self) -> &BTreeSet<String> {
        &self.run.failed_patches
    }

    /// The actor's clock (end of the last window reported).
    pub fn clock(&self) -> EventTime {
        self.clock
    }

    /// Waves deployed so far.
    pub fn waves(&self) -> &[Wave] {
        &self.run.waves
    }

    /// When the wave baking now has baked (None: nothing bakes).
    pub fn bake_ends(&self) -> Option<EventTime> {
        self.run.view()?.bake_ends()
    }

    /// Waves planned (VM ids per wave).
    pub fn planned_waves(&self) -> &[Vec<String>] {
        &self.run.planned
    }

    /// VMs running the patch now.
    pub fn patched(&self) -> &BTreeSet<String> {
        &self.run.patched
    }

    /// VMs that received the patch at some point.
    pub fn ever_patched(&self) -> &BTreeSet<String> {
        &self.run.ever_patched
    }

    /// Rollbacks carried out, in order.
    pub fn rollbacks(&self) -> &[RollbackRecord] {
        &self.run.rollbacks
    }

    /// The audit trail.
    pub fn events(&self) -> &[RolloutEvent] {
        &self.events
    }

    /// Commands skipped because their id had been executed before.
    pub fn duplicates_skipped(&self) -> usize {
        self.commands.duplicates
    }

    fn rollout_id(&self) -> String {
        self.run
            .rollout
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    fn record(&mut self, kind: RolloutEventKind) {
        let rollout_id = self.rollout_id();
        self.record_for(&rollout_id, kind);
    }

    fn record_for(&mut self, rollout_id: &str, kind: RolloutEventKind) {
        self.events.push(RolloutEvent {
            rollout_id: rollout_id.to_string(),
            time: self.clock,
            kind,
        });
    }

    /// Moves the rollout to `to`. A change of the public state is checked
    /// against the allowed moves and recorded with `why`; a change of what
    /// holds it, or of why it rolls back or halted, is not an event.
    fn go(&mut self, to: Phase, why: String) {
        let Some(rollout) = self.run.rollout.as_mut() else {
            return;
        };
        let (from, next) = (self.run.phase.state(), to.state());
        if from == next {
            self.run.phase = to;
            return;
        }
        if !phase::allowed(from, next) {
            tracing::debug!(
                from = from.as_str(),
                to = next.as_str(),
                "state change not allowed; ignored"
            );
            return;
        }
        self.run.phase = to;
        rollout.state = next;
        tracing::info!(rollout = %rollout.id, from = from.as_str(), to = next.as_str(), "{why}");
        self.record(RolloutEventKind::StateChanged {
            from,
            to: next,
            why,
        });
    }

    /// The moving rollout held by `hold` (a stopped one is left as it is).
    fn hold(&mut self, hold: Hold) {
        self.run.phase = self.run.phase.held(hold);
    }
}
