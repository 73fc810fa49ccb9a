//! Anomaly likelihood of a stream of forecast residuals: how unlikely the
//! recent errors are, given the errors seen before.
//!
//! A single large residual on a noisy series means little; a run of them
//! where residuals are usually small means much. After Numenta's anomaly
//! likelihood (Ahmad et al., 2017) and Hundman et al.'s smoothed-error
//! thresholds (2018): the absolute residuals are averaged over a short
//! recent window, and that average is compared with the mean and spread of
//! the same short averages over a long trailing window (as Numenta fits the
//! distribution of its averaged scores: an average of six residuals varies
//! far less than one residual does); the tail probability of the current
//! average under a normal fit is the likelihood, reported on a log
//! scale so that scores near 1 stay distinguishable
//! (`score = ln(1 - L) / ln(1e-10)`, clipped to [0, 1]: 0.5 is a
//! likelihood of 1 - 1e-5).

use std::collections::VecDeque;

/// Settings of [`AnomalyLikelihood`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LikelihoodConfig {
    /// Residuals the recent average is taken over.
    pub short: usize,
    /// Short averages the reference distribution is taken over.
    pub long: usize,
    /// Residuals needed before any score above 0.
    pub min_history: usize,
}

impl Default for LikelihoodConfig {
    fn default() -> LikelihoodConfig {
        LikelihoodConfig {
            short: 6,
            long: 2016,
            min_history: 288,
        }
    }
}

/// The running state of one series.
#[derive(Debug, Clone)]
pub struct AnomalyLikelihood {
    config: LikelihoodConfig,
    long: VecDeque<f64>,
    long_sum: f64,
    long_sq: f64,
    short: VecDeque<f64>,
    short_sum: f64,
}

/// The upper tail of the standard normal, `P(Z > z)`.
pub fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (W. J. Cody's rational approximation
/// as in Numerical Recipes' `erfcc`, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// `ln(1 - likelihood)` of 1e-10 maps to a score of 1.
const LOG_FLOOR: f64 = 1e-10;

impl AnomalyLikelihood {
    /// A series with no history.
    pub fn new(config: LikelihoodConfig) -> AnomalyLikelihood {
        AnomalyLikelihood {
            config,
            long: VecDeque::with_capacity(config.long + 1),
            long_sum: 0.0,
            long_sq: 0.0,
            short: VecDeque::with_capacity(config.short + 1),
            short_sum: 0.0,
        }
    }

    /// Takes the next residual (None: no forecast yet) and returns the
    /// anomaly score in [0, 1].
    pub fn update(&mut self, residual: Option<f64>) -> f64 {
        let Some(r) = residual.filter(|r| r.is_finite()) else {
            return 0.0;
        };
        let e = r.abs();
        self.short.push_back(e);
        self.short_sum += e;
        if self.short.len() > self.config.short.max(1) {
            self.short_sum -= self.short.pop_front().unwrap_or(0.0);
        }
        let avg = self.short_sum / self.short.len() as f64;
        let score = if self.long.len() >= self.config.min_history {
            let n = self.long.len() as f64;
            let mean = self.long_sum / n;
            let var = (self.long_sq / n - mean * mean).max(0.0);
            // A floor on the spread: a series that never moved is not
            // infinitely surprised by its first wiggle.
            let std = var.sqrt().max(1e-3 * mean.abs()).max(1e-12);
            let tail = normal_tail((avg - mean) / std);
            (tail.max(LOG_FLOOR).ln() / LOG_FLOOR.ln()).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.long.push_back(avg);
        self.long_sum += avg;
        self.long_sq += avg * avg;
        if self.long.len() > self.config.long.max(1) {
            let old = self.long.pop_front().unwrap_or(0.0);
            self.long_sum -= old;
            self.long_sq -= old * old;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_tail(-1.96) - 0.975).abs() < 1e-4);
        assert!((normal_tail(5.0) - 2.866e-7).abs() < 1e-9);
    }

    #[test]
    fn quiet_noise_scores_low_and_a_sustained_jump_scores_high() {
        let mut l = AnomalyLikelihood::new(LikelihoodConfig {
            short: 4,
            long: 500,
            min_history: 100,
        });
        // Deterministic pseudo-noise in [-1, 1].
        let mut x = 0.3_f64;
        let mut noise = || {
            x = (x * 3.7 * (1.0 - x)).clamp(0.01, 0.99);
            2.0 * x - 1.0
        };
        let mut peak_quiet: f64 = 0.0;
        for i in 0..400 {
            let s = l.update(Some(noise()));
            if i >= 100 {
                peak_quiet = peak_quiet.max(s);
            }
        }
        let mut peak_jump: f64 = 0.0;
        for _ in 0..4 {
            peak_jump = peak_jump.max(l.update(Some(8.0 + noise())));
        }
        assert!(peak_quiet < 0.5, "{peak_quiet}");
        assert!(peak_jump > 0.9, "{peak_jump}");
        assert_eq!(l.update(None), 0.0);
    }
}
