//! Rows of one message, staged before they are appended to a batch.

use std::ops::Range;

/// One staged row; strings are ranges into the arena.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    /// VM id (range into the arena).
    pub vm: Range<usize>,
    /// Metric name (range into the arena).
    pub metric: Range<usize>,
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    /// Value.
    pub value: f64,
}

/// A reusable buffer of staged rows. Strings live in one arena, so staging a
/// message allocates nothing once the buffer has grown to the message size.
#[derive(Debug, Default, Clone)]
pub struct StagedRows {
    arena: String,
    rows: Vec<StagedRow>,
}

impl StagedRows {
    /// An empty buffer.
    pub fn new() -> StagedRows {
        StagedRows::default()
    }

    /// Forgets every row, keeping the memory.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.rows.clear();
    }

    /// Number of staged rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Copies `s` into the arena and returns its range.
    pub fn intern(&mut self, s: &str) -> Range<usize> {
        let start = self.arena.len();
        self.arena.push_str(s);
        start..self.arena.len()
    }

    /// Copies the concatenation of `parts` into the arena.
    pub fn intern_joined(&mut self, parts: &[&str]) -> Range<usize> {
        let start = self.arena.len();
        for p in parts {
            self.arena.push_str(p);
        }
        start..self.arena.len()
    }

    /// Stages one row.
    pub fn push(&mut self, vm: Range<usize>, metric: Range<usize>, time_ms: i64, value: f64) {
        self.rows.push(StagedRow {
            vm,
            metric,
            time_ms,
            value,
        });
    }

    /// Mutable access to the rows staged from `from` on (to fill in fields a
    /// message gave after its metrics).
    pub fn rows_from(&mut self, from: usize) -> &mut [StagedRow] {
        &mut self.rows[from..]
    }

    /// The staged rows with their strings resolved.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64, &str, f64)> + '_ {
        self.rows.iter().map(|r| {
            (
                &self.arena[r.vm.clone()],
                r.time_ms,
                &self.arena[r.metric.clone()],
                r.value,
            )
        })
    }

    /// Checks that the staged message is believable: at most
    /// `max_metrics` distinct metric names, and every time between the
    /// epoch and `not_after_ms`. The reason names the first row that is not.
    pub fn check_plausible(&self, not_after_ms: i64, max_metrics: usize) -> Result<(), String> {
        for (i, (_, t, _, _)) in self.iter().enumerate() {
            if t < 0 {
                return Err(format!("row {i}: time {t} ms is before 1970"));
            }
            if t > not_after_ms {
                return Err(format!(
                    "row {i}: time {t} ms is past {not_after_ms} ms, the latest believable (the message's timestamp plus window.max_future_secs)"
                ));
            }
        }
        if self.rows.len() > max_metrics {
            let mut names = std::collections::HashSet::new();
            for (_, _, metric, _) in self.iter() {
                names.insert(metric);
                if names.len() > max_metrics {
                    return Err(format!(
                        "more than {max_metrics} distinct metric names in one message"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The staged rows as owned tuples (for tests).
    #[cfg(test)]
    pub(crate) fn to_owned_rows(&self) -> Vec<(String, i64, String, f64)> {
        self.iter()
            .map(|(v, t, m, x)| (v.to_string(), t, m.to_string(), x))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(rows: &[(&str, i64)]) -> StagedRows {
        let mut s = StagedRows::new();
        for (metric, t) in rows {
            let vm = s.intern("vm-1");
            let m = s.intern(metric);
            s.push(vm, m, *t, 1.0);
        }
        s
    }

    #[test]
    fn implausible_times_and_too_many_metric_names_are_refused_naming_the_row() {
        assert!(
            staged(&[("cpu", 5), ("mem", 10)])
                .check_plausible(10, 8)
                .is_ok()
        );
        let e = staged(&[("cpu", 5), ("mem", 9_000_000_000_000_000)])
            .check_plausible(10, 8)
            .unwrap_err();
        assert!(e.starts_with("row 1: time"), "{e}");
        let e = staged(&[("cpu", -1)]).check_plausible(10, 8).unwrap_err();
        assert!(e.contains("before 1970"), "{e}");
        let names: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
        let rows: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let e = staged(&rows).check_plausible(10, 8).unwrap_err();
        assert!(e.contains("more than 8 distinct metric names"), "{e}");
        // Many rows of few names are fine.
        let rows: Vec<(&str, i64)> = (0..100).map(|i| (names[i % 3].as_str(), 1)).collect();
        assert!(staged(&rows).check_plausible(10, 8).is_ok());
    }
}
