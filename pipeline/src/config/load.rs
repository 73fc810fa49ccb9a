//! Loading: default TOML, then a user file, then environment variables.

use super::Config;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use std::path::Path;
use thiserror::Error;

/// The default configuration, as shipped in `config/default.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// Prefix of environment variables that set config keys
/// (`BELLWETHER__FLEET__VMS=500` sets `fleet.vms`).
pub const ENV_PREFIX: &str = "BELLWETHER__";

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A key is unknown, missing, or has a value of the wrong kind.
    #[error("config key `{key}`: {reason}{}", source_hint(.source_name))]
    Key {
        /// Dotted key, e.g. `fleet.vms`.
        key: String,
        /// What is wrong.
        reason: String,
        /// Where the value came from (file or environment), when known.
        source_name: Option<String>,
    },
    /// The user file cannot be read.
    #[error("cannot read config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn source_hint(source: &Option<String>) -> String {
    source
        .as_ref()
        .map(|s| format!(" (from {s})"))
        .unwrap_or_default()
}

/// Loads the configuration: the built-in default, overlaid with `file` (if
/// given), overlaid with `BELLWETHER__*` environment variables; then checks it.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
    let config: Config = figment.extract().map_err(key_error)?;
    super::validate::validate(&config)?;
    Ok(config)
}

fn key_error(errors: figment::Error) -> ConfigError {
    // Report the first error; figment lists the rest in the same way.
    let Some(error) = errors.into_iter().next() else {
        return ConfigError::Key {
            key: String::new(),
            reason: "invalid configuration".into(),
            source_name: None,
        };
    };
    let mut path = error.path.clone();
    // The path ends at the unknown or missing field for some errors, at its
    // parent for others: name the field once.
    let mut with_field = |field: &str| {
        if path.last().map(String::as_str) != Some(field) {
            path.push(field.to_string());
        }
    };
    let reason = match &error.kind {
        figment::error::Kind::UnknownField(field, expected) => {
            with_field(field);
            format!("unknown key; expected one of: {}", expected.join(", "))
        }
        figment::error::Kind::MissingField(field) => {
            with_field(field);
            "missing".to_string()
        }
        other => other.to_string(),
    };
    let source_name = error.metadata.as_ref().map(|m| match &m.source {
        Some(source) => source.to_string(),
        None => m.name.to_string(),
    });
    ConfigError::Key {
        key: path.join("."),
        reason,
        source_name,
    }
}
