//! A models folder keeps every version of both models, each bundle with
//! its validation figures, and one pointer file per kind naming the
//! version in use: `promoted` (the LSTM forecaster) and `promoted-failure`
//! (the failure model). Promoting a bundle, or going back to an earlier
//! one, rewrites the pointer (temporary file, then rename); nothing is
//! deleted.

use super::bundle::{BundleError, ModelBundle, write_atomically};
use super::failure_bundle::FailureBundle;
use std::path::Path;

/// The pointer file of the failure model in a models folder.
pub const FAILURE_POINTER: &str = "promoted-failure";
/// The pointer file of the LSTM forecaster in a models folder.
pub const LSTM_POINTER: &str = "promoted";

/// One bundle of a models folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    /// File name in the folder.
    pub file: String,
    /// `lstm` or `failure`.
    pub kind: &'static str,
    /// The bundle's version.
    pub version: String,
    /// Its validation figures, in one line.
    pub figures: String,
    /// True when its kind's pointer names it.
    pub promoted: bool,
}

fn pointer_names(dir: &Path, pointer: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(pointer))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Which kind of bundle `path` is, with its version and figures; an error
/// names the file and what is wrong with it.
fn inspect(path: &Path) -> Result<(&'static str, String, String), BundleError> {
    inspect_location(&path.display().to_string())
}

fn inspect_location(location: &str) -> Result<(&'static str, String, String), BundleError> {
    if let Ok(b) = FailureBundle::load(location) {
        let q = b.validation;
        return Ok((
            "failure",
            b.version,
            format!(
                "precision {:.3}, recall {:.3} of {} failures, median lead {:.0} min at risk >= {:.2}",
                q.precision, q.recall, q.failures, q.median_lead_minutes, b.threshold
            ),
        ));
    }
    let b = ModelBundle::load(location)?;
    Ok((
        "lstm",
        b.version,
        format!("validation RMSE {:.3}", b.training.validation_rmse),
    ))
}

/// The shadow run's figures of a retrained bundle, from its log.
fn shadow_figures(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let c = &v["report"]["candidate"];
    Some(format!(
        "shadow: caught {}/{}, {} false rollbacks, {}",
        c["caught"],
        c["failed"],
        c["false_rollbacks"],
        if v["report"]["promoted"] == true {
            "promoted"
        } else {
            "not promoted"
        }
    ))
}

/// The two models shipped in the binary (`builtin` as `forecast.model`
/// or `failure.model`), the LSTM forecaster first.
pub fn builtins() -> Vec<Version> {
    ["lstm", "failure"]
        .into_iter()
        .map(|kind| {
            let (version, figures) = match kind {
                "lstm" => ModelBundle::load("builtin").map(|b| {
                    let rmse = b.training.validation_rmse;
                    (b.version, format!("validation RMSE {rmse:.3}"))
                }),
                _ => inspect_location("builtin").map(|(_, v, f)| (v, f)),
            }
            .unwrap_or_else(|e| ("unreadable".into(), e.to_string()));
            Version {
                file: "builtin".into(),
                kind,
                version,
                figures,
                promoted: false,
            }
        })
        .collect()
}

/// Every bundle in `dir`, sorted by file name.
pub fn list(dir: &Path) -> Result<Vec<Version>, BundleError> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(BundleError::io(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let (lstm, failure) = (
        pointer_names(dir, LSTM_POINTER),
        pointer_names(dir, FAILURE_POINTER),
    );
    files
        .into_iter()
        .filter_map(|file| {
            let (kind, version, mut figures) = inspect(&dir.join(&file)).ok()?;
            if let Some(shadow) = shadow_figures(&dir.join(format!("{file}.shadow"))) {
                figures = format!("{figures}; {shadow}");
            }
            let pointer = if kind == "lstm" { &lstm } else { &failure };
            Some(Ok(Version {
                promoted: pointer.as_deref() == Some(file.as_str()),
                file,
                kind,
                version,
                figures,
            }))
        })
        .collect()
}

/// Makes `file` (a bundle in `dir`) the one in use for its kind: the next
/// start of bellwether with that folder as `forecast.model` or
/// `failure.model` loads it. Returns the kind.
pub fn promote(dir: &Path, file: &str) -> Result<&'static str, BundleError> {
    let path = dir.join(file);
    if file.contains('/') || !path.is_file() {
        return Err(BundleError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such bundle in the models folder",
            ),
        });
    }
    let (kind, _, _) = inspect(&path)?;
    let pointer = if kind == "lstm" {
        LSTM_POINTER
    } else {
        FAILURE_POINTER
    };
    write_atomically(&dir.join(pointer), file)?;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_kept_and_going_back_is_one_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let builtin: FailureBundle = serde_json::from_str(crate::failure_bundle::BUILTIN).unwrap();
        for v in ["1", "2"] {
            let mut b = builtin.clone();
            b.version = v.into();
            b.save(&dir.path().join(format!("failure-{v}.json")))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.json"), "{}").unwrap();
        assert_eq!(promote(dir.path(), "failure-2.json").unwrap(), "failure");
        let location = dir.path().to_str().unwrap();
        assert_eq!(FailureBundle::load(location).unwrap().version, "2");
        promote(dir.path(), "failure-1.json").unwrap();
        assert_eq!(FailureBundle::load(location).unwrap().version, "1");
        let versions = list(dir.path()).unwrap();
        assert_eq!(versions.len(), 2, "{versions:?}");
        assert!(versions[0].promoted && !versions[1].promoted);
        assert!(versions[1].figures.contains("precision"));
        let err = promote(dir.path(), "failure-9.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("failure-9.json"), "{err}");
        assert!(promote(dir.path(), "notes.json").is_err());
    }
}
