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

    /// The staged rows as owned tuples (for tests).
    #[cfg(test)]
    pub(crate) fn to_owned_rows(&self) -> Vec<(String, i64, String, f64)> {
        self.iter()
            .map(|(v, t, m, x)| (v.to_string(), t, m.to_string(), x))
            .collect()
    }
}
