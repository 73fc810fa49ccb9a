//! Re-checks: a patched VM is trusted once its metrics come back, and
//! `rollout.on_missing_data` decides what silence from patched VMs does.

use super::RolloutActor;
use super::phase::{Halt, Hold, Phase};
use crate::rollout::actuator::Actuator;
use crate::rollout::config::OnMissingData;
use bellwether_schemas::{ControlMessage, EventTime, RollbackTrigger, WindowReport};

impl<A: Actuator> RolloutActor<A> {
    /// Re-checks VMs after their patch: a VM is confirmed by the first
    /// window that starts at or after its patch and has its metrics; a VM
    /// missing from that window did not come back (a reboot gone wrong,
    /// whatever the command's status said) and is rolled back (trigger
    /// `recheck`). A window that covers no patched VM at all (no metrics
    /// from anywhere) decides nothing.
    pub(super) fn recheck(&mut self, report: &WindowReport) {
        if self.run.awaiting_recheck.is_empty() {
            return;
        }
        let due: Vec<(String, EventTime)> = self
            .run
            .awaiting_recheck
            .iter()
            .filter(|(_, at)| report.window_start >= **at)
            .map(|(vm, at)| (vm.clone(), *at))
            .collect();
        for (vm, patched_at) in due {
            if report.reported.contains(&vm) {
                self.run.awaiting_recheck.remove(&vm);
                tracing::debug!(vm = %vm, "reports again after its patch");
            } else if report.missing.contains(&vm) {
                self.run.awaiting_recheck.remove(&vm);
                if !self.run.patched.contains(&vm) {
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
    pub(super) fn on_missing_data(&mut self, missing: &[String]) {
        let silent: Vec<&String> = missing
            .iter()
            .filter(|vm| {
                self.run.patched.contains(*vm) && !self.run.awaiting_recheck.contains_key(*vm)
            })
            .collect();
        let phase = self.run.phase;
        if silent.is_empty() {
            if phase.hold() == Hold::WaitingForData {
                self.hold(Hold::Free);
                tracing::info!("every patched VM reports again; the rollout may advance");
            }
            return;
        }
        let names = silent
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let deploying = phase.is_deploying();
        match self.rollout_config.on_missing_data {
            OnMissingData::Halt if deploying => self.go(
                Phase::Halted(Halt::Stopped),
                format!("no metrics from patched VM(s) {names}: halted (on_missing_data = halt)"),
            ),
            // A pause already holds the next wave; resuming lifts both.
            OnMissingData::Wait if deploying && phase.hold() == Hold::Free => {
                self.hold(Hold::WaitingForData);
                tracing::warn!(vms = %names, "no metrics from patched VMs: inconclusive, the next wave waits");
            }
            OnMissingData::Proceed | OnMissingData::Halt | OnMissingData::Wait => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::phase::{Halt, Hold, Phase};
    use super::super::testkit::*;
    use crate::rollout::config::OnMissingData;
    use bellwether_schemas::{ControlMessage, RollbackTrigger};

    #[test]
    fn a_vm_that_does_not_come_back_after_its_patch_is_rolled_back() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        let patched: Vec<String> = t.actor.patched().iter().cloned().collect();
        let (gone, back) = (&patched[0], &patched[1]);
        t.report_missing_at(5, std::slice::from_ref(gone));
        let rechecks = t.published(|m| {
            matches!(m, ControlMessage::Rollback(c) if c.reason.trigger == RollbackTrigger::Recheck)
        });
        assert_eq!(rechecks, 1);
        t.report_at(10);
        let rolled: Vec<&str> = t
            .actor
            .rollbacks()
            .iter()
            .map(|r| r.vm_id.as_str())
            .collect();
        assert_eq!(rolled, [gone.as_str()]);
        assert!(t.actor.patched().contains(back));
    }

    #[test]
    fn silence_from_a_patched_vm_holds_the_next_wave_under_wait() {
        let mut config = Kit::config();
        config.rollout.on_missing_data = OnMissingData::Wait;
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        let vm = t.actor.patched().iter().next().cloned().unwrap();
        t.report_at(5); // every patched VM re-checked
        t.report_missing_at(130, std::slice::from_ref(&vm));
        assert_eq!(t.actor.phase(), Phase::Baking(Hold::WaitingForData));
        assert_eq!(t.actor.waves().len(), 1, "baked, but the next wave waits");
        t.report_at(135);
        assert_eq!(
            t.actor.waves().len(),
            2,
            "it reports again: the rollout moves on"
        );
    }

    #[test]
    fn silence_from_a_patched_vm_halts_by_default() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        let vm = t.actor.patched().iter().next().cloned().unwrap();
        t.report_at(5);
        t.report_missing_at(10, std::slice::from_ref(&vm));
        assert_eq!(t.actor.phase(), Phase::Halted(Halt::Stopped));
    }
}
