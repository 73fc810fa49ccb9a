//! `GET /api/waves[?patch=ID&group=NAME]`: the waves a rollout started now
//! would deploy in, and the VMs held back as the control until the last
//! wave, as `bellwether group preview --waves` prints them (read-only).

use super::server::{AppState, bad_request};
use crate::config::{JudgeConfig, RolloutConfig};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;

/// What the preview plans with: the config's rollout and judge sections.
#[derive(Debug, Clone)]
pub struct WaveSettings {
    /// Waves, bake times, canary groups, holdback.
    pub rollout: RolloutConfig,
    /// Cohorts (what the holdback keeps per cohort).
    pub judge: JudgeConfig,
}

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveQuery {
    /// The patch whose rollout id seeds which VMs each wave takes.
    patch: Option<String>,
    /// The canary stage's group (default: `rollout.canary_groups`).
    group: Option<String>,
}

/// The handler.
pub async fn preview(State(state): State<AppState>, Query(query): Query<WaveQuery>) -> Response {
    let Some(settings) = &state.waves else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "this server plans no rollouts (bellwether run serves the wave preview)" })),
        )
            .into_response();
    };
    let inventory = state.monitor.inventory();
    let groups = match query.group {
        Some(g) if inventory.group(&g).is_none() => {
            return bad_request(&format!(
                "group: no group `{g}`; groups: {}",
                inventory.group_names().join(", ")
            ));
        }
        Some(g) => vec![g],
        None => settings.rollout.canary_groups.clone(),
    };
    let rollout_id =
        crate::approval::submit::default_rollout_id(query.patch.as_deref().unwrap_or("preview"));
    Json(crate::rollout::planner::preview(
        &inventory,
        &settings.rollout,
        &settings.judge,
        &groups,
        &rollout_id,
        state.monitor.noise().as_ref(),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::Monitor;
    use crate::monitor::server::serve_with;

    fn get(url: &str) -> (u16, serde_json::Value) {
        let mut response = ureq::get(url)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json().unwrap())
    }

    /// The simulated fleet of `config` (seed 2) and a monitor over it.
    fn fleet(config: &crate::config::Config) -> (crate::inventory::Inventory, Monitor) {
        let vms = crate::simulator::fleet::generate_inventory(&config.fleet, 2);
        let inventory =
            crate::inventory::Inventory::with_groups(vms, &config.canary.groups).unwrap();
        let monitor = Monitor::new(&inventory, "test");
        (inventory, monitor)
    }

    /// A server previewing waves under `config` over what `monitor` saw.
    fn serve(config: &crate::config::Config, monitor: Monitor) -> crate::monitor::server::Server {
        serve_with(
            "127.0.0.1:0",
            AppState {
                waves: Some(WaveSettings {
                    rollout: config.rollout.clone(),
                    judge: config.judge.clone(),
                }),
                ..AppState::new(monitor)
            },
        )
        .unwrap()
    }

    #[test]
    fn the_api_previews_the_waves_and_the_holdback_the_actor_would_plan() {
        let config = crate::config::Config::default_config();
        let (inventory, monitor) = fleet(&config);
        let server = serve(&config, monitor);
        let url = server.url();
        let (status, got) = get(&format!("{url}api/waves?patch=KB-1"));
        assert_eq!(status, 200, "{got}");
        let expected = crate::rollout::planner::preview(
            &inventory,
            &config.rollout,
            &config.judge,
            &config.rollout.canary_groups,
            "rollout-kb-1",
            None,
        );
        assert_eq!(got, serde_json::to_value(&expected).unwrap());
        assert!(got["held_back_vms"].as_u64().unwrap() > 0, "{got}");
        let last = got["waves"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["held_back_vms"], got["held_back_vms"]);

        let (status, got) = get(&format!("{url}api/waves?group=nope"));
        assert_eq!(status, 400);
        assert!(
            got["error"].as_str().unwrap().contains("no group `nope`"),
            "{got}"
        );
        let (status, got) = get(&format!("{url}api/waves?colour=red"));
        assert_eq!(status, 400, "an unknown parameter: {got}");
        assert!(got["error"].as_str().unwrap().contains("colour"), "{got}");
    }

    #[test]
    fn with_rollout_detect_the_preview_says_what_the_canary_stage_can_catch() {
        use bellwether_schemas::{
            ControlMessage, EventTime, FleetNoise, MetricNoise, WindowReport,
        };
        let mut config = crate::config::Config::default_config();
        config.rollout.detect =
            Some(toml::from_str(r#"shifts = { response_time_ms = "5%" }"#).unwrap());
        let (inventory, monitor) = fleet(&config);
        let server = serve(&config, monitor.clone());
        let url = server.url();
        // Before any window: the configured stage, and why.
        let (status, got) = get(&format!("{url}api/waves"));
        assert_eq!(status, 200, "{got}");
        assert!(got.get("detection").is_none(), "{got}");
        assert!(
            got["detection_note"]
                .as_str()
                .unwrap()
                .contains("not measured"),
            "{got}"
        );
        // The scoring stage reports the fleet's noise with a window.
        let noise = FleetNoise {
            window_minutes: 5.0,
            windows: 40,
            metrics: vec![MetricNoise {
                metric: "response_time_ms".into(),
                vms: 290,
                spread: 4.0,
                spread_sigmas: 1.0,
                level: 100.0,
                correlation: 0.6,
                control_vms: 100,
            }],
        };
        monitor.on_control(&ControlMessage::WindowReport(WindowReport {
            window_start: EventTime(0),
            window_end: EventTime(300_000),
            vms_scored: 300,
            patched_scored: 0,
            anomalous: vec![],
            missing: vec![],
            reported: vec![],
            late_rows_total: 0,
            noise: Some(noise.clone()),
        }));
        let (status, got) = get(&format!("{url}api/waves"));
        assert_eq!(status, 200, "{got}");
        let expected = crate::rollout::planner::preview(
            &inventory,
            &config.rollout,
            &config.judge,
            &config.rollout.canary_groups,
            "rollout-preview",
            Some(&noise),
        );
        let want = serde_json::to_value(&expected).unwrap();
        // (Floats may come back from JSON one unit in the last place off.)
        assert_eq!(got["waves"], want["waves"]);
        let detection = &got["detection"];
        let planned = expected.detection.expect("planned from the noise");
        assert_eq!(detection["canary_vms"], planned.canary_vms);
        assert_eq!(detection["bake_minutes"], planned.bake_minutes);
        let power = detection["targets"][0]["power"].as_f64().unwrap();
        assert!((power - planned.targets[0].power).abs() < 1e-12, "{power}");
        let canaries = detection["canary_vms"].as_u64().unwrap() as usize;
        let canary_waves: Vec<&serde_json::Value> = got["waves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["stage"] == "canary")
            .collect();
        let patched: usize = canary_waves
            .iter()
            .map(|w| w["vms"].as_array().unwrap().len())
            .sum();
        assert_eq!(patched, canaries, "the waves are the plan: {got}");
        assert!(detection["met"].as_bool().unwrap(), "{got}");
        assert!(
            detection["targets"][0]["power"].as_f64().unwrap() >= 0.95,
            "{got}"
        );
    }
}
