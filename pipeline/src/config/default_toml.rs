//! `config/default.toml`'s comments, generated from the config structs'
//! docs (`bellwether config default`): each key and table is documented
//! once, in its struct, and the default file says the same.
//!
//! The values stay the file's own. A comment block right above a key
//! (`bake_minutes = 60`), a commented-out key (`# error_budget = "2%"`) or
//! a table header (`[rollout]`, `# [rollout.maintenance_window]`) is that
//! key's documentation and is rewritten from it, the first time the key
//! appears; every other comment (the file's head, notes between blocks, a
//! second example item) is kept as written.

use super::Config;
use super::reference::tables;
use std::collections::HashMap;

/// Width of a comment line, `# ` included.
const WIDTH: usize = 76;

/// `text` (a default config file) with every key's and table's comment
/// block replaced by its documentation.
pub fn with_docs(text: &str, defaults: &Config) -> String {
    let docs = docs(defaults);
    let mut out: Vec<String> = Vec::new();
    // The comment lines above the current line, not yet written.
    let mut block: Vec<&str> = Vec::new();
    let mut section = String::new();
    // An array of tables' second item (an example) is not documented again.
    let mut documented = std::collections::HashSet::new();
    for line in text.lines() {
        // A commented-out key or table counts only when it is one: a doc
        // line may read like one (`# labels = { ... }`).
        let commented = line.trim_start().starts_with('#');
        let known = |p: &str| !commented || docs.contains_key(p);
        let path = if let Some(header) = header(line).filter(|h| known(h)) {
            section = header.to_string();
            Some(section.clone())
        } else {
            key(line)
                .map(|k| {
                    if section.is_empty() {
                        k.to_string()
                    } else {
                        format!("{section}.{k}")
                    }
                })
                .filter(|p| known(p))
        };
        // A commented example's continuation (`#   { ... },`, `# ]`) is
        // part of the example, not a comment.
        if path.is_none() && is_continuation(line) {
            out.extend(block.drain(..).map(str::to_string));
            out.push(line.to_string());
            continue;
        }
        let doc = path
            .as_deref()
            .filter(|p| documented.insert(p.to_string()))
            .and_then(|p| docs.get(p));
        match doc {
            Some(doc) => {
                out.extend(wrap(doc));
                block.clear();
            }
            None if commented && path.is_none() => {
                block.push(line);
                continue;
            }
            None => out.extend(block.drain(..).map(str::to_string)),
        }
        out.push(line.to_string());
    }
    out.extend(block.drain(..).map(str::to_string));
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Every table's and key's documentation by dotted path, items of arrays
/// of tables without their `[]` (`canary.groups.expression`).
fn docs(defaults: &Config) -> HashMap<String, String> {
    let mut docs = HashMap::new();
    for table in tables(defaults) {
        if !table.doc.is_empty() {
            docs.insert(table.path.replace("[]", ""), table.doc.clone());
        }
        for key in table.keys {
            if !key.doc.is_empty() {
                docs.insert(key.path.replace("[]", ""), key.doc);
            }
        }
    }
    docs
}

/// The table a header line opens (`[a.b]`, `[[a.b]]`, `# [a.b]`).
fn header(line: &str) -> Option<&str> {
    let s = line.trim().trim_start_matches('#').trim();
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner.trim_start_matches('[').trim_end_matches(']');
    is_name(inner).then_some(inner)
}

/// The key a line sets (`key = value`, `# key = value`).
fn key(line: &str) -> Option<&str> {
    let s = line.trim().trim_start_matches('#').trim();
    let (name, _) = s.split_once('=')?;
    let name = name.trim();
    is_name(name).then_some(name)
}

fn is_continuation(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("#  ") || line.starts_with("# ]") || line.starts_with("# }")
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// `doc` as `# ` lines of at most [`WIDTH`] characters.
fn wrap(doc: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from("#");
    for word in doc.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            lines.push(std::mem::replace(&mut line, String::from("#")));
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_says_what_the_structs_document() {
        let defaults = Config::default_config();
        let expected = with_docs(super::super::DEFAULT_CONFIG, &defaults);
        if expected != super::super::DEFAULT_CONFIG {
            let first = expected
                .lines()
                .zip(super::super::DEFAULT_CONFIG.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "config/default.toml's comments differ from the structs' docs from line {}: \
                 run `cargo run -- config default > config/default.toml`",
                first + 1
            );
        }
    }

    #[test]
    fn a_key_gets_its_doc_and_other_comments_stay() {
        let defaults = Config::default_config();
        let text = "# The head stays.\n\n[rollout]\n# old words\nbake_minutes = 60\n# [rollout.maintenance_window]\n";
        let out = with_docs(text, &defaults);
        assert!(out.starts_with("# The head stays.\n\n# Waves"), "{out}");
        assert!(!out.contains("old words"), "{out}");
        assert!(out.contains("\nbake_minutes = 60\n"), "{out}");
        assert!(out.contains("maintenance window"), "{out}");
        assert!(out.lines().all(|l| l.len() <= WIDTH || !l.starts_with('#')));
    }
}
