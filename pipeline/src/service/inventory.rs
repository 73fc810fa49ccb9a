//! `bellwether vm register|remove` and `bellwether group define|remove`:
//! inventory changes published on the control topic, as the HTTP API's
//! `POST /api/vms` and `POST /api/groups` do. Every component applies them
//! in topic order; a restarted bellwether replays them.

use crate::config::Config;
use crate::inventory::selector::BUILT_IN_CRITICAL_GROUP;
use anyhow::{Result, anyhow};
use bellwether_schemas::{
    ControlMessage, Criticality, EventTime, GroupConfig, InventoryChange, InventoryUpdate,
    TagMatch, VmRecord,
};
use clap::Args;
use std::collections::BTreeMap;

/// A selector given as flags (`group preview`, `group define`).
#[derive(Debug, Clone, Default, Args)]
pub struct SelectorFlags {
    /// A boolean expression, e.g. `tags.role == "web" && region != "us-east-1"`.
    #[arg(long)]
    pub expression: Option<String>,
    /// A tag condition NAME=VALUE (repeatable; all must hold).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Instance types (any of; repeatable).
    #[arg(long)]
    pub instance_type: Vec<String>,
    /// Regions (any of; repeatable).
    #[arg(long)]
    pub region: Vec<String>,
    /// Criticalities (any of; repeatable): low, standard, high, critical.
    #[arg(long)]
    pub criticality: Vec<String>,
}

fn tags(flags: &[String]) -> Result<BTreeMap<String, String>> {
    flags
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--tag {t}: use NAME=VALUE"))
        })
        .collect()
}

fn criticality(name: &str) -> Result<Criticality> {
    Criticality::parse(name)
        .ok_or_else(|| anyhow!("--criticality {name}: one of low, standard, high, critical"))
}

impl SelectorFlags {
    /// The group these flags describe, named `name`.
    pub fn group(&self, name: &str) -> Result<GroupConfig> {
        Ok(GroupConfig {
            name: name.to_string(),
            tags: tags(&self.tag)?
                .into_iter()
                .map(|(k, v)| (k, TagMatch::One(v)))
                .collect(),
            instance_types: self.instance_type.clone(),
            regions: self.region.clone(),
            criticality: self
                .criticality
                .iter()
                .map(|c| criticality(c))
                .collect::<Result<_>>()?,
            expression: self.expression.clone(),
        })
    }
}

/// `bellwether vm register` flags.
#[derive(Debug, Args)]
pub struct VmRegisterArgs {
    /// The VM id, as it appears in metric samples.
    #[arg(long)]
    pub id: String,
    /// Its instance type, e.g. m6i.large.
    #[arg(long)]
    pub instance_type: String,
    /// Its region, e.g. eu-west-1.
    #[arg(long)]
    pub region: String,
    /// low, standard, high or critical.
    #[arg(long, default_value = "standard")]
    pub criticality: String,
    /// A tag NAME=VALUE (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
}

impl VmRegisterArgs {
    /// The VM record.
    pub fn vm(&self) -> Result<VmRecord> {
        Ok(VmRecord {
            id: self.id.clone(),
            tags: tags(&self.tag)?,
            instance_type: self.instance_type.clone(),
            region: self.region.clone(),
            criticality: criticality(&self.criticality)?,
        })
    }
}

/// Why canary group `name` may not be removed, if not: it is built in, or
/// `canary_groups` (`rollout.canary_groups`) names it.
pub fn group_in_use(name: &str, canary_groups: &[String]) -> Option<String> {
    if name == BUILT_IN_CRITICAL_GROUP {
        Some(format!("group `{name}` is built in"))
    } else if canary_groups.iter().any(|g| g == name) {
        Some(format!(
            "group `{name}` is named by rollout.canary_groups: take it out of the config first"
        ))
    } else {
        None
    }
}

/// Checks `change` (a bad selector, an empty field, a group in use
/// are refused here, naming the field), then publishes it. A removal is not
/// checked against the config's inventory: what it removes may have been
/// registered over the API.
pub fn publish_change(config: &Config, change: InventoryChange, by: &str) -> Result<()> {
    let check = match &change {
        InventoryChange::RegisterVm { .. } | InventoryChange::DefineGroup { .. } => {
            let mut inventory = (*super::load_inventory(config)?).clone();
            inventory.apply(&change)
        }
        InventoryChange::RemoveGroup { name } => {
            if let Some(why) = group_in_use(name, &config.rollout.canary_groups) {
                return Err(anyhow!("--name: {why}"));
            }
            Ok(())
        }
        InventoryChange::RemoveVm { .. } => Ok(()),
    };
    check.map_err(|e| anyhow!("{e}"))?;
    super::approve::publish(
        config,
        ControlMessage::Inventory(InventoryUpdate {
            change,
            by: by.to_string(),
            at: EventTime::now(),
        }),
    )
}

/// `kafka.inventory_topic` in `bellwether run`: each VM record a CMDB
/// publishes there becomes an inventory change on the control topic (the
/// store every component replays), unless the inventory already says so.
/// A message that is not a VM record goes to the dead-letter topic.
pub struct InventoryFeed {
    source: crate::kafka::control::KafkaMessageSource<bellwether_schemas::InventoryRecord>,
}

impl InventoryFeed {
    /// Reads `kafka.inventory_topic` from its start (`None` when unset).
    pub fn open(
        config: &Config,
        dead_letters: crate::kafka::dead_letter::DeadLetters,
    ) -> Result<Option<InventoryFeed>> {
        let kafka = &config.kafka;
        if kafka.inventory_topic.is_empty() {
            return Ok(None);
        }
        let source = crate::kafka::control::KafkaMessageSource::from_beginning(
            kafka,
            &kafka.inventory_topic,
            &format!("{}.inventory", kafka.group_id),
            dead_letters,
        )?;
        tracing::info!(topic = %kafka.inventory_topic, "inventory topic read");
        Ok(Some(InventoryFeed { source }))
    }

    /// The changes that arrived and are not in `monitor`'s inventory yet,
    /// checked against it (a change that does not apply is logged and
    /// dropped).
    pub fn changes(&mut self, monitor: &crate::monitor::Monitor) -> Result<Vec<ControlMessage>> {
        use crate::connector::MessageSource;
        let records = self.source.poll(usize::MAX)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut trial = (*monitor.inventory()).clone();
        let mut out = Vec::new();
        for bellwether_schemas::InventoryRecord(change) in records {
            let already = match &change {
                InventoryChange::RegisterVm { vm } => trial.vm(&vm.id) == Some(vm),
                InventoryChange::RemoveVm { vm_id } => trial.vm(vm_id).is_none(),
                _ => false,
            };
            if already {
                continue;
            }
            if let Err(e) = trial.apply(&change) {
                tracing::warn!("inventory topic: {e}; record dropped");
                continue;
            }
            out.push(ControlMessage::Inventory(InventoryUpdate {
                change,
                by: "inventory topic".into(),
                at: EventTime::now(),
            }));
        }
        self.source.commit()?;
        Ok(out)
    }
}
