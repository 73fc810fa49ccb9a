//! `bellwether vm`: register or remove VMs in the running bellwether's
//! inventory.

use super::{Global, ServiceArgs, change_inventory};
use anyhow::Result;
use bellwether_schemas::InventoryChange;
use clap::Subcommand;

/// `bellwether vm` subcommands: the inventory of the running bellwether.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
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
