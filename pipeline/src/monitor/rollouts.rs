//! `POST /api/rollouts/{rollout_id}/{action}`: an operator's control of a
//! rollout (pause, resume, promote, abort, rollback), as `bellwether
//! rollout` does; published on the control topic for the actor. Mutating:
//! needs `Authorization: Bearer <http.token>`.

use super::outcomes::{publish, refusal};
use super::server::{AppState, bad_request, optional_json_body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bellwether_schemas::{ControlMessage, EventTime, ManualAction, ManualCommand};
use serde::Deserialize;

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
        let error = format!(
            "no rollout `{rollout_id}` is known here (GET /api/snapshot lists the rollouts)"
        );
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": error })),
        )
            .into_response();
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
