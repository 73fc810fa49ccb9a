//! Arrow columns built straight from a function of the row: one pass, the
//! values into one buffer and the validity into bitmap words, no builder
//! per value (the window pass builds a dozen such columns every window).

use arrow::array::Float64Array;
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};

/// A column of `len` rows whose row `i` is `value(i)` (null for `None`).
///
/// ```
/// use arrow::array::Array;
/// use bellwether_operators::column::f64_column;
///
/// let halves = f64_column(3, |i| (i != 1).then(|| i as f64 / 2.0));
/// assert_eq!(halves.value(2), 1.0);
/// assert!(halves.is_null(1));
/// ```
pub fn f64_column(len: usize, mut value: impl FnMut(usize) -> Option<f64>) -> Float64Array {
    let mut values = Vec::with_capacity(len);
    let mut valid = Validity::new(len);
    for i in 0..len {
        let v = value(i);
        if v.is_some() {
            valid.set(i);
        }
        values.push(v.unwrap_or(0.0));
    }
    Float64Array::new(ScalarBuffer::from(values), valid.finish())
}

/// The validity of `len` rows, built bit by bit: every row null until set.
#[derive(Debug, Clone)]
pub struct Validity {
    words: Vec<u64>,
    len: usize,
}

impl Validity {
    /// `len` null rows.
    pub fn new(len: usize) -> Validity {
        Validity {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Row `i` holds a value.
    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// The null buffer; none when every row holds a value.
    pub fn finish(self) -> Option<NullBuffer> {
        let valid: usize = self.words.iter().map(|w| w.count_ones() as usize).sum();
        (valid < self.len).then(|| {
            NullBuffer::new(BooleanBuffer::new(
                Buffer::from_vec(self.words),
                0,
                self.len,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn matches_arrow_own_collection_across_word_edges() {
        for len in [0, 1, 63, 64, 65, 130] {
            let f = |i: usize| (!i.is_multiple_of(3) || i % 64 == 63).then_some(i as f64 * 1.5);
            let ours = f64_column(len, f);
            let arrows = Float64Array::from_iter((0..len).map(f));
            assert_eq!(ours, arrows, "len {len}");
            assert_eq!(ours.null_count(), arrows.null_count(), "len {len}");
        }
        let full = f64_column(100, |i| Some(i as f64));
        assert!(
            full.nulls().is_none(),
            "no null buffer when every row is set"
        );
    }
}
