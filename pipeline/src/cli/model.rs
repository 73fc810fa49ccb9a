//! `bellwether model`: the model bundles of a folder, and which is promoted.

use super::Global;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

/// `bellwether model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// The built-in models, every bundle of a models folder with its
    /// figures, and which model each service of this config would load.
    List {
        /// The models folder (default: retrain.models of the config).
        #[arg(long)]
        models: Option<PathBuf>,
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

/// What `bellwether model list` shows.
#[derive(Debug, serde::Serialize)]
struct ModelListing {
    /// What `demo` and `run` with this config load, per kind.
    in_use: Vec<InUse>,
    /// The models shipped in the binary.
    builtin: Vec<crate::model::versions::Version>,
    /// The models folder.
    folder: String,
    /// Its bundles.
    versions: Vec<crate::model::versions::Version>,
}

/// The model a service loads for one kind.
#[derive(Debug, serde::Serialize)]
struct InUse {
    /// `forecaster` or `failure`.
    kind: &'static str,
    /// The config key and its value.
    configured: String,
    /// The model's name, as the summary and the dashboard show it.
    model: String,
    /// Why the configured model is not used, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<String>,
}

fn in_use(config: &crate::config::Config) -> Vec<InUse> {
    let forecaster = crate::model::choose_forecaster(config);
    let failure = crate::model::choose_failure_model(config);
    vec![
        InUse {
            kind: "forecaster",
            configured: format!(
                "forecast.kind = {}, forecast.model = {:?}",
                // As the config spells it ("lstm", "seasonal-regression").
                serde_json::to_value(config.forecast.kind).unwrap_or_default(),
                config.forecast.model
            ),
            model: forecaster.forecaster.name().to_string(),
            fallback: forecaster.fallback,
        },
        InUse {
            kind: "failure",
            configured: format!("failure.model = {:?}", config.failure.model),
            model: failure
                .model
                .as_ref()
                .map_or_else(|| "none".to_string(), |m| m.name.clone()),
            fallback: failure.unusable,
        },
    ]
}

impl ModelListing {
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::from("In use by demo and run with this config\n");
        for u in &self.in_use {
            let _ = writeln!(out, "  {:<10} {:<24} ({})", u.kind, u.model, u.configured);
            if let Some(why) = &u.fallback {
                let _ = writeln!(out, "             not the configured model: {why}");
            }
        }
        let row = |out: &mut String, v: &crate::model::versions::Version| {
            let _ = writeln!(
                out,
                "{} {:<8} {:<40} {:<24} {}",
                if v.promoted { "*" } else { " " },
                v.kind,
                v.file,
                v.version,
                v.figures
            );
        };
        out += "\nBuilt in (`builtin`)\n";
        for v in &self.builtin {
            row(&mut out, v);
        }
        let _ = writeln!(out, "\nIn {} (* promoted)", self.folder);
        if self.versions.is_empty() {
            out += "  no model bundle\n";
        }
        for v in &self.versions {
            row(&mut out, v);
        }
        out
    }
}

/// Runs a `bellwether model` subcommand.
pub fn exec(command: ModelCommand, global: &Global) -> Result<()> {
    match command {
        ModelCommand::List { models } => {
            let config = global.load()?;
            let models = models.unwrap_or_else(|| config.retrain.models.clone());
            let listing = ModelListing {
                in_use: in_use(&config),
                builtin: crate::model::versions::builtins(),
                folder: models.display().to_string(),
                versions: if models.is_dir() {
                    crate::model::versions::list(&models)?
                } else {
                    Vec::new()
                },
            };
            if global.json(false) {
                return super::write_stdout(&format!("{}\n", serde_json::to_string(&listing)?));
            }
            super::write_stdout(&listing.text())
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
