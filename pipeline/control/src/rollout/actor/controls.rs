//! An operator's controls: pause, resume, promote the baking wave, abort,
//! and roll everything back (approval by hand is in `approvals`).

use super::RolloutActor;
use super::phase::{Halt, Hold, Phase};
use crate::rollout::actuator::Actuator;
use bellwether_schemas::{ManualAction, ManualCommand, RollbackTrigger, RolloutEventKind};

impl<A: Actuator> RolloutActor<A> {
    pub(super) fn on_manual(&mut self, cmd: ManualCommand) {
        if cmd.action == ManualAction::Approve {
            return self.on_manual_approve(cmd);
        }
        let running = self
            .run
            .rollout
            .as_ref()
            .is_some_and(|r| r.id == cmd.rollout_id);
        let phase = self.run.phase;
        let applied = running
            && match cmd.action {
                ManualAction::Pause => !phase.is_final() && phase.hold() != Hold::Paused,
                ManualAction::Resume => phase.hold() != Hold::Free,
                ManualAction::Promote => matches!(phase, Phase::Baking(_)),
                // Aborting a halted rollout closes it: the next approved
                // one may start.
                ManualAction::Abort => !phase.is_final() || matches!(phase, Phase::Halted(_)),
                ManualAction::Rollback => phase != Phase::RolledBack,
                ManualAction::Approve => false,
            };
        self.record(RolloutEventKind::ManualControl {
            action: cmd.action.as_str().to_string(),
            by: cmd.by.clone(),
            reason: cmd.reason.clone(),
            applied,
        });
        if !applied {
            tracing::warn!(rollout = %cmd.rollout_id, action = cmd.action.as_str(), state = phase.state().as_str(), "manual control not applicable; ignored");
            return;
        }
        let why = format!("{} by {}: {}", cmd.action.as_str(), cmd.by, cmd.reason);
        match cmd.action {
            ManualAction::Approve => {}
            ManualAction::Pause => {
                tracing::info!(rollout = %cmd.rollout_id, "{why}");
                self.hold(Hold::Paused);
            }
            ManualAction::Resume => {
                tracing::info!(rollout = %cmd.rollout_id, "{why}");
                self.hold(Hold::Free);
                self.advance();
            }
            ManualAction::Promote => {
                self.wave_baked();
                self.hold(Hold::Free);
                self.issue_next_wave();
            }
            ManualAction::Abort => {
                for dropped in self.run.pending.drain(..) {
                    self.run.waiting_ids.remove(&dropped.command_id);
                }
                self.run.wave_queue.clear();
                self.go(Phase::Halted(Halt::Aborted), why);
            }
            ManualAction::Rollback => {
                let at = self.now_or(cmd.at);
                let summary = format!("emergency rollback: {why}");
                self.roll_back_everything(RollbackTrigger::Operator, &summary, at, why);
                if self.run.patched.is_empty() {
                    self.go(Phase::RolledBack, "nothing was patched".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::phase::{Halt, Hold, Phase};
    use super::super::testkit::*;
    use bellwether_schemas::{ControlMessage, ManualAction, RolloutState};

    #[test]
    fn a_paused_rollout_starts_no_wave_until_resumed() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        t.handle(manual_command("r1", ManualAction::Pause));
        assert!(t.actor.is_paused());
        assert_eq!(t.actor.phase(), Phase::Baking(Hold::Paused));
        t.report_at(500);
        assert_eq!(t.actor.waves().len(), 1, "no wave while paused");
        t.handle(manual_command("r1", ManualAction::Resume));
        assert!(!t.actor.is_paused());
        assert_eq!(
            t.actor.waves().len(),
            2,
            "resuming starts the baked wave's successor"
        );
    }

    #[test]
    fn promote_ends_the_bake_early_and_lifts_a_pause() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        t.handle(manual_command("r1", ManualAction::Pause));
        t.handle(manual_command("r1", ManualAction::Promote));
        assert_eq!(t.actor.waves().len(), 2);
        assert!(!t.actor.is_paused());
    }

    #[test]
    fn a_control_that_does_not_apply_is_recorded_as_not_applied() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        t.handle(manual_command("r1", ManualAction::Resume));
        t.handle(manual_command("other", ManualAction::Pause));
        let applied: Vec<bool> = t
            .actor
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                bellwether_schemas::RolloutEventKind::ManualControl { applied, .. } => {
                    Some(*applied)
                }
                _ => None,
            })
            .collect();
        assert_eq!(applied, [false, false]);
        assert!(!t.actor.is_paused());
    }

    #[test]
    fn abort_halts_for_good_and_rollback_takes_every_vm_back_critical_first() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        t.handle(manual_command("r1", ManualAction::Promote));
        let patched = t.actor.patched().len();
        t.handle(manual_command("r1", ManualAction::Abort));
        assert_eq!(t.actor.phase(), Phase::Halted(Halt::Aborted));
        t.handle(manual_command("r1", ManualAction::Rollback));
        let published = t.published(|m| matches!(m, ControlMessage::Rollback(_)));
        assert_eq!(published, patched);
        // Carried out as soon as the control topic brings the commands
        // back: no window report needed.
        assert_eq!(t.actor.state(), RolloutState::RolledBack);
        assert_eq!(t.actor.rollbacks().len(), patched);
        let critical: Vec<bool> = t.actor.rollbacks().iter().map(|r| r.critical).collect();
        assert!(critical.windows(2).all(|w| w[0] >= w[1]), "{critical:?}");
        assert!(critical[0]);
    }
}
