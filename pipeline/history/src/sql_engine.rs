//! The SQL engine (DataFusion, the `sql` feature): sessions over the
//! history's tables, the guard and the parser's time limit, bounded
//! queries.

use super::sql::{PARSE_BUDGET, SqlConfig, SqlError};
use super::store::{Location, is_url};
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

pub use super::sql_guard::MAX_OPERATORS;

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
    let sources = TableSources::of(&ctx, root).await?;
    for table in TABLES {
        let partitions = with_partitions(table);
        let urls = sources.urls(table)?;
        if urls.is_empty() {
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
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partitions);
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema(table));
        let listing = ListingTable::try_new(config).map_err(|e| SqlError::Query(e.to_string()))?;
        ctx.register_table(table, Arc::new(listing))
            .map_err(|e| SqlError::Query(e.to_string()))?;
    }
    Ok(ctx)
}

/// Where a history's tables are read from: a folder, or every instance's
/// prefix under an object-store URL (registered with the session).
enum TableSources {
    Folder(std::path::PathBuf),
    Store {
        location: Location,
        instances: Vec<object_store::path::Path>,
    },
}

impl TableSources {
    async fn of(ctx: &SessionContext, root: &Path) -> Result<TableSources, SqlError> {
        if !is_url(root) {
            return Ok(TableSources::Folder(root.to_path_buf()));
        }
        let failed = |e: &dyn std::fmt::Display| {
            SqlError::Query(format!("history at {}: {e}", root.display()))
        };
        let location = Location::parse(&root.to_string_lossy()).map_err(|e| failed(&e))?;
        ctx.register_object_store(&location.store_url, location.store.clone());
        let listed = location
            .store
            .list_with_delimiter(Some(&location.prefix))
            .await
            .map_err(|e| failed(&e))?;
        Ok(TableSources::Store {
            location,
            instances: listed.common_prefixes,
        })
    }

    /// The table's folders (one per instance in a store); none when it has
    /// none yet.
    fn urls(&self, table: &str) -> Result<Vec<ListingTableUrl>, SqlError> {
        let parse =
            |url: String| ListingTableUrl::parse(url).map_err(|e| SqlError::Query(e.to_string()));
        match self {
            TableSources::Folder(root) => {
                let dir = root.join(table);
                if !dir.is_dir() {
                    return Ok(Vec::new());
                }
                Ok(vec![parse(format!("{}/", dir.display()))?])
            }
            TableSources::Store {
                location,
                instances,
            } => instances
                .iter()
                .map(|i| parse(format!("{}/", location.url_of(&i.clone().join(table)))))
                .collect(),
        }
    }
}

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

/// Runs one read-only statement over the history in `root`, on a runtime
/// of its own (for callers outside async code: training, replay).
pub fn query_once(root: &Path, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| SqlError::Query(e.to_string()))?;
    runtime.block_on(async {
        let ctx = context(root).await?;
        query(&ctx, sql).await
    })
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
