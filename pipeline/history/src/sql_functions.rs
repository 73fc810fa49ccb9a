//! SQL functions whose one value can outgrow memory, bounded.
//!
//! `repeat('x', 2000000000)`, `array_repeat(1, 2000000000)` or
//! `range(1, 2000000000)` build a single value of gigabytes in one call,
//! outside the memory pool DataFusion's operators share. Each is replaced,
//! in the sessions that run users' queries, by the same function that
//! first works out how large its largest value would be from its
//! arguments, and refuses past the largest result a query may return.

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// How a function's largest value is worked out from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes times n.
    Repeat,
    /// `lpad` / `rpad(text, n [, fill])`: n characters of up to 4 bytes.
    Pad,
    /// `array_repeat(value, n)`: n elements.
    Elements,
    /// `range` / `generate_series([start,] stop [, step])`: (stop - start) / step elements.
    Series,
}

/// The functions bounded, by name.
const BOUNDED: [(&str, Growth); 6] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("array_repeat", Growth::Elements),
    ("range", Growth::Series),
    ("generate_series", Growth::Series),
];

/// Bytes an element of a list is counted as.
const ELEMENT_BYTES: u64 = 8;

/// Replaces, in `ctx`, each function of [`BOUNDED`] it has by one refusing
/// a value of more than `max_bytes`.
pub fn bound(ctx: &SessionContext, max_bytes: u64) {
    for (name, growth) in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner,
                growth,
                max_bytes,
            }));
        }
    }
}

/// A function that checks its arguments first.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    max_bytes: u64,
}

/// `value` as 64-bit integers (none when it is not a number).
fn integers(value: &ColumnarValue) -> Option<Int64Array> {
    let array = value.to_array(1).ok()?;
    if !array.data_type().is_integer() {
        return None;
    }
    let cast = arrow::compute::cast(&array, &DataType::Int64).ok()?;
    cast.as_any().downcast_ref::<Int64Array>().cloned()
}

/// The longest text of `value`, in bytes (0 when it is not text).
fn longest_text(value: &ColumnarValue) -> u64 {
    let Ok(array) = value.to_array(1) else {
        return 0;
    };
    let Ok(text): Result<ArrayRef, _> = arrow::compute::cast(&array, &DataType::Utf8) else {
        return 0;
    };
    text.as_any().downcast_ref::<StringArray>().map_or(0, |t| {
        t.iter()
            .flatten()
            .map(|s| s.len() as u64)
            .max()
            .unwrap_or(0)
    })
}

/// The largest of `value`'s integers, at least 0.
fn largest(value: &ColumnarValue) -> u64 {
    integers(value).map_or(0, |n| n.iter().flatten().max().unwrap_or(0).max(0) as u64)
}

impl Bounded {
    /// The bytes the largest value of one call with `args` would hold, when
    /// it can be told from them.
    fn largest_value(&self, args: &[ColumnarValue]) -> Option<u64> {
        match self.growth {
            Growth::Repeat => {
                let times = largest(args.get(1)?);
                Some(longest_text(args.first()?).saturating_mul(times))
            }
            Growth::Pad => Some(largest(args.get(1)?).saturating_mul(4)),
            Growth::Elements => Some(largest(args.get(1)?).saturating_mul(ELEMENT_BYTES)),
            Growth::Series => {
                let numbers: Vec<Int64Array> = args.iter().map(integers).collect::<Option<_>>()?;
                let rows = numbers.iter().map(Array::len).max()?;
                let at = |a: &Int64Array, i: usize| {
                    let i = if a.len() == 1 { 0 } else { i };
                    (!a.is_null(i)).then(|| a.value(i) as i128)
                };
                let mut most = 0u64;
                for i in 0..rows {
                    let (start, stop, step) = match numbers.as_slice() {
                        [stop] => (Some(0), at(stop, i), Some(1)),
                        [start, stop] => (at(start, i), at(stop, i), Some(1)),
                        [start, stop, step, ..] => (at(start, i), at(stop, i), at(step, i)),
                        [] => return None,
                    };
                    if let (Some(start), Some(stop), Some(step)) = (start, stop, step)
                        && step != 0
                    {
                        let n = ((stop - start) / step).max(0) as u64 + 1;
                        most = most.max(n.saturating_mul(ELEMENT_BYTES));
                    }
                }
                Some(most)
            }
        }
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(bytes) = self.largest_value(&args.args)
            && bytes > self.max_bytes
        {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}(...) would make a value of {} MB; a query may return at most {} MB (sql.max_result_mb)",
                self.name(),
                bytes >> 20,
                self.max_bytes >> 20
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one value `sql` returns, as text, or its error.
    fn one(sql: &str) -> std::result::Result<String, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ctx = SessionContext::new();
            bound(&ctx, 1 << 20);
            let batches = ctx
                .sql(sql)
                .await
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            let text = arrow::util::display::array_value_to_string(batches[0].column(0), 0)
                .map_err(|e| e.to_string())?;
            Ok(text)
        })
    }

    #[test]
    fn values_past_the_bound_are_refused_and_small_ones_computed() {
        assert_eq!(one("SELECT length(repeat('ab', 3))").unwrap(), "6");
        assert_eq!(one("SELECT cardinality(range(1, 10))").unwrap(), "9");
        assert_eq!(
            one("SELECT cardinality(generate_series(1, 10, 3))").unwrap(),
            "4"
        );
        assert_eq!(one("SELECT cardinality(array_repeat(7, 5))").unwrap(), "5");
        assert_eq!(one("SELECT length(lpad('x', 5))").unwrap(), "5");
        for (sql, name) in [
            ("SELECT length(repeat('x', 2000000000))", "repeat"),
            ("SELECT length(repeat(repeat('x', 1000), 2000))", "repeat"),
            (
                "SELECT cardinality(array_repeat(1, 2000000000))",
                "array_repeat",
            ),
            ("SELECT cardinality(range(1, 2000000000))", "range"),
            (
                "SELECT cardinality(generate_series(-2000000000, 0))",
                "generate_series",
            ),
            ("SELECT length(rpad('x', 2000000000))", "rpad"),
        ] {
            let e = one(sql).unwrap_err();
            assert!(
                e.contains(name) && e.contains("sql.max_result_mb"),
                "{sql}: {e}"
            );
        }
        // Per row too, not only for constants.
        let e = one("SELECT max(length(repeat('x', n))) FROM (VALUES (1), (5000000)) AS t(n)")
            .unwrap_err();
        assert!(e.contains("repeat"), "{e}");
    }
}
