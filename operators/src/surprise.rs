//! Temporal surprise: how unusual a series' window is against everything
//! the series showed before, in [0, 1] (0.5 at the threshold).
//!
//! Two views, after Numenta's HTM detector on NAB (its "spatial anomaly"
//! and its anomaly likelihood, Ahmad et al. 2017):
//! - **a level never seen**: the window's mean lies outside the range of
//!   every mean the series has shown, widened by `novelty_tolerance` of
//!   that range, in the metric's bad direction (score 1);
//! - **a flat line never seen**, on a metric bad either way: the window's
//!   mean has stayed exactly the same for longer than any run of equal
//!   means the series showed while it learned (and at least `min_flat`
//!   windows): a metric stuck at one value, such as a disk that stopped
//!   writing or an agent that repeats its last reading (score 1, once, on
//!   the window that passes the record);
//! - **an unlikely run of errors**: the mean absolute forecast error over
//!   the last `short` windows, against the mean and spread of that same
//!   average over the series' history (exponentially weighted over about
//!   `long` windows). Its upper-tail probability on a log scale
//!   (`ln(tail) / ln(1e-10)`) is the likelihood; `likelihood_gate` maps to
//!   0.5, so a run of errors counts at the threshold only when its
//!   likelihood is past the gate.
//!
//! State is flat per series slot (a ring of `short` errors and five
//! numbers), and a series learns only where the scorer says it learns: a
//! patched VM is held to what it showed before its patch.

use crate::column::f64_column;
use crate::verdict::normal_tail;
use arrow::array::{Array, Float64Array};
use bellwether_schemas::Direction;

/// Settings of [`Surprise`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurpriseConfig {
    /// Share of the range ever seen by which a new level must pass it.
    pub novelty_tolerance: f64,
    /// Windows the recent mean error is taken over.
    pub short: usize,
    /// Windows the history of that mean is weighted over.
    pub long: usize,
    /// Windows of history before either view speaks.
    pub min_history: u32,
    /// Likelihood (in [0, 1), log scale) that scores 0.5.
    pub likelihood_gate: f64,
    /// Fewest windows of one unchanged mean that can be a flat line never
    /// seen.
    pub min_flat: u32,
}

impl Default for SurpriseConfig {
    /// Five-minute windows: the last two hours against the last week,
    /// after a day of history (the values measured on NAB, benches/README).
    fn default() -> SurpriseConfig {
        SurpriseConfig {
            novelty_tolerance: 0.05,
            short: 24,
            long: 2016,
            min_history: 288,
            likelihood_gate: 0.95,
            min_flat: 12,
        }
    }
}

/// `ln(tail)` of 1e-10 is a likelihood of 1.
const LOG_FLOOR: f64 = 1e-10;

/// Per series slot: the range seen and the error history.
#[derive(Debug, Clone)]
pub struct Surprise {
    config: SurpriseConfig,
    low: Vec<f64>,
    high: Vec<f64>,
    /// `short` recent absolute errors per series (NaN: not yet filled).
    ring: Vec<f32>,
    next: Vec<u16>,
    windows: Vec<u32>,
    mean: Vec<f64>,
    var: Vec<f64>,
    /// The mean the current run of equal means holds, its length, and the
    /// longest earlier run.
    flat_value: Vec<f64>,
    flat_run: Vec<u32>,
    flat_longest: Vec<u32>,
}

impl Surprise {
    /// No series yet.
    pub fn new(config: SurpriseConfig) -> Surprise {
        Surprise {
            config: SurpriseConfig {
                short: config.short.clamp(1, u16::MAX as usize),
                long: config.long.max(1),
                ..config
            },
            low: Vec::new(),
            high: Vec::new(),
            ring: Vec::new(),
            next: Vec::new(),
            windows: Vec::new(),
            mean: Vec::new(),
            var: Vec::new(),
            flat_value: Vec::new(),
            flat_run: Vec::new(),
            flat_longest: Vec::new(),
        }
    }

    /// Grows the state to `series` slots.
    pub fn ensure_series(&mut self, series: usize) {
        if self.low.len() >= series {
            return;
        }
        self.low.resize(series, f64::INFINITY);
        self.high.resize(series, f64::NEG_INFINITY);
        self.ring.resize(series * self.config.short, f32::NAN);
        self.next.resize(series, 0);
        self.windows.resize(series, 0);
        self.mean.resize(series, 0.0);
        self.var.resize(series, 0.0);
        self.flat_value.resize(series, f64::NAN);
        self.flat_run.resize(series, 0);
        self.flat_longest.resize(series, 0);
    }

    /// The run of equal means series `i` would have with `x` as its newest.
    fn flat_run_with(&self, i: usize, x: f64) -> u32 {
        if same_level(self.flat_value[i], x) {
            self.flat_run[i].saturating_add(1)
        } else {
            1
        }
    }

    /// Mean absolute error of series `i` over its last windows, with `error` as the newest.
    fn recent(&self, i: usize, error: f64) -> f64 {
        let short = self.config.short;
        let ring = &self.ring[i * short..(i + 1) * short];
        let oldest = self.next[i] as usize;
        let (mut sum, mut n) = (error.abs(), 1usize);
        for (k, e) in ring.iter().enumerate() {
            // The slot about to be overwritten by `error` leaves the window.
            if k != oldest && e.is_finite() {
                sum += *e as f64;
                n += 1;
            }
        }
        sum / n as f64
    }

    /// The surprise of each series slot's window: `observed` means and
    /// forecast `error`s (observed minus forecast), `directions` per metric
    /// (slot `i` is metric `i % directions.len()`). Null where a series has
    /// no data or too little history. Does not learn.
    pub fn score(
        &self,
        observed: &Float64Array,
        error: &Float64Array,
        directions: &[Direction],
    ) -> Float64Array {
        let m = directions.len().max(1);
        f64_column(observed.len().min(self.low.len()), |i| {
            if observed.is_null(i) || self.windows[i] < self.config.min_history {
                return None;
            }
            let direction = directions[i % m];
            let x = observed.value(i);
            let slack = (self.high[i] - self.low[i]) * self.config.novelty_tolerance;
            let novel = self.high[i] > self.low[i]
                && match direction {
                    Direction::Increase => x > self.high[i] + slack,
                    Direction::Decrease => x < self.low[i] - slack,
                    Direction::Either => x > self.high[i] + slack || x < self.low[i] - slack,
                };
            // The one window whose run passes every earlier one, on a
            // metric bad either way (a flat line is neither high nor low).
            let flat = direction == Direction::Either
                && self.flat_run_with(i, x)
                    == self.flat_longest[i]
                        .saturating_add(1)
                        .max(self.config.min_flat);
            if novel || flat {
                return Some(1.0);
            }
            if error.is_null(i) || direction.badness(error.value(i)) <= 0.0 {
                return Some(0.0);
            }
            let recent = self.recent(i, error.value(i));
            let mean = self.mean[i];
            let std = self.var[i].sqrt().max(1e-3 * mean.abs()).max(1e-12);
            let tail = normal_tail((recent - mean) / std).max(LOG_FLOOR);
            let likelihood = (tail.ln() / LOG_FLOOR.ln()).clamp(0.0, 1.0);
            let gate = self.config.likelihood_gate.clamp(1e-6, 1.0 - 1e-6);
            Some(if likelihood >= gate {
                0.5 + 0.5 * (likelihood - gate) / (1.0 - gate)
            } else {
                0.5 * likelihood / gate
            })
        })
    }

    /// Learns the window for the slots where `learn` is true.
    pub fn learn(&mut self, observed: &Float64Array, error: &Float64Array, learn: &[bool]) {
        let short = self.config.short;
        let n = observed.len().min(self.low.len());
        for (i, &learns) in learn.iter().enumerate().take(n) {
            if observed.is_null(i) {
                continue;
            }
            let x = observed.value(i);
            // The current run is followed always; only a series that
            // learns moves its record.
            let run = self.flat_run_with(i, x);
            if run == 1 {
                if learns {
                    self.flat_longest[i] = self.flat_longest[i].max(self.flat_run[i]);
                }
                self.flat_value[i] = x;
            }
            self.flat_run[i] = run;
            if !learns {
                continue;
            }
            self.low[i] = self.low[i].min(x);
            self.high[i] = self.high[i].max(x);
            if error.is_null(i) || !error.value(i).is_finite() {
                continue;
            }
            let e = error.value(i);
            let recent = self.recent(i, e);
            let slot = i * short + self.next[i] as usize;
            self.ring[slot] = e.abs() as f32;
            self.next[i] = ((self.next[i] as usize + 1) % short) as u16;
            self.windows[i] = self.windows[i].saturating_add(1);
            let a = (1.0 / self.windows[i] as f64).max(1.0 / self.config.long as f64);
            let d = recent - self.mean[i];
            self.mean[i] += a * d;
            self.var[i] = (1.0 - a) * (self.var[i] + a * d * d);
        }
    }
}

/// True when two window means are the same level (equal but for rounding).
fn same_level(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SurpriseConfig {
        SurpriseConfig {
            min_history: 10,
            ..SurpriseConfig::default()
        }
    }

    fn one(x: f64) -> Float64Array {
        Float64Array::from(vec![x])
    }

    /// A series that wiggles within [9, 11] with errors of 0 to 1.
    fn trained(direction: Direction) -> (Surprise, [Direction; 1]) {
        let mut s = Surprise::new(config());
        s.ensure_series(1);
        let mut seed = 7u64;
        for k in 0..400 {
            let wiggle = if k % 2 == 0 { 1.0 } else { -1.0 };
            // Errors uniform in [0, 1) in size (a small LCG).
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let e = wiggle * (seed >> 11) as f64 / (1u64 << 53) as f64;
            s.learn(&one(10.0 + wiggle), &one(e), &[true]);
        }
        (s, [direction])
    }

    #[test]
    fn a_level_never_seen_scores_one_in_the_bad_direction_only() {
        let (s, up) = trained(Direction::Increase);
        assert_eq!(s.score(&one(11.5), &one(0.5), &up).value(0), 1.0);
        // Within the range widened by 5% of it: not new.
        assert!(s.score(&one(11.05), &one(0.5), &up).value(0) < 0.5);
        // A new low on a metric that is bad when it rises.
        assert!(s.score(&one(8.0), &one(-0.5), &up).value(0) < 0.5);
        let (s, either) = trained(Direction::Either);
        assert_eq!(s.score(&one(8.0), &one(-0.5), &either).value(0), 1.0);
    }

    #[test]
    fn a_run_of_large_errors_passes_the_threshold_and_one_error_does_not() {
        let (mut s, up) = trained(Direction::Increase);
        let first = s.score(&one(10.5), &one(3.0), &up).value(0);
        assert!(first < 0.5, "one error of 6x the usual mean: {first}");
        let mut last = first;
        for _ in 0..8 {
            s.learn(&one(10.5), &one(3.0), &[true]);
            last = s.score(&one(10.5), &one(3.0), &up).value(0);
        }
        assert!(last > 0.5, "nine windows in a row of it: {last}");
        // Errors in the good direction are no surprise on this metric.
        assert_eq!(s.score(&one(10.5), &one(-3.0), &up).value(0), 0.0);
    }

    #[test]
    fn a_flat_line_longer_than_any_before_scores_one_once() {
        let mut s = Surprise::new(config());
        s.ensure_series(1);
        let either = [Direction::Either];
        // A series that sits at 0 for 20 windows at a time, then wiggles.
        for k in 0..600 {
            let x = if k % 40 < 20 {
                0.0
            } else {
                5.0 + (k % 3) as f64
            };
            s.learn(&one(x), &one(0.1), &[true]);
        }
        // Stuck at 0 again: windows 1..=20 of the run are as before.
        let mut scores = Vec::new();
        for _ in 0..30 {
            scores.push(s.score(&one(0.0), &one(0.1), &either).value(0));
            s.learn(&one(0.0), &one(0.1), &[true]);
        }
        let record: Vec<usize> = (0..30).filter(|&k| scores[k] == 1.0).collect();
        assert_eq!(record, vec![20], "the 21st window of the run: {scores:?}");
        // A series that no longer learns (a patched VM) still follows its
        // run: the record is passed once, not on every window after it.
        let mut frozen = Vec::new();
        for _ in 0..40 {
            frozen.push(s.score(&one(3.0), &one(0.1), &either).value(0));
            s.learn(&one(3.0), &one(0.1), &[false]);
        }
        assert_eq!(frozen.iter().filter(|&&x| x == 1.0).count(), 1);
        // On a metric bad only when it rises, a flat line is no surprise.
        let up = [Direction::Increase];
        assert!(s.score(&one(3.0), &one(0.1), &up).value(0) < 1.0);
    }

    #[test]
    fn nothing_is_said_before_enough_history_or_of_a_series_that_did_not_learn() {
        let mut s = Surprise::new(config());
        s.ensure_series(2);
        let observed = Float64Array::from(vec![10.0, 10.0]);
        let error = Float64Array::from(vec![0.1, 0.1]);
        for _ in 0..20 {
            s.learn(&observed, &error, &[true, false]);
        }
        let out = s.score(
            &Float64Array::from(vec![100.0, 100.0]),
            &error,
            &[Direction::Either],
        );
        assert!(out.is_valid(0) && out.is_null(1));
        assert!(
            s.score(&Float64Array::new_null(2), &error, &[Direction::Either])
                .is_null(0)
        );
    }
}
