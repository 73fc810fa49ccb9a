//! Fused LSTM inference: one product of `[x_t, h_{t-1}]` with the fused gate
//! matrix per step, activations and state update in the same pass.
//!
//! Rows (VMs) are independent, so a batch runs a few rows at a time: their
//! steps reuse the fused gate matrix from L1 cache (20 KB for 8 inputs and
//! 32 hidden units) and their state stays in small scratch rows. On x86-64
//! with AVX2 and FMA (checked at run time) three rows run together, each
//! weight vector loaded once for the three, twelve 8-lane accumulators in
//! registers, and the activations are polynomial approximations (error
//! bounds in the tests); elsewhere a portable loop computes the same thing.

use super::weights::LstmWeights;

/// Runs `steps` LSTM steps for every row of a batch, in place.
///
/// `x` holds `rows × steps × input` values (row-major, batch first);
/// `h` and `c` hold `rows × hidden` values: the state before the first
/// step on entry, after the last step on return.
///
/// # Panics
/// If the slices' lengths do not match the weights and `steps`.
pub fn run(weights: &LstmWeights, x: &[f32], steps: usize, h: &mut [f32], c: &mut [f32]) {
    run_with(implementation(weights.hidden()), weights, x, steps, h, c);
}

/// [`run`] with a named implementation, one of [`available`] (any other
/// name runs the portable one).
///
/// # Panics
/// If the slices' lengths do not match the weights and `steps`.
pub fn run_with(
    kernel: &str,
    weights: &LstmWeights,
    x: &[f32],
    steps: usize,
    h: &mut [f32],
    c: &mut [f32],
) {
    let (input, hidden) = (weights.input(), weights.hidden());
    let rows = h.len() / hidden;
    assert_eq!(h.len(), rows * hidden, "h is rows × hidden");
    assert_eq!(c.len(), rows * hidden, "c is rows × hidden");
    assert_eq!(x.len(), rows * steps * input, "x is rows × steps × input");
    #[cfg(target_arch = "x86_64")]
    if available(hidden).contains(&kernel) {
        match kernel {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (available).
            AVX512 => unsafe { simd::run_wide(weights, x, steps, h, c) },
            // SAFETY: the CPU supports AVX2 and FMA (available).
            AVX2 => unsafe { simd::run(weights, x, steps, h, c) },
            _ => portable::run(weights, x, steps, h, c),
        }
        return;
    }
    let _ = kernel;
    portable::run(weights, x, steps, h, c);
}

/// The implementation whose gate products are 16-lane AVX-512.
pub const AVX512: &str = "avx512f+fma";
/// The 8-lane AVX2 implementation.
pub const AVX2: &str = "avx2+fma";
/// Plain loops, any CPU and hidden size.
pub const PORTABLE: &str = "portable";

/// The implementations this CPU can run for `hidden` units, fastest first.
pub fn available(hidden: usize) -> Vec<&'static str> {
    let mut kernels = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if hidden.is_multiple_of(8) && avx2_available() {
        if std::arch::is_x86_feature_detected!("avx512f") {
            kernels.push(AVX512);
        }
        kernels.push(AVX2);
    }
    let _ = hidden;
    kernels.push(PORTABLE);
    kernels
}

/// The dense head: `out = h · head + bias`, `rows × outputs`.
pub fn head(weights: &LstmWeights, h: &[f32], out: &mut [f32]) {
    let (hidden, outputs) = (weights.hidden(), weights.outputs());
    let rows = h.len() / hidden;
    assert_eq!(out.len(), rows * outputs, "out is rows × outputs");
    if outputs <= HEAD_LANES {
        // The head's columns padded to a fixed width, so that each row's
        // products run in whole vectors (same sums, in the same order).
        let mut padded = vec![0.0f32; hidden * HEAD_LANES];
        for (to, from) in padded
            .chunks_exact_mut(HEAD_LANES)
            .zip(weights.head().chunks_exact(outputs))
        {
            to[..outputs].copy_from_slice(from);
        }
        let mut bias = [0.0f32; HEAD_LANES];
        bias[..outputs].copy_from_slice(weights.head_bias());
        for (h_row, out_row) in h.chunks_exact(hidden).zip(out.chunks_exact_mut(outputs)) {
            let mut acc = bias;
            for (&hk, w) in h_row.iter().zip(padded.chunks_exact(HEAD_LANES)) {
                for (a, &wk) in acc.iter_mut().zip(w) {
                    *a += hk * wk;
                }
            }
            out_row.copy_from_slice(&acc[..outputs]);
        }
        return;
    }
    for (h_row, out_row) in h.chunks_exact(hidden).zip(out.chunks_exact_mut(outputs)) {
        out_row.copy_from_slice(weights.head_bias());
        for (k, &hk) in h_row.iter().enumerate() {
            let w = &weights.head()[k * outputs..(k + 1) * outputs];
            for (o, &wk) in out_row.iter_mut().zip(w) {
                *o += hk * wk;
            }
        }
    }
}

/// Heads of up to this many outputs (a forecast and a spread for each of
/// eight metrics) run padded to it.
const HEAD_LANES: usize = 16;

/// Which implementation [`run`] uses on this CPU: the first of [`available`].
pub fn implementation(hidden: usize) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if hidden.is_multiple_of(8) && avx2_available() {
        return if std::arch::is_x86_feature_detected!("avx512f") {
            AVX512
        } else {
            AVX2
        };
    }
    let _ = hidden;
    PORTABLE
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The portable kernel: plain loops, any hidden size.
pub mod portable {
    use super::LstmWeights;

    /// Same contract as [`super::run`].
    pub fn run(weights: &LstmWeights, x: &[f32], steps: usize, h: &mut [f32], c: &mut [f32]) {
        let (input, hidden) = (weights.input(), weights.hidden());
        let width = 4 * hidden;
        let mut z = vec![0.0f32; input + hidden];
        let mut gates = vec![0.0f32; width];
        for ((x_row, h_row), c_row) in x
            .chunks_exact(steps * input)
            .zip(h.chunks_exact_mut(hidden))
            .zip(c.chunks_exact_mut(hidden))
        {
            z[input..].copy_from_slice(h_row);
            for x_t in x_row.chunks_exact(input) {
                z[..input].copy_from_slice(x_t);
                gates.copy_from_slice(weights.gate_bias());
                for (k, &zk) in z.iter().enumerate() {
                    let w = &weights.gates()[k * width..(k + 1) * width];
                    for (g, &wk) in gates.iter_mut().zip(w) {
                        *g += zk * wk;
                    }
                }
                for j in 0..hidden {
                    let i = sigmoid(gates[j]);
                    let f = sigmoid(gates[hidden + j]);
                    let g = (gates[2 * hidden + j]).tanh();
                    let o = sigmoid(gates[3 * hidden + j]);
                    c_row[j] = f * c_row[j] + i * g;
                    z[input + j] = o * c_row[j].tanh();
                }
            }
            h_row.copy_from_slice(&z[input..]);
        }
    }

    fn sigmoid(v: f32) -> f32 {
        1.0 / (1.0 + (-v).exp())
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The vector kernel, written once over [`Lanes`]: 8-lane AVX2 or
    //! 16-lane AVX-512. Everything here is `#[inline(always)]` into
    //! [`run`] or [`run_wide`], whose target features enable the
    //! instructions.

    use super::LstmWeights;
    use std::arch::x86_64::*;

    /// Same contract as [`super::run`]; `hidden` is a multiple of 8.
    ///
    /// Rows run three at a time: each weight vector loaded feeds three
    /// rows' products, and their activations are independent work the core
    /// overlaps. The last one or two rows run on their own. (Measured on
    /// this project's machines: three rows 1.2x faster than one; four spill
    /// accumulators out of the 16 registers and are no faster than one.)
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn run(
        weights: &LstmWeights,
        x: &[f32],
        steps: usize,
        h: &mut [f32],
        c: &mut [f32],
    ) {
        // SAFETY: the caller checked the CPU and the slices' lengths.
        unsafe { run_rows::<Avx2>(weights, x, steps, h, c) }
    }

    /// [`run`] in 16-lane AVX-512 registers (32 of them: three rows' 128
    /// gate columns at once). The caller checks AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn run_wide(
        weights: &LstmWeights,
        x: &[f32],
        steps: usize,
        h: &mut [f32],
        c: &mut [f32],
    ) {
        // SAFETY: the caller checked the CPU and the slices' lengths.
        unsafe { run_rows::<Avx512>(weights, x, steps, h, c) }
    }

    /// The vector operations the kernel needs.
    pub(super) trait Lanes {
        /// f32 lanes in a vector.
        const LANES: usize;
        /// Vectors of gate columns per block of `rows` rows: as many
        /// accumulators as fit beside the rows' broadcasts and a weight.
        const BLOCK: [usize; 3];
        /// A vector.
        type V: Copy;
        unsafe fn splat(v: f32) -> Self::V;
        unsafe fn load(p: *const f32) -> Self::V;
        unsafe fn store(p: *mut f32, v: Self::V);
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
        /// `a·b + c`.
        unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        /// `c − a·b`.
        unsafe fn neg_mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        /// `a·b − c`.
        unsafe fn mul_sub(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        unsafe fn clamp(v: Self::V, low: f32, high: f32) -> Self::V;
        /// To the nearest integer.
        unsafe fn round(v: Self::V) -> Self::V;
        /// `y · 2^n`, `n` integral.
        unsafe fn scale(y: Self::V, n: Self::V) -> Self::V;
        /// `1 / d` to 12 bits or more.
        unsafe fn reciprocal_estimate(d: Self::V) -> Self::V;
    }

    /// AVX2 and FMA: 8 lanes, 16 registers.
    pub(super) struct Avx2;

    /// AVX-512F: 16 lanes, 32 registers.
    pub(super) struct Avx512;

    /// The operations that map one to one onto an instruction of each set.
    macro_rules! one_to_one {
        ($v:ty, $set1:ident, $loadu:ident, $storeu:ident, $add:ident, $mul:ident,
         $fmadd:ident, $fnmadd:ident, $fmsub:ident, $min:ident, $max:ident) => {
            type V = $v;
            #[inline(always)]
            unsafe fn splat(v: f32) -> $v {
                unsafe { $set1(v) }
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> $v {
                unsafe { $loadu(p) }
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: $v) {
                unsafe { $storeu(p, v) }
            }
            #[inline(always)]
            unsafe fn add(a: $v, b: $v) -> $v {
                unsafe { $add(a, b) }
            }
            #[inline(always)]
            unsafe fn mul(a: $v, b: $v) -> $v {
                unsafe { $mul(a, b) }
            }
            #[inline(always)]
            unsafe fn mul_add(a: $v, b: $v, c: $v) -> $v {
                unsafe { $fmadd(a, b, c) }
            }
            #[inline(always)]
            unsafe fn neg_mul_add(a: $v, b: $v, c: $v) -> $v {
                unsafe { $fnmadd(a, b, c) }
            }
            #[inline(always)]
            unsafe fn mul_sub(a: $v, b: $v, c: $v) -> $v {
                unsafe { $fmsub(a, b, c) }
            }
            #[inline(always)]
            unsafe fn clamp(v: $v, low: f32, high: f32) -> $v {
                unsafe { $min($max(v, $set1(low)), $set1(high)) }
            }
        };
    }

    impl Lanes for Avx2 {
        const LANES: usize = 8;
        // 12 accumulators: 64 columns of one row, 48 of two, 32 of three.
        const BLOCK: [usize; 3] = [8, 6, 4];
        one_to_one!(
            __m256,
            _mm256_set1_ps,
            _mm256_loadu_ps,
            _mm256_storeu_ps,
            _mm256_add_ps,
            _mm256_mul_ps,
            _mm256_fmadd_ps,
            _mm256_fnmadd_ps,
            _mm256_fmsub_ps,
            _mm256_min_ps,
            _mm256_max_ps
        );
        #[inline(always)]
        unsafe fn round(v: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
        }
        #[inline(always)]
        unsafe fn scale(y: __m256, n: __m256) -> __m256 {
            // 2^n built in the exponent's bits.
            unsafe {
                let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                    _mm256_cvtps_epi32(n),
                    _mm256_set1_epi32(127),
                ));
                _mm256_mul_ps(y, _mm256_castsi256_ps(bits))
            }
        }
        #[inline(always)]
        unsafe fn reciprocal_estimate(d: __m256) -> __m256 {
            unsafe { _mm256_rcp_ps(d) }
        }
    }

    impl Lanes for Avx512 {
        const LANES: usize = 16;
        // 24 accumulators: 128 columns of up to three rows.
        const BLOCK: [usize; 3] = [8, 8, 8];
        one_to_one!(
            __m512,
            _mm512_set1_ps,
            _mm512_loadu_ps,
            _mm512_storeu_ps,
            _mm512_add_ps,
            _mm512_mul_ps,
            _mm512_fmadd_ps,
            _mm512_fnmadd_ps,
            _mm512_fmsub_ps,
            _mm512_min_ps,
            _mm512_max_ps
        );
        #[inline(always)]
        unsafe fn round(v: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
        }
        #[inline(always)]
        unsafe fn scale(y: __m512, n: __m512) -> __m512 {
            unsafe { _mm512_scalef_ps(y, n) }
        }
        #[inline(always)]
        unsafe fn reciprocal_estimate(d: __m512) -> __m512 {
            unsafe { _mm512_rcp14_ps(d) }
        }
    }

    /// The rows of a batch, three at a time.
    #[inline(always)]
    unsafe fn run_rows<L: Lanes>(
        weights: &LstmWeights,
        x: &[f32],
        steps: usize,
        h: &mut [f32],
        c: &mut [f32],
    ) {
        let (input, hidden) = (weights.input(), weights.hidden());
        let rows = h.len() / hidden;
        let mut scratch = Scratch {
            z: vec![0.0f32; 3 * (input + hidden)],
            gates: vec![0.0f32; 3 * 4 * hidden],
        };
        let mut row = 0;
        while row < rows {
            // SAFETY: the caller checked the CPU and the slices' lengths.
            row += unsafe {
                match rows - row {
                    3.. => rows_together::<L, 3>(weights, x, steps, h, c, row, &mut scratch),
                    2 => rows_together::<L, 2>(weights, x, steps, h, c, row, &mut scratch),
                    _ => rows_together::<L, 1>(weights, x, steps, h, c, row, &mut scratch),
                }
            };
        }
    }

    /// Up to three rows' `[x_t, h_{t-1}]` and gate pre-activations.
    struct Scratch {
        z: Vec<f32>,
        gates: Vec<f32>,
    }

    /// Runs rows `first..first + R` through every step; returns R.
    #[inline(always)]
    unsafe fn rows_together<L: Lanes, const R: usize>(
        weights: &LstmWeights,
        x: &[f32],
        steps: usize,
        h: &mut [f32],
        c: &mut [f32],
        first: usize,
        scratch: &mut Scratch,
    ) -> usize {
        let Scratch { z, gates } = scratch;
        let (input, hidden) = (weights.input(), weights.hidden());
        let width = 4 * hidden;
        let k_total = input + hidden;
        // Row r's `[x_t, h_{t-1}]` at `z[r * k_total..]`, its gates at `gates[r * width..]`.
        let w = weights.gates();
        let bias = weights.gate_bias();
        for r in 0..R {
            let row = first + r;
            z[r * k_total + input..(r + 1) * k_total]
                .copy_from_slice(&h[row * hidden..(row + 1) * hidden]);
        }
        let block = L::LANES * L::BLOCK[R - 1];
        for t in 0..steps {
            for r in 0..R {
                let at = ((first + r) * steps + t) * input;
                z[r * k_total..r * k_total + input].copy_from_slice(&x[at..at + input]);
            }
            let mut col = 0;
            while col < width {
                let n = (width - col).min(block);
                // SAFETY: every chunk stays inside `w` (k_total × width),
                // `bias` and each row's gates (width): width is a multiple
                // of 32, n of L::LANES.
                unsafe {
                    match n / L::LANES {
                        8 => chunk::<L, R, 8>(z, k_total, w, width, col, bias, gates),
                        7 => chunk::<L, R, 7>(z, k_total, w, width, col, bias, gates),
                        6 => chunk::<L, R, 6>(z, k_total, w, width, col, bias, gates),
                        5 => chunk::<L, R, 5>(z, k_total, w, width, col, bias, gates),
                        4 => chunk::<L, R, 4>(z, k_total, w, width, col, bias, gates),
                        3 => chunk::<L, R, 3>(z, k_total, w, width, col, bias, gates),
                        2 => chunk::<L, R, 2>(z, k_total, w, width, col, bias, gates),
                        _ => chunk::<L, R, 1>(z, k_total, w, width, col, bias, gates),
                    }
                }
                col += n;
            }
            for r in 0..R {
                let row = first + r;
                let (gates, c, h) = (
                    &gates[r * width..(r + 1) * width],
                    &mut c[row * hidden..(row + 1) * hidden],
                    &mut z[r * k_total + input..(r + 1) * k_total],
                );
                // SAFETY: each row's gates hold 4·hidden values, its cell
                // state and h hidden values; hidden is a multiple of 8.
                unsafe {
                    if hidden.is_multiple_of(L::LANES) {
                        update::<L>(gates, hidden, c, h)
                    } else {
                        update::<Avx2>(gates, hidden, c, h)
                    }
                };
            }
        }
        for r in 0..R {
            let row = first + r;
            h[row * hidden..(row + 1) * hidden]
                .copy_from_slice(&z[r * k_total + input..(r + 1) * k_total]);
        }
        R
    }

    /// Pre-activations of columns `col..col + N·LANES` of R rows: bias plus `z · w`.
    #[inline(always)]
    unsafe fn chunk<L: Lanes, const R: usize, const N: usize>(
        z: &[f32],
        k_total: usize,
        w: &[f32],
        stride: usize,
        col: usize,
        bias: &[f32],
        out: &mut [f32],
    ) {
        debug_assert!(col + L::LANES * N <= stride && w.len() >= k_total * stride);
        debug_assert!(z.len() >= R * k_total && out.len() >= R * stride);
        unsafe {
            let mut acc = [[L::splat(0.0); N]; R];
            for row in acc.iter_mut() {
                for (j, a) in row.iter_mut().enumerate() {
                    *a = L::load(bias.as_ptr().add(col + L::LANES * j));
                }
            }
            let mut w_row = w.as_ptr().add(col);
            for k in 0..k_total {
                for j in 0..N {
                    let wk = L::load(w_row.add(L::LANES * j));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let b = L::splat(*z.as_ptr().add(r * k_total + k));
                        row[j] = L::mul_add(b, wk, row[j]);
                    }
                }
                w_row = w_row.add(stride);
            }
            for (r, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    L::store(out.as_mut_ptr().add(r * stride + col + L::LANES * j), *a);
                }
            }
        }
    }

    /// Gate activations and the state update, LANES hidden units at a time.
    #[inline(always)]
    unsafe fn update<L: Lanes>(gates: &[f32], hidden: usize, c: &mut [f32], h: &mut [f32]) {
        debug_assert!(hidden.is_multiple_of(L::LANES) && gates.len() >= 4 * hidden);
        unsafe {
            let g = gates.as_ptr();
            for j in (0..hidden).step_by(L::LANES) {
                let i = sigmoid::<L>(L::load(g.add(j)));
                let f = sigmoid::<L>(L::load(g.add(hidden + j)));
                let cand = tanh::<L>(L::load(g.add(2 * hidden + j)));
                let o = sigmoid::<L>(L::load(g.add(3 * hidden + j)));
                let cell = L::mul_add(f, L::load(c.as_ptr().add(j)), L::mul(i, cand));
                L::store(c.as_mut_ptr().add(j), cell);
                L::store(h.as_mut_ptr().add(j), L::mul(o, tanh::<L>(cell)));
            }
        }
    }

    /// `e^x`, Cephes' single-precision polynomial (relative error ~2e-7).
    #[inline(always)]
    unsafe fn exp<L: Lanes>(x: L::V) -> L::V {
        unsafe {
            let x = L::clamp(x, -87.3, 88.3);
            let n = L::round(L::mul(x, L::splat(std::f32::consts::LOG2_E)));
            let r = L::neg_mul_add(n, L::splat(0.693_359_4), x);
            let r = L::neg_mul_add(n, L::splat(-2.121_944_4e-4), r);
            let mut p = L::splat(1.987_569_1e-4);
            for coefficient in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                0.166_666_65,
                0.5,
            ] {
                p = L::mul_add(p, r, L::splat(coefficient));
            }
            let y = L::mul_add(L::mul(p, r), r, L::add(r, L::splat(1.0)));
            L::scale(y, n)
        }
    }

    /// σ(x): the reciprocal's estimate and one Newton step (about 23 bits
    /// from 12), several times cheaper than a division.
    #[inline(always)]
    unsafe fn sigmoid<L: Lanes>(x: L::V) -> L::V {
        unsafe {
            let d = L::add(L::splat(1.0), exp::<L>(L::mul(x, L::splat(-1.0))));
            let r = L::reciprocal_estimate(d);
            L::mul(r, L::neg_mul_add(d, r, L::splat(2.0)))
        }
    }

    /// `tanh x = 2σ(2x) − 1`.
    #[inline(always)]
    unsafe fn tanh<L: Lanes>(x: L::V) -> L::V {
        unsafe {
            let two = L::splat(2.0);
            L::mul_sub(two, sigmoid::<L>(L::mul(two, x)), L::splat(1.0))
        }
    }

    /// σ and tanh of `x` (a multiple of LANES values), for the error-bound test.
    #[cfg(test)]
    #[inline(always)]
    unsafe fn activations<L: Lanes>(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut s, mut t) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
        for i in (0..x.len()).step_by(L::LANES) {
            // SAFETY: i + LANES ≤ x.len() = s.len() = t.len().
            unsafe {
                let v = L::load(x.as_ptr().add(i));
                L::store(s.as_mut_ptr().add(i), sigmoid::<L>(v));
                L::store(t.as_mut_ptr().add(i), tanh::<L>(v));
            }
        }
        (s, t)
    }

    /// [`activations`] in 8 lanes.
    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn activations_avx2(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        // SAFETY: the instructions are enabled here.
        unsafe { activations::<Avx2>(x) }
    }

    /// [`activations`] in 16 lanes.
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn activations_avx512(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        // SAFETY: the instructions are enabled here.
        unsafe { activations::<Avx512>(x) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textbook LSTM in f64, gate by gate.
    fn reference(w: &LstmWeights, x: &[f32], steps: usize, rows: usize) -> (Vec<f64>, Vec<f64>) {
        let (input, hidden) = (w.input(), w.hidden());
        let width = 4 * hidden;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut h = vec![0.0f64; rows * hidden];
        let mut c = vec![0.0f64; rows * hidden];
        for r in 0..rows {
            for t in 0..steps {
                let xt = &x[(r * steps + t) * input..][..input];
                let hp: Vec<f64> = h[r * hidden..(r + 1) * hidden].to_vec();
                for j in 0..hidden {
                    let pre = |gate: usize| {
                        let col = gate * hidden + j;
                        let mut s = w.gate_bias()[col] as f64;
                        for (k, x) in xt.iter().enumerate() {
                            s += *x as f64 * w.gates()[k * width + col] as f64;
                        }
                        for (k, h) in hp.iter().enumerate() {
                            s += h * w.gates()[(input + k) * width + col] as f64;
                        }
                        s
                    };
                    let (i, f, g, o) = (sig(pre(0)), sig(pre(1)), pre(2).tanh(), sig(pre(3)));
                    let cell = f * c[r * hidden + j] + i * g;
                    c[r * hidden + j] = cell;
                    h[r * hidden + j] = o * cell.tanh();
                }
            }
        }
        (h, c)
    }

    fn inputs(len: usize) -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * 0.731).sin() * 2.5).collect()
    }

    fn check(input: usize, hidden: usize, rows: usize, steps: usize) {
        let w = LstmWeights::pseudo_random(input, hidden, 3, 7);
        let x = inputs(rows * steps * input);
        let (want_h, want_c) = reference(&w, &x, steps, rows);
        for name in available(hidden) {
            let mut h = vec![0.0; rows * hidden];
            let mut c = vec![0.0; rows * hidden];
            run_with(name, &w, &x, steps, &mut h, &mut c);
            for (i, (got, want)) in h.iter().zip(&want_h).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-4,
                    "{name} h[{i}]: {got} vs {want}"
                );
            }
            for (i, (got, want)) in c.iter().zip(&want_c).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-4,
                    "{name} c[{i}]: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn fused_kernels_match_a_textbook_lstm() {
        check(8, 32, 5, 60); // the benchmark shape: three rows, then two
        check(9, 48, 3, 7); // 192 columns in six 32-column chunks
        check(3, 8, 2, 4); // two rows, 32 columns: one 32-column chunk
        check(8, 16, 7, 3); // three, three, then one row alone
        check(4, 5, 2, 3); // hidden not a multiple of 8: portable path
    }

    /// The vector activations' largest absolute error against f64 over
    /// [-30, 30] in steps of 1/1024: σ within 3e-7, tanh within 6e-7
    /// (measured: 8-lane 1.8e-7 and 3.6e-7, 16-lane 1.3e-7 and 2.5e-7).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_activations_stay_within_their_error_bounds() {
        let xs: Vec<f32> = (-30 * 1024..30 * 1024).map(|i| i as f32 / 1024.0).collect();
        type Activations = Box<dyn Fn(&[f32]) -> (Vec<f32>, Vec<f32>)>;
        let mut kernels: Vec<(&str, Activations)> = Vec::new();
        if avx2_available() {
            kernels.push((
                AVX2,
                Box::new(|x: &[f32]| {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { simd::activations_avx2(x) }
                }),
            ));
        }
        if available(32).contains(&AVX512) {
            kernels.push((
                AVX512,
                Box::new(|x: &[f32]| {
                    // SAFETY: the CPU has AVX-512F (available).
                    unsafe { simd::activations_avx512(x) }
                }),
            ));
        }
        if kernels.is_empty() {
            eprintln!("no AVX2 and FMA on this CPU: the vector activations are not used here");
        }
        for (name, activations) in kernels {
            let lanes = if name == AVX512 { 16 } else { 8 };
            let (mut sigmoid_error, mut tanh_error) = (0.0f64, 0.0f64);
            for chunk in xs.chunks_exact(lanes) {
                let (s, t) = activations(chunk);
                for ((&x, s), t) in chunk.iter().zip(s).zip(t) {
                    let x = x as f64;
                    sigmoid_error = sigmoid_error.max((s as f64 - 1.0 / (1.0 + (-x).exp())).abs());
                    tanh_error = tanh_error.max((t as f64 - x.tanh()).abs());
                }
            }
            assert!(sigmoid_error < 3e-7, "{name}: σ error {sigmoid_error:e}");
            assert!(tanh_error < 6e-7, "{name}: tanh error {tanh_error:e}");
            eprintln!("{name}: largest errors σ {sigmoid_error:e}, tanh {tanh_error:e}");
        }
    }

    #[test]
    fn steps_one_at_a_time_equal_one_sequence() {
        let w = LstmWeights::pseudo_random(8, 32, 2, 3);
        let (rows, steps) = (4, 10);
        let x = inputs(rows * steps * 8);
        let mut h = vec![0.0; rows * 32];
        let mut c = vec![0.0; rows * 32];
        run(&w, &x, steps, &mut h, &mut c);
        let mut h1 = vec![0.0; rows * 32];
        let mut c1 = vec![0.0; rows * 32];
        for t in 0..steps {
            let xt: Vec<f32> = (0..rows)
                .flat_map(|r| x[(r * steps + t) * 8..][..8].to_vec())
                .collect();
            run(&w, &xt, 1, &mut h1, &mut c1);
        }
        assert_eq!(h, h1);
        assert_eq!(c, c1);
    }

    #[test]
    fn head_is_a_dense_layer() {
        // Two outputs and fourteen run padded; twenty the plain way.
        for outputs in [2, 14, 20] {
            let w = LstmWeights::pseudo_random(2, 3, outputs, 1);
            let h = [1.0, -2.0, 0.5, 0.25, 3.0, -1.0];
            let mut out = vec![0.0; 2 * outputs];
            head(&w, &h, &mut out);
            for (i, got) in out.iter().enumerate() {
                let (row, o) = (i / outputs, i % outputs);
                let want: f32 = w.head_bias()[o]
                    + (0..3)
                        .map(|k| h[row * 3 + k] * w.head()[k * outputs + o])
                        .sum::<f32>();
                assert!(
                    (got - want).abs() < 1e-5,
                    "{outputs} outputs, [{i}]: {got} vs {want}"
                );
            }
        }
    }
}
