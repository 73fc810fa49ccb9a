//! Wave planning: which VMs each wave patches.
//!
//! The canary stage takes VMs from the canary groups first, interleaved
//! across regions so the first few VMs already cover every region; later
//! waves take the rest of the fleet the same way. The order is shuffled with
//! a seed derived from the rollout id, so a re-planned rollout picks the same VMs.

use crate::inventory::Inventory;
use bellwether_schemas::{VmRecord, WavePlan};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, BTreeSet};

/// VM ids of each wave, in wave order.
pub fn plan_waves(
    inventory: &Inventory,
    plan: &WavePlan,
    canary_groups: &[String],
    rollout_id: &str,
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
    order.extend(interleave_regions(rest, &mut rng));

    let mut next = order.into_iter();
    plan.wave_sizes(inventory.vms().len())
        .into_iter()
        .map(|size| next.by_ref().take(size).collect())
        .collect()
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
        let waves = plan_waves(&inventory, &plan, &["canary-ring".to_string()], "r1");
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
            plan_waves(&inventory, &plan, &["canary-ring".to_string()], "r1"),
            "stable"
        );
    }
}
