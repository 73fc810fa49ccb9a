//! Seasonal regression: a level plus daily harmonics, fitted per series by
//! recursive least squares with exponential forgetting.
//!
//! Server metrics follow the day: traffic, and with it CPU, latency and
//! I/O, rise and fall on a daily cycle. Holt-Winters needs several whole
//! days before its per-slot seasonal terms settle (each is updated once a
//! day); a few harmonics of the daily cycle capture the same shape with
//! `1 + 2h` coefficients, learned from less than a day of history. Forgetting
//! lets the fit follow slow changes of level. Once a VM is patched its fit
//! is frozen (the scorer stops feeding it) and keeps forecasting the
//! pre-patch behaviour at the right time of day.

use super::{Forecaster, TimeRange};
use crate::column::f64_column;
use arrow::array::{Array, Float64Array};
use std::f64::consts::TAU;

const DAY_MS: f64 = bellwether_schemas::EventTime::DAY_MS as f64;
/// Initial covariance of the coefficients: large means "know nothing yet".
const INITIAL_COVARIANCE: f64 = 1_000.0;

/// Settings of [`SeasonalRegression`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeasonalRegressionConfig {
    /// Daily harmonics fitted (0 = level only).
    pub harmonics: usize,
    /// Half-life of the forgetting, in windows.
    pub forgetting_half_life_windows: f64,
    /// Windows a series must have been observed before it is forecast.
    pub min_windows: u32,
}

/// Level + daily harmonics per series, fitted by recursive least squares.
#[derive(Debug, Clone)]
pub struct SeasonalRegression {
    config: SeasonalRegressionConfig,
    lambda: f64,
    k: usize,
    theta: Vec<f64>,
    /// Per series: the upper triangle of the coefficients' covariance, row
    /// by row (`k (k + 1) / 2` values: the matrix is symmetric).
    covariance: Vec<f64>,
    windows: Vec<u32>,
    features: Vec<f64>,
    scratch: Vec<f64>,
    /// Per series: interval scale of the last forecast.
    interval: Vec<f64>,
    /// Per series: `P x` for the features of `px_window`, computed by the
    /// forecast and reused by the update of the same window.
    px: Vec<f64>,
    px_window: Option<TimeRange>,
}

impl SeasonalRegression {
    /// A forecaster that knows nothing yet.
    pub fn new(config: SeasonalRegressionConfig) -> SeasonalRegression {
        let k = 1 + 2 * config.harmonics;
        SeasonalRegression {
            config,
            lambda: 0.5f64.powf(1.0 / config.forgetting_half_life_windows.max(1.0)),
            k,
            theta: Vec::new(),
            covariance: Vec::new(),
            windows: Vec::new(),
            features: vec![0.0; k],
            scratch: vec![0.0; k],
            interval: Vec::new(),
            px: Vec::new(),
            px_window: None,
        }
    }

    fn ensure_series(&mut self, series: usize) {
        if self.windows.len() < series {
            self.theta.resize(series * self.k, 0.0);
            self.covariance.resize(series * packed_len(self.k), 0.0);
            self.windows.resize(series, 0);
        }
    }

    fn set_features(&mut self, window: TimeRange) {
        let phase = (window.mid_ms() as f64).rem_euclid(DAY_MS) / DAY_MS * TAU;
        self.features[0] = 1.0;
        for h in 0..self.config.harmonics {
            let angle = phase * (h + 1) as f64;
            self.features[1 + 2 * h] = angle.sin();
            self.features[2 + 2 * h] = angle.cos();
        }
    }

    /// Takes `y` into series `i`'s fit; `px_cached`: `P x` for the current
    /// features is in `self.px` (the forecast of this window computed it).
    fn update(&mut self, i: usize, y: f64, px_cached: bool) {
        let k = self.k;
        let theta = &mut self.theta[i * k..(i + 1) * k];
        let len = packed_len(k);
        let p = &mut self.covariance[i * len..(i + 1) * len];
        let x = &self.features;
        let fresh = self.windows[i] == 0;
        if fresh {
            theta.fill(0.0);
            theta[0] = y;
            p.fill(0.0);
            let mut diagonal = 0;
            for d in 0..k {
                p[diagonal] = INITIAL_COVARIANCE;
                diagonal += k - d;
            }
        }
        let px = if px_cached && !fresh {
            &self.px[i * k..(i + 1) * k]
        } else {
            mat_vec(p, x, &mut self.scratch);
            &self.scratch
        };
        rls_update(theta, p, px, x, y, self.lambda);
        self.windows[i] += 1;
    }
}

/// `a · b`, summed in order.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// One recursive-least-squares step of `theta` and its packed covariance
/// `p` towards `y` at features `x`, given `px = P x`:
/// `P ← (P − P x x' P / (λ + x' P x)) / λ`; unrolled for the usual sizes.
fn rls_update(theta: &mut [f64], p: &mut [f64], px: &[f64], x: &[f64], y: f64, lambda: f64) {
    match x.len() {
        3 => rls_update_of(3, theta, p, px, x, y, lambda),
        5 => rls_update_of(5, theta, p, px, x, y, lambda),
        7 => rls_update_of(7, theta, p, px, x, y, lambda),
        9 => rls_update_of(9, theta, p, px, x, y, lambda),
        k => rls_update_of(k, theta, p, px, x, y, lambda),
    }
}

#[inline(always)]
fn rls_update_of(
    k: usize,
    theta: &mut [f64],
    p: &mut [f64],
    px: &[f64],
    x: &[f64],
    y: f64,
    lambda: f64,
) {
    let (theta, p, px, x) = (&mut theta[..k], &mut p[..packed_len(k)], &px[..k], &x[..k]);
    let inv_denominator = 1.0 / (lambda + dot(x, px));
    let error = y - dot(theta, x);
    let inv_lambda = 1.0 / lambda;
    let mut at = 0;
    for r in 0..k {
        let gain = px[r] * inv_denominator;
        theta[r] += gain * error;
        for c in r..k {
            p[at + c - r] = (p[at + c - r] - gain * px[c]) * inv_lambda;
        }
        at += k - r;
    }
}

/// Values of a packed symmetric `k × k` matrix (its upper triangle).
const fn packed_len(k: usize) -> usize {
    k * (k + 1) / 2
}

/// `out = P x` for a symmetric `P` packed as its upper triangle row by row;
/// unrolled for the usual sizes (1 to 4 harmonics), where it is most of the
/// forecaster's work.
fn mat_vec(p: &[f64], x: &[f64], out: &mut [f64]) {
    match x.len() {
        3 => mat_vec_of::<3>(p, x, out),
        5 => mat_vec_of::<5>(p, x, out),
        7 => mat_vec_of::<7>(p, x, out),
        9 => mat_vec_of::<9>(p, x, out),
        _ => packed_mat_vec(p, x, out),
    }
}

fn mat_vec_of<const K: usize>(p: &[f64], x: &[f64], out: &mut [f64]) {
    let p: &[f64] = &p[..packed_len(K)];
    let x: &[f64; K] = x.try_into().expect("x has K values");
    let out: &mut [f64; K] = out.try_into().expect("out has K values");
    packed_mat_vec(p, x, out);
}

#[inline(always)]
fn packed_mat_vec(p: &[f64], x: &[f64], out: &mut [f64]) {
    let k = x.len();
    out[..k].fill(0.0);
    let mut at = 0;
    for r in 0..k {
        let diagonal = p[at];
        let mut sum = diagonal * x[r];
        for c in r + 1..k {
            let v = p[at + c - r];
            sum += v * x[c];
            out[c] += v * x[r];
        }
        out[r] += sum;
        at += k - r;
    }
}

impl Forecaster for SeasonalRegression {
    fn name(&self) -> &str {
        "seasonal-regression"
    }

    fn forecast(&mut self, window: TimeRange, series: usize) -> Float64Array {
        self.ensure_series(series);
        self.set_features(window);
        let k = self.k;
        // P x of every series, kept for this window's update.
        self.px.resize(series * k, 0.0);
        for (px, p) in self
            .px
            .chunks_exact_mut(k)
            .zip(self.covariance.chunks_exact(packed_len(k)))
        {
            mat_vec(p, &self.features, px);
        }
        self.px_window = Some(window);
        let (x, px, windows) = (&self.features, &self.px, &self.windows);
        self.interval.clear();
        self.interval.extend((0..series).map(|i| {
            if windows[i] >= self.config.min_windows {
                // The leverage x' P x: the forecast's own variance in units
                // of the noise variance, large where the fit has seen little
                // of this time of day.
                (1.0 + dot(x, &px[i * k..(i + 1) * k]).max(0.0)).sqrt()
            } else {
                1.0
            }
        }));
        f64_column(series, |i| {
            (self.windows[i] >= self.config.min_windows)
                .then(|| dot(&self.theta[i * k..(i + 1) * k], &self.features))
        })
    }

    fn interval_scale(&self) -> Option<&[f64]> {
        Some(&self.interval)
    }

    fn observe(&mut self, window: TimeRange, observed: &Float64Array, learn: &[bool]) {
        self.ensure_series(observed.len());
        self.set_features(window);
        let px_cached =
            self.px_window.take() == Some(window) && self.px.len() >= observed.len() * self.k;
        for (i, &learn) in learn.iter().enumerate().take(observed.len()) {
            if learn && observed.is_valid(i) {
                self.update(i, observed.value(i), px_cached);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(i: i64) -> TimeRange {
        TimeRange {
            start_ms: i * 300_000,
            end_ms: (i + 1) * 300_000,
        }
    }

    fn daily(i: i64) -> f64 {
        let phase = window(i).mid_ms() as f64 / DAY_MS * TAU;
        50.0 + 20.0 * phase.sin() + 5.0 * (2.0 * phase).cos()
    }

    #[test]
    fn learns_a_daily_cycle_within_a_day_and_forecasts_it_frozen() {
        let mut f = SeasonalRegression::new(SeasonalRegressionConfig {
            harmonics: 2,
            forgetting_half_life_windows: 2_000.0,
            min_windows: 12,
        });
        assert!(
            f.forecast(window(0), 1).is_null(0),
            "no forecast before any history"
        );
        for i in 0..288 {
            f.observe(window(i), &Float64Array::from(vec![daily(i)]), &[true]);
        }
        // Frozen from here on: forecasts follow the cycle for the next 12 hours.
        for i in 288..432 {
            let forecast = f.forecast(window(i), 1).value(0);
            assert!(
                (forecast - daily(i)).abs() < 0.01,
                "window {i}: {forecast} vs {}",
                daily(i)
            );
        }
    }

    #[test]
    fn intervals_are_wide_for_hours_never_seen_and_narrow_after_a_day() {
        let config = SeasonalRegressionConfig {
            harmonics: 3,
            forgetting_half_life_windows: 864.0,
            min_windows: 12,
        };
        let scale_at = |history_windows: i64, at: i64| {
            let mut f = SeasonalRegression::new(config);
            for i in 0..history_windows {
                f.observe(window(i), &Float64Array::from(vec![daily(i)]), &[true]);
            }
            f.forecast(window(at), 1);
            f.interval_scale().unwrap()[0]
        };
        // 14 h of history (168 windows), then 4 h later: an hour never seen.
        let short = scale_at(168, 216);
        // 30 h of history, the same time of day as above.
        let long = scale_at(360, 504);
        assert!(short > 1.5, "14 h of history, unseen hour: {short}");
        assert!(long < 1.1, "30 h of history: {long}");
        // Right after the 14 h, at an hour just seen, the interval is narrow.
        assert!(scale_at(168, 168) < short);
    }

    #[test]
    fn slots_not_allowed_to_learn_keep_their_fit() {
        let cfg = SeasonalRegressionConfig {
            harmonics: 0,
            forgetting_half_life_windows: 5.0,
            min_windows: 1,
        };
        let mut f = SeasonalRegression::new(cfg);
        for i in 0..50 {
            f.observe(
                window(i),
                &Float64Array::from(vec![10.0, 10.0]),
                &[true, true],
            );
        }
        for i in 50..60 {
            f.observe(
                window(i),
                &Float64Array::from(vec![90.0, 90.0]),
                &[true, false],
            );
        }
        let out = f.forecast(window(60), 2);
        assert!(out.value(0) > 50.0, "slot 0 followed the new level");
        assert!((out.value(1) - 10.0).abs() < 1e-6, "slot 1 was frozen");
    }

    #[test]
    fn the_packed_covariance_multiplies_as_the_whole_matrix() {
        for k in [1, 3, 5, 7, 9, 11] {
            // A symmetric k × k matrix, whole and packed.
            let whole: Vec<f64> = (0..k * k)
                .map(|i| {
                    let (r, c) = (i / k, i % k);
                    ((r.min(c) * 7 + r.max(c) * 3) % 11) as f64 - 4.5
                })
                .collect();
            let packed: Vec<f64> = (0..k)
                .flat_map(|r| (r..k).map(move |c| (r, c)))
                .map(|(r, c)| whole[r * k + c])
                .collect();
            assert_eq!(packed.len(), packed_len(k));
            let x: Vec<f64> = (0..k).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut out = vec![f64::NAN; k];
            mat_vec(&packed, &x, &mut out);
            for r in 0..k {
                let expected = dot(&whole[r * k..(r + 1) * k], &x);
                assert!((out[r] - expected).abs() < 1e-12, "k {k}, row {r}");
            }
        }
    }
}
