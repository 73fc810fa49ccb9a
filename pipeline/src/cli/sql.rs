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
    /// The history folder or object-store URL, s3://bucket/prefix (default:
    /// history.dir of the config).
    #[arg(long)]
    pub history: Option<PathBuf>,
}

/// Runs the query, or the prompt without one.
pub fn exec(args: SqlArgs, global: &Global) -> Result<()> {
    use crate::history::sql;
    let config = global.load()?;
    let root = args.history.unwrap_or(config.history.dir);
    anyhow::ensure!(
        root.is_dir() || crate::history::store::is_url(&root),
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
    eprintln!(
        "bellwether sql over {}: tables {}; end a query with ';', quit with \\q",
        root.display(),
        crate::history::tables::TABLES.join(", ")
    );
    let mut lines = Lines::open();
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "bellwether> "
        } else {
            "       ...> "
        };
        let Some(line) = lines.read(prompt)? else {
            break;
        };
        let trimmed = line.trim();
        if statement.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        statement.push_str(&line);
        statement.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let q = std::mem::take(&mut statement);
        lines.remember(q.trim());
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
    lines.save();
    Ok(())
}

/// The prompt's input: on a terminal, a line editor (arrows, Ctrl-R,
/// history kept in ~/.bellwether_sql_history); from a pipe, plain lines.
enum Lines {
    #[cfg(feature = "sql")]
    Editor(Box<rustyline::DefaultEditor>, Option<PathBuf>),
    Plain(std::io::Stdin),
}

impl Lines {
    fn open() -> Lines {
        #[cfg(feature = "sql")]
        if std::io::IsTerminal::is_terminal(&std::io::stdin())
            && let Ok(mut editor) = rustyline::DefaultEditor::new()
        {
            let file = std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".bellwether_sql_history"));
            if let Some(f) = &file {
                // No history yet is fine.
                let _ = editor.load_history(f);
            }
            return Lines::Editor(Box::new(editor), file);
        }
        Lines::Plain(std::io::stdin())
    }

    /// The next line, or None at the end of input (Ctrl-D).
    fn read(&mut self, prompt: &str) -> Result<Option<String>> {
        match self {
            #[cfg(feature = "sql")]
            Lines::Editor(editor, _) => match editor.readline(prompt) {
                Ok(line) => Ok(Some(line)),
                // Ctrl-C drops the line being typed, as in psql.
                Err(rustyline::error::ReadlineError::Interrupted) => Ok(Some(String::new())),
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Lines::Plain(stdin) => {
                use std::io::{BufRead, Write};
                eprint!("{prompt}");
                std::io::stderr().flush()?;
                let mut line = String::new();
                if stdin.lock().read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
            }
        }
    }

    /// Keeps a whole statement in the history (Up recalls it at once).
    fn remember(&mut self, _statement: &str) {
        #[cfg(feature = "sql")]
        if let Lines::Editor(editor, _) = self {
            let _ = editor.add_history_entry(_statement);
        }
    }

    /// Writes the history file.
    fn save(&mut self) {
        #[cfg(feature = "sql")]
        if let Lines::Editor(editor, Some(file)) = self
            && let Err(e) = editor.save_history(file)
        {
            eprintln!(
                "note: could not keep the prompt's history in {}: {e}",
                file.display()
            );
        }
    }
}

/// Parses SQL from stdin (the child process that bounds a parse's time).
pub fn exec_parse() -> Result<()> {
    crate::history::sql::parse_stdin().map_err(Into::into)
}
