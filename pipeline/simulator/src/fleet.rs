//! A simulated inventory: VMs spread over regions, instance types and roles.

use crate::config::FleetConfig;
use bellwether_schemas::{Criticality, VmRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const TEAMS: [&str; 5] = ["payments", "identity", "search", "platform", "storefront"];

/// Generates the fleet's inventory, the same for the same seed.
pub fn generate_inventory(config: &FleetConfig, seed: u64) -> Vec<VmRecord> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0b5e_55ed_f1ee_7000);
    (0..config.vms)
        .map(|i| {
            let role = &config.roles[rng.random_range(0..config.roles.len())];
            let critical = rng.random::<f64>() < config.critical_share;
            let ring = if rng.random::<f64>() < config.canary_ring_share {
                "canary"
            } else {
                "main"
            };
            let criticality = if critical {
                Criticality::Critical
            } else {
                match rng.random_range(0..10) {
                    0 => Criticality::Low,
                    1 | 2 => Criticality::High,
                    _ => Criticality::Standard,
                }
            };
            VmRecord {
                id: format!("vm-{i:04}"),
                tags: BTreeMap::from([
                    ("role".to_string(), role.clone()),
                    (
                        "team".to_string(),
                        TEAMS[rng.random_range(0..TEAMS.len())].to_string(),
                    ),
                    ("env".to_string(), "prod".to_string()),
                    ("ring".to_string(), ring.to_string()),
                ]),
                instance_type: config.instance_types
                    [rng.random_range(0..config.instance_types.len())]
                .clone(),
                region: config.regions[i % config.regions.len()].clone(),
                criticality,
            }
        })
        .collect()
}

/// Hours a region's local time is ahead of UTC, for the daily cycle.
pub fn region_utc_offset_hours(region: &str, index: usize) -> f64 {
    match region {
        r if r.starts_with("us-east") => -5.0,
        r if r.starts_with("us-west") => -8.0,
        r if r.starts_with("eu-") => 0.0,
        r if r.starts_with("ap-southeast") => 10.0,
        r if r.starts_with("ap-") => 8.0,
        _ => (index % 3) as f64 * 8.0 - 8.0,
    }
}
