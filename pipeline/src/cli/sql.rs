//! `bellwether sql`: SQL over the Parquet history, one query or a prompt.

use super::{Global, write_stdout};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `bellwether sql` flags.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; without one, an interactive prompt.
    pub query: Option<String>,
    /// The history folder (default: history.dir of the config).
    #[arg(long)]
    pub history: Option<PathBuf>,
}

/// Runs the query, or the prompt without one.
pub fn exec(args: SqlArgs, global: &Global) -> Result<()> {
    use crate::history::sql;
    let config = global.load()?;
    let root = args.history.unwrap_or(config.history.dir);
    anyhow::ensure!(
        root.is_dir(),
        "no history at {} (run `bellwether demo` or pass --history DIR)",
        root.display()
    );
    // Planned and run on the runtime's workers, which have deep stacks
    // (see sql::STACK_BYTES).
    let runtime = sql::runtime()?;
    let format = match global.format {
        Some(super::Format::Table) | None => sql::OutputFormat::Table,
        Some(super::Format::Csv) => sql::OutputFormat::Csv,
        Some(super::Format::Json) => sql::OutputFormat::Json,
    };
    let result = sql_session(&runtime, &root, args.query, format, &config.sql);
    runtime.shutdown_background();
    result
}

fn sql_session(
    runtime: &tokio::runtime::Runtime,
    root: &std::path::Path,
    query: Option<String>,
    format: crate::history::sql::OutputFormat,
    limits: &crate::history::sql::SqlConfig,
) -> Result<()> {
    use crate::history::sql;
    if let Some(q) = query {
        let batches = sql::query_bounded(runtime, root, &q, limits, || false)?;
        write_stdout(&sql::render(&batches, format)?)?;
        return Ok(());
    }
    use std::io::{BufRead, Write};
    eprintln!(
        "bellwether sql over {}: tables {}; end a query with ';', quit with \\q",
        root.display(),
        crate::history::tables::TABLES.join(", ")
    );
    let stdin = std::io::stdin();
    let mut statement = String::new();
    loop {
        eprint!(
            "{}",
            if statement.is_empty() {
                "bellwether> "
            } else {
                "       ...> "
            }
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim();
        if statement.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        statement.push_str(&line);
        if !trimmed.ends_with(';') {
            continue;
        }
        let q = std::mem::take(&mut statement);
        match sql::query_bounded(
            runtime,
            root,
            q.trim().trim_end_matches(';'),
            limits,
            || false,
        ) {
            Ok(batches) => write_stdout(&sql::render(&batches, format)?)?,
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}

/// Parses SQL from stdin (the child process that bounds a parse's time).
pub fn exec_parse() -> Result<()> {
    crate::history::sql::parse_stdin().map_err(Into::into)
}
