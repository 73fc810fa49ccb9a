//! The rollouts over HTTP: `GET /api/rollouts` (the list), `GET
//! /api/rollouts/{rollout_id}` (one, with its waves and rollbacks), and
//! `POST /api/rollouts/{rollout_id}/{action}`, an operator's control of a
//! rollout (pause, resume, promote, abort, rollback) as `bellwether
//! rollout` does, published on the control topic for the actor. Mutating:
//! needs `Authorization: Bearer <http.token>`.

use super::outcomes::{publish, refusal};
use super::server::{AppState, bad_request, optional_json_body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bellwether_schemas::{ControlMessage, EventTime, ManualAction, ManualCommand};
use serde::{Deserialize, Serialize};

/// One rollout in `GET /api/rollouts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutListing {
    /// Rollout id.
    pub id: String,
    /// Patch id.
    pub patch_id: String,
    /// Patch title.
    pub patch_title: String,
    /// State: `waiting_for_approval`, `canary`, `baking`, `halted`, ...
    pub state: String,
    /// Who approved it, or what it waits for.
    pub approval: String,
    /// Waves started.
    pub waves: usize,
    /// Waves planned (when the actor runs in this process).
    pub waves_planned: Option<usize>,
    /// VMs running the patch now.
    pub patched: usize,
    /// VMs rolled back.
    pub rolled_back: usize,
}

/// `GET /api/rollouts`: every rollout, newest first.
pub async fn list(State(state): State<AppState>) -> axum::Json<Vec<RolloutListing>> {
    let snapshot = state.monitor.snapshot();
    axum::Json(
        snapshot
            .rollouts
            .into_iter()
            .map(|r| RolloutListing {
                waves: r.waves.len(),
                rolled_back: r.rollbacks.len(),
                id: r.id,
                patch_id: r.patch_id,
                patch_title: r.patch_title,
                state: r.state,
                approval: r.approval,
                waves_planned: r.waves_planned,
                patched: r.patched,
            })
            .collect(),
    )
}

/// `GET /api/rollouts/{rollout_id}`: one rollout as the dashboard shows it
/// (404 for one not known here).
pub async fn status(State(state): State<AppState>, Path(rollout_id): Path<String>) -> Response {
    match state
        .monitor
        .snapshot()
        .rollouts
        .into_iter()
        .find(|r| r.id == rollout_id)
    {
        Some(r) => axum::Json(r).into_response(),
        None => unknown(&rollout_id),
    }
}

fn unknown(rollout_id: &str) -> Response {
    let error =
        format!("no rollout `{rollout_id}` is known here (GET /api/rollouts lists the rollouts)");
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": error })),
    )
        .into_response()
}

/// The optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: String,
}

/// The handler.
pub async fn post_control(
    State(state): State<AppState>,
    Path((rollout_id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&headers, state.control.as_ref()) {
        return refused;
    }
    let action: ManualAction = match action.parse() {
        Ok(a) => a,
        Err(e) => return bad_request(&format!("action: {e}")),
    };
    let request: ControlRequest = match optional_json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if !state.monitor.has_rollout(&rollout_id) {
        return unknown(&rollout_id);
    }
    let command = ManualCommand {
        rollout_id,
        action,
        by: request.by.unwrap_or_else(|| "api".into()),
        reason: request.reason,
        at: EventTime::now(),
    };
    publish(&state, ControlMessage::Manual(command.clone()), &command)
}
