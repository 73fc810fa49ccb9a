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
    /// A file (or the environment) is not TOML; the reason names line and column.
    #[error("config{}: {reason}", source_hint(.source_name))]
    Syntax {
        /// What is wrong, and where.
        reason: String,
        /// The file, when known.
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

impl From<bellwether_schemas::check::Problem> for ConfigError {
    fn from(p: bellwether_schemas::check::Problem) -> ConfigError {
        ConfigError::Key {
            key: p.key,
            reason: p.reason,
            source_name: None,
        }
    }
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
    checked(figment)
}

/// Loads the built-in default overlaid with the TOML `text` alone (no
/// file, no environment variables); then checks it, as [`load`] does.
pub fn load_str(text: &str) -> Result<Config, ConfigError> {
    checked(Figment::from(Toml::string(DEFAULT_CONFIG)).merge(Toml::string(text)))
}

fn checked(figment: Figment) -> Result<Config, ConfigError> {
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
    if path.is_empty() {
        return ConfigError::Syntax {
            reason: reason.trim_end().to_string(),
            source_name,
        };
    }
    ConfigError::Key {
        key: path.join("."),
        reason,
        source_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Values careless hands and hostile ones put in a config.
    const VALUES: [&str; 22] = [
        "-1",
        "0",
        "1e300",
        "-1e300",
        "nan",
        "inf",
        "-inf",
        "\"\"",
        "[]",
        "{}",
        "18446744073709551616",
        "9223372036854775807",
        "4294967295",
        "\"x\"",
        "true",
        "[\"50%\", \"10%\"]",
        "[\"0%\"]",
        "\"100000000000%\"",
        "\"\\u0000\"",
        "'''",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "{a = {b = {c = {d = 1}}}}",
    ];

    /// `DEFAULT_CONFIG` changed at random: a value swapped for a hostile
    /// one, a line dropped or doubled, the text cut, or bytes thrown in.
    fn mutated(rng: &mut StdRng) -> String {
        let mut lines: Vec<String> = DEFAULT_CONFIG.lines().map(str::to_string).collect();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..lines.len());
            match rng.random_range(0..6) {
                0 | 1 => {
                    if let Some((key, _)) = lines[i].split_once('=') {
                        let value = VALUES[rng.random_range(0..VALUES.len())];
                        lines[i] = format!("{key}= {value}");
                    }
                }
                2 => {
                    lines.remove(i);
                }
                3 => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                4 => {
                    let junk: String = (0..rng.random_range(1..8))
                        .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                        .collect();
                    let at = rng.random_range(0..=lines[i].len());
                    if lines[i].is_char_boundary(at) {
                        lines[i].insert_str(at, &junk);
                    }
                }
                _ => {
                    let text = lines.join("\n");
                    let mut cut = rng.random_range(0..text.len());
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    return text[..cut].to_string();
                }
            }
        }
        lines.join("\n")
    }

    #[test]
    fn any_mangled_config_loads_or_is_refused_naming_a_key_or_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mangled.toml");
        let mut rng = StdRng::seed_from_u64(18);
        let (mut refused, mut loaded) = (0, 0);
        for round in 0..1500 {
            let text = mutated(&mut rng);
            std::fs::write(&path, &text).unwrap();
            let outcome = std::panic::catch_unwind(|| load(Some(&path)));
            let Ok(outcome) = outcome else {
                panic!("round {round}: loading panicked on\n{text}");
            };
            match outcome {
                Ok(_) => loaded += 1,
                Err(e) => {
                    refused += 1;
                    let says = e.to_string();
                    let named = match &e {
                        ConfigError::Key { key, .. } => !key.is_empty(),
                        ConfigError::Syntax { reason, .. } => reason.contains("line"),
                        ConfigError::File { .. } => false,
                    };
                    assert!(named, "round {round}: `{says}` names no key or line");
                }
            }
        }
        // Both outcomes were met: the mutations are neither all harmless
        // nor all fatal.
        assert!(
            refused > 300 && loaded > 50,
            "{refused} refused, {loaded} loaded"
        );
    }
}
