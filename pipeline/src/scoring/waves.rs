//! Waves judged whole: a rollout's patched VMs, together, against their
//! peers; past the threshold, every one of them is rolled back.
//!
//! The group is every VM the rollout has patched so far (the wave baking
//! and the waves before it): a patch that moves each a little shows in
//! all of them. Each VM's windows since it was judged are pooled per
//! metric ([`bellwether_operators::wave`]) and tested every window.

use super::{ScoringStage, describe};
use bellwether_operators::ScoredWindow;
use bellwether_operators::wave::WavePool;
use bellwether_schemas::{
    CommandId, ControlMessage, EventTime, RollbackCommand, RollbackReason, RollbackTrigger,
    ScoreRecord, WaveEvidence,
};
use std::collections::{BTreeMap, HashSet};

/// One window's judged VMs, by the rollout that patched them (in order,
/// so that rollbacks come out the same way every run).
#[derive(Debug, Default)]
pub(super) struct WaveGroups(BTreeMap<String, Group>);

/// One rollout's judged VMs in a window.
#[derive(Debug, Default)]
struct Group {
    /// VM slots.
    vms: Vec<usize>,
    /// The latest wave among them.
    latest_wave: usize,
}

impl WaveGroups {
    /// VM slot `vm`, judged, was patched by `rollout_id` in `wave`.
    pub(super) fn add(&mut self, vm: usize, rollout_id: &str, wave: usize) {
        if !self.0.contains_key(rollout_id) {
            self.0.insert(rollout_id.to_string(), Group::default());
        }
        if let Some(group) = self.0.get_mut(rollout_id) {
            group.vms.push(vm);
            group.latest_wave = group.latest_wave.max(wave);
        }
    }
}

impl ScoringStage {
    /// Pools the window's VMs with their rollout's earlier windows, and
    /// rolls back every patched VM of a rollout whose pool on some metric
    /// is past the threshold.
    pub(super) fn judge_waves(
        &mut self,
        window: &ScoredWindow,
        waves: &WaveGroups,
        scores: &[ScoreRecord],
    ) -> Vec<ControlMessage> {
        let mut out = Vec::new();
        if self.judge.wave_sigma <= 0.0 {
            return out;
        }
        let Some(inputs) = window.wave_inputs() else {
            return out;
        };
        let at = EventTime(window.range.end_ms);
        let metrics = window.metrics.len();
        for (rollout_id, group) in &waves.0 {
            let pools = self
                .wave_pools
                .entry(rollout_id.clone())
                .or_insert_with(|| vec![WavePool::default(); metrics]);
            for &vm in &group.vms {
                for (metric, pool) in pools.iter_mut().enumerate() {
                    pool.add(&inputs, vm, &window.vm_ids[vm], metric);
                }
            }
            let Some(evidence) = (0..metrics)
                .find_map(|m| self.judge_pool(window, rollout_id, group.latest_wave, m))
            else {
                continue;
            };
            let mut members: Vec<String> = self
                .patched_by
                .iter()
                .filter(|(_, p)| p.rollout_id == *rollout_id)
                .map(|(vm, _)| vm.clone())
                .collect();
            members.sort();
            for vm_id in members {
                let command_id = CommandId::rollback(rollout_id, &vm_id);
                if !self.rollbacks_issued.insert(command_id.clone()) {
                    continue;
                }
                let score = scores.iter().find(|s| s.vm_id == vm_id);
                let command =
                    self.wave_rollback(command_id, rollout_id, &vm_id, score, &evidence, at);
                self.scorer.rolled_back(&vm_id, at.0, self.settle_ms);
                self.patched_by.remove(&vm_id);
                out.push(ControlMessage::Rollback(command));
            }
        }
        // Pools of rollouts with nothing patched any more are over.
        let live: HashSet<&str> = self
            .patched_by
            .values()
            .map(|p| p.rollout_id.as_str())
            .collect();
        self.wave_pools
            .retain(|rollout, _| live.contains(rollout.as_str()));
        out
    }

    /// The evidence when the rollout's pool on `metric` is past the
    /// threshold (in its bad direction, by more than the share of the
    /// metric's `min_change`), after at least `consecutive_windows` windows.
    fn judge_pool(
        &self,
        window: &ScoredWindow,
        rollout_id: &str,
        wave: usize,
        metric: usize,
    ) -> Option<WaveEvidence> {
        let rule = &window.rules().metrics[metric];
        let test = self
            .wave_pools
            .get(rollout_id)?
            .get(metric)?
            .test(self.judge.wave_min_vms)?;
        let bad = test.windows >= self.consecutive_windows as u32
            && rule.direction.badness(test.z) > self.judge.wave_sigma
            && rule.direction.badness(test.mean_change)
                > self.judge.wave_min_change_share * rule.min_change;
        bad.then(|| WaveEvidence {
            wave,
            metric: window.metrics[metric].clone(),
            vms: test.vms,
            z: test.z,
            threshold: self.judge.wave_sigma,
            mean_change: test.mean_change,
            relative_change: test.relative_change(),
            windows: test.windows.min(u16::MAX as u32) as u16,
        })
    }

    fn wave_rollback(
        &self,
        command_id: CommandId,
        rollout_id: &str,
        vm_id: &str,
        score: Option<&ScoreRecord>,
        evidence: &WaveEvidence,
        at: EventTime,
    ) -> RollbackCommand {
        let (critical, rank) = self.criticality(vm_id);
        let own: Vec<_> = score
            .into_iter()
            .flat_map(|s| &s.verdicts)
            .filter(|v| v.metric == evidence.metric)
            .cloned()
            .collect();
        let mut summary = evidence.to_string();
        if let Some(v) = own.first() {
            summary = format!("{summary}; this VM: {}", describe(v));
        }
        RollbackCommand {
            command_id,
            rollout_id: rollout_id.to_string(),
            vm_id: vm_id.to_string(),
            critical,
            // Criticality first; within it, the VMs of a wave rank at the
            // threshold (their own anomalies, if any, rank above).
            priority: rank * 1000 + 500,
            reason: RollbackReason {
                trigger: RollbackTrigger::Wave,
                summary,
                evidence: own,
                failure: score.and_then(|s| s.failure.clone()),
                wave: Some(evidence.clone()),
            },
            issued_at: at,
        }
    }
}
