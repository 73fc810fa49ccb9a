//! The fleet inventory and its canary groups.

pub mod expression;
pub mod selector;

use bellwether_schemas::VmRecord;
use selector::{GroupConfig, Selector, SelectorError};
use std::collections::HashMap;

/// The VMs bellwether may patch, with the canary groups over them.
#[derive(Debug, Clone)]
pub struct Inventory {
    vms: Vec<VmRecord>,
    by_id: HashMap<String, usize>,
    groups: Vec<Selector>,
}

impl Inventory {
    /// An inventory of `vms` with the given groups plus the built-in `critical-systems`.
    pub fn new(vms: Vec<VmRecord>, groups: Vec<Selector>) -> Inventory {
        let by_id = vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.clone(), i))
            .collect();
        let mut all = vec![Selector::critical_systems()];
        all.extend(groups);
        Inventory {
            vms,
            by_id,
            groups: all,
        }
    }

    /// An inventory of `vms` with the configured `groups` compiled (plus the
    /// built-in `critical-systems`); the error names the group that does not compile.
    pub fn with_groups(
        vms: Vec<VmRecord>,
        groups: &[GroupConfig],
    ) -> Result<Inventory, (String, SelectorError)> {
        let compiled = groups
            .iter()
            .map(|g| Selector::compile(g).map_err(|e| (g.name.clone(), e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inventory::new(vms, compiled))
    }

    /// Every VM, in inventory order.
    pub fn vms(&self) -> &[VmRecord] {
        &self.vms
    }

    /// One VM by id.
    pub fn vm(&self, id: &str) -> Option<&VmRecord> {
        self.by_id.get(id).map(|&i| &self.vms[i])
    }

    /// Every canary group's name, the built-in `critical-systems` first.
    pub fn group_names(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.name.as_str()).collect()
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Selector> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The VMs of group `name`, in inventory order (`None` for an unknown group).
    pub fn members(&self, name: &str) -> Option<Vec<&VmRecord>> {
        let group = self.group(name)?;
        Some(self.vms.iter().filter(|v| group.matches(v)).collect())
    }
}
