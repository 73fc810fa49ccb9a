//! Waves: planned when a rollout starts, issued a few VMs at a time inside
//! the maintenance window, baked, and the next one started.

use super::RolloutActor;
use super::phase::{Halt, Hold, Phase, RollingBack};
use crate::rollout::actuator::{Actuation, Actuator};
use crate::rollout::config::OnAnomaly;
use crate::rollout::detect::Detection;
use crate::rollout::planner::{Holdback, plan_waves, wave_plan};
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, Patch, PatchCommand, RollbackTrigger, Rollout,
    RolloutEventKind, RolloutState, Wave, WavePlan,
};

impl<A: Actuator> RolloutActor<A> {
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
    /// A rollout running before it goes on beside it (this call starts one
    /// at once; approvals wait for a place, `rollout.max_parallel`); a
    /// finished one is kept as done, its VMs keep the patch.
    pub fn start(&mut self, rollout_id: &str, patch: Patch, now: EventTime) {
        self.park_current();
        self.clock = self.clock.max(now);
        let canary_groups = self
            .approvals
            .canary_groups_of(rollout_id)
            .unwrap_or_else(|| self.rollout_config.canary_groups.clone());
        let (plan, detection) = wave_plan(
            &self.inventory,
            &self.rollout_config,
            &self.judge,
            &canary_groups,
            rollout_id,
            self.noise.as_ref(),
        );
        let holdback = Holdback::from_config(&self.rollout_config, &self.judge);
        self.run.planned = plan_waves(&self.inventory, &plan, &canary_groups, rollout_id, holdback);
        self.run.rollout = Some(Rollout {
            id: rollout_id.to_string(),
            patch,
            canary_groups,
            plan,
            state: RolloutState::Pending,
            created_at: now,
        });
        if let Some(planned) = self.canary_stage_planned(detection) {
            self.record(planned);
        }
        self.issue_next_wave();
    }

    /// What `rollout.detect` made of the canary stage, for the history
    /// (None where it is not set); a stage short of its goal is warned of.
    fn canary_stage_planned(&self, detection: Option<Detection>) -> Option<RolloutEventKind> {
        let rollout = self.run.rollout.as_ref()?;
        let (canary_vms, bake_minutes, detects, met) = match detection {
            Some(d) => (d.canary_vms, d.bake_minutes, d.describe(), d.met),
            None => {
                self.rollout_config.detect.as_ref()?;
                let last = rollout.plan.waves.iter().take_while(|w| w.canary).last()?;
                (
                    last.size.cumulative_vms(self.inventory.vms().len()),
                    last.bake_minutes,
                    "rollout.detect is set, but no window has measured the fleet's noise yet: the configured canary stage is kept, what it can catch is unknown".to_string(),
                    false,
                )
            }
        };
        if !met {
            tracing::warn!(rollout = %rollout.id, plan = %detects, "the canary stage falls short of rollout.detect");
        }
        Some(RolloutEventKind::CanaryStagePlanned {
            canary_vms,
            bake_minutes,
            detects,
        })
    }

    /// Starts the next planned wave, or completes the rollout when none is
    /// left; outside the maintenance window the wave waits for it.
    pub(super) fn issue_next_wave(&mut self) {
        let Some(rollout) = self.run.rollout.as_ref() else {
            return;
        };
        let (id, patch_id) = (rollout.id.clone(), rollout.patch.id.clone());
        let plan = rollout.plan.clone();
        let run = &self.run;
        // Waves that add no VM (tiny fleets) are skipped.
        let Some(index) =
            (run.waves.len()..run.planned.len()).find(|&i| !run.planned[i].is_empty())
        else {
            self.go(
                Phase::Completed,
                "every wave deployed and baked healthy".into(),
            );
            return;
        };
        if let Some(w) = &self.window
            && !w.is_open(self.clock)
        {
            if self.run.window_wait_recorded != Some(index) {
                self.run.window_wait_recorded = Some(index);
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
        let spec = plan.waves[index];
        let vms = self.run.planned[index].clone();
        let hold = self.run.phase.hold();
        let target = if spec.canary {
            Phase::Canary(hold)
        } else {
            Phase::Advancing(hold)
        };
        self.go(
            target,
            format!("deploying wave {} ({} VMs)", index + 1, vms.len()),
        );
        while self.run.waves.len() < index {
            // Record skipped empty waves so indexes line up with the plan.
            let i = self.run.waves.len();
            self.run.waves.push(Wave {
                index: i,
                vms: Vec::new(),
                started_at: self.clock,
                bake_minutes: 0,
                canary: plan.waves[i].canary,
            });
        }
        self.run.wave_queue = vms.iter().cloned().collect();
        self.run.wave_unexecuted = vms.iter().cloned().collect();
        self.run.waves.push(Wave {
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
    /// `rollout.max_concurrency` in flight, while the rollout deploys, is
    /// not paused, and the maintenance window is open.
    fn issue_queued(&mut self, rollout_id: &str, patch_id: &str) {
        let phase = self.run.phase;
        if self.run.wave_queue.is_empty()
            || !phase.is_deploying()
            || phase.hold() == Hold::Paused
            || self.window.as_ref().is_some_and(|w| !w.is_open(self.clock))
        {
            return;
        }
        let limit = match self.rollout_config.max_concurrency {
            0 => usize::MAX,
            n => n,
        };
        let wave = self.run.waves.last().map_or(0, |w| w.index);
        let mut in_flight = self.run.wave_unexecuted.len() - self.run.wave_queue.len();
        let mut issued = 0;
        // A VM another rollout's unbaked wave holds waits for it (to the
        // back of the queue, tried again at the next window).
        let claimed = self.claimed_by_others();
        let mut skipped = 0;
        while in_flight < limit && skipped < self.run.wave_queue.len() {
            let Some(vm) = self.run.wave_queue.pop_front() else {
                break;
            };
            if claimed.contains(&vm) {
                self.run.wave_queue.push_back(vm);
                skipped += 1;
                continue;
            }
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
        self.run.widest_patch_step = self.run.widest_patch_step.max(issued);
    }

    fn issue_more(&mut self) {
        if let Some(r) = &self.run.rollout {
            let (id, patch) = (r.id.clone(), r.patch.id.clone());
            self.issue_queued(&id, &patch);
        }
    }

    pub(super) fn on_patch(&mut self, cmd: PatchCommand) {
        if !self.is_current(&cmd.rollout_id) || self.is_duplicate(&cmd.command_id) {
            return;
        }
        self.run.waiting_ids.insert(cmd.command_id.clone());
        self.run.patches_waiting.push(cmd);
    }

    /// Carries out the patch commands received, together through the
    /// actuator's pool (unless the rollout stopped deploying since they
    /// were issued), then issues more of the wave or lets it bake.
    pub(super) fn execute_patches(&mut self) {
        let waiting = std::mem::take(&mut self.run.patches_waiting);
        for cmd in &waiting {
            self.run.waiting_ids.remove(&cmd.command_id);
        }
        if waiting.is_empty() {
            return;
        }
        // A patch issued before the rollout stopped (halted, aborted, or
        // rolling everything back) is not carried out.
        let stopped = match self.run.phase {
            Phase::RollingBack(_, RollingBack::Anomalies) => {
                self.rollback_config.on_anomaly != OnAnomaly::Continue
            }
            Phase::RollingBack(..) => true,
            phase => phase.is_final(),
        };
        if stopped {
            for cmd in waiting {
                self.commands.executed.insert(cmd.command_id.clone());
                self.run.wave_unexecuted.remove(&cmd.vm_id);
                tracing::info!(vm = %cmd.vm_id, state = self.state().as_str(), "patch command not carried out: the rollout stopped deploying");
            }
            return;
        }
        let jobs: Vec<Actuation<'_>> = waiting.iter().map(Actuation::Patch).collect();
        let outcomes = self.carry_out_all(&jobs, usize::MAX);
        let mut failed = Vec::new();
        for (cmd, outcome) in waiting.iter().zip(outcomes) {
            // A patch executed before a restart counts as deployed.
            if outcome == Some(false) {
                self.run.failed_patches.insert(cmd.vm_id.clone());
                failed.push(cmd.vm_id.clone());
            } else {
                let run = &mut self.run;
                run.patched.insert(cmd.vm_id.clone());
                run.ever_patched.insert(cmd.vm_id.clone());
                run.awaiting_recheck.insert(cmd.vm_id.clone(), self.clock);
            }
            self.run.wave_unexecuted.remove(&cmd.vm_id);
        }
        if !failed.is_empty() {
            self.patches_failed(&failed);
        }
        self.issue_more();
        if let Phase::Canary(hold) | Phase::Advancing(hold) = self.run.phase
            && self.run.wave_unexecuted.is_empty()
        {
            let wave = self.run.waves.len();
            self.go(Phase::Baking(hold), format!("wave {wave} deployed; baking"));
        }
    }

    /// Patches the actuator failed (after its own retries) count against
    /// the wave as anomalies do, per `rollback.on_anomaly`: "halt" halts
    /// the rollout, "roll-back-all" takes every patched VM back, and
    /// "continue" goes on without them until, with rollbacks, they pass
    /// `rollback.error_budget`. A deploy that fails is never baked as
    /// healthy.
    fn patches_failed(&mut self, vms: &[String]) {
        let n = self.run.failed_patches.len();
        let why = format!(
            "the patch failed on {} VM(s) ({}{})",
            vms.len(),
            vms.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if vms.len() > 3 { ", ..." } else { "" }
        );
        match self.rollback_config.on_anomaly {
            OnAnomaly::Halt => self.go(
                Phase::Halted(Halt::Stopped),
                format!("{why}; halted: nothing more is deployed"),
            ),
            OnAnomaly::RollBackAll => {
                let at = self.clock;
                let summary = format!("rollback.on_anomaly = roll-back-all: {why}");
                self.roll_back_everything(RollbackTrigger::Policy, &summary, at, summary.clone());
            }
            OnAnomaly::Continue => {
                let budget = self
                    .rollback_config
                    .error_budget
                    .map(|b| b.cumulative_vms(self.run.ever_patched.len().max(1)));
                let spent = n + self.run.rollbacks.len();
                if let Some(budget) = budget
                    && spent > budget
                {
                    self.go(
                        Phase::Halted(Halt::Stopped),
                        format!(
                            "{why}; error budget exceeded: {n} failed patch(es) and {} rollback(s), budget {budget}; halted",
                            self.run.rollbacks.len()
                        ),
                    );
                }
            }
        }
    }

    /// Records the current wave as baked.
    pub(super) fn wave_baked(&mut self) {
        let index = self.run.waves.last().map_or(0, |w| w.index);
        self.run.baked = self.run.waves.len();
        self.record(RolloutEventKind::WaveBaked { wave: index });
    }

    /// Moves the rollout on as far as the clock allows: the first wave
    /// once the window opens, the rest of a wave, the next wave once this
    /// one baked and every VM of it was seen again.
    pub(super) fn advance(&mut self) {
        match self.run.phase {
            phase if phase.hold() != Hold::Free => return,
            // Approved, waiting for the maintenance window.
            Phase::Pending(_) if self.run.rollout.is_some() && self.run.waves.is_empty() => {
                return self.issue_next_wave();
            }
            Phase::Canary(_) | Phase::Advancing(_) => return self.issue_more(),
            Phase::Baking(_) => {}
            _ => return,
        }
        let Some(wave) = self.run.waves.last() else {
            return;
        };
        if self.run.baked == self.run.waves.len() {
            // Baked; the next wave waits for the maintenance window.
            return self.issue_next_wave();
        }
        if !self.run.wave_unexecuted.is_empty() {
            // Continuing after a rollback with VMs of the wave still queued.
            return self.issue_more();
        }
        // The next wave waits until every VM of this one was seen again.
        if let Some(vm) = wave
            .vms
            .iter()
            .find(|vm| self.run.awaiting_recheck.contains_key(*vm))
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
        self.wave_baked();
        self.issue_next_wave();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use bellwether_schemas::{FleetNoise, MetricNoise, RolloutEventKind, RolloutState};

    #[test]
    fn the_canary_group_goes_first_and_the_next_wave_waits_for_the_bake() {
        let mut t = Kit::new(Kit::config());
        t.handle(approval("r1"));
        let first = t.actor.planned_waves()[0].clone();
        assert!(
            first.iter().all(|vm| CANARIES.contains(&vm.as_str())),
            "{first:?}"
        );
        assert_eq!(t.actor.patched().iter().cloned().collect::<Vec<_>>(), first);
        assert_eq!(t.actor.state(), RolloutState::Baking);
        // The first wave bakes 120 minutes.
        t.report_at(119);
        assert_eq!(t.actor.waves().len(), 1);
        t.report_at(120);
        assert_eq!(
            t.actor.waves().len(),
            2,
            "the second wave starts once baked"
        );
        assert!(t.actor.patched().len() > first.len());
    }

    #[test]
    fn a_failed_patch_halts_the_rollout_instead_of_baking_it() {
        let mut t = Kit::new(Kit::config());
        t.fail_patches_on(CANARIES[1]);
        t.handle(approval("r1"));
        assert_eq!(t.actor.state(), RolloutState::Halted);
        assert_eq!(
            t.actor.failed_patches().iter().collect::<Vec<_>>(),
            [CANARIES[1]]
        );
        assert!(!t.actor.patched().contains(CANARIES[1]));
        t.report_at(24 * 60);
        assert_eq!(t.actor.waves().len(), 1, "no wave after a failed deploy");
        let failed = t
            .actor
            .events()
            .iter()
            .filter(|e| matches!(&e.kind, RolloutEventKind::ActuationFailed { vm_id, .. } if vm_id == CANARIES[1]))
            .count();
        assert_eq!(failed, 1);
    }

    #[test]
    fn with_continue_failed_patches_spend_the_error_budget() {
        let mut config = Kit::config();
        config.rollback.on_anomaly = crate::rollout::config::OnAnomaly::Continue;
        config.rollback.error_budget = Some("1".parse().unwrap());
        let mut t = Kit::new(config.clone());
        t.fail_patches_on(CANARIES[1]);
        t.handle(approval("r1"));
        assert_eq!(t.actor.state(), RolloutState::Baking, "within the budget");
        t.report_at(120);
        assert_eq!(t.actor.waves().len(), 2);
        // Two failures pass a budget of one.
        let mut t = Kit::new(config);
        t.fail_patches_on(CANARIES[0]);
        t.fail_patches_on(CANARIES[1]);
        t.handle(approval("r1"));
        assert_eq!(t.actor.state(), RolloutState::Halted);
        assert!(t.actor.patched().is_empty());
    }

    /// One metric around 100 whose change against peers spreads by 4 a
    /// window, windows correlated 0.6, controls of 15 VMs.
    fn measured_noise() -> FleetNoise {
        FleetNoise {
            window_minutes: 5.0,
            windows: 30,
            metrics: vec![MetricNoise {
                metric: "response_time_ms".into(),
                vms: 18,
                spread: 4.0,
                spread_sigmas: 1.0,
                level: 100.0,
                correlation: 0.6,
                control_vms: 15,
            }],
        }
    }

    #[test]
    fn rollout_detect_sizes_the_canary_stage_from_the_measured_noise() {
        let mut config = Kit::config();
        config.rollout.detect = Some(
            toml::from_str("shifts = { response_time_ms = \"5%\" }\nmax_canaries = \"50%\"")
                .unwrap(),
        );
        let mut t = Kit::new(config);
        t.report_noise_at(0, measured_noise());
        t.handle(approval("r1"));
        // By hand: the canary wave bakes 120 min, 10 of settling, 22
        // windows of 5. m = π/30, s = m/(1+m) = 0.094793; a 5% shift is 5,
        // z² = (5/4)² · 22 · n / (4 · (1 + (n−1)·s)) = 8.59375 · n/(1+(n−1)s)
        // must reach (5 + 1.6449)² = 44.155: n = 9 gives 43.99, n = 10
        // gives 46.37 (z 6.81, power Φ(1.81) = 0.965).
        assert_eq!(t.actor.planned_waves()[0].len(), 10);
        assert_eq!(
            t.actor.planned_waves().len(),
            2,
            "the 50% wave is the canary stage now"
        );
        let planned = t.actor.events().iter().find_map(|e| match &e.kind {
            RolloutEventKind::CanaryStagePlanned {
                canary_vms,
                bake_minutes,
                detects,
            } => Some((*canary_vms, *bake_minutes, detects.clone())),
            _ => None,
        });
        let (vms, bake, detects) = planned.expect("the plan is recorded");
        assert_eq!((vms, bake), (10, 120));
        assert!(
            detects.contains("96% chance to catch +5% response_time_ms"),
            "{detects}"
        );
        assert!(!detects.contains("short of the goal"), "{detects}");
    }

    #[test]
    fn rollout_detect_without_measured_noise_keeps_the_configured_stage_and_says_so() {
        let mut config = Kit::config();
        config.rollout.detect =
            Some(toml::from_str("shifts = { response_time_ms = \"5%\" }").unwrap());
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        assert_eq!(t.actor.planned_waves()[0].len(), 2);
        assert!(t.actor.events().iter().any(|e| matches!(&e.kind,
            RolloutEventKind::CanaryStagePlanned { canary_vms: 2, detects, .. }
                if detects.contains("no window has measured the fleet's noise"))));
    }

    #[test]
    fn a_wave_is_patched_a_few_vms_at_a_time() {
        let mut config = Kit::config();
        config.rollout.max_concurrency = 1;
        config.rollout.waves = vec!["25%".parse().unwrap(), "100%".parse().unwrap()];
        config.rollout.canary_waves = 1;
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        let wave = t.actor.planned_waves()[0].len();
        assert!(wave > 1);
        assert_eq!(
            t.actuator_calls().len(),
            wave,
            "each patch issued after the one before"
        );
        assert_eq!(t.widest_step(), 1);
    }

    #[test]
    fn a_baked_wave_waiting_for_the_window_is_baked_once_however_it_is_held() {
        let mut config = Kit::config();
        // Open from 02:00 to 03:00 UTC each day; the kit's clock starts at
        // midnight.
        config.rollout.maintenance_window = Some(crate::rollout::config::MaintenanceWindowConfig {
            cron: "0 2 * * *".to_string().try_into().unwrap(),
            timezone: crate::rollout::window::TimeZoneName::UTC,
            duration_minutes: 60,
        });
        let mut t = Kit::new(config);
        t.handle(approval("r1"));
        assert_eq!(t.actor.state(), RolloutState::Pending);
        t.report_at(120);
        assert_eq!(t.actor.state(), RolloutState::Baking, "wave 1 out at 02:00");
        // Baked at 04:00, outside the window: wave 2 waits for tomorrow.
        t.report_at(245);
        t.handle(manual_command(
            "r1",
            bellwether_schemas::ManualAction::Pause,
        ));
        t.handle(manual_command(
            "r1",
            bellwether_schemas::ManualAction::Resume,
        ));
        t.report_at(250);
        let count = |t: &Kit, f: fn(&RolloutEventKind) -> bool| {
            t.actor.events().iter().filter(|e| f(&e.kind)).count()
        };
        assert_eq!(
            count(&t, |k| matches!(k, RolloutEventKind::WaveBaked { wave: 0 })),
            1
        );
        assert_eq!(
            count(&t, |k| matches!(
                k,
                RolloutEventKind::WaitingForWindow { wave: 1, .. }
            )),
            1
        );
        assert_eq!(t.actor.waves().len(), 1);
        t.report_at(24 * 60 + 120);
        assert_eq!(
            t.actor.waves().len(),
            2,
            "wave 2 starts when the window opens"
        );
    }
}
