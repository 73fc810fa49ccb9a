//! `bellwether config`: check a config file, or show the one in force.

use super::{Global, write_stdout};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

/// `bellwether config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file: exits non-zero naming the first bad key.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the effective config (defaults + file + environment) as JSON.
    Show,
    /// Print every config key with its type, default and meaning
    /// (Markdown), generated from the config's own documentation.
    Reference,
    /// Print config/default.toml with each key's comment written from the
    /// config's own documentation (what the shipped file must say).
    Default,
}

/// Runs a `bellwether config` subcommand.
pub fn exec(command: ConfigCommand, global: &Global) -> Result<()> {
    match command {
        ConfigCommand::Check { file } => {
            crate::config::load(Some(&file))?;
            println!("{}: ok", file.display());
            Ok(())
        }
        ConfigCommand::Reference => write_stdout(&crate::config::reference::markdown(
            &crate::config::load_str("")?,
        )),
        ConfigCommand::Default => write_stdout(&crate::config::default_toml::with_docs(
            crate::config::DEFAULT_CONFIG,
            &crate::config::load_str("")?,
        )),
        ConfigCommand::Show => {
            let config = global.load()?;
            write_stdout(&format!(
                "{}\n",
                serde_json::to_string_pretty(&crate::config::redacted(&config))?
            ))
        }
    }
}
