//! Evaluating a patch against the approval rules (`[approval]`).

use bellwether_schemas::{EventTime, Patch};

const DAY_MS: i64 = bellwether_schemas::EventTime::DAY_MS;

pub use bellwether_schemas::{ApprovalConfig, ApprovalRule, RuleAction};

/// The decision on one patch (a wire type: it travels in a
/// [`bellwether_schemas::PatchSubmission`]).
pub use bellwether_schemas::ApprovalDecision as Decision;

/// The decision in one line, e.g. `waits for a human (rule `features by hand`)`.
pub fn describe(decision: &Decision) -> String {
    match decision {
        Decision::Approve { at, by } => format!("approved by {by} from {at} on"),
        Decision::Manual { by } => format!("waits for a human ({by})"),
        Decision::Reject { by } => format!("rejected by {by}"),
    }
}

fn any(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v.eq_ignore_ascii_case(value))
}

/// True when `patch` matches every list of `rule`.
pub fn matches(rule: &ApprovalRule, patch: &Patch) -> bool {
    any(&rule.classifications, &patch.classification)
        && any(&rule.severities, &patch.severity)
        && any(&rule.products, &patch.product)
}

/// Evaluating patches against a rule set (the types are wire types, in
/// the schemas; the logic is here).
pub trait Rules {
    /// The decision on `patch`, released at `released_at`: the reject list,
    /// then the approve list, then the first matching rule; a patch no rule
    /// matches waits for a human.
    fn evaluate(&self, patch: &Patch, released_at: EventTime) -> Decision;

    /// The first rule that can never match or is set inconsistently, with
    /// its key (under `approval.`) and the reason.
    fn problem(&self) -> Option<(String, String)>;
}

impl Rules for ApprovalConfig {
    fn evaluate(&self, patch: &Patch, released_at: EventTime) -> Decision {
        if self.reject.iter().any(|id| id == &patch.id) {
            return Decision::Reject {
                by: "the reject list".into(),
            };
        }
        if self.approve.iter().any(|id| id == &patch.id) {
            return Decision::Approve {
                at: released_at,
                by: "the approve list".into(),
            };
        }
        match self.rules.iter().find(|r| matches(r, patch)) {
            Some(r) => {
                let by = format!("rule `{}`", r.name);
                match r.action {
                    RuleAction::Approve => Decision::Approve {
                        at: EventTime(released_at.0 + r.after_days as i64 * DAY_MS),
                        by,
                    },
                    RuleAction::Manual => Decision::Manual { by },
                    RuleAction::Reject => Decision::Reject { by },
                }
            }
            None => Decision::Manual {
                by: "no rule matches".into(),
            },
        }
    }

    fn problem(&self) -> Option<(String, String)> {
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("approval.rules[{i}]");
            if r.name.trim().is_empty() {
                return Some((format!("{key}.name"), "a rule needs a name".into()));
            }
            if r.after_days > 0 && r.action != RuleAction::Approve {
                return Some((
                    format!("{key}.after_days"),
                    format!(
                        "only an `approve` rule waits days (this one is `{:?}`)",
                        r.action
                    )
                    .to_lowercase(),
                ));
            }
        }
        self.approve
            .iter()
            .find(|id| self.reject.contains(id))
            .map(|id| {
                (
                    "approval.approve".to_string(),
                    format!("`{id}` is on both the approve and the reject list"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(id: &str, classification: &str, severity: &str, product: &str) -> Patch {
        Patch {
            id: id.into(),
            title: String::new(),
            classification: classification.into(),
            severity: severity.into(),
            product: product.into(),
        }
    }

    fn rules() -> ApprovalConfig {
        let rule = |name: &str, c: &[&str], s: &[&str], action, days| ApprovalRule {
            name: name.into(),
            classifications: c.iter().map(|x| x.to_string()).collect(),
            severities: s.iter().map(|x| x.to_string()).collect(),
            products: vec!["debian-12".into()],
            action,
            after_days: days,
        };
        ApprovalConfig {
            approve: vec!["KB-HOTFIX".into()],
            reject: vec!["KB-BROKEN".into()],
            rules: vec![
                rule(
                    "critical security now",
                    &["security"],
                    &["critical"],
                    RuleAction::Approve,
                    0,
                ),
                rule(
                    "other security in 3 days",
                    &["security"],
                    &[],
                    RuleAction::Approve,
                    3,
                ),
                rule("features by hand", &["feature"], &[], RuleAction::Manual, 0),
            ],
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_lists_override() {
        let r = rules();
        let t = EventTime(1_000_000);
        assert_eq!(
            r.evaluate(&patch("KB-1", "Security", "critical", "debian-12"), t),
            Decision::Approve {
                at: t,
                by: "rule `critical security now`".into()
            }
        );
        assert_eq!(
            r.evaluate(&patch("KB-2", "security", "low", "debian-12"), t),
            Decision::Approve {
                at: EventTime(t.0 + 3 * DAY_MS),
                by: "rule `other security in 3 days`".into()
            }
        );
        assert_eq!(
            r.evaluate(&patch("KB-3", "feature", "low", "debian-12"), t),
            Decision::Manual {
                by: "rule `features by hand`".into()
            }
        );
        // Another product: no rule matches, a human decides.
        assert_eq!(
            r.evaluate(&patch("KB-4", "security", "critical", "rhel-9"), t),
            Decision::Manual {
                by: "no rule matches".into()
            }
        );
        assert!(matches!(
            r.evaluate(&patch("KB-BROKEN", "security", "critical", "debian-12"), t),
            Decision::Reject { .. }
        ));
        assert!(matches!(
            r.evaluate(&patch("KB-HOTFIX", "feature", "low", "rhel-9"), t),
            Decision::Approve { at, .. } if at == t
        ));
        assert_eq!(r.problem(), None);
    }

    #[test]
    fn inconsistent_rules_are_named() {
        let mut r = rules();
        r.rules[2].after_days = 2;
        assert_eq!(r.problem().unwrap().0, "approval.rules[2].after_days");
        let mut r = rules();
        r.approve.push("KB-BROKEN".into());
        assert_eq!(r.problem().unwrap().0, "approval.approve");
    }
}
