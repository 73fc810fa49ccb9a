//! The patches API, as `bellwether patch` does it:
//!
//! - `POST /api/patches` submits a patch: the approval rules decide, and the
//!   submission goes out on the control topic, where the rollout actor keeps
//!   it until the approval takes effect (or a human's, or never).
//! - `POST /api/patches/{patch_id}/approve` approves one that waits for a human.
//! - `GET /api/patches` lists the submitted and approved patches with
//!   their rollouts' state.
//!
//! Mutating requests need `Authorization: Bearer <http.token>`.

use super::outcomes::{publish, refusal};
use super::server::{AppState, bad_request, json_body, optional_json_body};
use crate::approval::submit::{PatchRequest, default_rollout_id, submission, what_happens};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use bellwether_schemas::{ControlMessage, EventTime, ManualAction, ManualCommand};
use serde::{Deserialize, Serialize};

/// `POST /api/patches`.
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    if let Some(refused) = refusal(&headers, state.control.as_ref()) {
        return refused;
    }
    let request: PatchRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    // The rules in force: the last set put in force on the control topic,
    // else the config's.
    let Some(rules) = state.monitor.rules().or_else(|| state.approval.clone()) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no approval rules are loaded here (bellwether run serves them)",
        )
            .into_response();
    };
    let by = request.by.clone().unwrap_or_else(|| "api".into());
    let inventory = state.monitor.inventory();
    let s = match submission(&request, &by, EventTime::now(), &inventory.group_names()) {
        Ok(s) => s,
        Err(e) => return bad_request(&e.to_string()),
    };
    // The rollout actor decides with the same rules, in topic order.
    let decision = crate::approval::submit::decide(&rules, &s);
    let next = what_happens(&s, &decision);
    let answer = serde_json::json!({
        "patch": s.patch.id,
        "rollout_id": s.rollout_id,
        "decision": decision,
        "next": next,
    });
    publish(&state, ControlMessage::Submission(s), &answer)
}

/// The optional body of an approval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    rollout_id: Option<String>,
}

/// `POST /api/patches/{patch_id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    Path(patch_id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&headers, state.control.as_ref()) {
        return refused;
    }
    let request: ApproveRequest = match optional_json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let command = ManualCommand {
        rollout_id: request
            .rollout_id
            .unwrap_or_else(|| default_rollout_id(&patch_id)),
        action: ManualAction::Approve,
        by: request.by.unwrap_or_else(|| "api".into()),
        reason: request.reason,
        at: EventTime::now(),
    };
    publish(&state, ControlMessage::Manual(command.clone()), &command)
}

/// One patch in `GET /api/patches`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct PatchStatus {
    /// The patch.
    pub patch_id: String,
    /// Its rollout.
    pub rollout_id: String,
    /// Who approved it, or what it waits for, or who rejected it.
    pub approval: String,
    /// The rollout's state (`waiting_for_approval`, `rejected`, `canary`, ...).
    pub state: String,
}

/// `GET /api/patches`.
pub async fn list(State(state): State<AppState>) -> Json<Vec<PatchStatus>> {
    let snapshot = state.monitor.snapshot();
    Json(
        snapshot
            .rollouts
            .into_iter()
            .map(|r| PatchStatus {
                patch_id: r.patch_id,
                rollout_id: r.id,
                approval: r.approval,
                state: r.state,
            })
            .collect(),
    )
}

/// `GET /api/approval/rules`: the rules in force.
pub async fn rules(State(state): State<AppState>) -> Response {
    match state.monitor.rules().or_else(|| state.approval.clone()) {
        Some(rules) => Json(rules).into_response(),
        None => (StatusCode::NOT_FOUND, "no approval rules are loaded here").into_response(),
    }
}

/// `PUT /api/approval/rules`: a new rule set, in force once the control
/// topic has it (for every later submission; earlier ones keep their
/// decision).
pub async fn put_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    use crate::approval::rules::{ApprovalConfig, Rules};
    if let Some(refused) = refusal(&headers, state.control.as_ref()) {
        return refused;
    }
    let rules: ApprovalConfig = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if let Some((key, reason)) = rules.problem() {
        return bad_request(&format!(
            "{}: {reason}",
            key.trim_start_matches("approval.")
        ));
    }
    let update = bellwether_schemas::ApprovalRulesUpdate {
        rules,
        by: "api".into(),
        at: EventTime::now(),
    };
    publish(
        &state,
        ControlMessage::ApprovalRules(update.clone()),
        &update,
    )
}

#[cfg(test)]
mod tests {
    use crate::approval::rules::ApprovalConfig;
    use crate::monitor::Monitor;
    use crate::monitor::outcomes::tests::{TOKEN, changing_server, post};
    use bellwether_schemas::{ControlMessage, ManualAction};

    const RULES: &str = r#"
        reject = ["KB-BAD"]
        [[rules]]
        name = "security at once"
        classifications = ["security"]
        action = "approve"
        [[rules]]
        name = "features by hand"
        classifications = ["feature"]
        action = "manual"
    "#;

    #[test]
    fn patches_are_submitted_listed_and_approved_over_http() {
        let rules: ApprovalConfig = toml_rules(RULES);
        let inventory = crate::inventory::Inventory::new(vec![], vec![]);
        let monitor = Monitor::new(&inventory, "test");
        let (server, received) = changing_server(&monitor, Some(rules));
        let patches = format!("{}api/patches", server.url());
        let feature = r#"{"id": "KB-FEAT", "title": "New TLS defaults", "classification": "feature", "severity": "moderate", "product": "debian-12"}"#;

        assert_eq!(post(&patches, None, feature).0, 401);
        let (status, body) = post(
            &patches,
            Some(TOKEN),
            r#"{"id": "KB-1", "severity": "low", "product": "x"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("classification"), "{body}");
        let (status, body) = post(
            &patches,
            Some(TOKEN),
            r#"{"id": " ", "classification": "security", "severity": "low", "product": "x"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("id: must not be empty"), "{body}");
        let (status, body) = post(
            &patches,
            Some(TOKEN),
            r#"{"id": "KB-2", "classification": "security", "severity": "low", "product": "x", "released_at": "last tuesday"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("released_at"), "{body}");
        assert!(received.try_recv().is_err(), "nothing refused was sent");

        // A feature waits for a human.
        let (status, body) = post(&patches, Some(TOKEN), feature);
        assert_eq!(status, 202, "{body}");
        assert!(body.contains("waits for a human"), "{body}");
        let submitted = received.try_recv().unwrap();
        match &submitted {
            ControlMessage::Submission(s) => {
                assert_eq!(s.rollout_id, "rollout-kb-feat");
                assert_eq!(s.patch.title, "New TLS defaults");
                assert_eq!(s.decision, None, "the rollout actor decides");
                assert_eq!(s.submitted_by, "api");
            }
            other => panic!("{other:?}"),
        }
        // The run loop feeds what crosses the control topic to the monitor.
        monitor.on_control(&submitted);
        let list: serde_json::Value = ureq::get(&patches)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        assert_eq!(list[0]["rollout_id"], "rollout-kb-feat");
        assert_eq!(list[0]["state"], "waiting_for_approval");

        let approve = format!("{patches}/KB-FEAT/approve");
        assert_eq!(post(&approve, None, "").0, 401);
        let (status, body) = post(&approve, Some(TOKEN), r#"{"by": "alice", "why": "x"}"#);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("why"), "{body}");
        let (status, body) = post(&approve, Some(TOKEN), r#"{"by": "alice"}"#);
        assert_eq!(status, 202, "{body}");
        match received.try_recv().unwrap() {
            ControlMessage::Manual(m) => {
                assert_eq!(m.rollout_id, "rollout-kb-feat");
                assert_eq!(m.action, ManualAction::Approve);
                assert_eq!(m.by, "alice");
            }
            other => panic!("{other:?}"),
        }

        // A rejected patch is sent (for the audit trail) and says so.
        let (status, body) = post(
            &patches,
            Some(TOKEN),
            r#"{"id": "KB-BAD", "classification": "security", "severity": "low", "product": "x"}"#,
        );
        assert_eq!(status, 202, "{body}");
        assert!(body.contains("rejected by the reject list"), "{body}");
    }

    fn toml_rules(text: &str) -> ApprovalConfig {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .unwrap()
    }
}
