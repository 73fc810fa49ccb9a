//! The fleet inventory and its canary groups.

pub mod config;
pub(crate) mod expression;
pub mod selector;

use bellwether_schemas::{InventoryChange, VmRecord};
use selector::{GroupConfig, Selector, SelectorError};
use std::collections::HashMap;

/// An inventory change that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ChangeError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

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

    /// Applies a change made while bellwether runs; the error says what
    /// was wrong, naming the field, and leaves the inventory as it was.
    pub fn apply(&mut self, change: &InventoryChange) -> Result<(), ChangeError> {
        let refuse = |field: &'static str, reason: String| Err(ChangeError { field, reason });
        match change {
            InventoryChange::RegisterVm { vm } => {
                for (field, value) in [
                    ("vm.id", &vm.id),
                    ("vm.instance_type", &vm.instance_type),
                    ("vm.region", &vm.region),
                ] {
                    if value.trim().is_empty() {
                        return refuse(field, "must not be empty".into());
                    }
                }
                match self.by_id.get(&vm.id) {
                    Some(&i) => self.vms[i] = vm.clone(),
                    None => {
                        self.by_id.insert(vm.id.clone(), self.vms.len());
                        self.vms.push(vm.clone());
                    }
                }
            }
            InventoryChange::RemoveVm { vm_id } => {
                let Some(i) = self.by_id.remove(vm_id) else {
                    return refuse("vm_id", format!("no VM `{vm_id}` in the inventory"));
                };
                self.vms.remove(i);
                for (k, v) in self.vms.iter().enumerate().skip(i) {
                    self.by_id.insert(v.id.clone(), k);
                }
            }
            InventoryChange::DefineGroup { group } => {
                if group.name == selector::BUILT_IN_CRITICAL_GROUP {
                    return refuse("group.name", format!("`{}` is built in", group.name));
                }
                let compiled = Selector::compile(group).map_err(|e| ChangeError {
                    field: e.field,
                    reason: e.reason,
                })?;
                match self.groups.iter().position(|g| g.name == group.name) {
                    Some(i) => self.groups[i] = compiled,
                    None => self.groups.push(compiled),
                }
            }
            InventoryChange::RemoveGroup { name } => {
                if name == selector::BUILT_IN_CRITICAL_GROUP {
                    return refuse("name", format!("`{name}` is built in"));
                }
                let Some(i) = self.groups.iter().position(|g| &g.name == name) else {
                    return refuse("name", format!("no group `{name}`"));
                };
                self.groups.remove(i);
            }
        }
        Ok(())
    }

    /// The VMs of group `name`, in inventory order (`None` for an unknown group).
    pub fn members(&self, name: &str) -> Option<Vec<&VmRecord>> {
        let group = self.group(name)?;
        Some(self.vms.iter().filter(|v| group.matches(v)).collect())
    }
}
