//! Submitting a patch: the approval rules' decision, as the CLI (`bellwether
//! patch submit`) and the HTTP API (`POST /api/patches`) both build it.

use super::rules::{ApprovalConfig, Decision, Rules, describe};
use bellwether_schemas::{EventTime, Patch, PatchSubmission};
use serde::Deserialize;

/// A patch as an operator submits it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    /// The patch id, e.g. KB-2026-1201.
    pub id: String,
    /// A title for humans.
    #[serde(default)]
    pub title: String,
    /// Classification: security, bugfix, feature, ...
    pub classification: String,
    /// Severity: critical, important, moderate, low, ...
    pub severity: String,
    /// Product, e.g. debian-12.
    pub product: String,
    /// When the patch was released, RFC 3339 (default: now).
    #[serde(default)]
    pub released_at: Option<String>,
    /// The rollout id (default: `rollout-<patch id>`).
    #[serde(default)]
    pub rollout_id: Option<String>,
    /// Who submits it (recorded; the API's default is `api`).
    #[serde(default)]
    pub by: Option<String>,
    /// Canary groups for this rollout (default: `rollout.canary_groups`).
    #[serde(default)]
    pub canary_groups: Option<Vec<String>>,
}

/// A submission that cannot be built: which field, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SubmitError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The rollout id a patch gets unless one is given.
pub fn default_rollout_id(patch_id: &str) -> String {
    format!("rollout-{}", patch_id.to_lowercase())
}

/// The submission of `request` by `by` at `now`, undecided: the rollout
/// actor decides it with the rules in force. Its canary groups must be
/// among `groups`.
pub fn submission(
    request: &PatchRequest,
    by: &str,
    now: EventTime,
    groups: &[&str],
) -> Result<PatchSubmission, SubmitError> {
    if let Some(names) = &request.canary_groups {
        if names.is_empty() {
            return Err(SubmitError {
                field: "canary_groups",
                reason: "give at least one group, or leave it out".into(),
            });
        }
        if let Some(unknown) = names.iter().find(|n| !groups.contains(&n.as_str())) {
            return Err(SubmitError {
                field: "canary_groups",
                reason: format!("no group `{unknown}`; groups: {}", groups.join(", ")),
            });
        }
    }
    for (field, value) in [
        ("id", &request.id),
        ("classification", &request.classification),
        ("severity", &request.severity),
        ("product", &request.product),
    ] {
        if value.trim().is_empty() {
            return Err(SubmitError {
                field,
                reason: "must not be empty".into(),
            });
        }
    }
    let released = match request.released_at.as_deref() {
        None => None,
        Some(text) => Some(
            EventTime::parse_or_now(Some(text)).map_err(|reason| SubmitError {
                field: "released_at",
                reason,
            })?,
        ),
    };
    let patch = Patch {
        id: request.id.clone(),
        title: request.title.clone(),
        classification: request.classification.clone(),
        severity: request.severity.clone(),
        product: request.product.clone(),
    };
    Ok(PatchSubmission {
        rollout_id: request
            .rollout_id
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| default_rollout_id(&request.id)),
        patch,
        decision: None,
        released_at: released,
        submitted_by: by.to_string(),
        submitted_at: now,
        canary_groups: request.canary_groups.clone(),
    })
}

/// What `rules` decide for `s` (its own decision if it has one).
pub fn decide(rules: &ApprovalConfig, s: &PatchSubmission) -> Decision {
    s.decision
        .clone()
        .unwrap_or_else(|| rules.evaluate(&s.patch, s.released_at.unwrap_or(s.submitted_at)))
}

/// What happens to a submitted patch under `decision`, in one line for humans.
pub fn what_happens(s: &PatchSubmission, decision: &Decision) -> String {
    match decision {
        Decision::Approve { at, by } if *at <= s.submitted_at => {
            format!("approved by {by}: rollout {} starts", s.rollout_id)
        }
        Decision::Approve { at, by } => format!(
            "approved by {by} from {at} on: rollout {} starts then (bellwether keeps it until then)",
            s.rollout_id
        ),
        Decision::Manual { .. } => format!(
            "{}: bellwether patch approve --id {} (or POST /api/patches/{}/approve)",
            describe(decision),
            s.patch.id,
            s.patch.id
        ),
        Decision::Reject { .. } => format!("{}: it is not rolled out", describe(decision)),
    }
}
