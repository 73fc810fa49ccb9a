//! `bellwether vm`: list, register or remove VMs in the running
//! bellwether's inventory.

use super::remote::ApiArgs;
use super::{Global, ServiceArgs, change_inventory, write_stdout};
use crate::monitor::groups::GroupMembers;
use anyhow::Result;
use bellwether_schemas::{InventoryChange, VmRecord};
use clap::Subcommand;
use std::collections::BTreeMap;

/// `bellwether vm` subcommands: the inventory of the running bellwether.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Every VM of the running bellwether's inventory with the attributes
    /// that put it in its canary groups (criticality, region, instance
    /// type, tags), and those groups.
    List(ApiArgs),
    /// Register a VM (or replace the one with its id): published on the
    /// control topic, kept across restarts; later rollouts patch it.
    Register {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The VM.
        #[command(flatten)]
        vm: crate::service::inventory::VmRegisterArgs,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Take a VM out of the inventory.
    Remove {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The VM id.
        #[arg(long)]
        id: String,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// Runs a `bellwether vm` subcommand.
pub fn exec(command: VmCommand, global: &Global) -> Result<()> {
    match command {
        VmCommand::List(api) => {
            let vms: Vec<VmRecord> = api.get(global, "api/vms")?;
            let groups: Vec<GroupMembers> = api.get(global, "api/groups")?;
            let groups_of = groups_of(&groups);
            if global.json(false) {
                let listed: Vec<serde_json::Value> = vms
                    .iter()
                    .map(|vm| {
                        let mut v = serde_json::to_value(vm).unwrap_or_default();
                        v["groups"] = groups_of
                            .get(vm.id.as_str())
                            .cloned()
                            .unwrap_or_default()
                            .into();
                        v
                    })
                    .collect();
                return write_stdout(&format!("{}\n", serde_json::to_string(&listed)?));
            }
            write_stdout(&vm_table(&vms, &groups_of))
        }
        VmCommand::Register { service, vm, by } => {
            let vm = vm.vm()?;
            let done = format!("vm {} registered", vm.id);
            change_inventory(
                global,
                &service,
                InventoryChange::RegisterVm { vm },
                &by,
                done,
            )
        }
        VmCommand::Remove { service, id, by } => change_inventory(
            global,
            &service,
            InventoryChange::RemoveVm { vm_id: id.clone() },
            &by,
            format!("vm {id} removed"),
        ),
    }
}

/// Per VM id: the groups it is in.
pub(super) fn groups_of(groups: &[GroupMembers]) -> BTreeMap<&str, Vec<String>> {
    let mut of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for g in groups {
        for vm in &g.vms {
            of.entry(vm.as_str()).or_default().push(g.name.clone());
        }
    }
    of
}

/// VMs as a table: the attributes groups select on, and the groups.
pub(super) fn vm_table(vms: &[VmRecord], groups_of: &BTreeMap<&str, Vec<String>>) -> String {
    if vms.is_empty() {
        return "no VM in the inventory\n".into();
    }
    crate::table::render(
        &[
            "vm",
            "criticality",
            "region",
            "instance type",
            "tags",
            "groups",
        ],
        vms.iter()
            .map(|vm| {
                vec![
                    vm.id.clone(),
                    vm.criticality.as_str().to_string(),
                    vm.region.clone(),
                    vm.instance_type.clone(),
                    vm.tags
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    groups_of
                        .get(vm.id.as_str())
                        .map(|g| g.join(", "))
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    )
}
