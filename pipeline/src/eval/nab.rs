//! `bellwether eval nab`: bellwether's detector over every series of a
//! folder laid out as the Numenta Anomaly Benchmark's (`data/<category>/*.csv`
//! with `timestamp,value`, `labels/combined_windows.json`), scored by NAB's
//! rules ([`bellwether_operators::nab`]).
//!
//! The detector is the pipeline's own scorer on one series, as one VM's one
//! metric: the configured forecaster predicts each row's window from the
//! rows before it (and learns from it afterwards), and the VM's anomaly
//! score of that window (its deviation against the threshold, or its
//! temporal surprise, [`bellwether_operators::surprise`]) is the row's
//! anomaly score in [0, 1].

use arrow::array::Array;
use bellwether_operators::baseline::BaselineConfig;
use bellwether_operators::forecast::Forecaster;
use bellwether_operators::nab::{self, CorpusScore, Profile, ScoredFile};
use bellwether_operators::scorer::PeerSettings;
use bellwether_operators::verdict::{MetricRule, VerdictRules};
use bellwether_operators::window::WindowSpec;
use bellwether_operators::{CanaryScorer, Operator, OperatorError, ScorerConfig};
use bellwether_schemas::Direction;
use bellwether_schemas::wire::builder::SampleBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The corpus could not be read or the results not written.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file is missing or unreadable.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A line of a file is not what NAB's layout says.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Its line (1-based).
        line: usize,
        /// What was wrong.
        reason: String,
    },
}

/// One series of the corpus.
#[derive(Debug, Clone)]
pub struct Series {
    /// `category/name.csv`, as NAB's labels name it.
    pub key: String,
    /// Row timestamps (ms since the epoch, as written: NAB's are UTC-less).
    pub times_ms: Vec<i64>,
    /// Row values.
    pub values: Vec<f64>,
    /// Labelled windows as inclusive row ranges.
    pub windows: Vec<(usize, usize)>,
}

fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim().trim_matches('"');
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    None
}

fn read_error(path: &Path, e: &dyn std::fmt::Display) -> EvalError {
    EvalError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads every series of the NAB-layout folder `root`.
pub fn read_corpus(root: &Path) -> Result<Vec<Series>, EvalError> {
    let labels_path = root.join("labels/combined_windows.json");
    let labels_text =
        std::fs::read_to_string(&labels_path).map_err(|e| read_error(&labels_path, &e))?;
    let labels: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(&labels_text).map_err(|e| EvalError::Parse {
            path: labels_path.clone(),
            line: e.line(),
            reason: format!("expected {{\"category/name.csv\": [[start, end], ...]}}: {e}"),
        })?;
    let data = root.join("data");
    let mut out = Vec::new();
    let mut categories: Vec<PathBuf> = std::fs::read_dir(&data)
        .map_err(|e| read_error(&data, &e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    categories.sort();
    for category in categories {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&category)
            .map_err(|e| read_error(&category, &e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        for path in files {
            let key = format!(
                "{}/{}",
                category.file_name().unwrap_or_default().to_string_lossy(),
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let Some(windows) = labels.get(&key) else {
                return Err(EvalError::Read {
                    path: labels_path.clone(),
                    reason: format!("no entry for {key} (a file without windows needs [])"),
                });
            };
            out.push(read_series(&path, key, windows)?);
        }
    }
    if out.is_empty() {
        return Err(read_error(&data, &"no data/<category>/*.csv file"));
    }
    Ok(out)
}

fn read_series(path: &Path, key: String, windows: &[[String; 2]]) -> Result<Series, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, &e))?;
    let mut times_ms = Vec::new();
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| EvalError::Parse {
            path: path.to_path_buf(),
            line: n + 1,
            reason,
        };
        let (t, v) = line
            .split_once(',')
            .ok_or_else(|| bad(format!("expected `timestamp,value`, got `{line}`")))?;
        let t = parse_time(t)
            .ok_or_else(|| bad(format!("timestamp `{t}` is not YYYY-MM-DD HH:MM:SS")))?;
        // A repeated time is kept (NAB's own series repeat a few around a
        // DST change); one earlier than the row before is not.
        if times_ms.last().is_some_and(|&last| t < last) {
            return Err(bad("time goes backwards: rows must be in time order".into()));
        }
        let v = v
            .trim()
            .parse::<f64>()
            .map_err(|e| bad(format!("value `{v}`: {e}")))?;
        if !v.is_finite() {
            return Err(bad(format!("value {v} is not a finite number")));
        }
        times_ms.push(t);
        values.push(v);
    }
    if values.is_empty() {
        return Err(EvalError::Parse {
            path: path.to_path_buf(),
            line: 1,
            reason: "no data rows: expected a `timestamp,value` header and rows".into(),
        });
    }
    let mut rows = Vec::new();
    for [start, end] in windows {
        let (Some(s), Some(e)) = (parse_time(start), parse_time(end)) else {
            return Err(EvalError::Parse {
                path: path.to_path_buf(),
                line: 0,
                reason: format!(
                    "window [{start}, {end}] has a time that is not YYYY-MM-DD HH:MM:SS"
                ),
            });
        };
        let first = times_ms.iter().position(|&t| t >= s);
        let last = times_ms.iter().rposition(|&t| t <= e);
        if let (Some(f), Some(l)) = (first, last)
            && f <= l
        {
            rows.push((f, l));
        }
    }
    Ok(Series {
        key,
        times_ms,
        values,
        windows: rows,
    })
}

impl Series {
    /// The series' step: the shortest gap between two rows (5 minutes
    /// when it has fewer than two rows).
    pub fn step_ms(&self) -> i64 {
        self.times_ms
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(300_000)
    }
}

/// The one metric a NAB series is scored as.
const NAB_METRIC: &str = "value";

/// The scorer's settings for one NAB series: those the pipeline runs with
/// (`base`, from [`crate::scoring::scorer_config`]: its run of windows, its
/// baseline's and surprise's settings), for one metric bad either way at
/// `sigma` (`thresholds.sigma`), in windows of the series' own step, with
/// no peers (a series has none).
pub fn scorer_config(
    base: &ScorerConfig,
    sigma: f64,
    series: &Series,
) -> Result<ScorerConfig, OperatorError> {
    let step = series.step_ms();
    // The baseline learns over the same span of time as the pipeline's,
    // counted in the series' windows.
    let per_window = step as f64 / base.window.slide_ms.max(1) as f64;
    Ok(ScorerConfig {
        metrics: vec![NAB_METRIC.to_string()],
        rules: VerdictRules {
            metrics: vec![MetricRule {
                direction: Direction::Either,
                threshold_sigma: sigma,
                min_change: 0.0,
            }],
            false_discovery_rate: None,
            peer_test_p: None,
            ..base.rules.clone()
        },
        spread_floor: vec![1e-9],
        window: WindowSpec::tumbling(step, 0)?,
        baseline: BaselineConfig {
            half_life_windows: base.baseline.half_life_windows / per_window.max(1e-9),
            min_windows: ((base.baseline.min_windows as f64 / per_window.max(1e-9)).ceil() as u32)
                .max(1),
        },
        peers: PeerSettings::off(),
        ..base.clone()
    })
}

/// The anomaly score of every row of `series`: the series is one VM's one
/// metric through the pipeline's own [`CanaryScorer`] (`forecaster` fresh),
/// and a row's score is the VM's anomaly score of the window holding it
/// (its deviation against its threshold, or its surprise: a level never
/// seen, an unlikely run of errors). An alert is not raised again within
/// `realert_after` rows ([`rising_edges`]).
pub fn detect(
    series: &Series,
    forecaster: Box<dyn Forecaster>,
    config: ScorerConfig,
    realert_after: usize,
) -> Result<Vec<f64>, OperatorError> {
    let mut scorer = CanaryScorer::new(config, forecaster)?;
    let mut raw = vec![0.0; series.values.len()];
    let mut builder = SampleBuilder::new();
    let mut next_row = 0;
    for (&t, &x) in series.times_ms.iter().zip(&series.values) {
        builder.append("nab", t, NAB_METRIC, x);
        scorer.process_batch(0, &builder.finish())?;
        for window in scorer.on_watermark()? {
            let score = if window.vm_score.is_valid(0) {
                window.vm_score.value(0)
            } else {
                0.0
            };
            while next_row < series.times_ms.len()
                && series.times_ms[next_row] < window.range.end_ms
            {
                if series.times_ms[next_row] >= window.range.start_ms {
                    raw[next_row] = score;
                }
                next_row += 1;
            }
        }
    }
    Ok(rising_edges(&raw, realert_after))
}

/// An alert already raised is not raised again: a row keeps its score only
/// if it is higher than every score of the `rows` before it.
pub fn rising_edges(scores: &[f64], rows: usize) -> Vec<f64> {
    if rows == 0 {
        return scores.to_vec();
    }
    (0..scores.len())
        .map(|i| {
            let from = i.saturating_sub(rows);
            let before = scores[from..i].iter().copied().fold(0.0, f64::max);
            if scores[i] > before { scores[i] } else { 0.0 }
        })
        .collect()
}

/// The corpus's scored files (NAB's probation applied).
pub fn scored_files(series: &[Series], scores: &[Vec<f64>]) -> Vec<ScoredFile> {
    series
        .iter()
        .zip(scores)
        .map(|(s, sc)| ScoredFile {
            name: s.key.clone(),
            scores: sc.clone(),
            windows: s.windows.clone(),
            probation: nab::probation_rows(s.values.len()),
        })
        .collect()
}

/// NAB's score of one profile three ways.
#[derive(Debug, Clone)]
pub struct ProfileReport {
    /// The profile.
    pub profile: Profile,
    /// At the threshold fixed in advance.
    pub fixed: CorpusScore,
    /// At the threshold that is best over all files (NAB's own practice).
    pub tuned: CorpusScore,
    /// Each file scored at the threshold best over the other files.
    pub leave_one_out: f64,
}

/// Scores `files` under every NAB profile.
pub fn report(files: &[ScoredFile], fixed_threshold: f64) -> Vec<ProfileReport> {
    nab::PROFILES
        .iter()
        .map(|profile| {
            let windows: usize = files.iter().map(|f| f.windows.len()).sum();
            let mut raw = 0.0;
            for i in 0..files.len() {
                let others: Vec<ScoredFile> = files
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, f)| f.clone())
                    .collect();
                let t = nab::best_threshold(&others, profile).threshold;
                raw += nab::score_at(std::slice::from_ref(&files[i]), profile, t).raw;
            }
            ProfileReport {
                profile: *profile,
                fixed: nab::score_at(files, profile, fixed_threshold),
                tuned: nab::best_threshold(files, profile),
                leave_one_out: nab::normalize(raw, windows, profile),
            }
        })
        .collect()
}

/// A row's time as NAB writes it.
fn row_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Every file's windows at `threshold` under NAB's standard profile: the
/// row each window was first detected on (how far into the window, what
/// it earned) or that it was missed, and every false positive with its
/// score and cost.
pub fn window_report(series: &[Series], files: &[ScoredFile], threshold: f64) -> String {
    let profile = &nab::PROFILES[0];
    let mut out = String::new();
    for (s, f) in series.iter().zip(files) {
        let d = nab::detections(f, profile, threshold);
        out.push_str(&format!(
            "{} ({} rows, {} on probation): raw {:.3}\n",
            s.key,
            s.values.len(),
            f.probation,
            // + 0.0: a file with nothing to find prints 0.000, not -0.000.
            d.raw(profile) + 0.0
        ));
        for (k, w) in d.windows.iter().enumerate() {
            let rows = format!(
                "  window {} rows {}-{} ({} to {})",
                k + 1,
                w.first_row,
                w.last_row,
                row_time(s.times_ms[w.first_row]),
                row_time(s.times_ms[w.last_row])
            );
            match w.detected {
                Some((row, worth)) => out.push_str(&format!(
                    "{rows}: found at row {row} ({}, {:.0}% in), worth {worth:.3}\n",
                    row_time(s.times_ms[row]),
                    100.0 * (row - w.first_row) as f64 / (w.last_row - w.first_row + 1) as f64
                )),
                None => out.push_str(&format!("{rows}: missed, -{:.3}\n", profile.fn_)),
            }
        }
        for &(row, cost) in &d.false_positives {
            out.push_str(&format!(
                "  false positive at row {row} ({}): score {:.2}, {cost:.3}\n",
                row_time(s.times_ms[row]),
                f.scores[row]
            ));
        }
    }
    out
}

/// Writes `DIR/<category>/<name>.csv` (`timestamp,value,anomaly_score`) for
/// every series, as NAB lays out a detector's results.
pub fn write_results(out: &Path, series: &[Series], scores: &[Vec<f64>]) -> Result<(), EvalError> {
    for (s, sc) in series.iter().zip(scores) {
        let path = out.join(&s.key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| read_error(dir, &e))?;
        }
        let mut text = String::from("timestamp,value,anomaly_score\n");
        for ((t, v), a) in s.times_ms.iter().zip(&s.values).zip(sc) {
            text.push_str(&format!("{},{v},{a}\n", row_time(*t)));
        }
        std::fs::write(&path, text).map_err(|e| read_error(&path, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_not_raised_again_until_it_grows_or_the_quiet_time_passes() {
        let s = [0.0, 0.9, 0.8, 0.95, 0.1, 0.0, 0.7];
        assert_eq!(rising_edges(&s, 0), s.to_vec());
        assert_eq!(rising_edges(&s, 3), [0.0, 0.9, 0.0, 0.95, 0.0, 0.0, 0.0]);
        assert_eq!(rising_edges(&s, 2), [0.0, 0.9, 0.0, 0.95, 0.0, 0.0, 0.7]);
    }

    #[test]
    fn bad_series_are_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        for (text, line, reason) in [
            (
                "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,nan\n",
                3,
                "finite",
            ),
            ("timestamp,value\n2026-01-01 00:00:00,inf\n", 2, "finite"),
            (
                "timestamp,value\n2026-01-01 00:05:00,1\n2026-01-01 00:00:00,2\n",
                3,
                "backwards",
            ),
            ("timestamp,value\n", 1, "no data rows"),
            ("", 1, "no data rows"),
        ] {
            std::fs::write(&path, text).unwrap();
            match read_series(&path, "s.csv".into(), &[]) {
                Err(EvalError::Parse {
                    line: l, reason: r, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(r.contains(reason), "{text:?}: {r}");
                }
                other => panic!("{text:?} was accepted: {:?}", other.map(|s| s.values)),
            }
        }
    }

    #[test]
    fn nab_timestamps_parse_with_and_without_fractions() {
        assert_eq!(parse_time("1970-01-01 00:05:00"), Some(300_000));
        assert_eq!(parse_time("1970-01-01 00:05:00.000000"), Some(300_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
