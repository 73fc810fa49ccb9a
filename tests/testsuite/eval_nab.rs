//! `bellwether eval nab` on a small generated corpus in NAB's layout: it
//! finds a planted anomaly, stays quiet on a quiet series, writes NAB's
//! result layout, and names the file and line of bad input.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const START_MS: i64 = 1_400_000_000_000 - 1_400_000_000_000 % 86_400_000;

fn time(row: usize) -> String {
    chrono::DateTime::from_timestamp_millis(START_MS + row as i64 * 300_000)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A daily cycle with deterministic noise; `shift` adds a level shift.
fn series(rows: usize, shift: Option<(usize, f64)>) -> String {
    let mut x = 0.37_f64;
    let mut text = String::from("timestamp,value\n");
    for i in 0..rows {
        x = (x * 3.9 * (1.0 - x)).clamp(0.01, 0.99);
        let day = (i as f64 / 288.0) * std::f64::consts::TAU;
        let mut v = 40.0 + 15.0 * day.sin() + 4.0 * (x - 0.5);
        if let Some((from, by)) = shift
            && i >= from
        {
            v += by;
        }
        text.push_str(&format!("{},{v:.3}\n", time(i)));
    }
    text
}

fn corpus(dir: &Path) {
    let data = dir.join("data/synthetic");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(dir.join("labels")).unwrap();
    std::fs::write(data.join("shift.csv"), series(2400, Some((1800, 25.0)))).unwrap();
    std::fs::write(data.join("quiet.csv"), series(2400, None)).unwrap();
    let labels = serde_json::json!({
        "synthetic/shift.csv": [[format!("{}.000000", time(1790)), format!("{}.000000", time(1900))]],
        "synthetic/quiet.csv": [],
    });
    std::fs::write(dir.join("labels/combined_windows.json"), labels.to_string()).unwrap();
}

fn eval(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["eval", "nab"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn finds_a_planted_shift_stays_quiet_elsewhere_and_writes_nab_results() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let out_dir = dir.path().join("results");
    let out = eval(&[
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let standard = report.iter().find(|r| r["profile"] == "standard").unwrap();
    assert_eq!(standard["windows"], 1);
    assert_eq!(standard["fixed_detected_windows"], 1, "{standard}");
    assert_eq!(standard["fixed_false_positives"], 0, "{standard}");
    assert!(
        standard["fixed_score"].as_f64().unwrap() > 80.0,
        "{standard}"
    );
    assert_eq!(report.len(), 3);
    // The default detector is the LSTM: one model per series, trained on
    // its probation rows, each with its held-out error beside the
    // seasonal regression's, and used only where it is the better one.
    assert!(
        standard["detector"].as_str().unwrap().starts_with("lstm"),
        "{standard}"
    );
    let series = standard["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{standard}");
    for s in series {
        let (lstm, seasonal) = (
            s["lstm_validation_rmse"].as_f64().unwrap(),
            s["seasonal_validation_rmse"].as_f64().unwrap(),
        );
        assert!(lstm.is_finite() && seasonal.is_finite(), "{s}");
        assert_eq!(s["lstm"].as_bool().unwrap(), lstm < seasonal, "{s}");
    }

    // NAB's result layout: one CSV per series, every row scored in [0, 1].
    for name in ["shift", "quiet"] {
        let text = std::fs::read_to_string(out_dir.join(format!("synthetic/{name}.csv"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 2400);
        assert!(rows[0].starts_with(&time(0)));
        for row in rows {
            let score: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&score), "{row}");
        }
    }
}

/// The statistical detector over the generated corpus with `flag`; its
/// standard output.
fn statistical(flag: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let out = eval(&[
        "--data",
        dir.path().to_str().unwrap(),
        "--detector",
        "statistical",
        flag,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_statistical_detector_finds_the_shift_too() {
    let stdout = statistical("--json");
    let report: Vec<Value> = serde_json::from_slice(&stdout).unwrap();
    let standard = report.iter().find(|r| r["profile"] == "standard").unwrap();
    assert_eq!(standard["detector"], "seasonal-regression");
    assert_eq!(standard["fixed_detected_windows"], 1, "{standard}");
    assert_eq!(standard["fixed_false_positives"], 0, "{standard}");
}

#[test]
fn windows_says_where_each_window_was_found_and_lists_false_positives() {
    let stdout = statistical("--windows");
    let text = String::from_utf8_lossy(&stdout);
    let shift = text
        .lines()
        .find(|l| l.starts_with("  window 1 rows 1790-1900"))
        .unwrap_or_else(|| panic!("no window line:\n{text}"));
    // The shift starts at row 1800: found there or just after, early in
    // the window, worth most of a window's weight.
    let row: usize = shift
        .split("found at row ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("not found: {shift}"));
    assert!((1800..1810).contains(&row), "{shift}");
    assert!(
        text.contains("synthetic/quiet.csv (2400 rows, 360 on probation): raw 0.000"),
        "{text}"
    );
    assert!(!text.contains("false positive"), "{text}");
    // The score table follows.
    assert!(text.contains("standard"), "{text}");
}

#[test]
fn bad_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let file = dir.path().join("data/synthetic/quiet.csv");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("2030-01-01 00:00:00,lots\n");
    std::fs::write(&file, text).unwrap();
    let out = eval(&["--data", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quiet.csv:2402") && err.contains("lots"),
        "{err}"
    );

    let missing = eval(&["--data", dir.path().join("nowhere").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("combined_windows.json"));
}
