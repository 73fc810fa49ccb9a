//! A rule set from a file, for `bellwether patch rules --file`: TOML (the
//! `[approval]` table of a config, or its keys at the top) or JSON (what
//! `GET /api/approval/rules` answers).

use super::rules::{ApprovalConfig, Rules};
use anyhow::{Context, Result, anyhow};
use figment::Figment;
use figment::providers::{Format, Toml};
use std::path::Path;

/// Reads and checks the rule set in `path`; the error names the key.
pub fn read_rules(path: &Path) -> Result<ApprovalConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rules: ApprovalConfig = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        let figment = Figment::from(Toml::string(&text));
        let figment = if figment.contains("approval") {
            figment.focus("approval")
        } else {
            figment
        };
        figment
            .extract()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
    };
    if let Some((key, reason)) = rules.problem() {
        return Err(anyhow!("{}: `{key}`: {reason}", path.display()));
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
