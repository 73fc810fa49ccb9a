//! A rule set from a file, for `bellwether patch rules --file`: TOML (the
//! `[approval]` table of a config, or its keys at the top) or JSON (what
//! `GET /api/approval/rules` answers).

use super::rules::{ApprovalConfig, Rules};
use figment::Figment;
use figment::providers::{Format, Toml};
use std::path::Path;
use thiserror::Error;

/// A rules file that cannot be used: the file, and what is wrong.
#[derive(Debug, Error)]
pub enum RulesFileError {
    /// The file cannot be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not a rule set, or a rule is wrong.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        reason: String,
    },
}

/// Reads and checks the rule set in `path`; the error names the key.
pub fn read_rules(path: &Path) -> Result<ApprovalConfig, RulesFileError> {
    let invalid = |reason: String| RulesFileError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| RulesFileError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let rules: ApprovalConfig = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
    } else {
        let figment = Figment::from(Toml::string(&text));
        let figment = if figment.contains("approval") {
            figment.focus("approval")
        } else {
            figment
        };
        figment.extract().map_err(|e| invalid(e.to_string()))?
    };
    if let Some((key, reason)) = rules.problem() {
        return Err(invalid(format!("`{key}`: {reason}")));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(suffix: &str, text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn rules_are_read_from_toml_or_json_and_checked() {
        let table = file(
            ".toml",
            "[approval]\nreject = [\"KB-9\"]\n[[approval.rules]]\nname = \"all by hand\"\naction = \"manual\"\n",
        );
        let rules = read_rules(table.path()).unwrap();
        assert_eq!(rules.reject, ["KB-9"]);
        assert_eq!(rules.rules[0].name, "all by hand");
        let top = file(".toml", "[[rules]]\nname = \"x\"\naction = \"approve\"\n");
        assert_eq!(read_rules(top.path()).unwrap().rules.len(), 1);
        let json = file(".json", r#"{"rules": [{"name": "x", "action": "reject"}]}"#);
        assert_eq!(read_rules(json.path()).unwrap().rules.len(), 1);
        let bad = file(
            ".toml",
            "[[rules]]\nname = \"x\"\naction = \"manual\"\nafter_days = 3\n",
        );
        let e = read_rules(bad.path()).unwrap_err().to_string();
        assert!(e.contains("rules[0].after_days"), "{e}");
        let unknown = file(".toml", "[[rules]]\nname = \"x\"\naction = \"maybe\"\n");
        let e = read_rules(unknown.path()).unwrap_err().to_string();
        assert!(e.contains("maybe"), "{e}");
    }
}
