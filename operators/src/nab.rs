//! The Numenta Anomaly Benchmark's scoring rules, implemented from their
//! published description (NAB's `sweeper.py`): per-row anomaly scores and
//! labelled windows in, the corpus score at the best threshold out.
//!
//! A row whose score is at or above the threshold is a detection. Inside a
//! window `[L, R]` of width `w`, a detection at row `i` sits at relative
//! position `p = -(R - i + 1) / w` and earns `s(p) · tp / s(-1)`, where
//! `s(p) = 2 / (1 + e^{5p}) - 1` (and `-1` past `p = 3`); only a window's
//! earliest detection counts, and a window with none costs `-fn`. A
//! detection outside every window costs `-fp` before the first window, and
//! `s(p) · fp` after one, with `p = |R_prev - i| / (w_prev - 1)`. The first
//! `min(⌊0.15 N⌋, 750)` rows of a file are probation and are not scored.

/// A profile's weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Its name in NAB's results.
    pub name: &'static str,
    /// Weight of a detected window.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a missed window.
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(p: f64) -> f64 {
    if p > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * p).exp()) - 1.0
    }
}

/// Rows of a file of `n` rows that are probation.
pub fn probation_rows(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// One series to score: per-row scores and its windows as inclusive row
/// ranges (sorted, not overlapping).
#[derive(Debug, Clone)]
pub struct ScoredFile {
    /// A name for reports.
    pub name: String,
    /// One anomaly score per row, in [0, 1].
    pub scores: Vec<f64>,
    /// Labelled windows, `(first_row, last_row)` inclusive.
    pub windows: Vec<(usize, usize)>,
    /// Leading rows not scored (NAB: [`probation_rows`]).
    pub probation: usize,
}

/// What a row is worth once detected.
#[derive(Debug, Clone, Copy)]
enum Worth {
    /// Inside window `w`, at row `row`, worth this much if it is the
    /// window's earliest detection.
    InWindow {
        window: usize,
        row: usize,
        value: f64,
    },
    /// A false positive at row `row`, of this (negative) value.
    Outside { row: usize, value: f64 },
}

/// A candidate detection: its score and worth.
#[derive(Debug, Clone, Copy)]
struct Point {
    score: f64,
    worth: Worth,
}

fn points(file: &ScoredFile, profile: &Profile, window_base: usize) -> Vec<Point> {
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(file.scores.len());
    let mut w = 0;
    let mut previous: Option<(usize, usize)> = None;
    for (i, &score) in file.scores.iter().enumerate() {
        while w < file.windows.len() && file.windows[w].1 < i {
            previous = Some(file.windows[w]);
            w += 1;
        }
        if i < file.probation {
            continue;
        }
        let worth = match file.windows.get(w) {
            Some(&(l, r)) if l <= i => {
                let width = (r - l + 1) as f64;
                let p = -((r - i + 1) as f64) / width;
                Worth::InWindow {
                    window: window_base + w,
                    row: i,
                    value: scaled_sigmoid(p) * profile.tp / max_tp,
                }
            }
            _ => Worth::Outside {
                row: i,
                value: match previous {
                    None => -profile.fp,
                    Some((l, r)) => {
                        let width = (r - l + 1) as f64;
                        let p = (i as f64 - r as f64).abs() / (width - 1.0).max(1.0);
                        scaled_sigmoid(p) * profile.fp
                    }
                },
            },
        };
        out.push(Point { score, worth });
    }
    out
}

/// A corpus's score at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorpusScore {
    /// The threshold.
    pub threshold: f64,
    /// NAB's raw score (sum over files).
    pub raw: f64,
    /// `100 · (raw - null) / (perfect - null)`.
    pub normalized: f64,
    /// Windows with a detection.
    pub detected_windows: usize,
    /// Windows in all.
    pub windows: usize,
    /// Detections outside every window.
    pub false_positives: usize,
}

/// NAB's normalised score of raw score `raw` over `windows` windows:
/// `100 · (raw - null) / (perfect - null)`.
pub fn normalize(raw: f64, windows: usize, profile: &Profile) -> f64 {
    let perfect = windows as f64 * profile.tp;
    let null = -(windows as f64) * profile.fn_;
    if perfect == null {
        // No window anywhere: a perfect detector scores 0 and so does one
        // that never fires; report the raw cost scaled by nothing.
        return 100.0 + raw;
    }
    100.0 * (raw - null) / (perfect - null)
}

/// One labelled window and its earliest detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowDetection {
    /// The window's first row.
    pub first_row: usize,
    /// Its last row.
    pub last_row: usize,
    /// The earliest detection in it, `(row, worth)`; None: missed.
    pub detected: Option<(usize, f64)>,
}

/// What one file's detections at a threshold are worth under NAB's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDetections {
    /// Every window, in order.
    pub windows: Vec<WindowDetection>,
    /// Every detection outside the windows, `(row, cost)` (cost negative).
    pub false_positives: Vec<(usize, f64)>,
}

impl FileDetections {
    /// The file's raw score: found windows' worth, minus `fn` per missed
    /// window, plus the false positives' costs.
    pub fn raw(&self, profile: &Profile) -> f64 {
        let windows: f64 = self
            .windows
            .iter()
            .map(|w| w.detected.map_or(-profile.fn_, |(_, worth)| worth))
            .sum();
        windows + self.false_positives.iter().map(|(_, c)| c).sum::<f64>()
    }
}

/// Which rows of `file` count at `threshold`, and what each is worth.
pub fn detections(file: &ScoredFile, profile: &Profile, threshold: f64) -> FileDetections {
    let mut windows: Vec<WindowDetection> = file
        .windows
        .iter()
        .map(|&(first_row, last_row)| WindowDetection {
            first_row,
            last_row,
            detected: None,
        })
        .collect();
    let mut false_positives = Vec::new();
    for p in points(file, profile, 0) {
        if p.score < threshold {
            continue;
        }
        match p.worth {
            // Rows come in order: the first one seen is the earliest.
            Worth::InWindow { window, row, value } => {
                windows[window].detected.get_or_insert((row, value));
            }
            Worth::Outside { row, value } => false_positives.push((row, value)),
        }
    }
    FileDetections {
        windows,
        false_positives,
    }
}

/// The score of `files` at `threshold`.
pub fn score_at(files: &[ScoredFile], profile: &Profile, threshold: f64) -> CorpusScore {
    let windows: usize = files.iter().map(|f| f.windows.len()).sum();
    let (mut raw, mut detected, mut false_positives) = (0.0, 0, 0);
    for file in files {
        let d = detections(file, profile, threshold);
        raw += d.raw(profile);
        detected += d.windows.iter().filter(|w| w.detected.is_some()).count();
        false_positives += d.false_positives.len();
    }
    CorpusScore {
        threshold,
        raw,
        normalized: normalize(raw, windows, profile),
        detected_windows: detected,
        windows,
        false_positives,
    }
}

/// The threshold that maximises the corpus score (NAB's sweep over every
/// distinct score), and the score there. Ties go to the higher threshold.
pub fn best_threshold(files: &[ScoredFile], profile: &Profile) -> CorpusScore {
    let windows: usize = files.iter().map(|f| f.windows.len()).sum();
    let mut all = Vec::new();
    let mut base = 0;
    for file in files {
        all.extend(points(file, profile, base));
        base += file.windows.len();
    }
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Lowering the threshold past each distinct score adds its points.
    let mut earliest: Vec<Option<(usize, f64)>> = vec![None; windows];
    let mut raw = -(windows as f64) * profile.fn_;
    let mut detected = 0;
    let mut false_positives = 0;
    let mut best = CorpusScore {
        threshold: f64::INFINITY,
        raw,
        normalized: normalize(raw, windows, profile),
        detected_windows: 0,
        windows,
        false_positives: 0,
    };
    let mut i = 0;
    while i < all.len() {
        let threshold = all[i].score;
        while i < all.len() && all[i].score == threshold {
            match all[i].worth {
                Worth::InWindow { window, row, value } => match earliest[window] {
                    None => {
                        raw += value + profile.fn_;
                        detected += 1;
                        earliest[window] = Some((row, value));
                    }
                    Some((r, v)) if row < r => {
                        raw += value - v;
                        earliest[window] = Some((row, value));
                    }
                    Some(_) => {}
                },
                Worth::Outside { value, .. } => {
                    raw += value;
                    false_positives += 1;
                }
            }
            i += 1;
        }
        if raw > best.raw + 1e-12 {
            best = CorpusScore {
                threshold,
                raw,
                normalized: normalize(raw, windows, profile),
                detected_windows: detected,
                windows,
                false_positives,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> Profile {
        Profile {
            name: "unit",
            tp: 1.0,
            fp: 1.0,
            fn_: 1.0,
        }
    }

    /// NAB's own scorer test vector (README of the data set): detections
    /// on rows 30, 31 and 37, windows on rows 30-34 and 65-69.
    fn test_vector() -> ScoredFile {
        let mut scores = vec![0.0; 100];
        for i in [30, 31, 37] {
            scores[i] = 1.0;
        }
        ScoredFile {
            name: "vector".into(),
            scores,
            windows: vec![(30, 34), (65, 69)],
            probation: 0,
        }
    }

    #[test]
    fn nab_test_vector_scores_minus_0_954() {
        let file = test_vector();
        let s = score_at(&[file], &unit(), 0.5);
        assert!((s.raw - (-0.9540)).abs() < 1e-4, "{}", s.raw);
        assert!((scaled_sigmoid(0.75) - (-0.9540)).abs() < 1e-4);
        assert_eq!((s.detected_windows, s.false_positives), (1, 1));
    }

    #[test]
    fn detections_name_each_window_s_earliest_row_and_each_false_positive() {
        let file = test_vector();
        let d = detections(&file, &unit(), 0.5);
        // The first window found on its first row (full worth), the second
        // missed, row 37 a false positive three rows after the first.
        assert_eq!(d.windows[0].detected.map(|(row, _)| row), Some(30));
        assert!((d.windows[0].detected.unwrap().1 - 1.0).abs() < 1e-12);
        assert_eq!(d.windows[1].detected, None);
        assert_eq!(d.false_positives.len(), 1);
        assert_eq!(d.false_positives[0].0, 37);
        assert!((d.false_positives[0].1 - scaled_sigmoid(0.75)).abs() < 1e-12);
        assert!((d.raw(&unit()) - score_at(&[file], &unit(), 0.5).raw).abs() < 1e-12);
    }

    #[test]
    fn an_early_detection_earns_the_full_weight_and_a_late_one_less() {
        let at = |row: usize| {
            let mut scores = vec![0.0; 50];
            scores[row] = 1.0;
            let f = ScoredFile {
                name: "f".into(),
                scores,
                windows: vec![(20, 29)],
                probation: 0,
            };
            score_at(&[f], &PROFILES[0], 0.5).raw
        };
        assert!((at(20) - 1.0).abs() < 1e-12);
        assert!(at(29) < at(25) && at(25) < at(20) && at(29) > 0.0);
        // Before any window: -fp; long after one: close to -fp.
        assert!((at(5) - (-1.0 - 0.11)).abs() < 1e-12);
        assert!(at(31) > at(45));
    }

    #[test]
    fn probation_rows_are_not_scored() {
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(10_000), 750);
        let mut scores = vec![0.0; 100];
        scores[3] = 1.0;
        let f = ScoredFile {
            name: "f".into(),
            scores,
            windows: vec![],
            probation: 15,
        };
        assert_eq!(score_at(&[f], &PROFILES[0], 0.5).false_positives, 0);
    }

    #[test]
    fn the_sweep_finds_the_threshold_a_direct_evaluation_agrees_with() {
        // Two files; scores chosen so that the best threshold is between
        // the window's peak (0.9) and the noise (0.6, 0.7).
        let mut a = vec![0.1; 200];
        a[50] = 0.7;
        a[120] = 0.9;
        a[125] = 0.95;
        let mut b = vec![0.2; 200];
        b[80] = 0.6;
        b[150] = 0.8;
        let files = [
            ScoredFile {
                name: "a".into(),
                scores: a,
                windows: vec![(118, 130)],
                probation: 30,
            },
            ScoredFile {
                name: "b".into(),
                scores: b,
                windows: vec![(140, 160)],
                probation: 30,
            },
        ];
        for profile in &PROFILES {
            let best = best_threshold(&files, profile);
            let direct = score_at(&files, profile, best.threshold);
            assert!(
                (best.raw - direct.raw).abs() < 1e-9,
                "{best:?} vs {direct:?}"
            );
            for t in [0.05, 0.15, 0.25, 0.65, 0.75, 0.85, 0.92, 0.99] {
                assert!(score_at(&files, profile, t).raw <= best.raw + 1e-9, "{t}");
            }
        }
        let best = best_threshold(&files, &PROFILES[0]);
        assert_eq!(best.threshold, 0.8);
        assert_eq!((best.detected_windows, best.false_positives), (2, 0));
        // Both windows found a little late, nothing false: above 90.
        assert!(
            best.normalized > 90.0 && best.normalized < 100.0,
            "{best:?}"
        );
    }
}
