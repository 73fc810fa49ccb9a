//! The Grafana dashboard in config/ is valid JSON and asks only for series
//! bellwether exports.

use bellwether::monitor::telemetry::Telemetry;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn every_grafana_query_names_a_series_bellwether_exports() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/grafana-dashboard.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");

    // Every series, with a sample each.
    let t = Telemetry::new();
    t.records_in("m", "0", 1);
    t.dead_lettered("m");
    t.consumer_lag("m", "0", 3);
    t.window_latency(Duration::from_millis(2));
    t.model_time(Duration::from_micros(300));
    t.model_in_use("seasonal-regression", "0.1.0");
    t.patched_ratio.with_label_values(&["r"]).set(0.5);
    t.group_health.with_label_values(&["r", "g"]).set(2);
    t.anomaly_score.with_label_values(&["r"]).set(0.9);
    t.failure_risk.with_label_values(&["r"]).set(0.2);
    t.rolled_back.with_label_values(&["r"]).set(1);
    t.wave_patched.with_label_values(&["r", "1"]).set(3);
    let exported: BTreeSet<String> = t
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();

    let mut asked = BTreeSet::new();
    for expr in &exprs {
        for (i, _) in expr.match_indices("bellwether_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            asked.insert(name.trim_end_matches("_bucket").to_string());
        }
    }
    let missing: Vec<&String> = asked.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}; exported: {exported:?}"
    );
    assert!(asked.len() >= 9, "{asked:?}");
}
