//! Background upkeep of the history folder: small files of a partition are
//! merged into one, and partitions past the retention age are deleted.
//!
//! It runs on a thread of its own and never takes the writer's lock:
//! ingestion goes on while it works. Only committed files are merged (see
//! [`super::checkpoint`]): a file the writer may still take back after a
//! crash is left alone. A merge is crash-safe: the merged file is written
//! under a temporary name, a journal (`_compaction.json`) lists what it
//! replaces, the merged file is renamed into place, the inputs are
//! deleted, then the journal; a pass finds an unfinished journal and
//! completes (or drops) that merge first. A query running while a merge
//! deletes its inputs may fail and can be run again.
//!
//! Age is measured from the newest partition of each table (event time),
//! capped at tomorrow by the wall clock: replaying old data, or the
//! simulator's fixed start date, does not delete a history as soon as it is
//! written, and a sample dated in the future cannot make the past look old.

use super::checkpoint::{self, Checkpoint};
use super::tables::{TABLES, schema, sort_key};
use super::writer::{HistoryError, ParquetFile, sorted};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The journal of a merge in progress, in its partition folder.
pub const JOURNAL: &str = "_compaction.json";

/// Rows per row group of merged files.
const ROW_GROUP_ROWS: usize = super::ROW_GROUP_ROWS;

/// A file holding fewer rows than this counts as small.
const SMALL_FILE_ROWS: i64 = (ROW_GROUP_ROWS * 4) as i64;

/// Rows one merge takes in at most (32 row groups).
const MAX_MERGE_ROWS: i64 = (ROW_GROUP_ROWS * 32) as i64;

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
pub fn run_pass(root: &Path, policy: MaintenancePolicy) -> Result<MaintenanceReport, HistoryError> {
    let committed = Checkpoint::load(root)?.unwrap_or_default();
    let mut report = MaintenanceReport::default();
    for table in TABLES {
        let dir = root.join(table);
        if !dir.is_dir() {
            continue;
        }
        let partitions = partition_dirs(&dir);
        if policy.retention_days > 0 {
            report.partitions_dropped += drop_old(&dir, &partitions, policy.retention_days)?;
        }
        for partition in partition_dirs(&dir) {
            finish_journal(&partition)?;
            let merged = compact(table, &partition, &committed, policy.compact_min_files)?;
            if merged > 0 {
                report.partitions_compacted += 1;
                report.files_merged += merged;
            }
        }
    }
    Ok(report)
}

/// The leaf partition folders of a table (`date=..` or `date=../hour=..`).
fn partition_dirs(table_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(table_dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let nested = partition_dirs(&path);
        if nested.is_empty() {
            out.push(path);
        } else {
            out.extend(nested);
        }
    }
    out.sort();
    out
}

/// The date of a `date=YYYY-MM-DD` folder in `path`, as a day number.
fn partition_day(path: &Path) -> Option<i64> {
    let date = path
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .find_map(|c| c.strip_prefix("date="))?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(i64::from(chrono::Datelike::num_days_from_ce(&day)))
}

fn io_error(path: &Path, e: &dyn std::fmt::Display) -> HistoryError {
    HistoryError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Today's day number plus one, by the wall clock: no partition dated
/// later counts as "newest".
fn tomorrow() -> i64 {
    let today = chrono::Utc::now().date_naive();
    i64::from(chrono::Datelike::num_days_from_ce(&today)) + 1
}

fn drop_old(table_dir: &Path, partitions: &[PathBuf], days: u64) -> Result<usize, HistoryError> {
    let cap = tomorrow();
    let Some(newest) = partitions
        .iter()
        .filter_map(|p| partition_day(p))
        .filter(|&day| day <= cap)
        .max()
    else {
        return Ok(0);
    };
    let mut dropped = 0;
    let Ok(entries) = std::fs::read_dir(table_dir) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(day) = partition_day(&path) else {
            continue;
        };
        if newest - day > days as i64 {
            std::fs::remove_dir_all(&path).map_err(|e| io_error(&path, &e))?;
            tracing::info!(partition = %path.display(), "history partition past retention deleted");
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Completes a merge a crash interrupted: with the merged file in place its
/// inputs are deleted; without it the merge is dropped.
fn finish_journal(partition: &Path) -> Result<(), HistoryError> {
    let path = partition.join(JOURNAL);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    if let Ok(journal) = serde_json::from_str::<Journal>(&text) {
        if partition.join(&journal.output).exists() {
            for input in &journal.inputs {
                let _ = std::fs::remove_file(partition.join(input));
            }
        } else {
            let _ = std::fs::remove_file(partition.join(format!("{}.tmp", journal.output)));
        }
    }
    std::fs::remove_file(&path).map_err(|e| io_error(&path, &e))
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

fn compact(
    table: &str,
    partition: &Path,
    checkpoint: &Checkpoint,
    min_files: usize,
) -> Result<usize, HistoryError> {
    let mut inputs = Vec::new();
    for path in checkpoint::files_below(partition) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
            continue;
        };
        if !name.ends_with(".parquet") || !is_committed(table, &name, checkpoint) {
            continue;
        }
        let file = std::fs::File::open(&path).map_err(|e| io_error(&path, &e))?;
        let rows = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| io_error(&path, &e))?
            .metadata()
            .file_metadata()
            .num_rows();
        if rows < SMALL_FILE_ROWS {
            inputs.push((name, rows));
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
    let tmp = partition.join(format!("{output}.tmp"));
    let mut merged = ParquetFile::create(&tmp, schema(table), ROW_GROUP_ROWS)?;
    // Inputs are small (that is why they are merged): read them whole and
    // write them in the table's order, as one sorted file.
    let mut batches = Vec::new();
    for input in &inputs {
        let path = partition.join(input);
        let file = std::fs::File::open(&path).map_err(|e| io_error(&path, &e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| io_error(&path, &e))?;
        for batch in reader {
            batches.push(batch.map_err(|e| io_error(&path, &e))?);
        }
    }
    let all = arrow::compute::concat_batches(&schema(table), &batches)
        .and_then(|b| sorted(&b, sort_key(table)))
        .map_err(|e| io_error(&tmp, &e))?;
    merged.write(&all)?;
    merged.finish()?;
    let journal = Journal {
        output: output.clone(),
        inputs: inputs.clone(),
    };
    let journal_path = partition.join(JOURNAL);
    let journal_tmp = partition.join(format!("{JOURNAL}.tmp"));
    let text = serde_json::to_vec(&journal).map_err(|e| io_error(&journal_path, &e))?;
    std::fs::write(&journal_tmp, text).map_err(|e| io_error(&journal_tmp, &e))?;
    std::fs::rename(&journal_tmp, &journal_path).map_err(|e| io_error(&journal_path, &e))?;
    let out = partition.join(&output);
    std::fs::rename(&tmp, &out).map_err(|e| io_error(&out, &e))?;
    finish_journal(partition)?;
    tracing::debug!(partition = %partition.display(), files = inputs.len(), "history files merged");
    Ok(inputs.len())
}

/// Maintenance running in the background; it stops when dropped.
pub struct Maintenance {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    /// Runs a pass over `root` every `every`, on a thread of its own.
    pub fn spawn(root: &Path, policy: MaintenancePolicy, every: Duration) -> Maintenance {
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
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

    fn read_all(dir: &Path) -> Vec<i64> {
        crate::test_support::sample_rows(dir)
            .into_iter()
            .map(|r| r.0)
            .collect()
    }

    fn parquet_files(dir: &Path) -> usize {
        checkpoint::files_below(dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    }

    /// Writes `files` committed files of 10 rows each into one hour.
    fn history_with(root: &Path, files: i64, commit: bool) -> Checkpoint {
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
        let dir = tempfile::tempdir().unwrap();
        history_with(dir.path(), 5, true);
        let table = dir.path().join("samples");
        let before = read_all(&table);
        assert_eq!((parquet_files(&table), before.len()), (5, 50));
        let r = run_pass(dir.path(), POLICY).unwrap();
        assert_eq!((r.partitions_compacted, r.files_merged), (1, 5));
        assert_eq!(parquet_files(&table), 1);
        assert_eq!(read_all(&table), before);
        // Nothing more to do.
        assert_eq!(
            run_pass(dir.path(), POLICY).unwrap(),
            MaintenanceReport::default()
        );
    }

    #[test]
    fn leaves_uncommitted_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        history_with(dir.path(), 5, false);
        assert_eq!(run_pass(dir.path(), POLICY).unwrap().files_merged, 0);
        assert_eq!(parquet_files(&dir.path().join("samples")), 5);
    }

    #[test]
    fn completes_a_merge_a_crash_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        history_with(dir.path(), 4, true);
        let table = dir.path().join("samples");
        let partition = partition_dirs(&table).remove(0);
        let mut names: Vec<String> = checkpoint::files_below(&partition)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // As if the merged file had been renamed into place and the crash
        // came before the inputs were deleted: a copy of two inputs' rows.
        std::fs::copy(
            partition.join(&names[0]),
            partition.join("compact-1.parquet"),
        )
        .unwrap();
        let journal = Journal {
            output: "compact-1.parquet".into(),
            inputs: vec![names[0].clone()],
        };
        std::fs::write(
            partition.join(JOURNAL),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        let r = run_pass(
            dir.path(),
            MaintenancePolicy {
                compact_min_files: 99,
                ..POLICY
            },
        )
        .unwrap();
        assert_eq!(r.files_merged, 0);
        assert!(!partition.join(JOURNAL).exists());
        // Every row once: the input the merged file replaced is gone.
        assert_eq!(read_all(&table), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn drops_partitions_older_than_the_retention_age_of_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::new(dir.path(), "samples", schema("samples"), 1000, "1");
        let day = 86_400_000;
        for d in [0, 1, 5, 10] {
            w.push(PartitionKey::of(d * day, true), rows(&[d * day]))
                .unwrap();
        }
        w.flush().unwrap();
        let r = run_pass(
            dir.path(),
            MaintenancePolicy {
                retention_days: 5,
                ..POLICY
            },
        )
        .unwrap();
        assert_eq!(r.partitions_dropped, 2);
        assert_eq!(read_all(&dir.path().join("samples")), [5 * day, 10 * day]);
    }

    #[test]
    fn a_partition_dated_in_the_future_does_not_make_the_past_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::new(dir.path(), "samples", schema("samples"), 1000, "1");
        let day = 86_400_000;
        let today = chrono::Utc::now().timestamp_millis() / day;
        // Yesterday and a sample dated ten years ahead.
        for d in [today - 1, today + 3650] {
            w.push(PartitionKey::of(d * day, true), rows(&[d * day]))
                .unwrap();
        }
        w.flush().unwrap();
        let r = run_pass(
            dir.path(),
            MaintenancePolicy {
                retention_days: 30,
                ..POLICY
            },
        )
        .unwrap();
        assert_eq!(r.partitions_dropped, 0);
        assert_eq!(read_all(&dir.path().join("samples")).len(), 2);
    }

    #[test]
    fn partition_days_count_days() {
        let day = |p: &str| partition_day(Path::new(p)).unwrap();
        assert_eq!(
            day("/h/samples/date=2026-11-02/hour=05") - day("/h/scores/date=2026-10-31"),
            2
        );
        assert_eq!(partition_day(Path::new("/h/samples/date=soon")), None);
    }
}
