//! `[judge]`: how a patched VM is set against its unpatched peers.

use crate::inventory::expression::FieldRef;
use bellwether_schemas::VmRecord;
use bellwether_schemas::check::Problem;
use serde::{Deserialize, Serialize};

/// How a patched VM is judged against the unpatched VMs like it.
///
/// Every window, each patched VM's deviation on each metric is set against
/// its control: the unpatched VMs that share its `cohort_by` values,
/// widened one key at a time (dropping the last) and then to the whole
/// unpatched fleet while a cohort has fewer than `min_control` VMs
/// reporting. A metric is bad only when the VM left its own forecast and
/// its peers did not move the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// Set patched VMs against their peers (false: own forecast only).
    #[serde(default = "yes")]
    pub peers: bool,
    /// Inventory fields that make VMs comparable, most important first (region,
    /// instance_type, criticality, id, tags.NAME). A cohort with fewer than
    /// min_control unpatched VMs reporting widens by dropping the last key,
    /// then to the whole unpatched fleet; with fewer than that, the VM is
    /// judged on its own forecast and the evidence says so.
    #[serde(default = "default_cohort_by")]
    pub cohort_by: Vec<String>,
    /// Control VMs a cohort needs before it is used.
    #[serde(default = "default_min_control")]
    pub min_control: usize,
    /// False-discovery rate across the VMs judged in one window
    /// (Benjamini-Hochberg over their p-values): false alarms do not grow with
    /// the number of VMs judged. 0: every VM on its own.
    #[serde(default = "default_fdr")]
    pub false_discovery_rate: f64,
    /// The second opinion (Kayenta's test): each metric that looks bad against
    /// its peers is also ranked, its windows since it was judged against its
    /// control's same windows (Mann-Whitney U, with the Hodges-Lehmann shift).
    /// Above 0, a metric with at least 4 such windows is bad only when the
    /// test's p-value is under this; 0: the test is evidence only.
    #[serde(default)]
    pub mann_whitney_p: f64,
    /// Waves are also judged whole: every window, the deviations against
    /// peers of all the VMs a rollout has patched so far (the wave baking
    /// and those before it), over the windows each was judged in, are
    /// averaged per VM and summed per metric (weighed by windows), in sigmas of what chance
    /// gives that sum (the windows' correlation, measured across the VMs,
    /// allowed for; VMs sharing a control share its error). Past this,
    /// after at least `thresholds.consecutive_windows` windows, every
    /// patched VM of the rollout is rolled back with trigger `wave`, the
    /// evidence saying so. It catches a patch that moves every VM a little;
    /// 0: off.
    #[serde(default = "default_wave_sigma")]
    pub wave_sigma: f64,
    /// Judged VMs a rollout needs before its waves are judged whole.
    #[serde(default = "default_wave_min_vms")]
    pub wave_min_vms: usize,
    /// Share of a metric's `min_change` that a wave's mean change against
    /// peers must pass: a change on every VM of a wave is worth acting on
    /// at a smaller size than on one VM.
    #[serde(default = "default_wave_min_change_share")]
    pub wave_min_change_share: f64,
}

/// Chance passes 5σ once in 3.5 million tests; tested every window, on
/// every metric, the margin is for noise further from normal than that.
fn default_wave_sigma() -> f64 {
    5.0
}

/// The default canary stage's first wave (1% of 300 VMs).
fn default_wave_min_vms() -> usize {
    3
}

/// A tenth of the change worth acting on for one VM: a patch that adds
/// 1 ms of response time (min_change 10 ms) to every VM it reaches is
/// worth stopping, when it can be told from chance.
fn default_wave_min_change_share() -> f64 {
    0.1
}

fn yes() -> bool {
    true
}

/// Role first (VMs of one role serve the same traffic), then region (a
/// regional incident, the local time of day).
fn default_cohort_by() -> Vec<String> {
    vec!["tags.role".into(), "region".into()]
}

/// Five VMs give a median that one odd VM cannot move.
fn default_min_control() -> usize {
    5
}

/// One false rollback in twenty windows with a discovery, whatever the
/// number of VMs judged.
fn default_fdr() -> f64 {
    0.05
}

impl Default for JudgeConfig {
    fn default() -> JudgeConfig {
        JudgeConfig {
            peers: true,
            cohort_by: default_cohort_by(),
            min_control: default_min_control(),
            false_discovery_rate: default_fdr(),
            mann_whitney_p: 0.0,
            wave_sigma: default_wave_sigma(),
            wave_min_vms: default_wave_min_vms(),
            wave_min_change_share: default_wave_min_change_share(),
        }
    }
}

/// Most control VMs a cohort may be asked for.
const MAX_MIN_CONTROL: usize = 100_000;

impl JudgeConfig {
    /// Checks every key, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), Problem> {
        for (i, key) in self.cohort_by.iter().enumerate() {
            if FieldRef::parse(key).is_none() || key == "critical" {
                return Err(Problem::new(
                    format!("judge.cohort_by[{i}]"),
                    format!(
                        "`{key}` is not an inventory field; use region, instance_type, criticality, id or tags.NAME"
                    ),
                ));
            }
        }
        if !(1..=MAX_MIN_CONTROL).contains(&self.min_control) {
            return Err(Problem::new(
                "judge.min_control",
                format!(
                    "{} is not between 1 and {MAX_MIN_CONTROL}",
                    self.min_control
                ),
            ));
        }
        let q = self.false_discovery_rate;
        if !(0.0..1.0).contains(&q) {
            return Err(Problem::new(
                "judge.false_discovery_rate",
                format!("{q} is not a rate from 0 (off) up to, not including, 1"),
            ));
        }
        let p = self.mann_whitney_p;
        if !(0.0..1.0).contains(&p) {
            return Err(Problem::new(
                "judge.mann_whitney_p",
                format!("{p} is not a p-value from 0 (evidence only) up to, not including, 1"),
            ));
        }
        if !(self.wave_sigma == 0.0 || (1.0..=100.0).contains(&self.wave_sigma)) {
            return Err(Problem::new(
                "judge.wave_sigma",
                format!(
                    "{} is not 0 (off) nor between 1 and 100 sigmas",
                    self.wave_sigma
                ),
            ));
        }
        if !(2..=MAX_MIN_CONTROL).contains(&self.wave_min_vms) {
            return Err(Problem::new(
                "judge.wave_min_vms",
                format!(
                    "{} is not between 2 and {MAX_MIN_CONTROL}",
                    self.wave_min_vms
                ),
            ));
        }
        let share = self.wave_min_change_share;
        if !(0.0..=1.0).contains(&share) {
            return Err(Problem::new(
                "judge.wave_min_change_share",
                format!("{share} is not a share from 0 to 1"),
            ));
        }
        Ok(())
    }

    /// Names of the cohort levels, narrowest first: every key, then all
    /// but the last, down to the first key alone.
    pub fn levels(&self) -> Vec<String> {
        (1..=self.cohort_by.len())
            .rev()
            .map(|n| self.cohort_by[..n].join(", "))
            .collect()
    }

    /// `vm`'s cohort label at each level, e.g. `tags.role=web, region=eu-west-1`
    /// (None where the VM lacks one of the level's fields).
    pub fn cohorts_of(&self, vm: &VmRecord) -> Vec<Option<String>> {
        let values: Vec<Option<String>> = self
            .cohort_by
            .iter()
            .map(|key| {
                let field = FieldRef::parse(key)?;
                field.value(vm).map(|v| format!("{key}={v}"))
            })
            .collect();
        (1..=values.len())
            .rev()
            .map(|n| {
                let parts: Option<Vec<String>> = values[..n].iter().cloned().collect();
                parts.map(|p| p.join(", "))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn cohorts_widen_by_dropping_the_last_key() {
        let judge = JudgeConfig::default();
        let vm = VmRecord {
            id: "vm-1".into(),
            tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
            instance_type: "m6i.large".into(),
            region: "eu-west-1".into(),
            criticality: bellwether_schemas::Criticality::Standard,
        };
        assert_eq!(judge.levels(), vec!["tags.role, region", "tags.role"]);
        assert_eq!(
            judge.cohorts_of(&vm),
            vec![
                Some("tags.role=web, region=eu-west-1".to_string()),
                Some("tags.role=web".to_string())
            ]
        );
        let untagged = VmRecord {
            tags: BTreeMap::new(),
            ..vm
        };
        assert_eq!(judge.cohorts_of(&untagged), vec![None, None]);
    }

    #[test]
    fn bad_keys_are_named() {
        let mut judge = JudgeConfig {
            cohort_by: vec!["tags.role".into(), "colour".into()],
            ..JudgeConfig::default()
        };
        let e = judge.validate().unwrap_err().to_string();
        assert!(e.contains("judge.cohort_by[1]"), "{e}");
        judge.cohort_by = vec!["region".into()];
        judge.false_discovery_rate = 1.5;
        let e = judge.validate().unwrap_err().to_string();
        assert!(e.contains("judge.false_discovery_rate"), "{e}");
        judge.false_discovery_rate = 0.05;
        judge.wave_sigma = 0.5;
        let e = judge.validate().unwrap_err().to_string();
        assert!(e.contains("judge.wave_sigma"), "{e}");
        judge.wave_sigma = 0.0;
        judge.validate().unwrap();
    }
}
