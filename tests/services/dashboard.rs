//! The live dashboard in a real browser (headless Chromium through
//! chromedriver) while `bellwether demo --serve` rolls out a bad patch:
//! progress, canary-group health colours, the failure risk and a
//! rolled-back VM with its reason and evidence appear, and the page
//! updates as fleet time moves.

use crate::common;

use common::browser::{Browser, available};
use common::{Bellwether, eventually};
use serde_json::Value;
use std::time::Duration;

/// What the page shows, read from its DOM.
const READ_PAGE: &str = r#"
const q = (s) => Array.from(document.querySelectorAll(s));
return {
  live: document.querySelector('#live')?.textContent,
  fleet: document.querySelector('#fleet')?.textContent,
  progress: document.querySelector('.progress-percent')?.textContent,
  state: document.querySelector('.state')?.textContent,
  waves: q('.wave').length,
  health: q('.group').map((g) => [g.textContent.split(':')[0], g.dataset.health,
                                  getComputedStyle(g).backgroundColor]),
  rollbacks: q('.rollback').map((r) => [r.querySelector('.vm').textContent,
                                        r.querySelector('.reason').textContent,
                                        r.querySelectorAll('.evidence li').length]),
  chart: document.querySelector('canvas') !== null,
  risk: document.querySelector('.risk')?.textContent,
};"#;

#[test]
fn the_dashboard_shows_a_bad_patch_live_in_a_browser() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = Bellwether::serving_demo(dir.path(), "600");
    let url = demo.dashboard_url();
    let browser = Browser::start();
    browser.open(&url);

    // Live: the fleet clock on the page moves while the demo runs (the
    // rollout's ~4 fleet hours take ~24 s at 600x, time for the browser to
    // start and load the page on a slow machine).
    let first = eventually(Duration::from_secs(60), "a first update", || {
        let page = browser.eval(READ_PAGE);
        (page["live"] == "live" && page["fleet"].as_str()?.contains("fleet time"))
            .then(|| page["fleet"].clone())
    });
    eventually(Duration::from_secs(60), "the fleet clock to move", || {
        (browser.eval(READ_PAGE)["fleet"] != first).then_some(())
    });

    // The bad patch reaches the canary, a group turns red, and a broken VM
    // is rolled back with its reason and per-metric evidence.
    let page: Value = eventually(Duration::from_secs(180), "a rollback on the page", || {
        let page = browser.eval(READ_PAGE);
        (!page["rollbacks"].as_array()?.is_empty()).then_some(page)
    });
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));

    let progress = page["progress"].as_str().unwrap();
    let percent: f64 = progress.trim_end_matches('%').parse().unwrap();
    assert!(percent > 0.0, "progress {progress}");
    assert!(page["waves"].as_u64().unwrap() >= 1, "{page}");
    let red: Vec<&Value> = page["health"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g[1] == "red")
        .collect();
    assert!(!red.is_empty(), "no red canary group: {page}");
    // Red is drawn red.
    assert_eq!(red[0][2], "rgb(210, 50, 45)", "{page}");
    let rollback = &page["rollbacks"][0];
    assert!(rollback[0].as_str().unwrap().starts_with("vm-"), "{page}");
    assert!(
        rollback[1].as_str().unwrap().contains("expected"),
        "no reason: {page}"
    );
    assert!(rollback[2].as_u64().unwrap() >= 1, "no evidence: {page}");
    assert!(page["chart"].as_bool().unwrap());
    // The built-in failure model predicts a risk for the patched VMs.
    let risk = page["risk"].as_str().unwrap();
    let percent: f64 = risk.trim_end_matches('%').parse().unwrap_or(-1.0);
    assert!(
        (0.0..=100.0).contains(&percent),
        "failure risk {risk:?}: {page}"
    );
}
