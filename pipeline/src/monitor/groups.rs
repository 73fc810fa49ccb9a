//! Canary groups over HTTP: `GET /api/groups` lists every group with its
//! members, `POST /api/groups/preview` shows which VMs a selector would
//! match before it is used (read-only: no token needed).

use super::server::{AppState, bad_request};
use crate::inventory::Inventory;
use crate::inventory::selector::{GroupConfig, Selector};
use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};

/// A group and the VMs it matches.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupMembers {
    /// The group's name.
    pub name: String,
    /// How many VMs match.
    pub count: usize,
    /// Their ids, in inventory order.
    pub vms: Vec<String>,
}

/// The members of `selector` in `inventory`.
pub fn members(inventory: &Inventory, selector: &Selector) -> GroupMembers {
    let vms: Vec<String> = inventory
        .vms()
        .iter()
        .filter(|v| selector.matches(v))
        .map(|v| v.id.clone())
        .collect();
    GroupMembers {
        name: selector.name.clone(),
        count: vms.len(),
        vms,
    }
}

/// `GET /api/groups`.
pub async fn list(State(state): State<AppState>) -> Response {
    let inventory = state.monitor.inventory();
    let groups: Vec<GroupMembers> = inventory
        .group_names()
        .into_iter()
        .filter_map(|name| inventory.group(name))
        .map(|g| members(&inventory, g))
        .collect();
    Json(groups).into_response()
}

/// `POST /api/groups/preview` with a group as JSON (`tags`,
/// `instance_types`, `regions`, `criticality`, `expression`; `name`
/// optional).
pub async fn preview(State(state): State<AppState>, body: String) -> Response {
    let inventory = state.monitor.inventory();
    let mut value: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("body: {e}")),
    };
    if let Some(object) = value.as_object_mut() {
        object
            .entry("name")
            .or_insert_with(|| serde_json::Value::String("preview".into()));
    }
    let config: GroupConfig = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => return bad_request(&format!("body: {e}")),
    };
    match Selector::compile(&config) {
        Ok(selector) => Json(members(&inventory, &selector)).into_response(),
        Err(e) => bad_request(&format!("{}: {}", e.field, e.reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Monitor;
    use crate::monitor::server::serve_with;
    use bellwether_schemas::{Criticality, VmRecord};
    use std::sync::Arc;

    fn vm(id: &str, region: &str, role: &str, criticality: Criticality) -> VmRecord {
        VmRecord {
            id: id.into(),
            tags: [("role".to_string(), role.to_string())].into(),
            instance_type: "m6i.large".into(),
            region: region.into(),
            criticality,
        }
    }

    fn call(method: &str, url: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match method {
            "GET" => agent.get(url).call().unwrap(),
            "DELETE" => agent.delete(url).call().unwrap(),
            "PUT" => agent
                .put(url)
                .header("Content-Type", "application/json")
                .send(body)
                .unwrap(),
            _ => agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(body)
                .unwrap(),
        };
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    #[test]
    fn the_api_previews_selectors_and_describes_itself() {
        let inventory = Arc::new(Inventory::new(
            vec![
                vm("web-1", "eu-west-1", "web", Criticality::Standard),
                vm("web-2", "us-east-1", "web", Criticality::Standard),
                vm("db-1", "eu-west-1", "db", Criticality::Critical),
            ],
            vec![],
        ));
        let server = serve_with(
            "127.0.0.1:0",
            AppState::new(Monitor::new(&inventory, "test")),
        )
        .unwrap();
        let url = server.url();

        let (status, body) = call("GET", &format!("{url}api/groups"), "");
        assert_eq!(status, 200, "{body}");
        let groups: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(groups[0]["name"], "critical-systems");
        assert_eq!(groups[0]["vms"], serde_json::json!(["db-1"]));

        let preview = format!("{url}api/groups/preview");
        let (status, body) = call(
            "POST",
            &preview,
            r#"{"expression": "region == \"eu-west-1\" && tags.role == \"web\""}"#,
        );
        assert_eq!(status, 200, "{body}");
        let m: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(m["vms"], serde_json::json!(["web-1"]));
        assert_eq!(m["count"], 1);
        let (status, body) = call(
            "POST",
            &preview,
            r#"{"regions": ["us-east-1", "eu-west-1"]}"#,
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""count":3"#), "{body}");
        let (status, body) = call("POST", &preview, r#"{"expression": "region = 1"}"#);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("expression"), "{body}");
        let (status, body) = call("POST", &preview, r#"{"zones": ["a"]}"#);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("zones"), "{body}");

        // The OpenAPI document lists what the server answers, and nothing it does not.
        let (status, body) = call("GET", &format!("{url}api/openapi.json"), "");
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 9);
        for (path, methods) in paths {
            for method in methods.as_object().unwrap().keys() {
                if path == "/api/events" {
                    continue; // a stream that does not end
                }
                let concrete = path
                    .replace("{rollout_id}", "r1")
                    .replace("{action}", "pause")
                    .replace("{patch_id}", "KB-1")
                    .replace("{vm_id}", "vm-1")
                    .replace("{name}", "g");
                let (status, body) = call(
                    &method.to_uppercase(),
                    &format!("{url}{}", &concrete[1..]),
                    "{}",
                );
                assert!(
                    status != 404 && status != 405 || !body.contains("no such page"),
                    "{method} {path}: {status} {body}"
                );
                assert_ne!(status, 405, "{method} {path}");
            }
        }
        let (status, _) = call("GET", &format!("{url}api/nothing"), "");
        assert_eq!(status, 404);
    }
}
