//! Wave planning: which VMs each wave patches.
//!
//! The canary stage takes VMs from the canary groups first, interleaved
//! across regions so the first few VMs already cover every region; later
//! waves take the rest of the fleet the same way. The order is shuffled with
//! a seed derived from the rollout id, so a re-planned rollout picks the same VMs.
//! A control holdback keeps some VMs of every control cohort unpatched
//! until the last wave, so the waves before it are always judged against
//! unpatched peers.

use crate::config::JudgeConfig;
use crate::inventory::Inventory;
use bellwether_schemas::{VmRecord, WavePlan, WaveSize};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, BTreeSet};

/// VMs of each control cohort kept unpatched until the last wave.
#[derive(Debug, Clone, Copy)]
pub struct Holdback<'a> {
    /// How many per cohort: a count, or a share of the cohort.
    pub size: WaveSize,
    /// How cohorts are drawn (their narrowest level).
    pub judge: &'a JudgeConfig,
}

/// VM ids of each wave, in wave order.
pub fn plan_waves(
    inventory: &Inventory,
    plan: &WavePlan,
    canary_groups: &[String],
    rollout_id: &str,
    holdback: Option<Holdback<'_>>,
) -> Vec<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(crate::bus::stable_hash(rollout_id));
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
    let mut order = interleave_regions(first, &mut rng);
    let mut rest = interleave_regions(rest, &mut rng);
    if let Some(h) = holdback {
        rest = hold_back(inventory, rest, h);
    }
    order.extend(rest);

    let mut next = order.into_iter();
    plan.wave_sizes(inventory.vms().len())
        .into_iter()
        .map(|size| next.by_ref().take(size).collect())
        .collect()
}

/// `order` with the last VMs of each cohort in it moved to the end.
fn hold_back(inventory: &Inventory, order: Vec<String>, h: Holdback<'_>) -> Vec<String> {
    let cohort = |id: &str| {
        inventory
            .vm(id)
            .and_then(|vm| h.judge.cohorts_of(vm).into_iter().next().flatten())
    };
    let mut sizes: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for id in &order {
        *sizes.entry(cohort(id)).or_default() += 1;
    }
    let mut keep: BTreeMap<Option<String>, usize> = sizes
        .into_iter()
        .map(|(c, n)| (c, h.size.cumulative_vms(n)))
        .collect();
    // Walk from the end: the last VMs of each cohort are held back.
    let (mut held, mut early) = (Vec::new(), Vec::new());
    for id in order.into_iter().rev() {
        match keep.get_mut(&cohort(&id)) {
            Some(k) if *k > 0 => {
                *k -= 1;
                held.push(id);
            }
            _ => early.push(id),
        }
    }
    early.reverse();
    held.reverse();
    early.extend(held);
    early
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::simulator::fleet::generate_inventory;

    #[test]
    fn the_canary_stage_comes_from_the_canary_groups_and_covers_regions() {
        let config = Config::default_config();
        let vms = generate_inventory(&config.fleet, 3);
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
        let config = Config::default_config();
        let vms = generate_inventory(&config.fleet, 3);
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
}
