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
use std::collections::{HashMap, HashSet};

/// The rollouts of one window's judged VMs, numbered for the wave tests.
pub(super) struct WaveSlots {
    /// Per VM slot: its rollout's number.
    of: Vec<Option<u32>>,
    /// Per number: the rollout, and the latest wave among its VMs.
    groups: Vec<(String, usize)>,
    numbers: HashMap<String, u32>,
}

impl WaveSlots {
    pub(super) fn new(vms: usize) -> WaveSlots {
        WaveSlots {
            of: vec![None; vms],
            groups: Vec::new(),
            numbers: HashMap::new(),
        }
    }

    /// VM slot `vm`, judged, was patched by `rollout_id` in `wave`.
    pub(super) fn add(&mut self, vm: usize, rollout_id: &str, wave: Option<usize>) {
        let number = match self.numbers.get(rollout_id) {
            Some(&n) => n,
            None => {
                let n = self.groups.len() as u32;
                self.numbers.insert(rollout_id.to_string(), n);
                self.groups.push((rollout_id.to_string(), 0));
                n
            }
        };
        let latest = &mut self.groups[number as usize].1;
        *latest = (*latest).max(wave.unwrap_or(0));
        self.of[vm] = Some(number);
    }
}

/// One rollout's pool on one metric: every window of every VM it patched.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// The latest wave among the VMs pooled.
    wave: usize,
    pool: WavePool,
}

impl ScoringStage {
    /// Tests every rollout's patched VMs together, and rolls them all
    /// back when their pooled windows pass the threshold.
    pub(super) fn judge_waves(
        &mut self,
        window: &ScoredWindow,
        waves: &WaveSlots,
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
        // This window into each rollout's pools.
        for (vm, group) in waves.of.iter().enumerate() {
            let Some(group) = group else { continue };
            let (rollout_id, wave) = &waves.groups[*group as usize];
            for metric in 0..metrics {
                let pool = self
                    .wave_history
                    .entry((rollout_id.clone(), metric))
                    .or_default();
                pool.wave = *wave;
                pool.pool.add(&inputs, vm, &window.vm_ids[vm], metric);
            }
        }
        for (rollout_id, wave) in &waves.groups {
            let Some(evidence) =
                (0..metrics).find_map(|m| self.judge_pool(window, rollout_id, *wave, m))
            else {
                continue;
            };
            let mut members: Vec<String> = self
                .patched_by
                .iter()
                .filter(|(_, r)| *r == rollout_id)
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
                self.wave_of.remove(&vm_id);
                out.push(ControlMessage::Rollback(command));
            }
        }
        // Pools of rollouts with nothing patched any more are over.
        let live: HashSet<&String> = self.patched_by.values().collect();
        self.wave_history
            .retain(|(rollout, _), _| live.contains(rollout));
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
        let pool = self.wave_history.get(&(rollout_id.to_string(), metric))?;
        let test = pool.pool.test(self.judge.wave_min_vms)?;
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
        let vm = self.inventory.vm(vm_id);
        let critical = vm.is_some_and(|v| v.is_critical());
        let rank = vm.map_or(1, |v| v.criticality as u32);
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
