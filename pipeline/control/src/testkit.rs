//! What the crate's unit tests share: the shipped default config's
//! control sections and a fleet to plan over.

use crate::ControlConfig;
use bellwether_schemas::{Criticality, VmRecord};
use std::collections::BTreeMap;

/// The control sections of `config/default.toml`, as shipped.
pub fn default_config() -> ControlConfig {
    toml::from_str(include_str!("../../../config/default.toml"))
        .expect("config/default.toml's control sections")
}

/// `n` VMs `vm-0000`..: regions in turn over three, four roles, every
/// tenth VM in the canary ring (`tags.ring == "canary"`), every
/// thirteenth critical.
pub fn fleet(n: usize) -> Vec<VmRecord> {
    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    const ROLES: [&str; 4] = ["web", "api", "db", "cache"];
    (0..n)
        .map(|i| VmRecord {
            id: format!("vm-{i:04}"),
            tags: BTreeMap::from([
                ("role".to_string(), ROLES[(i / 3) % ROLES.len()].to_string()),
                (
                    "ring".to_string(),
                    if i % 10 == 0 { "canary" } else { "main" }.to_string(),
                ),
            ]),
            instance_type: "m6i.large".into(),
            region: REGIONS[i % REGIONS.len()].into(),
            criticality: if i % 13 == 0 {
                Criticality::Critical
            } else {
                Criticality::Standard
            },
        })
        .collect()
}
