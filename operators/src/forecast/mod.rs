//! Forecasters: what each series is expected to do in the next window.
//!
//! A forecaster predicts the mean of every series slot for one window, in
//! one call for all VMs, and learns from the window's observed means where
//! the scorer allows it (VMs running unpatched). The statistical
//! [`seasonal::SeasonalRegression`] is always available and is the fallback
//! whenever a learned model is not.

pub mod lstm;
pub mod seasonal;

use arrow::array::Float64Array;

/// An event-time range `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start, inclusive.
    pub start_ms: i64,
    /// End, exclusive.
    pub end_ms: i64,
}

impl TimeRange {
    /// Midpoint in ms.
    pub fn mid_ms(&self) -> i64 {
        self.start_ms + (self.end_ms - self.start_ms) / 2
    }
}

/// Predicts window means for every series slot.
pub trait Forecaster: Send {
    /// Short name, recorded with every score (e.g. `seasonal-regression`).
    fn name(&self) -> &str;

    /// Forecasts the mean of each of `series` slots for `window`. Null where
    /// the forecaster cannot forecast yet (too little history).
    fn forecast(&mut self, window: TimeRange, series: usize) -> Float64Array;

    /// Learns from the observed means of `window` (null = no data) for the
    /// slots where `learn` is true; other slots keep their state.
    fn observe(&mut self, window: TimeRange, observed: &Float64Array, learn: &[bool]);

    /// The last forecast without its short-term correction: the same
    /// open-loop forecast for a VM that learns every window and for one
    /// that stopped learning (patched), so the two can be compared (the
    /// peer control). None: the forecast itself is open-loop.
    fn reference(&self) -> Option<&Float64Array> {
        None
    }

    /// Per series slot, how many times wider than the usual residual
    /// spread the last forecast's prediction interval is (at least 1): wide
    /// where the fit is poorly identified for this time of day (less than
    /// a day of history, a VM that just came back), near 1 once it has
    /// learned. None: always 1.
    fn interval_scale(&self) -> Option<&[f64]> {
        None
    }
}
