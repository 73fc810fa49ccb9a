//! `bellwether api`: the HTTP API's description, without a server.

use super::write_stdout;
use anyhow::Result;
use clap::Subcommand;

/// `bellwether api` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Print the OpenAPI 3.1 document (what `GET /api/openapi.json` serves).
    Openapi,
    /// Print the API reference in Markdown, generated from that document.
    Reference,
}

/// Runs a `bellwether api` subcommand.
pub fn exec(command: ApiCommand) -> Result<()> {
    match command {
        ApiCommand::Openapi => write_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&crate::monitor::openapi::openapi())?
        )),
        ApiCommand::Reference => write_stdout(&crate::monitor::api_reference::markdown()),
    }
}
