//! Learned thresholds: a dynamic threshold chosen from the residuals of
//! held-out data, after Hundman et al., "Detecting Spacecraft Anomalies
//! Using LSTMs and Nonparametric Dynamic Thresholding" (KDD 2018).
//!
//! Candidates are `ε = μ + zσ` of the pooled error magnitudes, `z` from 2
//! to 10; the chosen one removes the most mean and spread from the errors
//! below it, relative to how many errors (and runs of errors) it flags:
//! `(Δμ/μ + Δσ/σ) / (|e_a| + |E_seq|²)`. On clean validation data this
//! puts the threshold just above the errors' own tail instead of at a
//! constant picked by hand.

/// The smallest and largest thresholds returned, in sigmas: a model whose
/// held-out errors are unusually tame must not judge on a hair trigger, nor
/// one with a wild tail never judge at all.
pub const THRESHOLD_RANGE: (f64, f64) = (3.0, 12.0);

/// The threshold for per-VM runs of error magnitudes on clean held-out
/// data (one inner vector per VM, in time order), judged the way the
/// scorer judges: an anomaly needs `consecutive` windows above it.
///
/// Hundman's threshold, raised where needed above the largest error the
/// clean data sustained for `consecutive` windows in a row, times 1.25 (for
/// Gaussian-like tails, the margin by which the largest of a thousand
/// times more clean windows than the held-out ones would exceed it):
/// held-out data known to be healthy must not trip the rule it trains.
pub fn learn_threshold(errors: &[Vec<f64>], consecutive: usize) -> f64 {
    let sustained = errors
        .iter()
        .flat_map(|vm| {
            vm.windows(consecutive.max(1))
                .map(|w| w.iter().copied().fold(f64::INFINITY, f64::min))
        })
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    hundman(errors)
        .max(sustained * 1.25)
        .clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1)
}

/// Hundman et al.'s threshold, unclamped.
fn hundman(errors: &[Vec<f64>]) -> f64 {
    let all: Vec<f64> = errors
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if all.len() < 2 {
        return THRESHOLD_RANGE.1;
    }
    let (mean, std) = mean_std(&all);
    if std <= 0.0 || mean <= 0.0 {
        return THRESHOLD_RANGE.1;
    }
    let mut best: Option<(f64, f64)> = None;
    for step in 0..=16 {
        let z = 2.0 + 0.5 * step as f64;
        let epsilon = mean + z * std;
        let below: Vec<f64> = all.iter().copied().filter(|&v| v < epsilon).collect();
        let flagged = all.len() - below.len();
        if flagged == 0 {
            continue;
        }
        let runs: usize = errors
            .iter()
            .map(|vm| {
                vm.windows(2)
                    .filter(|w| w[0] < epsilon && w[1] >= epsilon)
                    .count()
                    + usize::from(vm.first().is_some_and(|&v| v >= epsilon))
            })
            .sum();
        let (mean_below, std_below) = mean_std(&below);
        let score = ((mean - mean_below) / mean + (std - std_below) / std)
            / (flagged as f64 + (runs * runs) as f64);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, epsilon));
        }
    }
    best.map(|(_, e)| e).unwrap_or(mean + 10.0 * std)
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// |N(0,1)|-like magnitudes from a fixed sequence.
    fn calm(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut sum = 0.0;
                for _ in 0..12 {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    sum += (s >> 11) as f64 / (1u64 << 53) as f64;
                }
                (sum - 6.0).abs()
            })
            .collect()
    }

    #[test]
    fn sits_above_calm_errors_and_below_a_real_excursion() {
        let mut vms: Vec<Vec<f64>> = (0..20).map(|i| calm(300, i)).collect();
        let calm_max = vms.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
        // One VM has a sustained excursion of 9 sigmas.
        for v in &mut vms[3][100..110] {
            *v = 9.0;
        }
        let t = hundman(&vms);
        assert!(t > 3.0 && t < 9.0, "threshold {t}, calm max {calm_max}");
        let flagged_calm = vms[4..].iter().flatten().filter(|&&v| v >= t).count();
        assert!(
            flagged_calm < 10,
            "{flagged_calm} calm errors flagged at {t}"
        );
    }

    #[test]
    fn clean_data_never_sustains_the_threshold() {
        let mut vms: Vec<Vec<f64>> = (0..20).map(|i| calm(300, i)).collect();
        // A healthy VM with two windows in a row at 5 sigmas.
        vms[7][40] = 5.0;
        vms[7][41] = 5.2;
        let t = learn_threshold(&vms, 2);
        assert!(t >= 5.5, "threshold {t}");
        assert!(
            learn_threshold(&vms, 3) < t,
            "three windows in a row are rarer"
        );
    }

    #[test]
    fn degenerate_errors_give_the_cautious_end() {
        assert_eq!(learn_threshold(&[], 2), THRESHOLD_RANGE.1);
        assert_eq!(learn_threshold(&[vec![1.0; 50]], 2), THRESHOLD_RANGE.1);
    }
}
