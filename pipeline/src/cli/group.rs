//! `bellwether group`: list, preview, define and remove canary groups.

use super::{Global, ServiceArgs, change_inventory, write_stdout};
use anyhow::Result;
use bellwether_schemas::InventoryChange;
use clap::{Args, Subcommand};

/// `bellwether group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// The VMs a configured group, or a selector given here, matches; with
    /// `--waves`, the waves a rollout would deploy in and the VMs held back.
    Preview(GroupPreviewArgs),
    /// Every configured group (the built-in critical-systems first) and its size.
    List,
    /// Define a canary group (or replace the one of its name) in the
    /// running bellwether: published on the control topic, kept across
    /// restarts (`GET /api/groups` shows it).
    Define {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The group's name.
        #[arg(long)]
        name: String,
        /// The selector.
        #[command(flatten)]
        selector: crate::service::inventory::SelectorFlags,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Remove a canary group from the running bellwether.
    Remove {
        /// Config and brokers.
        #[command(flatten)]
        service: ServiceArgs,
        /// The group's name.
        #[arg(long)]
        name: String,
        /// Who (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
}

/// `bellwether group preview` flags.
#[derive(Debug, Args)]
pub struct GroupPreviewArgs {
    /// A configured group's name.
    #[arg(long, conflicts_with_all = ["expression", "tag", "instance_type", "region", "criticality"])]
    pub group: Option<String>,
    /// The selector, when no group is named.
    #[command(flatten)]
    pub selector: crate::service::inventory::SelectorFlags,
    /// Same as `--format json` (kept for scripts written before it).
    #[arg(long, hide = true)]
    pub json: bool,
    /// Show the waves a rollout started now would deploy in (canary stage
    /// from `rollout.canary_groups`, or from `--group`), and the VMs held
    /// back as the control until the last wave (`rollout.control_holdback`).
    #[arg(long, conflicts_with_all = ["expression", "tag", "instance_type", "region", "criticality"])]
    pub waves: bool,
    /// With `--waves`: the patch whose rollout to preview (its rollout id
    /// seeds which VMs each wave takes; the counts do not depend on it).
    #[arg(long, requires = "waves")]
    pub patch: Option<String>,
    /// With `--waves`: the fleet's noise, for `rollout.detect` (a JSON file:
    /// the `noise` of `GET /api/waves` or of `bellwether demo --format
    /// json`, or either whole answer).
    #[arg(long, requires = "waves")]
    pub noise: Option<std::path::PathBuf>,
}

/// Runs a `bellwether group` subcommand.
pub fn exec(command: GroupCommand, global: &Global) -> Result<()> {
    match command {
        GroupCommand::Preview(args) => group_preview(args, global),
        GroupCommand::List => {
            let config = global.load()?;
            let inventory = crate::service::load_inventory(&config)?;
            for name in inventory.group_names() {
                let group = inventory.group(name).expect("listed");
                let m = crate::monitor::groups::members(&inventory, group);
                println!("{:<24} {:>6} VMs", m.name, m.count);
            }
            Ok(())
        }
        GroupCommand::Define {
            service,
            name,
            selector,
            by,
        } => change_inventory(
            global,
            &service,
            InventoryChange::DefineGroup {
                group: selector.group(&name)?,
            },
            &by,
            format!("group {name} defined"),
        ),
        GroupCommand::Remove { service, name, by } => change_inventory(
            global,
            &service,
            InventoryChange::RemoveGroup { name: name.clone() },
            &by,
            format!("group {name} removed"),
        ),
    }
}

/// The fleet's noise in `path`: a `FleetNoise`, or an answer holding one
/// under `noise`.
fn read_noise(path: &std::path::Path) -> Result<bellwether_schemas::FleetNoise> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--noise {}: cannot read it", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--noise {}: not JSON", path.display()))?;
    let noise = match value.get("noise") {
        Some(inner) => inner.clone(),
        None => value,
    };
    serde_json::from_value(noise).with_context(|| {
        format!(
            "--noise {}: not the fleet's noise (the `noise` of GET /api/waves or of a demo's JSON summary)",
            path.display()
        )
    })
}

fn group_preview(args: GroupPreviewArgs, global: &Global) -> Result<()> {
    use crate::inventory::selector::Selector;
    let config = global.load()?;
    let inventory = crate::service::load_inventory(&config)?;
    if args.waves {
        let noise = args.noise.as_deref().map(read_noise).transpose()?;
        let groups = match &args.group {
            Some(g) if inventory.group(g).is_none() => {
                anyhow::bail!(
                    "--group {g}: no such group; groups: {}",
                    inventory.group_names().join(", ")
                )
            }
            Some(g) => vec![g.clone()],
            None => config.rollout.canary_groups.clone(),
        };
        let preview = crate::rollout::planner::preview(
            &inventory,
            &config.rollout,
            &config.judge,
            &groups,
            &crate::approval::submit::default_rollout_id(
                args.patch.as_deref().unwrap_or("preview"),
            ),
            noise.as_ref(),
        );
        if global.json(args.json) {
            println!("{}", serde_json::to_string(&preview)?);
        } else {
            write_stdout(&crate::rollout::planner::describe(&preview))?;
        }
        return Ok(());
    }
    let selector = match &args.group {
        Some(name) => inventory.group(name).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "--group {name}: no such group; groups: {}",
                inventory.group_names().join(", ")
            )
        })?,
        None => {
            let group = args.selector.group("preview")?;
            Selector::compile(&group)
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.reason))?
        }
    };
    let m = crate::monitor::groups::members(&inventory, &selector);
    if global.json(args.json) {
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    // Each matching VM with the attributes that matched it, and the
    // configured groups it is already in.
    let groups: Vec<crate::monitor::groups::GroupMembers> = inventory
        .group_names()
        .into_iter()
        .filter_map(|name| inventory.group(name))
        .map(|g| crate::monitor::groups::members(&inventory, g))
        .collect();
    let ids: std::collections::HashSet<&String> = m.vms.iter().collect();
    let matched: Vec<bellwether_schemas::VmRecord> = inventory
        .vms()
        .iter()
        .filter(|v| ids.contains(&v.id))
        .cloned()
        .collect();
    println!("{} of {} VMs match", m.count, inventory.vms().len());
    write_stdout(&super::vm::vm_table(
        &matched,
        &super::vm::groups_of(&groups),
    ))
}
