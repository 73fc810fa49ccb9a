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

use super::store::Root;
use super::writer::{HistoryError, encode};
use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The checkpoint's file name under the history folder.
pub const FILE: &str = "_checkpoint.json";

/// The start of the names of the checkpoint's samples files
/// (`_checkpoint-samples-<generation>.parquet`).
pub const SAMPLES_PREFIX: &str = "_checkpoint-samples-";

/// How far the history goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The writer run whose file sequence numbers `committed` counts.
    pub run: String,
    /// Per table: files of `run` up to this sequence number are committed.
    pub committed: BTreeMap<String, u64>,
    /// Raw samples: per VM and metric, samples before this event time (ms)
    /// are written. Kept in the Parquet file `samples_file` names (a
    /// checkpoint of 100,000 VMs is 700,000 of them); read from the JSON
    /// only as earlier versions wrote it.
    #[serde(default, skip_serializing)]
    pub samples_through: BTreeMap<String, BTreeMap<String, i64>>,
    /// The file holding `samples_through`, beside this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_file: Option<String>,
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
    pub fn load(root: &Root) -> Result<Option<Checkpoint>, HistoryError> {
        let Some(text) = root.get(FILE)? else {
            return Ok(None);
        };
        let mut checkpoint: Checkpoint =
            serde_json::from_slice(&text).map_err(|e| HistoryError::Write {
                path: root.describe(FILE),
                reason: format!(
                    "the history checkpoint is unreadable ({e}); move it away to start the history afresh"
                ),
            })?;
        if let Some(name) = &checkpoint.samples_file {
            checkpoint.samples_through = load_samples(root, name)?;
        }
        Ok(Some(checkpoint))
    }

    /// Saves it under `root` (whole or not at all).
    pub fn save(&self, root: &Root) -> Result<(), HistoryError> {
        let text = serde_json::to_vec(self).map_err(|e| write_error(root, FILE, &e))?;
        root.put(FILE, text)
    }
}

fn samples_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("vm_id", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("through_ms", DataType::Int64, false),
    ]))
}

/// Writes how far each VM's and metric's samples are written as
/// `_checkpoint-samples-<run>-<generation>.parquet` under `root` (whole or
/// not at all; ZSTD) and returns the file's name for the checkpoint. The
/// checkpoint that names it is saved after it, so a crash between the two
/// leaves the earlier pair whole.
pub fn save_samples<'a>(
    root: &Root,
    run: &str,
    generation: u64,
    rows: impl Iterator<Item = (&'a str, &'a str, i64)>,
) -> Result<String, HistoryError> {
    let name = format!("{SAMPLES_PREFIX}{run}-{generation:08}.parquet");
    let (mut vms, mut metrics, mut through) = (Vec::new(), Vec::new(), Vec::new());
    for (vm, metric, t) in rows {
        vms.push(vm);
        metrics.push(metric);
        through.push(t);
    }
    let batch = RecordBatch::try_new(
        samples_schema(),
        vec![
            Arc::new(StringArray::from(vms)),
            Arc::new(StringArray::from(metrics)),
            Arc::new(Int64Array::from(through)),
        ],
    )
    .map_err(|e| write_error(root, &name, &e))?;
    let bytes = encode(&batch, super::ROW_GROUP_ROWS).map_err(|e| write_error(root, &name, &e))?;
    root.put(&name, bytes)?;
    Ok(name)
}

/// Deletes the samples files of the checkpoint but `keep`.
pub fn remove_other_samples_files(root: &Root, keep: &str) {
    for name in root.list_here().unwrap_or_default() {
        if name.starts_with(SAMPLES_PREFIX) && name != keep {
            let _ = root.delete(&name);
        }
    }
}

fn load_samples(
    root: &Root,
    name: &str,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, HistoryError> {
    let unreadable = |e: &dyn std::fmt::Display| HistoryError::Write {
        path: root.describe(name),
        reason: format!(
            "the history checkpoint's samples file is unreadable ({e}); move the checkpoint away to start the history afresh"
        ),
    };
    let bytes = root
        .get(name)?
        .ok_or_else(|| unreadable(&"it is missing"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| unreadable(&e))?;
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(&e))?;
        let column = |i: usize| batch.column(i).as_any();
        let (Some(vms), Some(metrics), Some(through)) = (
            column(0).downcast_ref::<StringArray>(),
            column(1).downcast_ref::<StringArray>(),
            column(2).downcast_ref::<Int64Array>(),
        ) else {
            return Err(unreadable(&"not the columns vm_id, metric, through_ms"));
        };
        for i in 0..batch.num_rows() {
            out.entry(vms.value(i).to_string())
                .or_default()
                .insert(metrics.value(i).to_string(), through.value(i));
        }
    }
    Ok(out)
}

fn write_error(root: &Root, rel: &str, e: &dyn std::fmt::Display) -> HistoryError {
    HistoryError::Write {
        path: root.describe(rel),
        reason: e.to_string(),
    }
}

/// Deletes the files of `run` in `table` whose sequence number is past
/// `committed`; returns how many.
pub fn remove_uncommitted(root: &Root, table: &str, run: &str, committed: u64) -> usize {
    let prefix = format!("part-{run}-");
    let mut removed = 0;
    for rel in root.list(table).unwrap_or_default() {
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let Some(seq) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".parquet"))
            .and_then(|seq| seq.parse::<u64>().ok())
        else {
            continue;
        };
        if seq > committed {
            tracing::warn!(file = %root.describe(&rel).display(), "removing a history file written after the last checkpoint (it is replayed)");
            if root.delete(&rel).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;

    #[test]
    fn saves_and_loads_and_refuses_garbage_in_a_folder_and_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let roots = [
            Root::Folder(dir.path().to_path_buf()),
            Root::in_store(&Location::in_memory("h"), "a").unwrap(),
        ];
        for root in &roots {
            assert_eq!(Checkpoint::load(root).unwrap(), None);
            let mut c = Checkpoint {
                run: "42".into(),
                ..Checkpoint::default()
            };
            c.samples_through
                .entry("vm-1".into())
                .or_default()
                .insert("cpu".into(), 1000);
            c.events_through = Some((5, 2));
            c.samples_file =
                Some(save_samples(root, "42", 1, [("vm-1", "cpu", 1000)].into_iter()).unwrap());
            c.save(root).unwrap();
            assert_eq!(Checkpoint::load(root).unwrap(), Some(c.clone()));
            // A checkpoint of an earlier version, samples inline, still loads.
            let inline = serde_json::json!({
                "run": "41", "committed": {}, "samples_through": {"vm-2": {"mem": 7}},
                "buckets_through": null, "scores_through": null,
                "control_next_offset": null, "events_through": null
            });
            root.put(FILE, inline.to_string().into_bytes()).unwrap();
            let old = Checkpoint::load(root).unwrap().unwrap();
            assert_eq!(old.samples_through["vm-2"]["mem"], 7);
            root.put(FILE, b"{not json".to_vec()).unwrap();
            let err = Checkpoint::load(root).unwrap_err().to_string();
            assert!(
                err.contains("_checkpoint.json") && err.contains("unreadable"),
                "{err}"
            );
        }
    }

    #[test]
    fn removes_only_files_past_the_committed_sequence_of_that_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::Folder(dir.path().to_path_buf());
        for name in [
            "part-7-000001.parquet",
            "part-7-000002.parquet",
            "part-7-000003.parquet",
            "part-6-000009.parquet",
        ] {
            root.put(&format!("t/date=2026-01-01/{name}"), b"x".to_vec())
                .unwrap();
        }
        assert_eq!(remove_uncommitted(&root, "t", "7", 1), 2);
        assert_eq!(
            root.list("t").unwrap(),
            [
                "t/date=2026-01-01/part-6-000009.parquet",
                "t/date=2026-01-01/part-7-000001.parquet"
            ]
        );
    }
}
