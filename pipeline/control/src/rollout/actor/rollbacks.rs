//! Rollbacks: queued as they are decided, widened by `rollback.scope`,
//! carried out critical first at least as fast as the patch went out, and
//! what `rollback.on_anomaly` does once they are done.

use super::RolloutActor;
use super::phase::{Halt, Hold, Phase, RollingBack};
use crate::inventory::selector::Selector;
use crate::rollout::actuator::{Actuation, Actuator};
use crate::rollout::config::{OnAnomaly, RollbackOrder, RollbackScope};
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, RollbackCommand, RollbackReason, RollbackTrigger,
    RolloutEventKind,
};
use serde::Serialize;
use std::collections::HashSet;

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

impl<A: Actuator> RolloutActor<A> {
    /// A rollback command the actor decides itself (a policy's or an
    /// operator's), critical VMs first.
    pub(super) fn own_rollback(
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
                wave: None,
            },
            issued_at: at,
        }
    }

    /// Every patched VM back, critical first: the rollout rolls everything
    /// back (`why` says why) and ends rolled back once none is left patched.
    pub(super) fn roll_back_everything(
        &mut self,
        trigger: RollbackTrigger,
        summary: &str,
        at: EventTime,
        why: String,
    ) {
        self.run.wave_queue.clear();
        let mut commands: Vec<RollbackCommand> = self
            .run
            .patched
            .iter()
            .filter(|vm| !self.run.pending.iter().any(|p| &p.vm_id == *vm))
            .map(|vm| self.own_rollback(vm, trigger, summary.to_string(), at))
            .collect();
        commands.sort_by(|a, b| {
            (b.critical, b.priority)
                .cmp(&(a.critical, a.priority))
                .then(a.vm_id.cmp(&b.vm_id))
        });
        self.outbox
            .extend(commands.into_iter().map(ControlMessage::Rollback));
        let hold = self.run.phase.hold();
        self.go(Phase::RollingBack(hold, RollingBack::Everything), why);
    }

    /// `rollback.scope`: the other patched VMs an anomaly on `vm` takes
    /// back with it, as rollback commands of trigger `policy`.
    fn widen_rollback(&mut self, vm: &str, summary: &str, at: EventTime) {
        let (scope, others) = match self.rollback_config.scope {
            RollbackScope::Vm => return,
            RollbackScope::Rollout => (
                "rollback.scope = rollout".to_string(),
                self.run.patched.iter().cloned().collect::<Vec<_>>(),
            ),
            RollbackScope::Group => match self.group_of(vm) {
                Some(group) => group,
                None => return,
            },
        };
        for other in others {
            if other == vm || self.run.pending.iter().any(|p| p.vm_id == other) {
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

    /// `vm`'s group for `rollback.scope = group`, named, with its patched
    /// VMs: the rollout's canary groups it belongs to, else its wave.
    fn group_of(&self, vm: &str) -> Option<(String, Vec<String>)> {
        let record = self.inventory.vm(vm);
        let groups: Vec<&Selector> = self
            .run
            .rollout
            .iter()
            .flat_map(|r| r.canary_groups.iter())
            .filter_map(|g| self.inventory.group(g))
            .filter(|g| record.is_some_and(|v| g.matches(v)))
            .collect();
        if groups.is_empty() {
            // Outside the canary groups, a VM's group is its wave.
            let wave = self
                .run
                .waves
                .iter()
                .find(|w| w.vms.iter().any(|v| v == vm))?;
            let patched = wave.vms.iter().filter(|v| self.run.patched.contains(*v));
            return Some((
                format!("rollback.scope = group: wave {}", wave.index + 1),
                patched.cloned().collect(),
            ));
        }
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let patched = self.run.patched.iter().filter(|p| {
            self.inventory
                .vm(p)
                .is_some_and(|v| groups.iter().any(|g| g.matches(v)))
        });
        Some((
            format!("rollback.scope = group: canary group {}", names.join(", ")),
            patched.cloned().collect(),
        ))
    }

    pub(super) fn on_rollback(&mut self, cmd: RollbackCommand) {
        if !self.is_current(&cmd.rollout_id) || self.is_duplicate(&cmd.command_id) {
            return;
        }
        let why = format!("anomaly on {}: {}", cmd.vm_id, cmd.reason.summary);
        let widen = !matches!(
            cmd.reason.trigger,
            RollbackTrigger::Policy | RollbackTrigger::Operator
        ) && !matches!(
            self.run.phase,
            Phase::RollingBack(_, RollingBack::Everything)
        );
        let (vm, summary, at) = (cmd.vm_id.clone(), cmd.reason.summary.clone(), cmd.issued_at);
        self.run.waiting_ids.insert(cmd.command_id.clone());
        self.run.pending.push(cmd);
        if widen {
            self.widen_rollback(&vm, &summary, at);
        }
        match self.run.phase {
            Phase::Canary(hold) | Phase::Baking(hold) | Phase::Advancing(hold) => {
                self.go(Phase::RollingBack(hold, RollingBack::Anomalies), why)
            }
            Phase::Halted(halt) => self.go(
                Phase::RollingBack(Hold::Free, RollingBack::AfterHalt(halt)),
                why,
            ),
            _ => {}
        }
    }

    /// Carries out every queued rollback at once, critical first unless
    /// `rollback.order` says otherwise, then decides what follows; true
    /// when any was carried out.
    pub(super) fn execute_rollbacks(&mut self) -> bool {
        match self.rollback_config.order {
            // Stable sort: among equals, detection order stands.
            RollbackOrder::CriticalFirst => self
                .run
                .pending
                .sort_by_key(|c| std::cmp::Reverse((c.critical, c.priority))),
            RollbackOrder::AsDetected => {}
        }
        // A wave patched at once is rolled back at least as fast: a leak
        // that crashes VMs within the hour does not wait in a queue the
        // patch never waited in.
        let in_flight = self
            .rollback_config
            .max_concurrent
            .max(self.run.widest_patch_step);
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        for cmd in std::mem::take(&mut self.run.pending) {
            self.run.waiting_ids.remove(&cmd.command_id);
            if self.run.patched.contains(&cmd.vm_id) && seen.insert(cmd.vm_id.clone()) {
                due.push(cmd);
            } else {
                self.commands.executed.insert(cmd.command_id.clone());
                tracing::warn!(vm = %cmd.vm_id, "rollback for a VM this rollout has not patched (or rolls back already); skipped");
            }
        }
        let jobs: Vec<Actuation<'_>> = due.iter().map(Actuation::Rollback).collect();
        let outcomes = self.carry_out_all(&jobs, in_flight);
        let any = !due.is_empty();
        for (cmd, outcome) in due.into_iter().zip(outcomes) {
            self.rolled_back(cmd, outcome.unwrap_or(true));
        }
        if let Phase::RollingBack(hold, why) = self.run.phase {
            self.rollbacks_done(hold, why);
        }
        any
    }

    fn rolled_back(&mut self, cmd: RollbackCommand, succeeded: bool) {
        if succeeded {
            self.run.patched.remove(&cmd.vm_id);
            self.run.awaiting_recheck.remove(&cmd.vm_id);
        }
        self.run.rollbacks.push(RollbackRecord {
            order: self.run.rollbacks.len() + 1,
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

    /// Every queued rollback is done: where the rollout goes from here.
    fn rollbacks_done(&mut self, hold: Hold, why: RollingBack) {
        let n = self.run.rollbacks.len();
        let policy = self.rollback_config.on_anomaly;
        let halted = format!("halted after {n} rollback(s); nothing more is deployed");
        match why {
            RollingBack::Everything => {
                if self.run.patched.is_empty() {
                    self.go(
                        Phase::RolledBack,
                        format!("emergency rollback done: {n} VM(s) rolled back"),
                    );
                }
                return;
            }
            // Halted before: it halts again as it halted (unless every VM
            // goes back).
            RollingBack::AfterHalt(halt) if policy != OnAnomaly::RollBackAll => {
                return self.go(Phase::Halted(halt), halted);
            }
            RollingBack::AfterHalt(_) | RollingBack::Anomalies => {}
        }
        let budget = self
            .rollback_config
            .error_budget
            .map(|b| b.cumulative_vms(self.run.ever_patched.len().max(1)));
        if let (OnAnomaly::Continue, Some(budget)) = (policy, budget)
            && n > budget
        {
            return self.go(
                Phase::Halted(Halt::Stopped),
                format!("error budget exceeded: {n} rollbacks, budget {budget}; halted"),
            );
        }
        match policy {
            OnAnomaly::RollBackAll => {
                let at = self.clock;
                let summary = format!("rollback.on_anomaly = roll-back-all, after {n} rollback(s)");
                self.roll_back_everything(RollbackTrigger::Policy, &summary, at, summary.clone());
                if self.run.patched.is_empty() {
                    self.go(
                        Phase::RolledBack,
                        format!("{n} VM(s) rolled back; none left patched"),
                    );
                }
            }
            OnAnomaly::Halt => self.go(Phase::Halted(Halt::Stopped), halted),
            OnAnomaly::Continue => self.go(
                Phase::Baking(hold),
                format!("{n} VM(s) rolled back; continuing without them"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::phase::{Halt, Phase};
    use super::super::testkit::*;
    use crate::rollout::config::OnAnomaly;
    use bellwether_schemas::{ManualAction, RolloutState};

    #[test]
    fn critical_vms_are_rolled_back_first_whatever_order_they_were_caught_in() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        let patched: Vec<String> = t.actor.patched().iter().cloned().collect();
        let (critical, other) = (&patched[0], &patched[1]);
        assert!(t.is_critical(critical) && !t.is_critical(other));
        // Caught in one window: the critical VM goes first.
        t.handle_all(vec![rollback_of(other, false), rollback_of(critical, true)]);
        let order: Vec<&str> = t
            .actor
            .rollbacks()
            .iter()
            .map(|r| r.vm_id.as_str())
            .collect();
        assert_eq!(order, [critical.as_str(), other.as_str()]);
        assert_eq!(t.actor.phase(), Phase::Halted(Halt::Stopped));
    }

    #[test]
    fn a_rollback_after_an_abort_is_carried_out_and_the_rollout_stays_halted() {
        let mut config = Kit::config();
        config.rollback.on_anomaly = OnAnomaly::Continue;
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        let vm = t.actor.patched().iter().next().cloned().unwrap();
        t.handle(manual_command("r1", ManualAction::Abort));
        t.handle(rollback_of(&vm, true));
        assert_eq!(t.actor.rollbacks().len(), 1, "carried out at once");
        t.report_at(200);
        assert_eq!(t.actor.rollbacks().len(), 1);
        assert_eq!(
            t.actor.phase(),
            Phase::Halted(Halt::Aborted),
            "an aborted rollout does not continue after a late rollback"
        );
        assert_eq!(t.actor.waves().len(), 1, "no wave after the abort");
    }

    #[test]
    fn an_emergency_rollback_ends_rolled_back_with_no_widening() {
        let mut config = Kit::config();
        config.rollback.scope = crate::rollout::config::RollbackScope::Rollout;
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        let patched = t.actor.patched().len();
        let vm = t.actor.patched().iter().next().cloned().unwrap();
        // An anomaly caught as the operator rolls everything back.
        t.handle_all(vec![
            manual_command("r1", ManualAction::Rollback),
            rollback_of(&vm, false),
        ]);
        assert_eq!(t.actor.state(), RolloutState::RolledBack);
        assert_eq!(t.actor.rollbacks().len(), patched, "each VM once");
    }
}
