//! Event-time windows, tumbling or sliding, closed by the watermark.
//!
//! Each open window keeps, per series slot, the count, sum and sum of squares
//! of the samples that fell in it: enough for the window mean and for the
//! residual RMSE against any forecast, in three flat vectors. A window
//! `[start, start + size)` closes when the watermark reaches
//! `start + size + allowed_lateness`; a sample that arrives for a window that
//! has closed is *late*: counted, never merged into a later window.

use crate::OperatorError;
use std::collections::VecDeque;

/// Marks a row the aggregator skips (an unscored metric).
pub const SKIP: u32 = u32::MAX;

/// Shape of the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length in milliseconds.
    pub size_ms: i64,
    /// Distance between window starts; equal to `size_ms` for tumbling windows.
    pub slide_ms: i64,
    /// How long after a window's end samples for it are still accepted.
    pub allowed_lateness_ms: i64,
}

impl WindowSpec {
    /// Tumbling windows of `size_ms`.
    pub fn tumbling(size_ms: i64, allowed_lateness_ms: i64) -> Result<WindowSpec, OperatorError> {
        WindowSpec::sliding(size_ms, size_ms, allowed_lateness_ms)
    }

    /// Sliding windows of `size_ms` starting every `slide_ms`; the size must be
    /// a whole multiple of the slide.
    pub fn sliding(
        size_ms: i64,
        slide_ms: i64,
        allowed_lateness_ms: i64,
    ) -> Result<WindowSpec, OperatorError> {
        if size_ms <= 0 || slide_ms <= 0 {
            return Err(OperatorError::InvalidSetting {
                setting: "window",
                reason: "window size and slide must be positive".into(),
            });
        }
        if size_ms % slide_ms != 0 {
            return Err(OperatorError::InvalidSetting {
                setting: "window.slide",
                reason: format!(
                    "window size {size_ms} ms is not a multiple of the slide {slide_ms} ms"
                ),
            });
        }
        if allowed_lateness_ms < 0 {
            return Err(OperatorError::InvalidSetting {
                setting: "window.allowed_lateness",
                reason: "allowed lateness cannot be negative".into(),
            });
        }
        Ok(WindowSpec {
            size_ms,
            slide_ms,
            allowed_lateness_ms,
        })
    }

    /// How many windows each sample belongs to.
    pub fn windows_per_sample(&self) -> i64 {
        self.size_ms / self.slide_ms
    }
}

/// Per-series sums of one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSums {
    /// Samples per series.
    pub count: Vec<u32>,
    /// Sum of values per series.
    pub sum: Vec<f64>,
    /// Sum of squared values per series.
    pub sum_sq: Vec<f64>,
}

impl WindowSums {
    fn new(series: usize) -> WindowSums {
        WindowSums {
            count: vec![0; series],
            sum: vec![0.0; series],
            sum_sq: vec![0.0; series],
        }
    }

    fn resize(&mut self, series: usize) {
        self.count.resize(series, 0);
        self.sum.resize(series, 0.0);
        self.sum_sq.resize(series, 0.0);
    }

    #[inline]
    fn add(&mut self, slot: usize, value: f64) {
        self.count[slot] += 1;
        self.sum[slot] += value;
        self.sum_sq[slot] += value * value;
    }
}

/// A window the watermark has passed, with its sums.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// Start (inclusive), ms.
    pub start_ms: i64,
    /// End (exclusive), ms.
    pub end_ms: i64,
    /// Per-series sums.
    pub sums: WindowSums,
}

/// Counters of rows the aggregator did not merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounters {
    /// Rows that arrived after their window closed.
    pub late_rows: u64,
    /// Rows so far ahead of the open windows that they look like bad clocks.
    pub future_rows: u64,
}

/// Aggregates samples into event-time windows.
///
/// ```
/// use bellwether_operators::window::{WindowAggregator, WindowSpec};
///
/// // One-minute windows, 10 s of allowed lateness, at most 10 open.
/// let mut windows = WindowAggregator::new(WindowSpec::tumbling(60_000, 10_000).unwrap(), 10);
/// windows.ensure_series(2);
/// // Series 0 and 1 (dense slots from a `SeriesIndex`), two samples each.
/// windows.add(&[0, 1, 0, 1], &[1_000, 2_000, 30_000, 59_000], &[10.0, 1.0, 20.0, 3.0]);
/// let closed = windows.close_until(60_000 + 10_000);
/// assert_eq!(closed.len(), 1);
/// assert_eq!(closed[0].sums.sum, [30.0, 4.0]);
/// assert_eq!(closed[0].sums.count, [2, 2]);
/// // A sample for a closed window is counted late, not merged.
/// windows.add(&[0], &[5_000], &[99.0]);
/// assert_eq!(windows.counters().late_rows, 1);
/// ```
#[derive(Debug, Clone)]
pub struct WindowAggregator {
    spec: WindowSpec,
    series: usize,
    open: VecDeque<(i64, WindowSums)>,
    /// Windows starting before this have been emitted.
    closed_before: i64,
    max_open: usize,
    counters: WindowCounters,
}

impl WindowAggregator {
    /// An aggregator with no open window. At most `max_open` windows are kept
    /// open; a row that would open more is counted as a future row.
    pub fn new(spec: WindowSpec, max_open: usize) -> WindowAggregator {
        WindowAggregator {
            spec,
            series: 0,
            open: VecDeque::new(),
            closed_before: i64::MIN,
            max_open: max_open.max(spec.windows_per_sample() as usize + 1),
            counters: WindowCounters::default(),
        }
    }

    /// The window shape.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Rows not merged so far.
    pub fn counters(&self) -> WindowCounters {
        self.counters
    }

    /// Grows every window to hold `series` series slots.
    pub fn ensure_series(&mut self, series: usize) {
        if series > self.series {
            self.series = series;
            for (_, sums) in &mut self.open {
                sums.resize(series);
            }
        }
    }

    /// Adds rows: `slots[i]` is row i's series slot (or [`SKIP`]), `times_ms[i]`
    /// its event time, `values[i]` its value. Slots must be below the series
    /// count given to [`WindowAggregator::ensure_series`].
    pub fn add(&mut self, slots: &[u32], times_ms: &[i64], values: &[f64]) {
        let slide = self.spec.slide_ms;
        let per_sample = self.spec.windows_per_sample();
        // The last window start computed, and its index in `open`: consecutive
        // rows mostly share both, which spares a division per row.
        let mut cached: Option<(i64, usize)> = None;
        for ((&slot, &t), &value) in slots.iter().zip(times_ms).zip(values) {
            if slot == SKIP {
                continue;
            }
            let latest_start = match cached {
                Some((start, _)) if t >= start && t < start + slide => start,
                _ => t - t.rem_euclid(slide),
            };
            let index = match cached {
                Some((start, index)) if start == latest_start => Some(index),
                _ => self.window_index(latest_start),
            };
            let Some(index) = index else {
                if latest_start < self.closed_before {
                    self.counters.late_rows += 1;
                } else {
                    self.counters.future_rows += 1;
                }
                cached = None;
                continue;
            };
            self.open[index].1.add(slot as usize, value);
            cached = Some((latest_start, index));
            // With sliding windows the sample also belongs to the windows that
            // started up to `size - slide` earlier.
            for k in 1..per_sample {
                match self.window_index(latest_start - k * slide) {
                    Some(i) => self.open[i].1.add(slot as usize, value),
                    None => {
                        // Older windows closed already: the sample missed them.
                        self.counters.late_rows += 1;
                        break;
                    }
                }
                // Opening an older window shifts the indexes of the newer ones.
                cached = None;
            }
        }
    }

    /// Index in `open` of the window starting at `start`, opening it (and any
    /// gap before it) if needed; `None` when it closed already or is too far ahead.
    fn window_index(&mut self, start: i64) -> Option<usize> {
        if start < self.closed_before {
            return None;
        }
        let slide = self.spec.slide_ms;
        let Some(&(front, _)) = self.open.front() else {
            self.open.push_back((start, WindowSums::new(self.series)));
            return Some(0);
        };
        if start < front {
            let needed = ((front - start) / slide) as usize;
            if self.open.len() + needed > self.max_open {
                return None;
            }
            for k in 1..=needed {
                self.open
                    .push_front((front - k as i64 * slide, WindowSums::new(self.series)));
            }
            return Some(0);
        }
        let index = ((start - front) / slide) as usize;
        if index >= self.max_open {
            return None;
        }
        while self.open.len() <= index {
            let next = self.open.back().map_or(start, |(s, _)| s + slide);
            self.open.push_back((next, WindowSums::new(self.series)));
        }
        Some(index)
    }

    /// Closes every window whose end plus allowed lateness the watermark has
    /// reached, oldest first.
    pub fn close_until(&mut self, watermark_ms: i64) -> Vec<ClosedWindow> {
        let WindowSpec {
            size_ms,
            slide_ms,
            allowed_lateness_ms,
        } = self.spec;
        let mut closed = Vec::new();
        while let Some(&(start, _)) = self.open.front() {
            if start + size_ms + allowed_lateness_ms > watermark_ms {
                break;
            }
            if let Some((start, sums)) = self.open.pop_front() {
                self.closed_before = start + slide_ms;
                closed.push(ClosedWindow {
                    start_ms: start,
                    end_ms: start + size_ms,
                    sums,
                });
            }
        }
        // Windows the watermark passed that never opened are closed too, so a
        // row for one of them counts as late instead of opening it.
        let first_open = (watermark_ms - size_ms - allowed_lateness_ms).div_euclid(slide_ms)
            * slide_ms
            + slide_ms;
        self.closed_before = self.closed_before.max(first_open);
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tumbling() -> WindowAggregator {
        let mut w = WindowAggregator::new(WindowSpec::tumbling(10, 5).unwrap(), 100);
        w.ensure_series(2);
        w
    }

    #[test]
    fn tumbling_windows_sum_per_series_and_close_on_the_watermark() {
        let mut w = tumbling();
        w.add(&[0, 1, 0, 0], &[1, 2, 9, 12], &[1.0, 10.0, 3.0, 5.0]);
        assert!(
            w.close_until(14).is_empty(),
            "end 10 + lateness 5 not reached"
        );
        let closed = w.close_until(15);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start_ms, closed[0].end_ms), (0, 10));
        assert_eq!(closed[0].sums.count, vec![2, 1]);
        assert_eq!(closed[0].sums.sum, vec![4.0, 10.0]);
        assert_eq!(closed[0].sums.sum_sq, vec![10.0, 100.0]);
    }

    #[test]
    fn rows_within_allowed_lateness_are_merged() {
        let mut w = tumbling();
        w.add(&[0], &[12], &[1.0]);
        w.add(&[0], &[3], &[2.0]); // window [0,10) still open: watermark not at 15
        let closed = w.close_until(15);
        assert_eq!(closed[0].sums.sum, vec![2.0, 0.0]);
    }

    #[test]
    fn late_rows_are_counted_not_merged() {
        let mut w = tumbling();
        w.add(&[0], &[3], &[1.0]);
        w.close_until(15);
        w.add(&[0, 1], &[4, 11], &[100.0, 2.0]);
        assert_eq!(w.counters().late_rows, 1);
        let closed = w.close_until(25);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].start_ms, 10);
        assert_eq!(
            closed[0].sums.sum,
            vec![0.0, 2.0],
            "the late 100.0 must not land in a later window"
        );
    }

    #[test]
    fn a_window_the_watermark_passed_unopened_does_not_open_late() {
        let mut w = tumbling();
        w.add(&[0], &[42], &[1.0]);
        w.close_until(40); // nothing open before 40 -> windows starting before 30 count as closed
        w.add(&[0], &[5], &[1.0]);
        assert_eq!(w.counters().late_rows, 1);
    }

    #[test]
    fn sliding_windows_count_each_row_in_every_window_it_falls_in() {
        let mut w = WindowAggregator::new(WindowSpec::sliding(10, 5, 0).unwrap(), 100);
        w.ensure_series(1);
        w.add(&[0, 0, 0], &[0, 6, 11], &[1.0, 2.0, 4.0]);
        let closed = w.close_until(20);
        let summary: Vec<(i64, f64)> = closed.iter().map(|c| (c.start_ms, c.sums.sum[0])).collect();
        // [-5,5) holds 1; [0,10) holds 1+2; [5,15) holds 2+4; [10,20) holds 4.
        assert_eq!(summary, vec![(-5, 1.0), (0, 3.0), (5, 6.0), (10, 4.0)]);
    }

    #[test]
    fn skipped_rows_and_far_future_rows_are_not_merged() {
        let mut w = WindowAggregator::new(WindowSpec::tumbling(10, 0).unwrap(), 4);
        w.ensure_series(1);
        w.add(&[SKIP, 0, 0], &[1, 2, 1_000_000], &[5.0, 1.0, 9.0]);
        assert_eq!(w.counters().future_rows, 1);
        let closed = w.close_until(10);
        assert_eq!(closed[0].sums.sum, vec![1.0]);
    }

    #[test]
    fn bad_window_shapes_are_refused() {
        assert!(WindowSpec::sliding(10, 3, 0).is_err());
        assert!(WindowSpec::tumbling(0, 0).is_err());
    }
}
