//! The VM inventory: what bellwether knows of each VM it may patch.

use crate::contract_metadata;
use arrow::array::{ArrayRef, BooleanArray, MapBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How much it hurts when this VM misbehaves. Rollbacks of critical VMs go first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// Batch and scratch machines.
    Low,
    /// Most of the fleet.
    #[default]
    Standard,
    /// Important but redundant.
    High,
    /// Systems whose failure is an incident: payments, auth, primary databases.
    Critical,
}

impl Criticality {
    /// Parses the snake_case name used in config and on the wire.
    pub fn parse(name: &str) -> Option<Criticality> {
        match name {
            "low" => Some(Criticality::Low),
            "standard" => Some(Criticality::Standard),
            "high" => Some(Criticality::High),
            "critical" => Some(Criticality::Critical),
            _ => None,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Standard => "standard",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// One VM of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRecord {
    /// Unique id, as it appears in metric samples.
    pub id: String,
    /// Free-form labels (`role = "web"`, `team = "payments"`, ...).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Cloud instance type, e.g. `m6i.large`.
    pub instance_type: String,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
    /// How critical the VM is.
    #[serde(default)]
    pub criticality: Criticality,
}

impl VmRecord {
    /// True for VMs of the highest criticality.
    pub fn is_critical(&self) -> bool {
        self.criticality == Criticality::Critical
    }
}

/// A tag condition: one value, or any of several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum TagMatch {
    /// The tag equals this value.
    One(String),
    /// The tag equals one of these values.
    AnyOf(Vec<String>),
}

/// A canary group as configured (or defined over the API): a selector
/// over the inventory. A VM belongs to the group when it matches
/// every field given (an empty group matches every VM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Group name.
    pub name: String,
    /// Tag conditions, e.g. `{ role = ["web", "api"], env = "prod" }`.
    #[serde(default)]
    pub tags: BTreeMap<String, TagMatch>,
    /// Instance types (any of).
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// Regions (any of).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Criticalities (any of).
    #[serde(default)]
    pub criticality: Vec<Criticality>,
    /// A boolean expression over id, region, instance_type, criticality,
    /// critical and tags.NAME, with == != in [..] && || ! and parentheses.
    #[serde(default)]
    pub expression: Option<String>,
}

/// A change to the inventory made while bellwether runs (over the HTTP
/// API, the CLI, or a message a CMDB publishes on the control topic). Every
/// component applies the changes in control-topic order, so a restarted
/// bellwether rebuilds the same inventory by replaying the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum InventoryChange {
    /// Add a VM, or replace the one with its id.
    RegisterVm {
        /// The VM.
        vm: VmRecord,
    },
    /// Take a VM out of the inventory (no later rollout patches it).
    RemoveVm {
        /// Its id.
        vm_id: String,
    },
    /// Define a canary group, or replace the one of its name.
    DefineGroup {
        /// The group.
        group: GroupConfig,
    },
    /// Remove a canary group.
    RemoveGroup {
        /// Its name.
        name: String,
    },
}

/// A message of the inventory topic, as a CMDB publishes it: a VM record
/// registers (or replaces) the VM; `{"id": ..., "removed": true}` removes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct InventoryRecord(pub InventoryChange);

impl TryFrom<serde_json::Value> for InventoryRecord {
    type Error = String;
    fn try_from(value: serde_json::Value) -> Result<InventoryRecord, String> {
        if value.get("removed").and_then(|r| r.as_bool()) == Some(true) {
            let id = value
                .get("id")
                .and_then(|i| i.as_str())
                .ok_or("a removal needs the VM's `id`")?;
            return Ok(InventoryRecord(InventoryChange::RemoveVm {
                vm_id: id.to_string(),
            }));
        }
        serde_json::from_value::<VmRecord>(value)
            .map(|vm| InventoryRecord(InventoryChange::RegisterVm { vm }))
            .map_err(|e| format!("not a VM record: {e}"))
    }
}

/// An inventory change on the control topic, with who made it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryUpdate {
    /// The change.
    #[serde(flatten)]
    pub change: InventoryChange,
    /// Who made it.
    pub by: String,
    /// When (wall-clock time).
    pub at: crate::EventTime,
}

/// Arrow schema of the inventory (for history and SQL).
pub fn inventory_schema() -> SchemaRef {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Utf8, true),
    ]);
    Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("vm_id", DataType::Utf8, false),
            Field::new(
                "tags",
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                ),
                false,
            ),
            Field::new("instance_type", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("criticality", DataType::Utf8, false),
            Field::new("critical", DataType::Boolean, false),
        ],
        contract_metadata("vm_inventory"),
    ))
}

/// The inventory as one Arrow batch following [`inventory_schema`].
pub fn inventory_batch(vms: &[VmRecord]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for vm in vms {
        for (k, v) in &vm.tags {
            tags.keys().append_value(k);
            tags.values().append_value(v);
        }
        tags.append(true)?;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            vms.iter().map(|v| v.id.as_str()),
        )),
        Arc::new(tags.finish()),
        Arc::new(StringArray::from_iter_values(
            vms.iter().map(|v| v.instance_type.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            vms.iter().map(|v| v.region.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            vms.iter().map(|v| v.criticality.as_str()),
        )),
        Arc::new(BooleanArray::from_iter(
            vms.iter().map(|v| Some(v.is_critical())),
        )),
    ];
    RecordBatch::try_new(inventory_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_round_trips_through_json_and_arrow() {
        let vm = VmRecord {
            id: "vm-7".into(),
            tags: BTreeMap::from([("role".into(), "web".into())]),
            instance_type: "m6i.large".into(),
            region: "eu-west-1".into(),
            criticality: Criticality::Critical,
        };
        let json = serde_json::to_string(&vm).unwrap();
        assert_eq!(serde_json::from_str::<VmRecord>(&json).unwrap(), vm);
        let batch = inventory_batch(&[vm]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(5).name(), "critical");
    }

    #[test]
    fn unknown_inventory_fields_are_refused() {
        let err = serde_json::from_str::<VmRecord>(
            r#"{"id":"a","instance_type":"t","region":"r","colour":"blue"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"));
    }
}
