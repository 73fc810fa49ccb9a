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
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    // Filters are applied while Parquet is decoded (rows of one VM or
    // metric, or a time range, are picked out before the rest is read).
    let config = datafusion::prelude::SessionConfig::new()
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true);
    let ctx = SessionContext::new_with_config(config);
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

/// Operators (arithmetic, comparisons, AND/OR, set operations) one query
/// may hold: the planner walks expression trees recursively, so a query of
/// thousands of chained terms would exhaust any thread's stack.
pub const MAX_OPERATORS: usize = 500;

/// Stack of the threads that plan and run queries: deep enough for every
/// query [`MAX_OPERATORS`] lets through, with room to spare.
pub const STACK_BYTES: usize = 64 << 20;

/// Refuses a query too complex to plan safely, before it is parsed.
pub fn check_complexity(sql: &str) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Query(e.to_string()))?;
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::UNION
                    | Keyword::EXCEPT
                    | Keyword::INTERSECT
                    | Keyword::SELECT
                    | Keyword::CASE
                    | Keyword::WHEN
            ),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::LParen => true,
            _ => false,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(SqlError::Query(format!(
            "the query is too complex: {operators} operators, parentheses and SELECTs; at most {MAX_OPERATORS}"
        )));
    }
    Ok(())
}

/// A runtime for queries: a worker per core (DataFusion runs a query's
/// partitions as tasks), each with a [`STACK_BYTES`] stack.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .build()
}

/// Runs one read-only statement.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    check_complexity(sql)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("not supported")
            && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
        {
            SqlError::NotAQuery(text)
        } else {
            SqlError::Query(text)
        }
    })?;
    frame
        .collect()
        .await
        .map_err(|e| SqlError::Query(e.to_string()))
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
                let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
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
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
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
