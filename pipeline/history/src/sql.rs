//! SQL over the history folder (DataFusion): every table registered over
//! its Parquet files, read-only.

use super::tables::{TABLES, schema};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::context::SessionContext;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

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

fn with_partitions(table: &str) -> Vec<(String, DataType)> {
    let mut cols = vec![("date".to_string(), DataType::Utf8)];
    if table == "samples" {
        cols.push(("hour".to_string(), DataType::Utf8));
    }
    cols
}

/// A session with every history table of `root` registered.
pub async fn context(root: &Path) -> Result<SessionContext, SqlError> {
    context_with(root, None).await
}

/// As [`context`], its operators' memory bounded by `memory_limit` bytes
/// (a sort or join past it fails with a message instead of growing).
pub async fn context_with(
    root: &Path,
    memory_limit: Option<usize>,
) -> Result<SessionContext, SqlError> {
    // Filters are applied while Parquet is decoded (rows of one VM or
    // metric, or a time range, are picked out before the rest is read).
    let config = datafusion::prelude::SessionConfig::new()
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true)
        // `SHOW TABLES` and `SHOW COLUMNS FROM t`, as the manual promises (docs/src/operating/history-sql.md).
        .with_information_schema(true);
    let ctx = match memory_limit {
        None => SessionContext::new_with_config(config),
        Some(bytes) => {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_limit(bytes, 1.0)
                .build_arc()
                .map_err(|e| SqlError::Query(e.to_string()))?;
            SessionContext::new_with_config_rt(config, runtime)
        }
    };
    for table in TABLES {
        let dir = root.join(table);
        let partitions = with_partitions(table);
        if !dir.is_dir() {
            // An empty table with the full schema, so queries still plan.
            let mut fields: Vec<Field> = schema(table)
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.extend(
                partitions
                    .iter()
                    .map(|(n, t)| Field::new(n, t.clone(), false)),
            );
            let mem = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])
                .map_err(|e| SqlError::Query(e.to_string()))?;
            ctx.register_table(table, Arc::new(mem))
                .map_err(|e| SqlError::Query(e.to_string()))?;
            continue;
        }
        let url = ListingTableUrl::parse(format!("{}/", dir.display()))
            .map_err(|e| SqlError::Query(e.to_string()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partitions);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema(table));
        let listing = ListingTable::try_new(config).map_err(|e| SqlError::Query(e.to_string()))?;
        ctx.register_table(table, Arc::new(listing))
            .map_err(|e| SqlError::Query(e.to_string()))?;
    }
    Ok(ctx)
}

pub use super::sql_guard::MAX_OPERATORS;

/// Stack of the threads that plan and run queries: deep enough for every
/// query [`MAX_OPERATORS`] lets through, with room to spare.
pub const STACK_BYTES: usize = 64 << 20;

/// The longest the parser may take over one query a user sent.
pub const PARSE_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Parses `sql` in a child process (this binary's hidden `parse-sql`),
/// killed past [`PARSE_BUDGET`]: sqlparser backtracks exponentially on
/// some inputs of a hundred bytes, and a parse inside this process could
/// not be stopped. Whether it parses is for the planner to say; this only
/// refuses a query the parser cannot read in time.
pub fn parse_in_child(sql: &str) -> Result<(), SqlError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let cannot = |e: std::io::Error| SqlError::Query(format!("cannot check the query: {e}"));
    let exe = std::env::current_exe().map_err(cannot)?;
    let mut child = Command::new(exe)
        .arg("parse-sql")
        .env("BELLWETHER_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(cannot)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that stopped reading has its answer already.
        let _ = stdin.write_all(sql.as_bytes());
    }
    let deadline = std::time::Instant::now() + PARSE_BUDGET;
    loop {
        if child.try_wait().map_err(cannot)?.is_some() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SqlError::Query(format!(
                "the SQL parser could not read this query in {} s; write it plainer (fewer nested parentheses or dotted names)",
                PARSE_BUDGET.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `bellwether parse-sql`: parses the query on stdin (see [`parse_in_child`]).
pub fn parse_stdin() -> std::io::Result<()> {
    use std::io::Read;
    let mut sql = String::new();
    std::io::stdin().read_to_string(&mut sql)?;
    let _ = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, &sql);
    Ok(())
}

/// Refuses a query too complex to plan safely, before it is parsed.
pub fn check_complexity(sql: &str) -> Result<(), SqlError> {
    super::sql_guard::check(sql).map_err(SqlError::Query)
}

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

/// Runs one read-only statement.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    check_complexity(sql)?;
    plan(ctx, sql)
        .await?
        .collect()
        .await
        .map_err(|e| SqlError::Query(e.to_string()))
}

/// Runs one query a user sent on `runtime`, within `limits`: its memory
/// pool, its largest result and its time. Waits on this thread (not on
/// the runtime, whose workers a heavy query keeps busy), so the timeout
/// and `cancelled` (checked ten times a second) answer on time; the
/// query's task is then aborted and stops at its next await.
pub fn query_bounded(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    sql: &str,
    limits: &SqlConfig,
    cancelled: impl Fn() -> bool,
) -> Result<Vec<RecordBatch>, SqlError> {
    use std::sync::mpsc::RecvTimeoutError;
    let (answer, answered) = std::sync::mpsc::channel();
    let (root, sql, bounds) = (root.to_path_buf(), sql.to_string(), *limits);
    let task = runtime.spawn(async move {
        let _ = answer.send(collect_bounded(&root, &sql, &bounds).await);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limits.timeout_secs);
    loop {
        match answered.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(SqlError::Query(
                    "the query failed inside the engine (its task ended with no answer)".into(),
                ));
            }
            Err(RecvTimeoutError::Timeout) if cancelled() => {
                task.abort();
                return Err(SqlError::Cancelled);
            }
            Err(RecvTimeoutError::Timeout) if std::time::Instant::now() >= deadline => {
                task.abort();
                return Err(SqlError::Timeout(limits.timeout_secs));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Plans and runs `sql`, stopping once the result passes `max_result_mb`.
async fn collect_bounded(
    root: &Path,
    sql: &str,
    limits: &SqlConfig,
) -> Result<Vec<RecordBatch>, SqlError> {
    use futures_util::StreamExt;
    check_complexity(sql)?;
    parse_in_child(sql)?;
    let ctx = context_with(root, Some((limits.memory_limit_mb as usize) << 20)).await?;
    super::sql_functions::bound(&ctx, limits.max_result_mb << 20);
    let mut stream = plan(&ctx, sql)
        .await?
        .execute_stream()
        .await
        .map_err(|e| SqlError::Query(e.to_string()))?;
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| SqlError::Query(e.to_string()))?;
        bytes += batch.get_array_memory_size();
        if bytes > (limits.max_result_mb as usize) << 20 {
            return Err(SqlError::TooLarge(limits.max_result_mb));
        }
        out.push(batch);
    }
    Ok(out)
}

/// Plans one read-only statement ([`check_complexity`] passed already).
async fn plan(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame, SqlError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("not supported")
            && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
        {
            SqlError::NotAQuery(text)
        } else {
            SqlError::Query(text)
        }
    })
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
