//! Canary groups: named selectors over the inventory.

use super::expression::Expression;
use bellwether_schemas::{Criticality, VmRecord};
use std::collections::BTreeMap;

/// Name of the built-in group of critical VMs.
pub const BUILT_IN_CRITICAL_GROUP: &str = "critical-systems";

pub use bellwether_schemas::{GroupConfig, TagMatch};

/// Why a group cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    /// The field at fault (e.g. `expression`).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A compiled group selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// Group name.
    pub name: String,
    config: GroupConfig,
    expression: Option<Expression>,
}

impl Selector {
    /// Compiles a group; a bad expression is reported with its column.
    pub fn compile(config: &GroupConfig) -> Result<Selector, SelectorError> {
        if config.name.trim().is_empty() {
            return Err(SelectorError {
                field: "name",
                reason: "a group needs a name".into(),
            });
        }
        let expression = config
            .expression
            .as_deref()
            .map(Expression::parse)
            .transpose()
            .map_err(|e| SelectorError {
                field: "expression",
                reason: e.to_string(),
            })?;
        Ok(Selector {
            name: config.name.clone(),
            config: config.clone(),
            expression,
        })
    }

    /// The built-in `critical-systems` group.
    pub fn critical_systems() -> Selector {
        Selector {
            name: BUILT_IN_CRITICAL_GROUP.into(),
            config: GroupConfig {
                name: BUILT_IN_CRITICAL_GROUP.into(),
                tags: BTreeMap::new(),
                instance_types: Vec::new(),
                regions: Vec::new(),
                criticality: vec![Criticality::Critical],
                expression: None,
            },
            expression: None,
        }
    }

    /// True when `vm` belongs to the group.
    pub fn matches(&self, vm: &VmRecord) -> bool {
        let c = &self.config;
        let any_of =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|x| x == value);
        c.tags.iter().all(|(name, want)| {
            let have = vm.tags.get(name);
            match want {
                TagMatch::One(v) => have == Some(v),
                TagMatch::AnyOf(vs) => have.is_some_and(|h| vs.contains(h)),
            }
        }) && any_of(&c.instance_types, &vm.instance_type)
            && any_of(&c.regions, &vm.region)
            && (c.criticality.is_empty() || c.criticality.contains(&vm.criticality))
            && self.expression.as_ref().is_none_or(|e| e.matches(vm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(id: &str, region: &str, itype: &str, role: &str, criticality: Criticality) -> VmRecord {
        VmRecord {
            id: id.into(),
            tags: BTreeMap::from([("role".to_string(), role.to_string())]),
            instance_type: itype.into(),
            region: region.into(),
            criticality,
        }
    }

    #[test]
    fn every_given_field_must_match() {
        let group: GroupConfig = toml_group(
            r#"name = "eu-web"
               tags = { role = ["web", "api"] }
               regions = ["eu-west-1"]
               expression = 'instance_type != "t3.medium"'"#,
        );
        let s = Selector::compile(&group).unwrap();
        let fleet = [
            vm("a", "eu-west-1", "m6i.large", "web", Criticality::Standard),
            vm("b", "eu-west-1", "m6i.large", "db", Criticality::Standard),
            vm("c", "us-east-1", "m6i.large", "api", Criticality::Standard),
            vm("d", "eu-west-1", "t3.medium", "api", Criticality::Standard),
            vm("e", "eu-west-1", "c6i.xlarge", "api", Criticality::Critical),
        ];
        let picked: Vec<&str> = fleet
            .iter()
            .filter(|v| s.matches(v))
            .map(|v| v.id.as_str())
            .collect();
        assert_eq!(picked, ["a", "e"]);
        let critical: Vec<&str> = fleet
            .iter()
            .filter(|v| Selector::critical_systems().matches(v))
            .map(|v| v.id.as_str())
            .collect();
        assert_eq!(critical, ["e"]);
    }

    #[test]
    fn a_bad_expression_names_the_field() {
        let group = toml_group("name = \"x\"\nexpression = \"region ==\"");
        let err = Selector::compile(&group).unwrap_err();
        assert_eq!(err.field, "expression");
    }

    fn toml_group(text: &str) -> GroupConfig {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .unwrap()
    }
}
