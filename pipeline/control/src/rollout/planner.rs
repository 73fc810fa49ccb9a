//! Wave planning: which VMs each wave patches.
//!
//! The canary stage takes VMs from the canary groups first, interleaved
//! across regions so the first few VMs already cover every region; later
//! waves take the rest of the fleet the same way. The order is shuffled with
//! a seed derived from the rollout id, so a re-planned rollout picks the same VMs.
//! A control holdback keeps some VMs of every control cohort unpatched
//! until the last wave, so the waves before it are always judged against
//! unpatched peers.

use super::config::RolloutConfig;
use super::detect::{Detection, PlanInputs};
use crate::inventory::Inventory;
use crate::judge::JudgeConfig;
use bellwether_schemas::{FleetNoise, VmRecord, WavePlan, WaveSize};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// VMs of each control cohort kept unpatched until the last wave.
#[derive(Debug, Clone, Copy)]
pub struct Holdback<'a> {
    /// How many per cohort: a count, or a share of the cohort.
    pub size: WaveSize,
    /// How cohorts are drawn (their narrowest level).
    pub judge: &'a JudgeConfig,
}

impl<'a> Holdback<'a> {
    /// The holdback `rollout.control_holdback` asks for, when peers judge.
    pub fn from_config(rollout: &RolloutConfig, judge: &'a JudgeConfig) -> Option<Holdback<'a>> {
        rollout
            .control_holdback
            .filter(|_| judge.peers)
            .map(|size| Holdback { size, judge })
    }

    /// The narrowest cohort of VM `id`.
    fn cohort_of(&self, inventory: &Inventory, id: &str) -> Option<String> {
        inventory
            .vm(id)
            .and_then(|vm| self.judge.cohorts_of(vm).into_iter().next().flatten())
    }
}

/// VM ids of each wave, in wave order.
pub fn plan_waves(
    inventory: &Inventory,
    plan: &WavePlan,
    canary_groups: &[String],
    rollout_id: &str,
    holdback: Option<Holdback<'_>>,
) -> Vec<Vec<String>> {
    let (mut order, rest) = deployment_order(inventory, canary_groups, rollout_id);
    let held = holdback.map_or_else(Vec::new, |h| held_back(inventory, &rest, h));
    let is_held: BTreeSet<&String> = held.iter().collect();
    order.extend(rest.iter().filter(|id| !is_held.contains(id)).cloned());
    order.extend(held);

    let mut next = order.into_iter();
    plan.wave_sizes(inventory.vms().len())
        .into_iter()
        .map(|size| next.by_ref().take(size).collect())
        .collect()
}

/// The canary groups' VMs, then the rest, each interleaved across regions.
fn deployment_order(
    inventory: &Inventory,
    canary_groups: &[String],
    rollout_id: &str,
) -> (Vec<String>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(bellwether_schemas::stable_hash(rollout_id));
    let canary: BTreeSet<&str> = canary_groups
        .iter()
        .filter_map(|g| inventory.members(g))
        .flatten()
        .map(|v| v.id.as_str())
        .collect();
    let (first, rest): (Vec<&VmRecord>, Vec<&VmRecord>) = inventory
        .vms()
        .iter()
        .partition(|v| canary.contains(v.id.as_str()));
    let first = interleave_regions(first, &mut rng);
    (first, interleave_regions(rest, &mut rng))
}

/// The last VMs of each cohort in `order`, in order: those held back.
fn held_back(inventory: &Inventory, order: &[String], h: Holdback<'_>) -> Vec<String> {
    let cohorts: Vec<Option<String>> = order.iter().map(|id| h.cohort_of(inventory, id)).collect();
    let mut sizes: BTreeMap<&Option<String>, usize> = BTreeMap::new();
    for c in &cohorts {
        *sizes.entry(c).or_default() += 1;
    }
    let mut keep: BTreeMap<&Option<String>, usize> = sizes
        .into_iter()
        .map(|(c, n)| (c, h.size.cumulative_vms(n)))
        .collect();
    // Walk from the end: the last VMs of each cohort are held back.
    let mut held = Vec::new();
    for (id, c) in order.iter().zip(&cohorts).rev() {
        if let Some(k) = keep.get_mut(c).filter(|k| **k > 0) {
            *k -= 1;
            held.push(id.clone());
        }
    }
    held.reverse();
    held
}

/// A rollout's waves before it starts (`group preview --waves`, `GET
/// /api/waves`): what each wave patches and which VMs are held back as
/// the control until the last wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WavePreview {
    /// The groups the canary stage deploys to first.
    pub canary_groups: Vec<String>,
    /// The waves, in order.
    pub waves: Vec<PreviewWave>,
    /// VMs kept unpatched as the control until the last wave, by cohort.
    pub held_back: Vec<HeldBack>,
    /// All of them.
    pub held_back_vms: usize,
    /// What the canary stage can catch, where it was planned from
    /// `rollout.detect` and the fleet's measured noise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// Why it was not, where `rollout.detect` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection_note: Option<String>,
    /// The fleet's noise it was planned from, where `rollout.detect` is set
    /// and it was measured (what `group preview --waves --noise FILE` reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<FleetNoise>,
}

/// One wave of a [`WavePreview`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewWave {
    /// 1 for the first.
    pub wave: usize,
    /// `canary` or `fleet`.
    pub stage: &'static str,
    /// How long it bakes before the next, in minutes.
    pub bake_minutes: u32,
    /// The VMs it patches.
    pub vms: Vec<String>,
    /// Of those, held back until this wave.
    pub held_back_vms: usize,
}

/// The VMs of one cohort held back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldBack {
    /// The cohort (`tags.role=web, region=eu-west-1`), or `(none)`.
    pub cohort: String,
    /// How many.
    pub vms: usize,
}

/// The wave plan of a rollout started now: the configured waves, with the
/// canary stage sized from `rollout.detect` where it is set and `noise` is
/// measured (and what that stage can catch).
pub fn wave_plan(
    inventory: &Inventory,
    rollout: &RolloutConfig,
    judge: &JudgeConfig,
    canary_groups: &[String],
    rollout_id: &str,
    noise: Option<&FleetNoise>,
) -> (WavePlan, Option<Detection>) {
    let plan = WavePlan::new(
        &rollout.wave_sizes(),
        rollout.first_bake_minutes,
        rollout.bake_minutes,
        rollout.canary_waves,
    );
    let (Some(detect), Some(noise)) = (&rollout.detect, noise) else {
        return (plan, None);
    };
    let holdback = Holdback::from_config(rollout, judge);
    let (_, rest) = deployment_order(inventory, canary_groups, rollout_id);
    let inputs = PlanInputs {
        detect,
        judge,
        settle_minutes: rollout.settle_minutes,
        fleet: inventory.vms().len(),
        held_back: holdback.map_or(0, |h| held_back(inventory, &rest, h).len()),
    };
    let (plan, detection) = inputs.plan(&plan, noise);
    (plan, Some(detection))
}

/// The waves rollout `rollout_id` would deploy in under `rollout` and
/// `judge` if it started now over `inventory`, with the fleet's `noise`
/// as measured so far (for `rollout.detect`).
pub fn preview(
    inventory: &Inventory,
    rollout: &RolloutConfig,
    judge: &JudgeConfig,
    canary_groups: &[String],
    rollout_id: &str,
    noise: Option<&FleetNoise>,
) -> WavePreview {
    let (plan, detection) = wave_plan(inventory, rollout, judge, canary_groups, rollout_id, noise);
    let holdback = Holdback::from_config(rollout, judge);
    let waves = plan_waves(inventory, &plan, canary_groups, rollout_id, holdback);
    let (_, rest) = deployment_order(inventory, canary_groups, rollout_id);
    let held: BTreeSet<String> = holdback
        .map(|h| held_back(inventory, &rest, h))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let detection_note = match (&rollout.detect, &detection) {
        (Some(_), None) => Some(
            "rollout.detect is set, but the fleet's noise is not measured here: the configured canary stage is shown (a running bellwether plans from its measurements: GET /api/waves; its `noise` can be passed back with --noise FILE)"
                .to_string(),
        ),
        _ => None,
    };
    let mut by_cohort: BTreeMap<String, usize> = BTreeMap::new();
    for id in &held {
        let cohort = holdback.and_then(|h| h.cohort_of(inventory, id));
        *by_cohort
            .entry(cohort.unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
    }
    WavePreview {
        canary_groups: canary_groups.to_vec(),
        waves: waves
            .into_iter()
            .zip(&plan.waves)
            .enumerate()
            .map(|(i, (vms, spec))| PreviewWave {
                wave: i + 1,
                stage: if spec.canary { "canary" } else { "fleet" },
                bake_minutes: spec.bake_minutes,
                held_back_vms: vms.iter().filter(|id| held.contains(*id)).count(),
                vms,
            })
            .collect(),
        held_back: by_cohort
            .into_iter()
            .map(|(cohort, vms)| HeldBack { cohort, vms })
            .collect(),
        held_back_vms: held.len(),
        noise: detection.as_ref().and(noise).cloned(),
        detection,
        detection_note,
    }
}

/// Shuffles within each region, then takes one VM per region in turn.
fn interleave_regions(vms: Vec<&VmRecord>, rng: &mut StdRng) -> Vec<String> {
    let mut by_region: BTreeMap<&str, Vec<&VmRecord>> = BTreeMap::new();
    for vm in vms {
        by_region.entry(vm.region.as_str()).or_default().push(vm);
    }
    for list in by_region.values_mut() {
        list.shuffle(rng);
    }
    let longest = by_region.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| {
            by_region
                .values()
                .filter_map(move |l| l.get(i))
                .map(|v| v.id.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `preview` as text: a line a wave (its first VMs named), then the holdback.
pub fn describe(preview: &WavePreview) -> String {
    use std::fmt::Write;
    let total: usize = preview.waves.iter().map(|w| w.vms.len()).sum();
    let mut out = format!(
        "{} waves over {total} VMs, the canary stage from {}:\n",
        preview.waves.len(),
        preview.canary_groups.join(", ")
    );
    for w in &preview.waves {
        let mut first: Vec<&str> = w.vms.iter().take(5).map(String::as_str).collect();
        if w.vms.len() > first.len() {
            first.push("...");
        }
        let held = if w.held_back_vms > 0 {
            format!(", {} of them held back until now", w.held_back_vms)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  wave {} ({}, bakes {} min): {} VMs{held}: {}",
            w.wave,
            w.stage,
            w.bake_minutes,
            w.vms.len(),
            first.join(", ")
        );
    }
    if preview.held_back_vms == 0 {
        out.push_str("no VMs held back: the waves are judged against the unpatched VMs left (rollout.control_holdback)\n");
    } else {
        let _ = writeln!(
            out,
            "held back as the control until the last wave: {} VMs",
            preview.held_back_vms
        );
        for h in &preview.held_back {
            let _ = writeln!(out, "  {}: {}", h.cohort, h.vms);
        }
    }
    if let Some(d) = &preview.detection {
        let _ = writeln!(
            out,
            "canary stage planned from rollout.detect: {}",
            d.describe()
        );
    }
    if let Some(note) = &preview.detection_note {
        let _ = writeln!(out, "{note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{default_config, fleet};

    #[test]
    fn the_canary_stage_comes_from_the_canary_groups_and_covers_regions() {
        let config = default_config();
        let vms = fleet(300);
        let inventory = Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let sizes: Vec<_> = ["1%", "5%", "100%"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let plan = WavePlan::new(&sizes, 60, 60, 2);
        let waves = plan_waves(&inventory, &plan, &["canary-ring".to_string()], "r1", None);
        assert_eq!(
            waves.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 12, 285]
        );
        let ring = inventory.members("canary-ring").unwrap();
        assert!(ring.len() >= 15, "the default ring holds the canary stage");
        for id in waves[0].iter().chain(&waves[1]) {
            assert!(
                ring.iter().any(|v| &v.id == id),
                "{id} is not in the canary ring"
            );
        }
        let regions: BTreeSet<&str> = waves[0]
            .iter()
            .map(|id| inventory.vm(id).unwrap().region.as_str())
            .collect();
        assert_eq!(
            regions.len(),
            3,
            "the first three canaries cover the three regions"
        );
        let all: BTreeSet<&String> = waves.iter().flatten().collect();
        assert_eq!(all.len(), 300, "every VM exactly once");
        assert_eq!(
            waves,
            plan_waves(&inventory, &plan, &["canary-ring".to_string()], "r1", None),
            "stable"
        );
    }

    #[test]
    fn the_holdback_keeps_vms_of_every_cohort_for_the_last_wave() {
        let config = default_config();
        let vms = fleet(300);
        let inventory = Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let sizes: Vec<_> = ["1%", "5%", "25%", "100%"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let plan = WavePlan::new(&sizes, 60, 60, 2);
        let holdback = Holdback {
            size: "20%".parse().unwrap(),
            judge: &config.judge,
        };
        let waves = plan_waves(
            &inventory,
            &plan,
            &["canary-ring".to_string()],
            "r1",
            Some(holdback),
        );
        let cohort = |id: &String| config.judge.cohorts_of(inventory.vm(id).unwrap())[0].clone();
        let before_last: BTreeSet<Option<String>> =
            waves[..3].iter().flatten().map(cohort).collect();
        let last: BTreeSet<Option<String>> = waves[3].iter().map(cohort).collect();
        // Every cohort the early waves reached still has VMs left for the last one.
        for c in &before_last {
            assert!(last.contains(c), "cohort {c:?} has no VM held back");
        }
        let all: BTreeSet<&String> = waves.iter().flatten().collect();
        assert_eq!(all.len(), 300, "every VM exactly once");
    }

    #[test]
    fn the_preview_shows_the_waves_and_the_vms_held_back_for_the_last() {
        let config = default_config();
        let vms = fleet(300);
        let inventory = Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let groups = config.rollout.canary_groups.clone();
        let p = preview(
            &inventory,
            &config.rollout,
            &config.judge,
            &groups,
            "r1",
            None,
        );
        let last = p.waves.last().unwrap();
        assert!(
            p.held_back_vms > 0,
            "the default holds 20% of each cohort back"
        );
        assert_eq!(
            last.held_back_vms, p.held_back_vms,
            "all of them in the last wave"
        );
        assert!(
            p.waves[..p.waves.len() - 1]
                .iter()
                .all(|w| w.held_back_vms == 0)
        );
        assert_eq!(
            p.held_back.iter().map(|h| h.vms).sum::<usize>(),
            p.held_back_vms
        );
        assert!(
            p.held_back.iter().all(|h| h.cohort != "(none)"),
            "{:?}",
            p.held_back
        );
        assert_eq!(p.waves[0].stage, "canary");
        assert_eq!(last.stage, "fleet");
        assert_eq!(p.waves.iter().map(|w| w.vms.len()).sum::<usize>(), 300);
        // The very waves the actor deploys.
        let plan = WavePlan::new(
            &config.rollout.wave_sizes(),
            config.rollout.first_bake_minutes,
            config.rollout.bake_minutes,
            config.rollout.canary_waves,
        );
        let holdback = Holdback::from_config(&config.rollout, &config.judge);
        let planned = plan_waves(&inventory, &plan, &groups, "r1", holdback);
        assert_eq!(
            p.waves.iter().map(|w| w.vms.clone()).collect::<Vec<_>>(),
            planned
        );
        // Without peers there is no control to keep.
        let mut judge = config.judge.clone();
        judge.peers = false;
        let p = preview(&inventory, &config.rollout, &judge, &groups, "r1", None);
        assert_eq!(p.held_back_vms, 0);
        assert!(p.held_back.is_empty());
    }
}
