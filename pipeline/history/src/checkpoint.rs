//! What the history holds, saved after every flush so that a restarted
//! `bellwether run` resumes where it left off: the files each table has
//! committed, and how far samples, scores, control messages and rollout
//! events are recorded, so that the metrics a restart replays (and the
//! control topic it re-reads) are not written twice.
//!
//! A flush writes its files first and this checkpoint last (temporary name,
//! then rename). Files a crash left behind the checkpoint (written, not yet
//! committed) are deleted at the next start and written again from the
//! replay: the history then holds every row exactly once.

use super::writer::HistoryError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The checkpoint's file name under the history folder.
pub const FILE: &str = "_checkpoint.json";

/// How far the history goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The writer run whose file sequence numbers `committed` counts.
    pub run: String,
    /// Per table: files of `run` up to this sequence number are committed.
    pub committed: BTreeMap<String, u64>,
    /// Raw samples: per VM and metric, samples before this event time (ms)
    /// are written.
    pub samples_through: BTreeMap<String, BTreeMap<String, i64>>,
    /// Downsampled samples: buckets starting before this time are written.
    pub buckets_through: Option<i64>,
    /// Scores of windows ending at or before this time are written.
    pub scores_through: Option<i64>,
    /// Control-topic messages before this offset are written.
    pub control_next_offset: Option<i64>,
    /// Rollout events: the latest event time written, and how many events
    /// at that time.
    pub events_through: Option<(i64, usize)>,
}

impl Checkpoint {
    /// The checkpoint under `root`, if there is one.
    pub fn load(root: &Path) -> Result<Option<Checkpoint>, HistoryError> {
        let path = root.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(write_error(&path, &e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| HistoryError::Write {
                path: path.clone(),
                reason: format!(
                    "the history checkpoint is unreadable ({e}); move it away to start the history afresh"
                ),
            })
    }

    /// Saves it under `root` (temporary name, sync, rename).
    pub fn save(&self, root: &Path) -> Result<(), HistoryError> {
        let path = root.join(FILE);
        let tmp = root.join(format!("{FILE}.tmp"));
        let text = serde_json::to_vec(self).map_err(|e| write_error(&path, &e))?;
        let mut file = std::fs::File::create(&tmp).map_err(|e| write_error(&tmp, &e))?;
        std::io::Write::write_all(&mut file, &text).map_err(|e| write_error(&tmp, &e))?;
        file.sync_all().map_err(|e| write_error(&tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| write_error(&path, &e))
    }
}

fn write_error(path: &Path, e: &dyn std::fmt::Display) -> HistoryError {
    HistoryError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Deletes the files of `run` in table folder `dir` whose sequence number
/// is past `committed`; returns how many.
pub fn remove_uncommitted(dir: &Path, run: &str, committed: u64) -> usize {
    let prefix = format!("part-{run}-");
    let mut removed = 0;
    for path in files_below(dir) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(seq) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".parquet"))
            .and_then(|seq| seq.parse::<u64>().ok())
        else {
            continue;
        };
        if seq > committed {
            tracing::warn!(file = %path.display(), "removing a history file written after the last checkpoint (it is replayed)");
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), None);
        let mut c = Checkpoint {
            run: "42".into(),
            ..Checkpoint::default()
        };
        c.samples_through
            .entry("vm-1".into())
            .or_default()
            .insert("cpu".into(), 1000);
        c.events_through = Some((5, 2));
        c.save(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(c));
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("_checkpoint.json") && err.contains("unreadable"),
            "{err}"
        );
    }

    #[test]
    fn removes_only_files_past_the_committed_sequence_of_that_run() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("date=2026-01-01");
        std::fs::create_dir_all(&part).unwrap();
        for name in [
            "part-7-000001.parquet",
            "part-7-000002.parquet",
            "part-7-000003.parquet",
            "part-6-000009.parquet",
        ] {
            std::fs::write(part.join(name), b"x").unwrap();
        }
        assert_eq!(remove_uncommitted(dir.path(), "7", 1), 2);
        let mut left: Vec<String> = files_below(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["part-6-000009.parquet", "part-7-000001.parquet"]);
    }
}
