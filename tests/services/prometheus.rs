//! A real Prometheus server (Debian's `prometheus`) scrapes `bellwether
//! demo --serve` and answers PromQL about the rollout.

use crate::common;

use common::{Bellwether, eventually};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn query(prometheus: &str, promql: &str) -> Vec<Value> {
    let reply: Value = match ureq::get(&format!("{prometheus}/api/v1/query"))
        .query("query", promql)
        .call()
    {
        Ok(r) => r.into_body().read_json().unwrap(),
        Err(_) => return Vec::new(),
    };
    reply["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_the_rollout_progress() {
    if !Path::new(PROMETHEUS).exists() {
        if std::env::var_os("BELLWETHER_REQUIRE_BROWSER").is_some() {
            panic!("prometheus is not installed; run ./scripts/test, which installs it");
        }
        eprintln!("skipped: prometheus not installed; ./scripts/test installs it");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = Bellwether::serving_demo(dir.path(), "1200");
    let target = demo
        .dashboard_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let config = dir.path().join("prometheus.yml");
    // The shipped alerting rules, checked by promtool and evaluated every second.
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/prometheus/bellwether-alerts.rules.yml"
    );
    let checked = std::process::Command::new("/usr/bin/promtool")
        .args(["check", "rules", rules])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "promtool refuses the shipped alerts: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: bellwether\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let (_server, prometheus) = common::start_prometheus(dir.path(), &config);

    let up = eventually(
        Duration::from_secs(60),
        "prometheus to scrape bellwether",
        || query(&prometheus, "up{job=\"bellwether\"}").pop(),
    );
    assert_eq!(value(&up), 1.0, "{up}");
    // The rollout's progress, as a dashboard panel would ask for it.
    let progress = eventually(
        Duration::from_secs(180),
        "rollout progress in Prometheus",
        || {
            query(
                &prometheus,
                "max by (rollout) (max_over_time(bellwether_rollout_patched_ratio[10m]))",
            )
            .into_iter()
            .find(|s| value(s) > 0.0)
        },
    );
    assert_eq!(
        progress["metric"]["rollout"], "rollout-kb-2026-1102",
        "{progress}"
    );
    assert!(value(&progress) <= 1.0);
    // The bad patch turned a canary group red and rolled a VM back.
    let red = eventually(Duration::from_secs(180), "a red canary group", || {
        query(&prometheus, "bellwether_canary_group_health == 2").pop()
    });
    assert_eq!(red["metric"]["rollout"], "rollout-kb-2026-1102");
    // The failure model's risk is exported for the rollout, within [0, 1].
    let risk = eventually(Duration::from_secs(60), "the failure risk", || {
        query(&prometheus, "bellwether_rollout_failure_risk").pop()
    });
    assert_eq!(risk["metric"]["rollout"], "rollout-kb-2026-1102");
    assert!((0.0..=1.0).contains(&value(&risk)), "{risk}");
    let rolled_back = query(&prometheus, "bellwether_rollout_vms_rolled_back");
    assert!(
        rolled_back.iter().any(|s| value(s) >= 1.0),
        "{rolled_back:?}"
    );
    // The shipped alerts fire: the rollout halted, a rollback executed;
    // and the failed-actuation series exists (at 0), so its alert can fire.
    for alert in ["BellwetherRolloutHalted", "BellwetherRollbackExecuted"] {
        let firing = eventually(Duration::from_secs(120), alert, || {
            query(
                &prometheus,
                &format!("ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}}"),
            )
            .pop()
        });
        assert_eq!(
            firing["metric"]["rollout"], "rollout-kb-2026-1102",
            "{firing}"
        );
    }
    let failed = query(&prometheus, "bellwether_actuations_failed_total");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|s| value(s) == 0.0), "{failed:?}");
    assert!(
        query(
            &prometheus,
            "ALERTS{alertname=\"BellwetherActuationsFailing\"}"
        )
        .is_empty()
    );
}
