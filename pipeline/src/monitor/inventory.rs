//! The inventory API: VMs register and leave, canary groups are defined
//! and removed while bellwether runs, as `bellwether vm` and `bellwether
//! group define|remove` do.
//!
//! - `GET /api/vms`: the inventory now.
//! - `POST /api/vms` (a VM as JSON): register it, or replace the one with its id.
//! - `DELETE /api/vms/{vm_id}`.
//! - `POST /api/groups` (a group as JSON, `name` required): define it, or
//!   replace the one of its name.
//! - `DELETE /api/groups/{name}`.
//!
//! A change is checked against the inventory first (a 400 names the field),
//! then published on the control topic, where every component applies it
//! in topic order; a restarted bellwether replays it. Mutating: needs
//! `Authorization: Bearer <http.token>`.

use super::outcomes::{publish, refusal};
use super::server::{AppState, bad_request, json_body};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use bellwether_schemas::{
    ControlMessage, EventTime, GroupConfig, InventoryChange, InventoryUpdate, VmRecord,
};

/// `GET /api/vms`.
pub async fn list(State(state): State<AppState>) -> Json<Vec<VmRecord>> {
    Json(state.monitor.inventory().vms().to_vec())
}

/// Checks the token, then `change` against the inventory now (a 400 names
/// the field), then publishes it.
fn change(
    state: &AppState,
    headers: &HeaderMap,
    change: Result<InventoryChange, String>,
) -> Response {
    if let Some(refused) = refusal(headers, state.control.as_ref()) {
        return refused;
    }
    let change = match change {
        Ok(c) => c,
        Err(e) => return bad_request(&e),
    };
    let mut trial = (*state.monitor.inventory()).clone();
    if let Err(e) = trial.apply(&change) {
        return bad_request(&e.to_string());
    }
    let update = InventoryUpdate {
        change,
        by: "api".into(),
        at: EventTime::now(),
    };
    publish(state, ControlMessage::Inventory(update.clone()), &update)
}

/// `POST /api/vms`.
pub async fn register(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let vm = json_body::<VmRecord>(&body).map(|vm| InventoryChange::RegisterVm { vm });
    change(&state, &headers, vm)
}

/// `DELETE /api/vms/{vm_id}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(vm_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(&state, &headers, Ok(InventoryChange::RemoveVm { vm_id }))
}

/// `POST /api/groups`.
pub async fn define_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let group = json_body::<GroupConfig>(&body).map(|group| InventoryChange::DefineGroup { group });
    change(&state, &headers, group)
}

/// `DELETE /api/groups/{name}`.
pub async fn remove_group(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let in_use = state
        .control
        .as_ref()
        .and_then(|c| crate::service::inventory::group_in_use(&name, &c.canary_groups));
    if let (Some(why), None) = (in_use, refusal(&headers, state.control.as_ref())) {
        return (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": why })),
        )
            .into_response();
    }
    change(&state, &headers, Ok(InventoryChange::RemoveGroup { name }))
}

#[cfg(test)]
mod tests {
    use crate::monitor::Monitor;
    use crate::monitor::outcomes::tests::{TOKEN, changing_server, post};
    use bellwether_schemas::{ControlMessage, InventoryChange};

    fn delete(url: &str, token: Option<&str>) -> (u16, String) {
        let mut request = ureq::delete(url)
            .config()
            .http_status_as_error(false)
            .build();
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    #[test]
    fn vms_and_groups_change_over_http_once_the_control_topic_has_them() {
        let config = crate::config::Config::default_config();
        let vms = crate::simulator::fleet::generate_inventory(&config.fleet, 1)
            .into_iter()
            .take(10)
            .collect();
        let inventory =
            crate::inventory::Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let monitor = Monitor::new(&inventory, "test");
        let (server, received) = changing_server(&monitor, None);
        let url = server.url();
        let vm = r#"{"id": "vm-new-1", "instance_type": "m6i.large", "region": "eu-west-1", "criticality": "critical", "tags": {"ring": "canary"}}"#;

        assert_eq!(post(&format!("{url}api/vms"), None, vm).0, 401);
        let (status, body) = post(
            &format!("{url}api/vms"),
            Some(TOKEN),
            r#"{"id": "vm-x", "region": "eu-west-1"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("instance_type"), "{body}");
        let (status, body) = post(
            &format!("{url}api/vms"),
            Some(TOKEN),
            r#"{"id": "", "instance_type": "m", "region": "r"}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("vm.id"), "{body}");
        let (status, body) = delete(&format!("{url}api/vms/vm-nope"), Some(TOKEN));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("vm-nope"), "{body}");
        let (status, body) = post(
            &format!("{url}api/groups"),
            Some(TOKEN),
            r#"{"name": "eu", "expression": "region == "}"#,
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("expression"), "{body}");
        let (status, body) = delete(&format!("{url}api/groups/critical-systems"), Some(TOKEN));
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("built in"), "{body}");
        // Nor a group the rollouts deploy to first.
        let (status, body) = delete(&format!("{url}api/groups/canary-ring"), Some(TOKEN));
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("rollout.canary_groups"), "{body}");
        assert_eq!(delete(&format!("{url}api/groups/canary-ring"), None).0, 401);
        assert!(received.try_recv().is_err(), "nothing refused was sent");

        // Accepted changes go out; the inventory changes once they come back.
        let (status, body) = post(&format!("{url}api/vms"), Some(TOKEN), vm);
        assert_eq!(status, 202, "{body}");
        let (status, body) = post(
            &format!("{url}api/groups"),
            Some(TOKEN),
            r#"{"name": "new-critical", "criticality": ["critical"], "tags": {"ring": "canary"}}"#,
        );
        assert_eq!(status, 202, "{body}");
        let sent: Vec<ControlMessage> = received.try_iter().collect();
        assert_eq!(sent.len(), 2);
        assert!(
            matches!(&sent[0], ControlMessage::Inventory(u) if matches!(&u.change, InventoryChange::RegisterVm { vm } if vm.id == "vm-new-1"))
        );
        let listed: serde_json::Value = ureq::get(&format!("{url}api/vms"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            10,
            "not applied before the topic has it"
        );
        for m in &sent {
            monitor.on_control(m);
        }
        let listed: serde_json::Value = ureq::get(&format!("{url}api/vms"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 11);
        let groups: serde_json::Value = ureq::get(&format!("{url}api/groups"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let group = groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "new-critical")
            .unwrap_or_else(|| panic!("{groups}"));
        let members: Vec<&str> = group["vms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(members.contains(&"vm-new-1"), "{members:?}");

        let (status, body) = delete(&format!("{url}api/vms/vm-new-1"), Some(TOKEN));
        assert_eq!(status, 202, "{body}");
        let (status, body) = delete(&format!("{url}api/groups/new-critical"), Some(TOKEN));
        assert_eq!(status, 202, "{body}");
        for m in received.try_iter() {
            monitor.on_control(&m);
        }
        assert_eq!(monitor.inventory().vms().len(), 10);
        assert!(monitor.inventory().group("new-critical").is_none());
    }
}
