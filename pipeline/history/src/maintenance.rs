//! Background upkeep of a history (a folder or an instance's prefix in an
//! object store): small files of a partition are merged into one, and
//! partitions past the retention age are deleted.
//!
//! It runs on a thread of its own and never takes the writer's lock:
//! ingestion goes on while it works. Only committed files are merged (see
//! [`super::checkpoint`]): a file the writer may still take back after a
//! crash is left alone. A merge is crash-safe: a journal
//! (`_compaction.json`) lists what it replaces, the merged file is written
//! (whole or not at all), the inputs are deleted, then the journal; a pass
//! finds an unfinished journal and completes (or, without its merged file,
//! drops) that merge first. A query running while a merge
//! deletes its inputs may fail and can be run again.
//!
//! Age is measured from the newest partition of each table (event time),
//! capped at tomorrow by the wall clock: replaying old data, or the
//! simulator's fixed start date, does not delete a history as soon as it is
//! written, and a sample dated in the future cannot make the past look old.

use super::checkpoint::Checkpoint;
use super::store::Root;
use super::tables::{TABLES, schema, sort_key};
use super::writer::{HistoryError, encode, sorted};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaDataReader;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The journal of a merge in progress, in its partition folder.
pub const JOURNAL: &str = "_compaction.json";

/// Rows per row group of merged files.
const ROW_GROUP_ROWS: usize = super::ROW_GROUP_ROWS;

/// A file holding fewer rows than this counts as small.
const SMALL_FILE_ROWS: i64 = (ROW_GROUP_ROWS * super::writer::FILE_ROW_GROUPS) as i64;

/// Rows one merge takes in at most (8 row groups: it is sorted in memory,
/// beside the writer's own buffers).
const MAX_MERGE_ROWS: i64 = (ROW_GROUP_ROWS * 8) as i64;

/// What one pass does.
#[derive(Debug, Clone, Copy)]
pub struct MaintenancePolicy {
    /// Merge a partition once it has this many small files.
    pub compact_min_files: usize,
    /// Delete partitions dated more than this many days before the
    /// table's newest; 0 keeps everything.
    pub retention_days: u64,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Partitions merged.
    pub partitions_compacted: usize,
    /// Files merged away.
    pub files_merged: usize,
    /// Partitions deleted for their age.
    pub partitions_dropped: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    output: String,
    inputs: Vec<String>,
}

/// One pass over the history under `root`.
pub fn run_pass(root: &Root, policy: MaintenancePolicy) -> Result<MaintenanceReport, HistoryError> {
    let committed = Checkpoint::load(root)?.unwrap_or_default();
    let mut report = MaintenanceReport::default();
    for table in TABLES {
        let mut partitions = partitions(&root.list(table)?);
        if partitions.is_empty() {
            continue;
        }
        if policy.retention_days > 0 {
            let dropped = drop_old(root, table, &partitions, policy.retention_days)?;
            report.partitions_dropped += dropped.len();
            partitions.retain(|p, _| !dropped.iter().any(|d| p.starts_with(d.as_str())));
        }
        for (partition, names) in partitions {
            let names = if finish_journal(root, &partition, &names)? {
                partition_files(root, &partition)?
            } else {
                names
            };
            let merged = compact(
                root,
                table,
                &partition,
                &names,
                &committed,
                policy.compact_min_files,
            )?;
            if merged > 0 {
                report.partitions_compacted += 1;
                report.files_merged += merged;
            }
        }
    }
    Ok(report)
}

/// Files grouped by the leaf partition holding them (`table/date=..` or
/// `table/date=../hour=..`), as names in it.
fn partitions(files: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        if let Some((partition, name)) = file.rsplit_once('/') {
            out.entry(partition.to_string())
                .or_default()
                .push(name.to_string());
        }
    }
    out
}

fn partition_files(root: &Root, partition: &str) -> Result<Vec<String>, HistoryError> {
    Ok(partitions(&root.list(partition)?)
        .remove(partition)
        .unwrap_or_default())
}

/// The date of the `date=YYYY-MM-DD` part of `rel`, as a day number.
fn partition_day(rel: &str) -> Option<i64> {
    let date = rel.split('/').find_map(|c| c.strip_prefix("date="))?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(i64::from(chrono::Datelike::num_days_from_ce(&day)))
}

fn io_error(root: &Root, rel: &str, e: &dyn std::fmt::Display) -> HistoryError {
    HistoryError::Write {
        path: root.describe(rel),
        reason: e.to_string(),
    }
}

/// Today's day number plus one, by the wall clock: no partition dated
/// later counts as "newest".
fn tomorrow() -> i64 {
    let today = chrono::Utc::now().date_naive();
    i64::from(chrono::Datelike::num_days_from_ce(&today)) + 1
}

/// Deletes the `table/date=..` folders older than `days` before the
/// newest; returns them.
fn drop_old(
    root: &Root,
    table: &str,
    partitions: &BTreeMap<String, Vec<String>>,
    days: u64,
) -> Result<Vec<String>, HistoryError> {
    let cap = tomorrow();
    let Some(newest) = partitions
        .keys()
        .filter_map(|p| partition_day(p))
        .filter(|&day| day <= cap)
        .max()
    else {
        return Ok(Vec::new());
    };
    let dates: BTreeSet<&str> = partitions
        .keys()
        .filter_map(|p| p.split('/').nth(1))
        .filter(|d| d.starts_with("date="))
        .collect();
    let mut dropped = Vec::new();
    for date in dates {
        let Some(day) = partition_day(date) else {
            continue;
        };
        if newest - day > days as i64 {
            let rel = format!("{table}/{date}");
            root.delete_all(&rel)?;
            tracing::info!(partition = %root.describe(&rel).display(), "history partition past retention deleted");
            dropped.push(rel);
        }
    }
    Ok(dropped)
}

/// Completes a merge a crash interrupted: with the merged file in place its
/// inputs are deleted; without it the merge is dropped. Whether there was
/// one.
fn finish_journal(root: &Root, partition: &str, names: &[String]) -> Result<bool, HistoryError> {
    let path = format!("{partition}/{JOURNAL}");
    let Some(text) = root.get(&path)? else {
        return Ok(false);
    };
    if let Ok(journal) = serde_json::from_slice::<Journal>(&text) {
        if names.contains(&journal.output) {
            for input in &journal.inputs {
                root.delete(&format!("{partition}/{input}"))?;
            }
        } else {
            root.delete(&format!("{partition}/{}.tmp", journal.output))?;
        }
    }
    root.delete(&path)?;
    Ok(true)
}

/// Whether a writer's file is committed (a crash cannot take it back).
fn is_committed(table: &str, name: &str, checkpoint: &Checkpoint) -> bool {
    if name.starts_with("compact-") {
        return true;
    }
    let prefix = format!("part-{}-", checkpoint.run);
    match name
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .and_then(|seq| seq.parse::<u64>().ok())
    {
        Some(seq) => seq <= checkpoint.committed.get(table).copied().unwrap_or(0),
        // Files of earlier runs: open() removed their uncommitted ones.
        None => true,
    }
}

/// The rows of Parquet file `rel`, from its footer alone.
fn rows_of(root: &Root, rel: &str) -> Result<i64, HistoryError> {
    let fail = |e: &dyn std::fmt::Display| io_error(root, rel, e);
    let (mut tail, size) = root.tail(rel, 64 * 1024)?;
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(fail(&"not a Parquet file"));
    }
    let len = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]) as usize;
    if len + 8 > n {
        if len as u64 + 8 > size {
            return Err(fail(&"its footer is cut short"));
        }
        tail = root.tail(rel, len as u64 + 8)?.0;
    }
    let n = tail.len();
    let metadata =
        ParquetMetaDataReader::decode_metadata(&tail[n - 8 - len..n - 8]).map_err(|e| fail(&e))?;
    Ok(metadata.file_metadata().num_rows())
}

fn compact(
    root: &Root,
    table: &str,
    partition: &str,
    names: &[String],
    checkpoint: &Checkpoint,
    min_files: usize,
) -> Result<usize, HistoryError> {
    let mut inputs = Vec::new();
    for name in names {
        if !name.ends_with(".parquet") || !is_committed(table, name, checkpoint) {
            continue;
        }
        let rows = rows_of(root, &format!("{partition}/{name}"))?;
        if rows < SMALL_FILE_ROWS {
            inputs.push((name.clone(), rows));
        }
    }
    if inputs.len() < min_files.max(2) {
        return Ok(0);
    }
    inputs.sort();
    // One merge holds at most MAX_MERGE_ROWS (it is sorted in memory); the
    // rest waits for the next pass.
    let mut total = 0;
    let inputs: Vec<String> = inputs
        .into_iter()
        .take_while(|(_, rows)| {
            total += rows;
            total <= MAX_MERGE_ROWS
        })
        .map(|(name, _)| name)
        .collect();
    if inputs.len() < 2 {
        return Ok(0);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let output = format!("compact-{stamp}.parquet");
    let out = format!("{partition}/{output}");
    // Inputs are small (that is why they are merged): read them whole and
    // write them in the table's order, as one sorted file.
    let mut batches = Vec::new();
    for input in &inputs {
        let rel = format!("{partition}/{input}");
        let bytes = root
            .get(&rel)?
            .ok_or_else(|| io_error(root, &rel, &"deleted while being merged"))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| io_error(root, &rel, &e))?;
        for batch in reader {
            batches.push(batch.map_err(|e| io_error(root, &rel, &e))?);
        }
    }
    let merged = arrow::compute::concat_batches(&schema(table), &batches)
        .and_then(|b| sorted(&b, sort_key(table)))
        .map_err(|e| io_error(root, &out, &e))?;
    let bytes = encode(&merged, ROW_GROUP_ROWS).map_err(|e| io_error(root, &out, &e))?;
    // The journal first, then the merged file: a crash between the two
    // leaves a journal whose output is missing, and the merge is dropped;
    // after them, the next pass deletes the inputs the journal names.
    let journal = Journal {
        output: output.clone(),
        inputs: inputs.clone(),
    };
    let journal_rel = format!("{partition}/{JOURNAL}");
    let text = serde_json::to_vec(&journal).map_err(|e| io_error(root, &journal_rel, &e))?;
    root.put(&journal_rel, text)?;
    root.put(&out, bytes)?;
    let mut names = names.to_vec();
    names.push(output);
    finish_journal(root, partition, &names)?;
    tracing::debug!(partition = %root.describe(partition).display(), files = inputs.len(), "history files merged");
    Ok(inputs.len())
}

/// Maintenance running in the background; it stops when dropped.
pub struct Maintenance {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    /// Runs a pass over `root` every `every`, on a thread of its own.
    pub fn spawn(root: &Arc<Root>, policy: MaintenancePolicy, every: Duration) -> Maintenance {
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("history-maintenance".into())
            // Leftovers of an interrupted merge need nothing here: the
            // writer's start removed stray `.tmp` files, and every pass
            // completes (or drops) an unfinished journal first.
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match run_pass(&root, policy) {
                        Ok(r) if r != MaintenanceReport::default() => {
                            tracing::info!(
                                compacted = r.partitions_compacted,
                                files_merged = r.files_merged,
                                dropped = r.partitions_dropped,
                                "history maintenance"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("history maintenance failed (retried): {e}"),
                    }
                    let mut waited = Duration::ZERO;
                    while waited < every && !flag.load(Ordering::Relaxed) {
                        let step = Duration::from_millis(200).min(every - waited);
                        std::thread::sleep(step);
                        waited += step;
                    }
                }
            })
            .map_err(|e| tracing::warn!("history maintenance not started: {e}"))
            .ok();
        Maintenance { stop, thread }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{PartitionKey, TableWriter};
    use arrow::array::{
        ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    };

    fn rows(times: &[i64]) -> RecordBatch {
        let t: ArrayRef = Arc::new(TimestampMillisecondArray::from(times.to_vec()));
        let vm: ArrayRef = Arc::new(StringArray::from_iter_values(times.iter().map(|_| "vm-1")));
        let m: ArrayRef = Arc::new(StringArray::from_iter_values(times.iter().map(|_| "cpu")));
        let v: ArrayRef = Arc::new(Float64Array::from_iter_values(
            times.iter().map(|&t| t as f64),
        ));
        RecordBatch::try_new(schema("samples"), vec![t, vm, m, v]).unwrap()
    }

    fn read_all(root: &Root) -> Vec<i64> {
        crate::test_support::sample_rows(root, "samples")
            .into_iter()
            .map(|r| r.0)
            .collect()
    }

    fn parquet_files(root: &Root) -> usize {
        root.list("samples")
            .unwrap()
            .iter()
            .filter(|p| p.ends_with(".parquet"))
            .count()
    }

    /// Runs `test` on a folder and on a prefix of an object store.
    fn in_a_folder_and_a_store(test: impl Fn(&Arc<Root>)) {
        let dir = tempfile::tempdir().unwrap();
        test(&Arc::new(Root::Folder(dir.path().into())));
        let store = crate::store::Location::in_memory("history");
        test(&Arc::new(Root::in_store(&store, "instance-1").unwrap()));
    }

    /// Writes `files` committed files of 10 rows each into one hour.
    fn history_with(root: &Arc<Root>, files: i64, commit: bool) -> Checkpoint {
        let mut w = TableWriter::new(root, "samples", schema("samples"), 1000, "1");
        let key = PartitionKey::of(0, true);
        for f in 0..files {
            w.push(
                key.clone(),
                rows(&(f * 10..f * 10 + 10).collect::<Vec<_>>()),
            )
            .unwrap();
            w.flush().unwrap();
        }
        let mut c = Checkpoint {
            run: "1".into(),
            ..Checkpoint::default()
        };
        c.committed
            .insert("samples".into(), if commit { w.seq() } else { 0 });
        c.save(root).unwrap();
        c
    }

    const POLICY: MaintenancePolicy = MaintenancePolicy {
        compact_min_files: 3,
        retention_days: 0,
    };

    #[test]
    fn merges_small_committed_files_into_one_with_every_row() {
        in_a_folder_and_a_store(|root| {
            history_with(root, 5, true);
            let before = read_all(root);
            assert_eq!((parquet_files(root), before.len()), (5, 50));
            let r = run_pass(root, POLICY).unwrap();
            assert_eq!((r.partitions_compacted, r.files_merged), (1, 5));
            assert_eq!(parquet_files(root), 1);
            assert_eq!(read_all(root), before);
            // Nothing more to do.
            assert_eq!(
                run_pass(root, POLICY).unwrap(),
                MaintenanceReport::default()
            );
        });
    }

    #[test]
    fn leaves_uncommitted_files_alone() {
        in_a_folder_and_a_store(|root| {
            history_with(root, 5, false);
            assert_eq!(run_pass(root, POLICY).unwrap().files_merged, 0);
            assert_eq!(parquet_files(root), 5);
        });
    }

    #[test]
    fn completes_a_merge_a_crash_interrupted() {
        in_a_folder_and_a_store(|root| {
            history_with(root, 4, true);
            let files = root.list("samples").unwrap();
            let (partition, first) = files[0].rsplit_once('/').unwrap();
            // As if the merged file had been written and the crash came
            // before the inputs were deleted: a copy of one input's rows.
            let copy = root.get(&files[0]).unwrap().unwrap();
            root.put(&format!("{partition}/compact-1.parquet"), copy.to_vec())
                .unwrap();
            let journal = Journal {
                output: "compact-1.parquet".into(),
                inputs: vec![first.to_string()],
            };
            root.put(
                &format!("{partition}/{JOURNAL}"),
                serde_json::to_vec(&journal).unwrap(),
            )
            .unwrap();
            let r = run_pass(
                root,
                MaintenancePolicy {
                    compact_min_files: 99,
                    ..POLICY
                },
            )
            .unwrap();
            assert_eq!(r.files_merged, 0);
            assert_eq!(root.get(&format!("{partition}/{JOURNAL}")).unwrap(), None);
            // Every row once: the input the merged file replaced is gone.
            assert_eq!(read_all(root), (0..40).collect::<Vec<_>>());
        });
    }

    const DAY: i64 = 86_400_000;

    /// A sample on each of `days` (day numbers), then a pass keeping
    /// `retention_days`.
    fn retention_pass(root: &Arc<Root>, days: &[i64], retention_days: u64) -> MaintenanceReport {
        let mut w = TableWriter::new(root, "samples", schema("samples"), 1000, "1");
        for d in days {
            w.push(PartitionKey::of(d * DAY, true), rows(&[d * DAY]))
                .unwrap();
        }
        w.flush().unwrap();
        let policy = MaintenancePolicy {
            retention_days,
            ..POLICY
        };
        run_pass(root, policy).unwrap()
    }

    #[test]
    fn drops_partitions_older_than_the_retention_age_of_the_newest() {
        in_a_folder_and_a_store(|root| {
            let r = retention_pass(root, &[0, 1, 5, 10], 5);
            assert_eq!(r.partitions_dropped, 2);
            assert_eq!(read_all(root), [5 * DAY, 10 * DAY]);
        });
    }

    #[test]
    fn a_partition_dated_in_the_future_does_not_make_the_past_old() {
        in_a_folder_and_a_store(|root| {
            let today = chrono::Utc::now().timestamp_millis() / DAY;
            // Yesterday and a sample dated ten years ahead.
            let r = retention_pass(root, &[today - 1, today + 3650], 30);
            assert_eq!(r.partitions_dropped, 0);
            assert_eq!(read_all(root).len(), 2);
        });
    }

    #[test]
    fn partition_days_count_days() {
        let day = |p: &str| partition_day(p).unwrap();
        assert_eq!(
            day("samples/date=2026-11-02/hour=05") - day("scores/date=2026-10-31"),
            2
        );
        assert_eq!(partition_day("samples/date=soon"), None);
    }
}
