//! The Mann-Whitney U test and the Hodges-Lehmann shift: Kayenta's canary
//! judgement, as a second opinion on a patched VM against its peers.
//!
//! ```
//! use bellwether_operators::mann_whitney::{hodges_lehmann, mann_whitney};
//! let canary = [5.1, 5.3, 4.9, 5.6, 5.2, 5.0];
//! let control = [0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.1, -0.3];
//! let test = mann_whitney(&canary, &control).unwrap();
//! assert!(test.p_greater < 0.005); // every canary above every control
//! assert!((hodges_lehmann(&canary, &control) - 5.1).abs() < 0.2);
//! ```

/// The outcome of one test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: pairs (x in a, y in b) with x > y, ties half.
    pub u: f64,
    /// One-sided p-value that `a` tends to be larger than `b` (normal
    /// approximation, corrected for ties and continuity).
    pub p_greater: f64,
    /// One-sided p-value that `a` tends to be smaller.
    pub p_less: f64,
}

/// Mann-Whitney U of `a` against `b`; None when either is empty or every
/// value is tied (nothing to rank).
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    // Mid-ranks of ties, and the tie correction Σ(t³ - t).
    let (mut rank_sum_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum_a += rank * all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64;
        i = j + 1;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_a - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)).max(1.0));
    if variance <= 0.0 {
        return None;
    }
    let sd = variance.sqrt();
    let tail = |z: f64| 0.5 * libm::erfc(z / std::f64::consts::SQRT_2);
    Some(MannWhitney {
        u,
        p_greater: tail((u - mean - 0.5) / sd),
        p_less: tail((mean - u - 0.5) / sd),
    })
}

/// The Hodges-Lehmann shift of `a` over `b`: the median of every pairwise
/// difference `x - y`. NaN when either is empty.
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> f64 {
    let mut d: Vec<f64> = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| x - y))
        .collect();
    crate::peers::median(&mut d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_and_p_match_known_values() {
        // a = 1..5 against b = 6..10: no pair with x > y, U = 0. Exact
        // one-sided p is 1/252 = 0.004; the normal approximation, with
        // continuity, gives z = (12.5 - 0.5) / sqrt(22.92) = 2.507.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let t = mann_whitney(&a, &b).unwrap();
        assert_eq!(t.u, 0.0);
        assert!((t.p_less - 0.00609).abs() < 2e-4, "{}", t.p_less);
        assert!(t.p_greater > 0.99);
        // Swapped: U = 25, the other tail.
        let t = mann_whitney(&b, &a).unwrap();
        assert_eq!(t.u, 25.0);
        assert!((t.p_greater - 0.00609).abs() < 2e-4);
    }

    #[test]
    fn ties_take_mid_ranks_and_shrink_the_variance() {
        // a = [1, 2, 2], b = [2, 3]: ranks 1, 3, 3 | 3, 5 (the three 2s
        // share rank 3). R_a = 7, U = 7 - 6 = 1. Tie correction: t = 3 →
        // variance = 6/12 · (6 - 24/20) = 2.4.
        let t = mann_whitney(&[1.0, 2.0, 2.0], &[2.0, 3.0]).unwrap();
        assert_eq!(t.u, 1.0);
        let z = (3.0 - 1.0 - 0.5) / 2.4f64.sqrt();
        assert!((t.p_less - 0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).abs() < 1e-12);
        assert!(mann_whitney(&[1.0, 1.0], &[1.0]).is_none(), "all tied");
        assert!(mann_whitney(&[], &[1.0]).is_none());
    }

    #[test]
    fn hodges_lehmann_is_the_median_pairwise_shift() {
        assert_eq!(hodges_lehmann(&[10.0, 11.0, 12.0], &[0.0, 1.0]), 10.5);
        assert!(hodges_lehmann(&[], &[1.0]).is_nan());
    }
}
