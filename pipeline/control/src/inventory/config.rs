//! Config of the canary groups: `[canary]`.

use bellwether_schemas::check::Problem;

use crate::inventory::selector::GroupConfig;
use crate::inventory::selector::{BUILT_IN_CRITICAL_GROUP, Selector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Canary groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// Canary groups: named selectors over the inventory. A VM matches a group
    /// when it matches every field given. The group "critical-systems"
    /// (criticality = critical) is built in.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
}

impl CanaryConfig {
    /// Checks every group (unique names, selectors that compile); the names of the groups, the built-in one included.
    pub fn check(&self) -> Result<BTreeSet<String>, Problem> {
        let mut names = BTreeSet::from([BUILT_IN_CRITICAL_GROUP.to_string()]);
        for (i, group) in self.groups.iter().enumerate() {
            let key = format!("canary.groups[{i}]");
            if !names.insert(group.name.clone()) {
                return Err(Problem::new(
                    format!("{key}.name"),
                    format!("group `{}` is defined twice (or is built in)", group.name),
                ));
            }
            Selector::compile(group)
                .map_err(|e| Problem::new(format!("{key}.{}", e.field), e.reason))?;
        }
        Ok(names)
    }
}
