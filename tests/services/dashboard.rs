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

/// The rollout page's parts, read from its DOM.
const READ_ROLLOUT: &str = r#"
const q = (s) => Array.from(document.querySelectorAll(s));
const id = document.querySelector('article.rollout')?.dataset.rollout;
const chart = id && window.bellwether.charts.get(id);
return {
  id,
  listed: q('#rollout-list .rollout-link').map((a) => a.textContent),
  state: document.querySelector('article.rollout h2 .state')?.textContent,
  reason: document.querySelector('.state-reason')?.textContent,
  next: document.querySelector('.next')?.textContent,
  steps: q('.steps .step').map((s) => Array.from(s.cells).map((c) => c.textContent)),
  buttons: q('.controls button').map((b) => b.dataset.action),
  points: chart ? chart.data[0].length : 0,
  axis: q('.u-axis').length,
  audit: q('.audit li').map((l) => l.textContent),
  result: document.querySelector('.control-result')?.textContent,
  verdicts: q('.verdicts .verdict').map((v) => [v.dataset.metric, v.dataset.verdict]),
  triggers: q('.rollback .trigger').map((t) => t.textContent),
  report_charts: q('.report-chart').length,
};"#;

/// During a bad patch's demo served with a token: the rollout page lists
/// the rollout, pauses it from its button (token asked once, the click
/// confirmed), the API shows it paused and the audit trail the command;
/// then the anomaly halts it, and the page shows why, what next, the step
/// list with the rolled-back VM counted as such, and the uPlot chart.
#[test]
fn the_rollout_page_pauses_with_the_token_and_shows_the_halt() {
    if !available() {
        return;
    }
    const TOKEN: &str = "dashboard-test-token-0123";
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::start();
    // 30x: the canary bakes long enough (about 40 s to the first rollback)
    // for the browser to click.
    let demo = Bellwether::spawn_env(
        dir.path(),
        "demo",
        &[
            "demo",
            "--serve",
            "127.0.0.1:0",
            "--speed",
            "30",
            "--keep-serving",
            "--no-history",
        ],
        &[("BELLWETHER__HTTP__TOKEN", TOKEN)],
    );
    let url = demo.dashboard_url();
    browser.open(&url);
    // The canary bakes with its timer.
    let page = eventually(
        Duration::from_secs(90),
        "the rollout baking on its page",
        || {
            let page = browser.eval(READ_ROLLOUT);
            let state = page["steps"].as_array()?.first()?[2].as_str()?.to_string();
            (page["buttons"].as_array()?.len() == 5 && state.contains("min left")).then_some(page)
        },
    );
    let id = page["id"].as_str().unwrap().to_string();
    assert!(
        page["listed"][0].as_str().unwrap().contains("KB-2026-1102"),
        "{page}"
    );
    // Pause: the token as the prompt would keep it, the click confirmed.
    browser.eval(&format!(
        "sessionStorage.setItem('bellwether-token', '{TOKEN}'); window.confirm = () => true; \
         document.querySelector('.controls button[data-action=pause]').click(); return true;"
    ));
    let api = format!("{url}api/rollouts/{id}");
    let paused = eventually(
        Duration::from_secs(30),
        "the rollout paused in the API",
        || {
            let r: Value = ureq::get(&api).call().ok()?.body_mut().read_json().ok()?;
            (r["paused"] == true).then_some(r)
        },
    );
    let pause = &paused["audit"][0];
    assert_eq!(
        (pause["action"].as_str(), pause["by"].as_str()),
        (Some("pause"), Some("dashboard")),
        "{paused}"
    );
    eventually(
        Duration::from_secs(30),
        "the pause in the audit trail",
        || {
            let page = browser.eval(READ_ROLLOUT);
            let audit = page["audit"].as_array()?;
            audit
                .iter()
                .any(|a| {
                    a.as_str()
                        .unwrap_or("")
                        .contains("pause · from the dashboard · applied")
                })
                .then_some(())
        },
    );

    // The bad patch is still caught: halted, with why and what next.
    let page = eventually(Duration::from_secs(180), "the halt on the page", || {
        let page = browser.eval(READ_ROLLOUT);
        let carried_out = page["steps"][0][6].as_str().is_some_and(|n| n != "0");
        (page["state"] == "halted" && page["reason"].is_string() && carried_out).then_some(page)
    });
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rollout-page.png"));
    assert!(
        page["reason"].as_str().unwrap().contains("Why halted"),
        "{page}"
    );
    assert!(
        page["next"].as_str().unwrap().contains("roll back"),
        "{page}"
    );
    assert_eq!(page["triggers"][0], "anomaly", "{page}");
    let first = &page["steps"][0];
    assert_eq!(first[0], "1", "{page}");
    // wave, VMs, state, started, on patch, healthy, rolled back, ...
    let rolled_back: u64 = first[6].as_str().unwrap().parse().unwrap();
    assert!(
        rolled_back >= 1,
        "the rolled-back VM counted as such: {page}"
    );
    assert!(
        page["points"].as_u64().unwrap() >= 2,
        "chart without data: {page}"
    );
    assert!(
        page["axis"].as_u64().unwrap() >= 2,
        "chart without axes: {page}"
    );

    // The canary report: a verdict and a chart per metric; in the API, the
    // regressed latency's canary left its control by the broken VM's
    // deviation (the top quarter of 3 canaries is the broken one).
    let page = eventually(Duration::from_secs(30), "the canary report", || {
        let page = browser.eval(READ_ROLLOUT);
        (page["report_charts"].as_u64()? >= 7).then_some(page)
    });
    let verdicts = page["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 7, "{page}");
    let report: Value = ureq::get(&format!("{api}/report"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let latency = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "response_time_ms")
        .unwrap();
    let left_control = latency["canary"]
        .as_array()
        .unwrap()
        .iter()
        .zip(latency["control"].as_array().unwrap())
        .any(|(c, k)| c["p75"].as_f64().unwrap_or(0.0) - k["p50"].as_f64().unwrap_or(0.0) > 4.0);
    assert!(left_control, "{latency}");
    let cpu = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "cpu_percent")
        .unwrap();
    assert_eq!(cpu["verdict"]["anomalous"], 0, "{cpu}");

    // The rolled-back VM's drill-down: a chart per metric with its
    // observed points and its forecast band, fetched on the click.
    browser.eval("document.querySelector('.rollback button.drill').click(); return true;");
    let drill = eventually(Duration::from_secs(30), "the drill-down charts", || {
        let charts = browser.eval(
            "return window.bellwether.drill.map((u) => ({ title: u.root.querySelector('.u-title')?.textContent, \
             points: u.data[1].filter((x) => x != null).length, \
             band: u.data.length > 4 ? u.data[4].filter((x) => x != null).length : 0 }));",
        );
        (charts.as_array()?.len() >= 7).then_some(charts)
    });
    browser.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill-down.png"));
    let latency = drill
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["title"]
                .as_str()
                .unwrap_or("")
                .starts_with("response_time_ms")
        })
        .unwrap_or_else(|| panic!("no response_time_ms chart: {drill}"));
    assert!(latency["points"].as_u64().unwrap() >= 2, "{drill}");
    // The failure risk against the risk the built-in model acts at.
    assert!(
        drill.as_array().unwrap().iter().any(|c| c["title"]
            .as_str()
            .unwrap_or("")
            .starts_with("failure risk (acts at")),
        "{drill}"
    );
    assert!(
        latency["band"].as_u64().unwrap() >= 2,
        "no forecast band: {drill}"
    );
}
