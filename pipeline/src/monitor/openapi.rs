//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API,
//! served by bellwether itself (tested against the routes the server
//! answers).

use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

/// The document.
pub fn openapi() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bellwether",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Patch canarying with predictive failure analysis: the live rollout, its history, outcomes and canary groups."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "http.token (BELLWETHER__HTTP__TOKEN); without it every change is refused (403)" }
            },
            "schemas": {
                "RolloutListing": {
                    "type": "object", "required": ["id", "patch_id", "state", "waves", "patched", "rolled_back"],
                    "properties": {
                        "id": { "type": "string" },
                        "patch_id": { "type": "string" },
                        "patch_title": { "type": "string" },
                        "state": { "type": "string", "example": "baking" },
                        "approval": { "type": "string" },
                        "waves": { "type": "integer", "description": "waves started" },
                        "waves_planned": { "type": ["integer", "null"] },
                        "patched": { "type": "integer", "description": "VMs on the patch now" },
                        "rolled_back": { "type": "integer" }
                    }
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": { "type": "string", "description": "what was wrong, naming the field" } }
                },
                "OutcomeRequest": {
                    "type": "object", "required": ["vm_id", "outcome"], "additionalProperties": false,
                    "properties": {
                        "vm_id": { "type": "string" },
                        "outcome": { "type": "string", "enum": ["failed", "false_alarm"] },
                        "rollout_id": { "type": "string" },
                        "command_id": { "type": "string", "description": "the rollback judged; default with rollout_id: <rollout>/rollback/<vm>" },
                        "at": { "type": "string", "format": "date-time", "description": "default: now" },
                        "note": { "type": "string" }
                    }
                },
                "Group": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "name": { "type": "string" },
                        "tags": { "type": "object", "additionalProperties": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ] } },
                        "instance_types": { "type": "array", "items": { "type": "string" } },
                        "regions": { "type": "array", "items": { "type": "string" } },
                        "criticality": { "type": "array", "items": { "type": "string", "enum": ["low", "standard", "high", "critical"] } },
                        "expression": { "type": "string", "example": "tags.role == \"web\" && region != \"us-east-1\"" }
                    }
                },
                "ApprovalRules": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "approve": { "type": "array", "items": { "type": "string" }, "description": "patch ids approved at once" },
                        "reject": { "type": "array", "items": { "type": "string" }, "description": "patch ids never rolled out" },
                        "rules": { "type": "array", "description": "in order; the first that matches decides; no match waits for a human", "items": {
                            "type": "object", "required": ["name", "action"], "additionalProperties": false,
                            "properties": {
                                "name": { "type": "string" },
                                "classifications": { "type": "array", "items": { "type": "string" } },
                                "severities": { "type": "array", "items": { "type": "string" } },
                                "products": { "type": "array", "items": { "type": "string" } },
                                "action": { "type": "string", "enum": ["approve", "manual", "reject"] },
                                "after_days": { "type": "integer", "minimum": 0, "description": "approve rules: days after the release" }
                            }
                        } }
                    }
                },
                "PatchRequest": {
                    "type": "object", "required": ["id", "classification", "severity", "product"], "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "example": "KB-2026-1201" },
                        "title": { "type": "string" },
                        "classification": { "type": "string", "example": "security" },
                        "severity": { "type": "string", "example": "critical" },
                        "product": { "type": "string", "example": "debian-12" },
                        "released_at": { "type": "string", "format": "date-time", "description": "default: now; an approval rule's after_days count from here" },
                        "rollout_id": { "type": "string", "description": "default: rollout-<id, lower case>" },
                        "by": { "type": "string", "description": "who submits (default: api)" }
                    }
                },
                "Vm": {
                    "type": "object", "required": ["id", "instance_type", "region"], "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "description": "as it appears in metric samples" },
                        "instance_type": { "type": "string" },
                        "region": { "type": "string" },
                        "criticality": { "type": "string", "enum": ["low", "standard", "high", "critical"], "default": "standard" },
                        "tags": { "type": "object", "additionalProperties": { "type": "string" } }
                    }
                },
                "GroupMembers": {
                    "type": "object", "required": ["name", "count", "vms"],
                    "properties": {
                        "name": { "type": "string" },
                        "count": { "type": "integer" },
                        "vms": { "type": "array", "items": { "type": "string" } }
                    }
                }
            }
        },
        "paths": {
            "/api/snapshot": { "get": {
                "summary": "The fleet and its rollouts now (what the dashboard shows)",
                "responses": { "200": { "description": "snapshot", "content": { "application/json": {} } } }
            } },
            "/api/events": { "get": {
                "summary": "Server-sent events: a snapshot at once, then one per change (at most 4/s)",
                "responses": { "200": { "description": "event stream", "content": { "text/event-stream": {} } } }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus metrics",
                "responses": { "200": { "description": "text exposition format", "content": { "text/plain": {} } } }
            } },
            "/api/sql": {
                "get": {
                    "summary": "A read-only SQL query over the Parquet history",
                    "parameters": [
                        { "name": "q", "in": "query", "required": true, "schema": { "type": "string" } },
                        { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "csv"] } }
                    ],
                    "responses": { "200": { "description": "rows" }, "400": error_response("not a query, or it failed"), "404": error_response("no history kept"), "501": error_response("this build has no SQL (built without the sql feature)"), "503": error_response("sql.max_concurrent queries already run, or the query ran past sql.timeout_secs") }
                },
                "post": {
                    "summary": "The same, the query as the body",
                    "requestBody": { "required": true, "content": { "application/sql": { "schema": { "type": "string" } }, "text/plain": { "schema": { "type": "string" } } } },
                    "responses": { "200": { "description": "rows" }, "400": error_response("not a query, or it failed"), "404": error_response("no history kept"), "501": error_response("this build has no SQL (built without the sql feature)"), "503": error_response("sql.max_concurrent queries already run, or the query ran past sql.timeout_secs") }
                }
            },
            "/api/outcomes": { "post": {
                "summary": "Mark a VM failed, or a rollback a false alarm (a label for retraining)",
                "security": [ { "bearer": [] } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OutcomeRequest" } } } },
                "responses": {
                    "202": { "description": "published on the control topic" },
                    "400": error_response("a field is wrong (named)"),
                    "401": error_response("no or wrong bearer token"),
                    "403": error_response("this server accepts no changes (no http.token)"),
                    "503": error_response("bellwether is shutting down: the change was not taken")
                }
            } },
            "/api/rollouts": { "get": {
                "summary": "Every rollout, newest first: state, approval, waves, VMs patched and rolled back",
                "responses": { "200": { "description": "rollouts", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/RolloutListing" } } } } } }
            } },
            "/api/rollouts/{rollout_id}": { "get": {
                "summary": "One rollout: its waves (VMs patched and rolled back), canary groups, anomaly scores and rollbacks with their evidence",
                "parameters": [ { "name": "rollout_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "200": { "description": "the rollout", "content": { "application/json": {} } },
                    "404": error_response("no such rollout")
                }
            } },
            "/api/rollouts/{rollout_id}/report": { "get": {
                "summary": "The canary report: per metric, the patched VMs' deviations from their forecasts against their control cohorts' concurrent moves (median and middle half, in sigmas) per window, and the latest window's verdict (VMs anomalous, median difference against peers, smallest Mann-Whitney p); t_ms: window ends in epoch milliseconds",
                "parameters": [ { "name": "rollout_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "200": { "description": "the report", "content": { "application/json": {} } },
                    "404": error_response("no such rollout")
                }
            } },
            "/api/rollouts/{rollout_id}/vms/{vm_id}": { "get": {
                "summary": "A patched VM's drill-down: per metric, observed against its forecast interval and its unpatched cohort's band, and its failure risk, per window (t_ms: window ends in epoch milliseconds, for plotting); kept for the first 1,000 patched VMs of a rollout, the last 96 windows",
                "parameters": [
                    { "name": "rollout_id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "vm_id", "in": "path", "required": true, "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "chart columns", "content": { "application/json": {} } },
                    "404": error_response("not a patched VM of the rollout, or not kept")
                }
            } },
            "/api/rollouts/{rollout_id}/{action}": { "post": {
                "summary": "Control a rollout: start or approve (a submitted patch waiting for a human), pause, resume, promote (end the bake, next wave now), abort, rollback (every patched VM, critical first, without analysis)",
                "security": [ { "bearer": [] } ],
                "parameters": [
                    { "name": "rollout_id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "action", "in": "path", "required": true, "schema": { "type": "string", "enum": ["pause", "resume", "promote", "abort", "rollback", "approve", "start"] } }
                ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "by": { "type": "string" }, "reason": { "type": "string" } }
                } } } },
                "responses": {
                    "202": { "description": "published on the control topic; the actor records whether it applied" },
                    "400": error_response("unknown action or bad body"),
                    "401": error_response("no or wrong bearer token"),
                    "403": error_response("this server accepts no changes (no http.token)"),
                    "503": error_response("bellwether is shutting down: the change was not taken")
                }
            } },
            "/api/patches": {
                "get": {
                    "summary": "Submitted and approved patches, with what each waits for and its rollout's state",
                    "responses": { "200": { "description": "patches", "content": { "application/json": {} } } }
                },
                "post": {
                    "summary": "Submit a patch: the approval rules decide; an approved patch's canary rollout starts at once or when its rule's days are over, a manual one waits for POST /api/patches/{patch_id}/approve, a rejected one never starts",
                    "security": [ { "bearer": [] } ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PatchRequest" } } } },
                    "responses": {
                        "202": { "description": "published on the control topic: the decision and what happens next" },
                        "400": error_response("a field is wrong (named)"),
                        "401": error_response("no or wrong bearer token"),
                        "403": error_response("this server accepts no changes (no http.token)"),
                        "503": error_response("bellwether is shutting down: the change was not taken")
                    }
                }
            },
            "/api/approval/rules": {
                "get": {
                    "summary": "The approval rules in force (the config's, or the last set put in force)",
                    "responses": { "200": { "description": "rules", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApprovalRules" } } } } }
                },
                "put": {
                    "summary": "Put a new set of approval rules in force for every later submission; kept on the control topic, so it survives restarts",
                    "security": [ { "bearer": [] } ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApprovalRules" } } } },
                    "responses": {
                        "202": { "description": "published on the control topic" },
                        "400": error_response("a rule is wrong (key named)"),
                        "401": error_response("no or wrong bearer token"),
                        "403": error_response("this server accepts no changes (no http.token)"),
                        "503": error_response("bellwether is shutting down: the change was not taken")
                    }
                }
            },
            "/api/patches/{patch_id}/approve": { "post": {
                "summary": "Approve a submitted patch that waits for a human (a rejected one stays rejected)",
                "security": [ { "bearer": [] } ],
                "parameters": [ { "name": "patch_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "by": { "type": "string" }, "reason": { "type": "string" }, "rollout_id": { "type": "string" } }
                } } } },
                "responses": {
                    "202": { "description": "published on the control topic; the actor records whether it applied" },
                    "400": error_response("bad body"),
                    "401": error_response("no or wrong bearer token"),
                    "403": error_response("this server accepts no changes (no http.token)"),
                    "503": error_response("bellwether is shutting down: the change was not taken")
                }
            } },
            "/api/groups": {
                "get": {
                    "summary": "Every canary group (the built-in critical-systems first) and its VMs",
                    "responses": {
                        "200": { "description": "groups", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/GroupMembers" } } } } }
                    }
                },
                "post": {
                    "summary": "Define a canary group (or replace the one of its name); kept on the control topic, so it survives restarts",
                    "security": [ { "bearer": [] } ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Group" } } } },
                    "responses": {
                        "202": { "description": "published on the control topic" },
                        "400": error_response("the selector does not compile, or a built-in name (field named)"),
                        "401": error_response("no or wrong bearer token"),
                        "403": error_response("this server accepts no changes (no http.token)"),
                        "503": error_response("bellwether is shutting down: the change was not taken")
                    }
                }
            },
            "/api/groups/{name}": { "delete": {
                "summary": "Remove a canary group (not the built-in critical-systems)",
                "security": [ { "bearer": [] } ],
                "parameters": [ { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "202": { "description": "published on the control topic" },
                    "400": error_response("no such group, or built in"),
                    "401": error_response("no or wrong bearer token"),
                    "403": error_response("this server accepts no changes (no http.token)"),
                    "503": error_response("bellwether is shutting down: the change was not taken")
                }
            } },
            "/api/vms": {
                "get": {
                    "summary": "The inventory now (from config, plus what was registered)",
                    "responses": { "200": { "description": "VMs", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Vm" } } } } } }
                },
                "post": {
                    "summary": "Register a VM (or replace the one with its id); kept on the control topic, so it survives restarts",
                    "security": [ { "bearer": [] } ],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Vm" } } } },
                    "responses": {
                        "202": { "description": "published on the control topic" },
                        "400": error_response("a field is wrong (named)"),
                        "401": error_response("no or wrong bearer token"),
                        "403": error_response("this server accepts no changes (no http.token)"),
                        "503": error_response("bellwether is shutting down: the change was not taken")
                    }
                }
            },
            "/api/vms/{vm_id}": { "delete": {
                "summary": "Take a VM out of the inventory (later rollouts do not patch it)",
                "security": [ { "bearer": [] } ],
                "parameters": [ { "name": "vm_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "202": { "description": "published on the control topic" },
                    "400": error_response("no such VM"),
                    "401": error_response("no or wrong bearer token"),
                    "403": error_response("this server accepts no changes (no http.token)"),
                    "503": error_response("bellwether is shutting down: the change was not taken")
                }
            } },
            "/api/groups/preview": { "post": {
                "summary": "Which VMs a selector matches, before it is used",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Group" } } } },
                "responses": {
                    "200": { "description": "members", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GroupMembers" } } } },
                    "400": error_response("the selector does not compile (field named)")
                }
            } },
            "/api/waves": { "get": {
                "summary": "The waves a rollout started now would deploy in, and the VMs held back as the control until the last wave",
                "parameters": [
                    { "name": "patch", "in": "query", "required": false, "schema": { "type": "string" }, "description": "the patch whose rollout id seeds which VMs each wave takes" },
                    { "name": "group", "in": "query", "required": false, "schema": { "type": "string" }, "description": "the canary stage's group (default: rollout.canary_groups)" }
                ],
                "responses": {
                    "200": { "description": "waves and holdback", "content": { "application/json": {} } },
                    "400": error_response("no such group, or an unknown parameter"),
                    "404": error_response("this server plans no rollouts")
                }
            } },
            "/api/v1/write": { "post": {
                "summary": "Prometheus remote write 1.0: samples mapped to VM metrics by the `[remote_write]` config and produced onto the metrics topic",
                "description": "Served with remote_write.enabled (and always by `bellwether gateway`). Needs `Authorization: Bearer <remote_write.token>` when that is set.",
                "requestBody": { "required": true, "content": { "application/x-protobuf": {
                    "schema": { "type": "string", "format": "binary", "description": "a snappy-compressed (block format) protobuf prometheus.WriteRequest, sent with Content-Encoding: snappy" }
                } } },
                "responses": {
                    "204": { "description": "every sample is on the metrics topic" },
                    "400": error_response("the body does not decode (kept on the dead-letter topic); not to be sent again"),
                    "401": error_response("remote_write.token is set and the request does not bear it"),
                    "404": error_response("remote write is off on this server"),
                    "413": error_response("the body is larger than remote_write.max_body_mb"),
                    "415": error_response("not application/x-protobuf with Content-Encoding: snappy, or Remote-Write 2.0"),
                    "503": error_response("Kafka did not take the samples in time; send them again")
                }
            } },
            "/api/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": {} } } }
            } }
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn document() -> Response {
    Json(openapi()).into_response()
}
