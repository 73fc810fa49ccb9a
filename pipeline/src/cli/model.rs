//! `bellwether model`: the model bundles of a folder, and which is promoted.

use super::Global;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

/// `bellwether model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every bundle of a models folder, its figures, and which is in use.
    List {
        /// The models folder.
        #[arg(long, default_value = "bellwether-models")]
        models: PathBuf,
    },
    /// Make a bundle of the folder the one in use for its kind (also to go
    /// back to an earlier version); bellwether loads it at its next start.
    Promote {
        /// The models folder.
        #[arg(long, default_value = "bellwether-models")]
        models: PathBuf,
        /// The bundle's file name in the folder, e.g. failure-20261130T120000Z.json.
        bundle: String,
    },
}

/// Runs a `bellwether model` subcommand.
pub fn exec(command: ModelCommand, global: &Global) -> Result<()> {
    match command {
        ModelCommand::List { models } => {
            let versions = crate::model::versions::list(&models)?;
            if global.json(false) {
                return super::write_stdout(&format!("{}\n", serde_json::to_string(&versions)?));
            }
            if versions.is_empty() {
                println!("no model bundle in {}", models.display());
            }
            for v in versions {
                println!(
                    "{} {:<8} {:<40} {:<24} {}",
                    if v.promoted { "*" } else { " " },
                    v.kind,
                    v.file,
                    v.version,
                    v.figures
                );
            }
            Ok(())
        }
        ModelCommand::Promote { models, bundle } => {
            let kind = crate::model::versions::promote(&models, &bundle)?;
            println!(
                "promoted {bundle} as the {kind} model of {} (loaded at the next start)",
                models.display()
            );
            Ok(())
        }
    }
}
