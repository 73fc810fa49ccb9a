//! Per-series normalisation from the VM's own running baseline.
//!
//! Training and inference normalise with the same causal rule: a value is
//! scaled by the mean and spread seen *before* it, which start as plain
//! averages and turn into exponentially weighted ones after about a
//! half-life, so the scale follows slow changes of a VM's level.

/// Running mean and variance of one series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningStats {
    count: u32,
    mean: f64,
    variance: f64,
}

impl RunningStats {
    /// Values seen.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Running mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Running standard deviation.
    pub fn std(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }
}

/// The normalisation rule a model was trained with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normaliser {
    /// Half-life of the running statistics, in windows.
    pub half_life_windows: f64,
    /// Smallest spread, as a fraction of the mean's magnitude (a flat
    /// series must not turn tiny wobbles into huge normalised values).
    pub relative_floor: f64,
    /// Normalised values are clipped to `±clip`.
    pub clip: f64,
}

impl Default for Normaliser {
    fn default() -> Normaliser {
        Normaliser {
            half_life_windows: 864.0,
            relative_floor: 0.01,
            clip: 8.0,
        }
    }
}

impl Normaliser {
    fn scale(&self, stats: &RunningStats) -> f64 {
        stats
            .std()
            .max(self.relative_floor * stats.mean.abs())
            .max(1e-6)
    }

    /// `value` in units of the series' spread around its mean, clipped.
    pub fn normalise(&self, stats: &RunningStats, value: f64) -> f64 {
        ((value - stats.mean) / self.scale(stats)).clamp(-self.clip, self.clip)
    }

    /// The value a normalised `z` stands for.
    pub fn denormalise(&self, stats: &RunningStats, z: f64) -> f64 {
        stats.mean + z * self.scale(stats)
    }

    /// Folds `value` into the running statistics.
    pub fn update(&self, stats: &mut RunningStats, value: f64) {
        let floor = 1.0 - 0.5f64.powf(1.0 / self.half_life_windows.max(1.0));
        let alpha = (1.0 / (stats.count as f64 + 1.0)).max(floor);
        let delta = value - stats.mean;
        stats.mean += alpha * delta;
        stats.variance = (1.0 - alpha) * (stats.variance + alpha * delta * delta);
        stats.count = stats.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_as_a_plain_average_and_round_trips() {
        let n = Normaliser::default();
        let mut s = RunningStats::default();
        for v in [2.0, 4.0, 6.0, 8.0] {
            n.update(&mut s, v);
        }
        assert!((s.mean() - 5.0).abs() < 1e-12);
        assert!(
            (s.std() - 5.0f64.sqrt()).abs() < 1e-12,
            "population spread {}",
            s.std()
        );
        let z = n.normalise(&s, 7.0);
        assert!((n.denormalise(&s, z) - 7.0).abs() < 1e-12);
        assert_eq!(n.normalise(&s, 1e9), n.clip);
    }

    #[test]
    fn follows_a_new_level_within_a_few_half_lives() {
        let n = Normaliser {
            half_life_windows: 10.0,
            ..Normaliser::default()
        };
        let mut s = RunningStats::default();
        for _ in 0..1000 {
            n.update(&mut s, 1.0);
        }
        for _ in 0..50 {
            n.update(&mut s, 2.0);
        }
        assert!(s.mean() > 1.95, "mean {}", s.mean());
    }
}
