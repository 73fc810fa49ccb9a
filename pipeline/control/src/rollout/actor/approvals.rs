//! Approvals: submitted patches decided by the rules in force, waiting for
//! a human or a delay, rejected, or approved and queued one at a time.

use super::RolloutActor;
use crate::approval::rules::{ApprovalConfig, Rules, describe};
use crate::rollout::actuator::Actuator;
use bellwether_schemas::{
    Approval, ApprovalDecision, ApprovalRulesUpdate, ControlMessage, EventTime, ManualCommand,
    PatchSubmission, RolloutEventKind,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};

/// A submitted patch that is not approved yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingPatch {
    /// The submission.
    pub submission: PatchSubmission,
    /// When its rule's approval takes effect on the actor's clock (None:
    /// it waits for a human).
    pub due: Option<EventTime>,
}

/// Every rollout the actor heard of, by where it stands.
pub(super) struct Approvals {
    /// Submitted patches waiting for a human or for their rule's delay.
    waiting: Vec<WaitingPatch>,
    /// Approved rollouts waiting for the running one to end (one rollout
    /// at a time).
    queued: VecDeque<Approval>,
    /// Rejected rollouts, with who rejected them.
    rejected: HashMap<String, String>,
    /// Rollouts that ran before the current one.
    pub(super) finished: HashSet<String>,
    /// Canary groups a submission chose for its rollout.
    canary_groups_of: HashMap<String, Vec<String>>,
    /// The approval rules in force: the config's, then the last set put in
    /// force on the control topic.
    rules: ApprovalConfig,
}

impl Approvals {
    pub(super) fn new(rules: ApprovalConfig) -> Approvals {
        Approvals {
            waiting: Vec::new(),
            queued: VecDeque::new(),
            rejected: HashMap::new(),
            finished: HashSet::new(),
            canary_groups_of: HashMap::new(),
            rules,
        }
    }

    /// Puts approval rules from the control topic in force, unless they
    /// are invalid.
    pub(super) fn put_in_force(&mut self, update: ApprovalRulesUpdate) {
        match update.rules.problem() {
            Some((key, reason)) => {
                tracing::warn!(by = %update.by, "approval rules not put in force: {key}: {reason}")
            }
            None => {
                tracing::info!(by = %update.by, rules = update.rules.rules.len(), "approval rules in force");
                self.rules = update.rules;
            }
        }
    }

    /// The canary groups `rollout_id`'s submission chose, if it chose.
    pub(super) fn canary_groups_of(&self, rollout_id: &str) -> Option<Vec<String>> {
        self.canary_groups_of.get(rollout_id).cloned()
    }
}

impl<A: Actuator> RolloutActor<A> {
    /// Submitted patches waiting for a human or for their rule's delay.
    pub fn waiting_patches(&self) -> &[WaitingPatch] {
        &self.approvals.waiting
    }

    /// Approved rollouts waiting for the running one to end.
    pub fn queued_rollouts(&self) -> impl Iterator<Item = &str> {
        self.approvals.queued.iter().map(|a| a.rollout_id.as_str())
    }

    fn is_known(&self, rollout_id: &str) -> bool {
        let a = &self.approvals;
        std::iter::once(&self.run)
            .chain(&self.parked)
            .any(|r| r.rollout.as_ref().is_some_and(|r| r.id == rollout_id))
            || a.finished.contains(rollout_id)
            || a.queued.iter().any(|q| q.rollout_id == rollout_id)
            || a.waiting
                .iter()
                .any(|w| w.submission.rollout_id == rollout_id)
            || a.rejected.contains_key(rollout_id)
    }

    pub(super) fn on_submission(&mut self, mut s: PatchSubmission) {
        if self.is_known(&s.rollout_id) {
            tracing::debug!(rollout = %s.rollout_id, "submission seen again; ignored");
            return;
        }
        // Undecided: the rules in force decide, and the decided submission
        // is published for the audit trail and the dashboards.
        let decision = crate::approval::submit::decide(&self.approvals.rules, &s);
        if s.decision.is_none() {
            s.decision = Some(decision.clone());
            self.outbox.push(ControlMessage::Submission(s.clone()));
        }
        tracing::info!(rollout = %s.rollout_id, patch = %s.patch.id, decision = %describe(&decision), "patch submitted");
        if let Some(groups) = &s.canary_groups {
            self.approvals
                .canary_groups_of
                .insert(s.rollout_id.clone(), groups.clone());
        }
        match decision {
            ApprovalDecision::Reject { by } => {
                self.approvals.rejected.insert(s.rollout_id.clone(), by);
            }
            ApprovalDecision::Manual { .. } => self.approvals.waiting.push(WaitingPatch {
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
                    self.approvals.waiting.push(WaitingPatch {
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
    pub(super) fn approve_due(&mut self) {
        let clock = self.clock;
        let due: Vec<WaitingPatch> = self
            .approvals
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

    /// An operator's approval of a patch waiting for a human.
    pub(super) fn on_manual_approve(&mut self, cmd: ManualCommand) {
        let waiting = self
            .approvals
            .waiting
            .iter()
            .find(|w| w.submission.rollout_id == cmd.rollout_id)
            .cloned();
        self.record_for(
            &cmd.rollout_id,
            RolloutEventKind::ManualControl {
                action: cmd.action.as_str().to_string(),
                by: cmd.by.clone(),
                reason: cmd.reason.clone(),
                applied: waiting.is_some(),
            },
        );
        match waiting {
            Some(w) => self.approve(w.submission, format!("{} (by hand)", cmd.by)),
            None => match self.approvals.rejected.get(&cmd.rollout_id) {
                Some(by) => {
                    tracing::warn!(rollout = %cmd.rollout_id, "rejected by {by}: an approval does not override a rejection; ignored")
                }
                None => {
                    tracing::warn!(rollout = %cmd.rollout_id, "no submitted patch waits under this rollout id; approval ignored")
                }
            },
        }
    }

    pub(super) fn on_approval(&mut self, mut approval: Approval) {
        let id = approval.rollout_id.clone();
        // An approval settles a submitted patch waiting under its rollout
        // id; the submission knows the patch best.
        let waiting = &mut self.approvals.waiting;
        if let Some(w) = waiting.iter().find(|w| w.submission.rollout_id == id) {
            approval.patch = w.submission.patch.clone();
        }
        waiting.retain(|w| w.submission.rollout_id != id);
        if let Some(by) = self.approvals.rejected.get(&id) {
            tracing::warn!(rollout = %id, "rejected by {by}: an approval does not override a rejection; ignored");
            return;
        }
        if self.is_known(&id) {
            tracing::debug!(rollout = %id, "approval seen again; ignored");
            return;
        }
        if !self.has_a_free_place() || !self.approvals.queued.is_empty() {
            tracing::info!(approved = %id, "rollout.max_parallel rollouts are running; the approved one starts when one ends");
            self.approvals.queued.push_back(approval);
            return;
        }
        tracing::info!(rollout = %id, patch = %approval.patch.id, by = %approval.approved_by, "patch approved; rollout starts");
        let now = self.now_or(approval.approved_at);
        self.start(&id, approval.patch, now);
    }

    /// Starts the next approved rollout, if one is queued (a place is
    /// free).
    pub(super) fn start_queued(&mut self) {
        if let Some(next) = self.approvals.queued.pop_front() {
            tracing::info!(rollout = %next.rollout_id, "a rollout's place is free; the next approved one starts");
            let now = self.now_or(next.approved_at);
            self.start(&next.rollout_id, next.patch, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use bellwether_schemas::{ApprovalDecision, ControlMessage, ManualAction, RolloutState};

    #[test]
    fn a_patch_for_a_human_waits_until_approved_by_hand() {
        let mut t = Kit::new(Kit::config());
        t.handle(submission("r1", Some(manual_decision())));
        assert_eq!(t.actor.waiting_patches().len(), 1);
        assert!(t.actor.rollout().is_none(), "nothing starts unapproved");
        t.handle(manual_command("r1", ManualAction::Approve));
        assert!(t.actor.waiting_patches().is_empty());
        assert_eq!(t.actor.rollout().map(|r| r.id.as_str()), Some("r1"));
        assert_eq!(
            t.actor.state(),
            RolloutState::Baking,
            "the canary wave is out"
        );
        let approvals = t.published(
            |m| matches!(m, ControlMessage::Approval(a) if a.approved_by == "ops (by hand)"),
        );
        assert_eq!(
            approvals, 1,
            "the approval is published for the audit trail"
        );
    }

    #[test]
    fn an_approval_does_not_override_a_rejection() {
        let mut t = Kit::new(Kit::config());
        let reject = ApprovalDecision::Reject {
            by: "rule no-fridays".into(),
        };
        t.handle(submission("r1", Some(reject)));
        t.handle(manual_command("r1", ManualAction::Approve));
        t.handle(approval("r1"));
        assert!(t.actor.rollout().is_none());
        assert!(t.actor.waiting_patches().is_empty());
    }

    #[test]
    fn a_second_approval_queues_until_the_first_rollout_ends() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        t.handle(approval("r2"));
        assert_eq!(t.actor.queued_rollouts().collect::<Vec<_>>(), ["r2"]);
        assert_eq!(t.actor.rollout().map(|r| r.id.as_str()), Some("r1"));
        t.handle(approval("r2"));
        assert_eq!(
            t.actor.queued_rollouts().count(),
            1,
            "an approval seen again is not queued twice"
        );
        t.handle(manual_command("r1", ManualAction::Abort));
        assert_eq!(t.actor.rollout().map(|r| r.id.as_str()), Some("r2"));
        assert_eq!(t.actor.queued_rollouts().count(), 0);
        t.handle(approval("r1"));
        assert_eq!(
            t.actor.queued_rollouts().count(),
            0,
            "a finished rollout does not run again"
        );
    }

    /// The state of rollout `id` and the VMs it ever patched.
    fn view(t: &Kit, id: &str) -> (RolloutState, Vec<String>) {
        let r = t.actor.rollouts();
        let r = r.iter().find(|r| r.rollout.id == id).unwrap();
        (r.state, r.ever_patched.iter().cloned().collect())
    }

    #[test]
    fn rollouts_run_side_by_side_on_disjoint_vms_and_an_anomaly_halts_only_its_own() {
        let mut config = Kit::config();
        config.rollout.max_parallel = 2;
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        t.handle(approval("r2"));
        t.handle(approval("r3"));
        assert_eq!(t.actor.rollouts().len(), 2, "two run at once");
        assert_eq!(t.actor.queued_rollouts().collect::<Vec<_>>(), ["r3"]);
        // Both start with the canary ring: r1 has it, r2's VMs wait.
        assert_eq!(view(&t, "r1").1, CANARIES);
        assert_eq!(view(&t, "r2"), (RolloutState::Canary, vec![]));
        // An anomaly in r1 halts r1 alone; its VMs are free for r2 then.
        t.handle(rollback_in("r1", CANARIES[0], false));
        t.report_at(5);
        assert!(view(&t, "r1").0.is_final(), "{:?}", view(&t, "r1"));
        let (state, patched) = view(&t, "r2");
        assert_eq!(patched, CANARIES, "r2 went on");
        assert!(!state.is_final(), "{state:?}");
        // r1's place frees once an operator closes it: r3 starts.
        t.handle(manual_command("r1", ManualAction::Abort));
        assert_eq!(t.actor.queued_rollouts().count(), 0);
        assert!(t.actor.rollouts().iter().any(|r| r.rollout.id == "r3"));
        let calls = t.actuator_calls();
        let patches_of = |vm: &str| {
            calls
                .iter()
                .filter(|c| c == &&("patch", vm.to_string()))
                .count()
        };
        assert_eq!(
            patches_of(CANARIES[1]),
            2,
            "once by r1, once by r2: {calls:?}"
        );
    }
}
