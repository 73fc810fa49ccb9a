//! SQL over the history folder (DataFusion): every table registered over
//! its Parquet files, read-only.
//!
//! The engine is the `sql` feature (on by default). A build without it
//! keeps this module's surface, and every query is refused with
//! [`SqlError::NotBuilt`].

use arrow::array::RecordBatch;
use thiserror::Error;

#[cfg(feature = "sql")]
pub use super::sql_engine::{
    MAX_OPERATORS, check_complexity, context, context_with, parse_in_child, parse_stdin, query,
    query_bounded, query_once,
};
#[cfg(not(feature = "sql"))]
pub use without_engine::{
    check_complexity, parse_in_child, parse_stdin, query_bounded, query_once,
};

/// A query failed.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The statement is not a query.
    #[error("only queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN): {0}")]
    NotAQuery(String),
    /// DataFusion refused or failed the query.
    #[error("{0}")]
    Query(String),
    /// Output could not be written.
    #[error("writing the result: {0}")]
    Output(String),
    /// The query ran past `sql.timeout_secs` and was stopped.
    #[error("the query ran past {0} s (sql.timeout_secs) and was stopped")]
    Timeout(u64),
    /// The result grew past `sql.max_result_mb`.
    #[error(
        "the result is larger than {0} MB (sql.max_result_mb); narrow the query or add a LIMIT"
    )]
    TooLarge(u64),
    /// As many queries as `sql.max_concurrent` already run.
    #[error("{0} queries already run (sql.max_concurrent); try again shortly")]
    Busy(usize),
    /// The client went away; the query was stopped.
    #[error("the client went away")]
    Cancelled,
    /// This build has no SQL engine (built without the `sql` feature).
    #[error(
        "this bellwether was built without SQL (the `sql` feature); build it with the default features: cargo build --release"
    )]
    NotBuilt,
}

pub use super::sql_config::SqlConfig;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row, one per line.
    Json,
}

/// Stack of the threads that plan and run queries: deep enough for every
/// query the guard's operator limit lets through, with room to spare.
pub const STACK_BYTES: usize = 64 << 20;

/// The longest the parser may take over one query a user sent.
pub const PARSE_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// A runtime for queries: a worker per core (DataFusion runs a query's
/// partitions as tasks), each with a [`STACK_BYTES`] stack.
///
/// The workers run at a lower priority (nice 10) than scoring: a query
/// that cannot be stopped at once (the parser does not yield) uses the
/// CPU scoring leaves, never the CPU scoring needs.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .on_thread_start(|| {
            // Linux: PRIO_PROCESS with 0 is this thread alone.
            // SAFETY: setpriority takes no pointers; a failure leaves the
            // priority as it was.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        })
        .build()
}

/// `batches` as text in `format`.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, SqlError> {
    let out = |e: &dyn std::fmt::Display| SqlError::Output(e.to_string());
    match format {
        OutputFormat::Table => arrow::util::pretty::pretty_format_batches(batches)
            .map(|t| format!("{t}\n"))
            .map_err(|e| out(&e)),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    w.write(b).map_err(|e| out(&e))?;
                }
            }
            String::from_utf8(buf).map_err(|e| out(&e))
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
                for b in batches {
                    w.write(b).map_err(|e| out(&e))?;
                }
                w.finish().map_err(|e| out(&e))?;
            }
            String::from_utf8(buf).map_err(|e| out(&e))
        }
    }
}

/// `batches` as one JSON array of row objects.
pub fn render_json_array(batches: &[RecordBatch]) -> Result<String, SqlError> {
    let out = |e: &dyn std::fmt::Display| SqlError::Output(e.to_string());
    let mut buf = Vec::new();
    {
        // Null columns are kept (as null), so every row has every column.
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| out(&e))?;
        }
        w.finish().map_err(|e| out(&e))?;
    }
    if buf.is_empty() {
        return Ok("[]".to_string());
    }
    String::from_utf8(buf).map_err(|e| out(&e))
}

/// The engine's entry points in a build without it: each refuses.
#[cfg(not(feature = "sql"))]
mod without_engine {
    use super::{SqlConfig, SqlError};
    use arrow::array::RecordBatch;
    use std::path::Path;

    /// Refuses: no engine in this build.
    pub fn query_bounded(
        _runtime: &tokio::runtime::Runtime,
        _root: &Path,
        _sql: &str,
        _limits: &SqlConfig,
        _cancelled: impl Fn() -> bool,
    ) -> Result<Vec<RecordBatch>, SqlError> {
        Err(SqlError::NotBuilt)
    }

    /// Refuses: no engine in this build.
    pub fn query_once(_root: &Path, _sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        Err(SqlError::NotBuilt)
    }

    /// Refuses: no parser in this build.
    pub fn parse_in_child(_sql: &str) -> Result<(), SqlError> {
        Err(SqlError::NotBuilt)
    }

    /// Refuses: no parser in this build.
    pub fn check_complexity(_sql: &str) -> Result<(), SqlError> {
        Err(SqlError::NotBuilt)
    }

    /// Nothing to parse with: reads stdin and ends.
    pub fn parse_stdin() -> std::io::Result<()> {
        use std::io::Read;
        std::io::stdin()
            .read_to_string(&mut String::new())
            .map(|_| ())
    }
}
