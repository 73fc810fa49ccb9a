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
            AVX512 => unsafe { avx2::run_wide(weights, x, steps, h, c) },
            // SAFETY: the CPU supports AVX2 and FMA (available).
            AVX2 => unsafe { avx2::run(weights, x, steps, h, c) },
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
mod avx2 {
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
        unsafe { run_rows::<false>(weights, x, steps, h, c) }
    }

    /// [`run`] with the gate products in 16-lane AVX-512 registers (32 of
    /// them: three rows' 128 gate columns at once); the activations stay
    /// 8-lane. The caller checks AVX-512F as well as AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn run_wide(
        weights: &LstmWeights,
        x: &[f32],
        steps: usize,
        h: &mut [f32],
        c: &mut [f32],
    ) {
        // SAFETY: the caller checked the CPU and the slices' lengths.
        unsafe { run_rows::<true>(weights, x, steps, h, c) }
    }

    /// The rows of a batch, three at a time; `WIDE`: AVX-512 gate products.
    /// Inlined into [`run`] or [`run_wide`], which enable the instructions.
    #[inline(always)]
    unsafe fn run_rows<const WIDE: bool>(
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
                    3.. => rows_together::<3, WIDE>(weights, x, steps, h, c, row, &mut scratch),
                    2 => rows_together::<2, WIDE>(weights, x, steps, h, c, row, &mut scratch),
                    _ => rows_together::<1, WIDE>(weights, x, steps, h, c, row, &mut scratch),
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
    unsafe fn rows_together<const R: usize, const WIDE: bool>(
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
        for t in 0..steps {
            for r in 0..R {
                let at = ((first + r) * steps + t) * input;
                z[r * k_total..r * k_total + input].copy_from_slice(&x[at..at + input]);
            }
            if WIDE {
                // 8 × R 16-lane accumulators (with R broadcasts and a
                // weight vector, in the 32 registers): 128 columns at once.
                let mut col = 0;
                while col < width {
                    let n = (width - col).min(128);
                    // SAFETY: as below; width and n are multiples of 32.
                    unsafe {
                        match n / 16 {
                            8 => wide::chunk::<R, 8>(z, k_total, w, width, col, bias, gates),
                            6 => wide::chunk::<R, 6>(z, k_total, w, width, col, bias, gates),
                            4 => wide::chunk::<R, 4>(z, k_total, w, width, col, bias, gates),
                            _ => wide::chunk::<R, 2>(z, k_total, w, width, col, bias, gates),
                        }
                    }
                    col += n;
                }
            } else {
                // SAFETY: as below.
                unsafe { columns::<R>(z, k_total, w, width, bias, gates) };
            }
            for r in 0..R {
                let row = first + r;
                // SAFETY: each row's gates hold 4·hidden values, its cell
                // state and z[input..] hidden values; hidden is a multiple of 8.
                let (gates, c, h) = (
                    &gates[r * width..(r + 1) * width],
                    &mut c[row * hidden..(row + 1) * hidden],
                    &mut z[r * k_total + input..(r + 1) * k_total],
                );
                unsafe {
                    if WIDE && hidden.is_multiple_of(16) {
                        wide::update(gates, hidden, c, h)
                    } else {
                        update(gates, hidden, c, h)
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

    /// Pre-activations of all `width` gate columns of R rows, 8-lane.
    #[inline(always)]
    unsafe fn columns<const R: usize>(
        z: &[f32],
        k_total: usize,
        w: &[f32],
        width: usize,
        bias: &[f32],
        gates: &mut [f32],
    ) {
        // At most 12 accumulators (with R broadcasts and a weight
        // vector, all in the 16 registers): 64 columns of one row,
        // 48 of two, 32 of three.
        let block = 8 * [8, 6, 4][R - 1];
        let mut col = 0;
        while col < width {
            let n = (width - col).min(block);
            // SAFETY: every chunk stays inside `w` (k_total × width),
            // `bias` and each row's gates (width): width and n are
            // multiples of 8.
            unsafe {
                match n / 8 {
                    8 => chunk::<R, 8>(z, k_total, w, width, col, bias, gates),
                    7 => chunk::<R, 7>(z, k_total, w, width, col, bias, gates),
                    6 => chunk::<R, 6>(z, k_total, w, width, col, bias, gates),
                    5 => chunk::<R, 5>(z, k_total, w, width, col, bias, gates),
                    4 => chunk::<R, 4>(z, k_total, w, width, col, bias, gates),
                    3 => chunk::<R, 3>(z, k_total, w, width, col, bias, gates),
                    2 => chunk::<R, 2>(z, k_total, w, width, col, bias, gates),
                    _ => chunk::<R, 1>(z, k_total, w, width, col, bias, gates),
                }
            }
            col += n;
        }
    }

    /// Pre-activations of columns `col..col + 8·N` of R rows: bias plus `z · w`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chunk<const R: usize, const N: usize>(
        z: &[f32],
        k_total: usize,
        w: &[f32],
        stride: usize,
        col: usize,
        bias: &[f32],
        out: &mut [f32],
    ) {
        debug_assert!(col + 8 * N <= stride && w.len() >= k_total * stride);
        debug_assert!(z.len() >= R * k_total && out.len() >= R * stride);
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            for row in acc.iter_mut() {
                for (j, a) in row.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(bias.as_ptr().add(col + 8 * j));
                }
            }
            let mut w_row = w.as_ptr().add(col);
            for k in 0..k_total {
                for j in 0..N {
                    let wk = _mm256_loadu_ps(w_row.add(8 * j));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let b = _mm256_broadcast_ss(&*z.as_ptr().add(r * k_total + k));
                        row[j] = _mm256_fmadd_ps(b, wk, row[j]);
                    }
                }
                w_row = w_row.add(stride);
            }
            for (r, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    _mm256_storeu_ps(out.as_mut_ptr().add(r * stride + col + 8 * j), *a);
                }
            }
        }
    }

    /// The gate products in AVX-512 registers.
    pub(super) mod wide {
        use std::arch::x86_64::*;

        /// Pre-activations of columns `col..col + 16·N` of R rows: bias
        /// plus `z · w`. Inlined into [`super::run_wide`] (AVX-512F).
        #[inline(always)]
        pub(super) unsafe fn chunk<const R: usize, const N: usize>(
            z: &[f32],
            k_total: usize,
            w: &[f32],
            stride: usize,
            col: usize,
            bias: &[f32],
            out: &mut [f32],
        ) {
            debug_assert!(col + 16 * N <= stride && w.len() >= k_total * stride);
            debug_assert!(z.len() >= R * k_total && out.len() >= R * stride);
            unsafe {
                let mut acc = [[_mm512_setzero_ps(); N]; R];
                for row in acc.iter_mut() {
                    for (j, a) in row.iter_mut().enumerate() {
                        *a = _mm512_loadu_ps(bias.as_ptr().add(col + 16 * j));
                    }
                }
                let mut w_row = w.as_ptr().add(col);
                for k in 0..k_total {
                    for j in 0..N {
                        let wk = _mm512_loadu_ps(w_row.add(16 * j));
                        for (r, row) in acc.iter_mut().enumerate() {
                            let b = _mm512_set1_ps(*z.as_ptr().add(r * k_total + k));
                            row[j] = _mm512_fmadd_ps(b, wk, row[j]);
                        }
                    }
                    w_row = w_row.add(stride);
                }
                for (r, row) in acc.iter().enumerate() {
                    for (j, a) in row.iter().enumerate() {
                        _mm512_storeu_ps(out.as_mut_ptr().add(r * stride + col + 16 * j), *a);
                    }
                }
            }
        }

        /// Gate activations and the state update, sixteen hidden units at
        /// a time (`hidden` a multiple of 16).
        #[inline(always)]
        pub(super) unsafe fn update(gates: &[f32], hidden: usize, c: &mut [f32], h: &mut [f32]) {
            debug_assert!(hidden.is_multiple_of(16) && gates.len() >= 4 * hidden);
            unsafe {
                let g = gates.as_ptr();
                for j in (0..hidden).step_by(16) {
                    let i = sigmoid(_mm512_loadu_ps(g.add(j)));
                    let f = sigmoid(_mm512_loadu_ps(g.add(hidden + j)));
                    let cand = tanh(_mm512_loadu_ps(g.add(2 * hidden + j)));
                    let o = sigmoid(_mm512_loadu_ps(g.add(3 * hidden + j)));
                    let cell = _mm512_fmadd_ps(
                        f,
                        _mm512_loadu_ps(c.as_ptr().add(j)),
                        _mm512_mul_ps(i, cand),
                    );
                    _mm512_storeu_ps(c.as_mut_ptr().add(j), cell);
                    _mm512_storeu_ps(h.as_mut_ptr().add(j), _mm512_mul_ps(o, tanh(cell)));
                }
            }
        }

        /// `e^x`: the same polynomial as the 8-lane one, scaled by 2^n
        /// with `vscalefps` instead of building the exponent's bits.
        #[inline(always)]
        unsafe fn exp(x: __m512) -> __m512 {
            unsafe {
                let x = _mm512_min_ps(
                    _mm512_max_ps(x, _mm512_set1_ps(-87.3)),
                    _mm512_set1_ps(88.3),
                );
                let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
                );
                let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
                let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
                let mut p = _mm512_set1_ps(1.987_569_1e-4);
                for coefficient in super::EXP_POLYNOMIAL {
                    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(coefficient));
                }
                let y = _mm512_fmadd_ps(
                    _mm512_mul_ps(p, r),
                    r,
                    _mm512_add_ps(r, _mm512_set1_ps(1.0)),
                );
                _mm512_scalef_ps(y, n)
            }
        }

        /// σ(x), the reciprocal from `vrcp14ps` and one Newton step.
        #[inline(always)]
        pub(super) unsafe fn sigmoid(x: __m512) -> __m512 {
            unsafe {
                let d = _mm512_add_ps(
                    _mm512_set1_ps(1.0),
                    exp(_mm512_sub_ps(_mm512_setzero_ps(), x)),
                );
                let r = _mm512_rcp14_ps(d);
                _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
            }
        }

        /// `tanh x = 2σ(2x) − 1`.
        #[inline(always)]
        pub(super) unsafe fn tanh(x: __m512) -> __m512 {
            unsafe {
                let two = _mm512_set1_ps(2.0);
                _mm512_fmsub_ps(two, sigmoid(_mm512_mul_ps(two, x)), _mm512_set1_ps(1.0))
            }
        }

        /// σ and tanh of sixteen values (for the error-bound test).
        #[cfg(test)]
        #[target_feature(enable = "avx512f")]
        pub(in super::super) fn activations(x: &[f32; 16]) -> ([f32; 16], [f32; 16]) {
            let (mut s, mut t) = ([0.0f32; 16], [0.0f32; 16]);
            // SAFETY: each array holds sixteen f32.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr());
                _mm512_storeu_ps(s.as_mut_ptr(), sigmoid(v));
                _mm512_storeu_ps(t.as_mut_ptr(), tanh(v));
            }
            (s, t)
        }
    }

    /// Gate activations and the state update, eight hidden units at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn update(gates: &[f32], hidden: usize, c: &mut [f32], h: &mut [f32]) {
        unsafe {
            let g = gates.as_ptr();
            for j in (0..hidden).step_by(8) {
                let i = sigmoid(_mm256_loadu_ps(g.add(j)));
                let f = sigmoid(_mm256_loadu_ps(g.add(hidden + j)));
                let cand = tanh(_mm256_loadu_ps(g.add(2 * hidden + j)));
                let o = sigmoid(_mm256_loadu_ps(g.add(3 * hidden + j)));
                let cell = _mm256_fmadd_ps(
                    f,
                    _mm256_loadu_ps(c.as_ptr().add(j)),
                    _mm256_mul_ps(i, cand),
                );
                _mm256_storeu_ps(c.as_mut_ptr().add(j), cell);
                _mm256_storeu_ps(h.as_mut_ptr().add(j), _mm256_mul_ps(o, tanh(cell)));
            }
        }
    }

    /// Cephes' polynomial for `e^r` on |r| ≤ ln 2 / 2, after its leading
    /// coefficient (1.987_569_1e-4), highest degree first.
    const EXP_POLYNOMIAL: [f32; 5] = [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];

    /// `e^x`, Cephes' single-precision polynomial (relative error ~2e-7).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.3)),
            _mm256_set1_ps(88.3),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for coefficient in EXP_POLYNOMIAL {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coefficient));
        }
        let y = _mm256_fmadd_ps(
            _mm256_mul_ps(p, r),
            r,
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(scale))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sigmoid(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let d = _mm256_add_ps(one, exp(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        // 1 / d: the approximate reciprocal (12 bits) and one Newton step
        // (about 23 bits), several times cheaper than a division.
        let r = _mm256_rcp_ps(d);
        _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0)))
    }

    /// σ and tanh of eight values (for the error-bound test).
    #[cfg(test)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn activations(x: &[f32; 8]) -> ([f32; 8], [f32; 8]) {
        let (mut s, mut t) = ([0.0f32; 8], [0.0f32; 8]);
        // SAFETY: each array holds eight f32.
        unsafe {
            let v = _mm256_loadu_ps(x.as_ptr());
            _mm256_storeu_ps(s.as_mut_ptr(), sigmoid(v));
            _mm256_storeu_ps(t.as_mut_ptr(), tanh(v));
        }
        (s, t)
    }

    /// `tanh x = 2σ(2x) − 1`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn tanh(x: __m256) -> __m256 {
        let two = _mm256_set1_ps(2.0);
        _mm256_fmsub_ps(two, sigmoid(_mm256_mul_ps(two, x)), _mm256_set1_ps(1.0))
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
                    let (s, t) = unsafe { avx2::activations(x.try_into().unwrap()) };
                    (s.to_vec(), t.to_vec())
                }),
            ));
        }
        if available(32).contains(&AVX512) {
            kernels.push((
                AVX512,
                Box::new(|x: &[f32]| {
                    // SAFETY: the CPU has AVX-512F (available).
                    let (s, t) = unsafe { avx2::wide::activations(x.try_into().unwrap()) };
                    (s.to_vec(), t.to_vec())
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
