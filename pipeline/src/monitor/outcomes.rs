//! `POST /api/outcomes`: an operator (or a health checker) reports what
//! became of a VM, as `bellwether mark` does: it failed, or its rollback was
//! a false alarm. The outcome goes out on the control topic, lands in the
//! history's `outcomes` table and is a label for the next retraining.
//! Mutating: needs `Authorization: Bearer <http.token>`.

use super::server::{AppState, bad_request, json_body};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use bellwether_schemas::{ControlMessage, EventTime, Outcome, OutcomeKind};
use serde::Deserialize;
use std::sync::mpsc::Sender;

/// Where accepted outcomes go, and the token that lets a request send one.
#[derive(Clone)]
pub struct ControlAccess {
    /// The bearer token (`http.token`).
    pub token: String,
    /// Accepted messages, published on the control topic by the caller.
    pub sender: Sender<ControlMessage>,
    /// The groups `rollout.canary_groups` names, which may not be removed.
    pub canary_groups: Vec<String>,
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkRequest {
    vm_id: String,
    /// `failed`, or `false_alarm` (also `false-alarm`).
    outcome: String,
    #[serde(default)]
    rollout_id: Option<String>,
    /// The rollback judged (default with a rollout: `<rollout>/rollback/<vm>`).
    #[serde(default)]
    command_id: Option<String>,
    /// When it happened, RFC 3339 (default: now).
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    note: String,
}

/// True when `given` equals `expected`, comparing every byte.
pub(crate) fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The token of an `Authorization: Bearer <token>` header, if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Checks the bearer token: `None` lets the request through, `Some` is the
/// response refusing it.
pub fn refusal(headers: &HeaderMap, access: Option<&ControlAccess>) -> Option<Response> {
    let Some(access) = access else {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "this server accepts no changes: set http.token (e.g. BELLWETHER__HTTP__TOKEN) to enable them",
        ));
    };
    match bearer_token(headers) {
        Some(token) if same(token, &access.token) => None,
        Some(_) => Some(refuse(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Some(refuse(
            StatusCode::UNAUTHORIZED,
            "missing header `Authorization: Bearer <http.token>`",
        )),
    }
}

/// Hands an accepted change to the control topic's publisher: 202 with
/// `echo` as the body, or 503 when bellwether is shutting down (403 when the
/// server takes no changes at all, which [`refusal`] answers first).
pub fn publish<T: serde::Serialize>(
    state: &AppState,
    message: ControlMessage,
    echo: &T,
) -> Response {
    let Some(access) = &state.control else {
        return refuse(StatusCode::FORBIDDEN, "this server accepts no changes");
    };
    if access.sender.send(message).is_err() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "bellwether is shutting down",
        );
    }
    (StatusCode::ACCEPTED, Json(echo)).into_response()
}

/// `POST /api/outcomes` with a JSON body.
pub async fn post_outcome(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&headers, state.control.as_ref()) {
        return refused;
    }
    let request: MarkRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let kind: OutcomeKind = match request.outcome.parse() {
        Ok(k) => k,
        Err(e) => return bad_request(&format!("outcome: {e}")),
    };
    if request.vm_id.trim().is_empty() {
        return bad_request("vm_id: empty");
    }
    let at = match EventTime::parse_or_now(request.at.as_deref()) {
        Ok(t) => t,
        Err(e) => return bad_request(&format!("at: {e}")),
    };
    let outcome = match Outcome::operator_mark(
        request.vm_id,
        kind,
        request.rollout_id,
        request.command_id,
        at,
        request.note,
    ) {
        Ok(o) => o,
        Err(e) => return bad_request(&format!("rollout_id or command_id: {e}")),
    };
    publish(&state, ControlMessage::Outcome(outcome.clone()), &outcome)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::monitor::Monitor;
    use crate::monitor::server::{serve, serve_with};
    use bellwether_schemas::{CommandId, OutcomeSource};

    pub(crate) const TOKEN: &str = "a-test-token-0123456789";

    /// A real server of `monitor` taking changes with [`TOKEN`], and what it
    /// hands on for the control topic.
    pub(crate) fn changing_server(
        monitor: &Monitor,
        approval: Option<crate::approval::rules::ApprovalConfig>,
    ) -> (
        crate::monitor::server::Server,
        std::sync::mpsc::Receiver<ControlMessage>,
    ) {
        let (sender, received) = std::sync::mpsc::channel();
        let server = serve_with(
            "127.0.0.1:0",
            crate::monitor::server::AppState {
                control: Some(ControlAccess {
                    token: TOKEN.into(),
                    sender,
                    canary_groups: vec!["canary-ring".into()],
                }),
                approval,
                ..crate::monitor::server::AppState::new(monitor.clone())
            },
        )
        .unwrap();
        (server, received)
    }

    /// POSTs `body` to `target`, with the bearer `token` if any.
    pub(crate) fn post(target: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut request = ureq::post(target)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    fn post_with(target: &str, authorization: &str, body: &str) -> (u16, String) {
        let mut response = ureq::post(target)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .header("Authorization", authorization)
            .send(body)
            .unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    fn post_from(target: &str, origin: &str, body: &str) -> (u16, String) {
        let mut response = ureq::post(target)
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Origin", origin)
            .send(body)
            .unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    #[test]
    fn outcomes_need_the_token_and_a_well_formed_body() {
        let inventory = crate::inventory::Inventory::new(vec![], vec![]);
        let monitor = Monitor::new(&inventory, "test");
        let (server, received) = changing_server(&monitor, None);
        let url = server.url();
        let outcomes = format!("{url}api/outcomes");
        let good = r#"{"vm_id": "vm-0007", "outcome": "false_alarm", "rollout_id": "r1", "note": "cache warm-up"}"#;

        let (status, body) = post(&outcomes, None, good);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("Authorization"), "{body}");
        let (status, body) = post(&outcomes, Some("not-the-token-at-all"), good);
        assert_eq!(status, 401, "{body}");
        let (status, body) = post(
            &outcomes,
            Some(TOKEN),
            r#"{"vm_id": "vm-1", "outcome": "maybe"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("outcome") && body.contains("maybe"), "{body}");
        let (status, body) = post(
            &outcomes,
            Some(TOKEN),
            r#"{"vm": "vm-1", "outcome": "failed"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("`vm`"), "{body}");
        let (status, body) = post(
            &outcomes,
            Some(TOKEN),
            r#"{"vm_id": "vm-1", "outcome": "false_alarm"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("rollout_id"), "{body}");
        let (status, body) = post(
            &outcomes,
            Some(TOKEN),
            r#"{"vm_id": "vm-1", "outcome": "failed", "at": "yesterday"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("at: `yesterday`"), "{body}");
        assert!(received.try_recv().is_err(), "nothing refused was sent");

        // The scheme is case-insensitive: `bearer` works as `Bearer` does.
        let (status, body) = post_with(&outcomes, &format!("bearer {TOKEN}"), good);
        assert_eq!(status, 202, "{body}");
        received.try_recv().unwrap();
        // A foreign page may not send it (its Origin is not this server).
        let (status, body) = post_from(&outcomes, "https://evil.example", good);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("origin"), "{body}");

        // A body must say it is JSON; every refusal is JSON, a body that is
        // not UTF-8 included.
        for (content_type, body, status, says) in [
            ("text/plain", good.as_bytes(), 415, "application/json"),
            ("application/json", &[0xff, 0xfe, b'{'][..], 400, "UTF-8"),
        ] {
            let mut response = ureq::post(&outcomes)
                .config()
                .http_status_as_error(false)
                .build()
                .header("Content-Type", content_type)
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .send(body)
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{content_type}");
            let answer: serde_json::Value = response.body_mut().read_json().unwrap();
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains(says), "{content_type}: {error}");
        }
        assert!(received.try_recv().is_err(), "nothing refused was sent");

        let (status, body) = post(&outcomes, Some(TOKEN), good);
        assert_eq!(status, 202, "{body}");
        match received.try_recv().unwrap() {
            ControlMessage::Outcome(o) => {
                assert_eq!(o.vm_id, "vm-0007");
                assert_eq!(o.kind, OutcomeKind::FalseAlarm);
                assert_eq!(o.source, OutcomeSource::Operator);
                assert_eq!(o.command_id, Some(CommandId::rollback("r1", "vm-0007")));
                assert_eq!(o.note, "cache warm-up");
            }
            other => panic!("{other:?}"),
        }
        // Rollout controls take the same token.
        let control =
            |path: &str, token, body| post(&format!("{url}api/rollouts/{path}"), token, body);
        assert_eq!(control("r1/pause", None, "").0, 401);
        let (status, body) = control("r1/pause", Some(TOKEN), "");
        assert_eq!(status, 404, "a rollout nobody approved: {body}");
        assert!(body.contains("no rollout `r1`"), "{body}");
        monitor.on_actor("r1", bellwether_schemas::RolloutState::Baking, 3, false);
        let (status, body) = control("r1/explode", Some(TOKEN), "");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("explode"), "{body}");
        let (status, body) = control(
            "r1/pause",
            Some(TOKEN),
            r#"{"by": "alice", "reason": "freeze"}"#,
        );
        assert_eq!(status, 202, "{body}");
        match received.try_recv().unwrap() {
            ControlMessage::Manual(m) => {
                assert_eq!(m.rollout_id, "r1");
                assert_eq!(m.action, bellwether_schemas::ManualAction::Pause);
                assert_eq!(m.by, "alice");
                assert_eq!(m.reason, "freeze");
            }
            other => panic!("{other:?}"),
        }
        drop(server);

        // A server without a token accepts no change at all.
        let server = serve("127.0.0.1:0", monitor, None).unwrap();
        let (status, body) = post(&format!("{}api/outcomes", server.url()), Some(TOKEN), good);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("http.token"), "{body}");
    }
}
