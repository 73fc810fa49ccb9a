//! Approval rules, in the spirit of a cloud patch manager's patch
//! baselines: the config's `[approval]`, or a rule set an operator puts in
//! force over the API (an `approval_rules` message on the control topic).

use crate::EventTime;
use serde::{Deserialize, Serialize};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Approve automatically (after `after_days`).
    Approve,
    /// Wait for a human (`bellwether approve`).
    Manual,
    /// Never roll it out.
    Reject,
}

/// One rule: a patch matches when every list given contains its value
/// (case-insensitive; an empty list matches anything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// The rule's name, shown with each decision.
    pub name: String,
    /// Classifications, e.g. `security`, `bugfix`, `feature`.
    #[serde(default)]
    pub classifications: Vec<String>,
    /// Severities, e.g. `critical`, `important`, `moderate`, `low`.
    #[serde(default)]
    pub severities: Vec<String>,
    /// Products, e.g. `debian-12`.
    #[serde(default)]
    pub products: Vec<String>,
    /// What to do with a matching patch.
    pub action: RuleAction,
    /// With `approve`: days after the patch's release before it is approved.
    #[serde(default)]
    pub after_days: u32,
}

/// `[approval]`: the lists, then the rules in order (the first match wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Patch ids approved at once, whatever the rules say.
    #[serde(default)]
    pub approve: Vec<String>,
    /// Patch ids never rolled out.
    #[serde(default)]
    pub reject: Vec<String>,
    /// Rules, in order; the first that matches a patch decides; a patch no rule
    /// matches waits for a human. A rule matches when each list it gives holds
    /// the patch's value (case-insensitive; an empty or absent list: any).
    #[serde(default)]
    pub rules: Vec<ApprovalRule>,
}

/// A rule set put in force while bellwether runs, replacing the one before
/// (the config's at first), on the control topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRulesUpdate {
    /// The rules in force from now on.
    pub rules: ApprovalConfig,
    /// Who put them in force.
    pub by: String,
    /// When (wall-clock time).
    pub at: EventTime,
}
