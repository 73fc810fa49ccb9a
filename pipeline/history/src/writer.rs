//! One history table on disk: Arrow batches buffered per date (and hour)
//! partition, written as ZSTD Parquet files under
//! `<root>/<table>/date=YYYY-MM-DD[/hour=HH]/`.
//!
//! A file is written to `<name>.parquet.tmp`, synced, then renamed: readers
//! (which only list `*.parquet`) never see a half-written file, and a crash
//! leaves at most a `.tmp` that the next start deletes. File names carry
//! the writer's start time and a sequence number, so a restarted writer
//! never overwrites what an earlier one wrote.

use arrow::array::RecordBatch;
use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Writing history failed.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// A file could not be written.
    #[error("history: writing {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Rows did not fit the table's schema (a defect, reported not hidden).
    #[error("history table {table}: {reason}")]
    Rows {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
}

/// A partition: `date=YYYY-MM-DD` and, for hourly tables, `hour=HH`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionKey {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// `HH` (UTC), for hourly tables.
    pub hour: Option<String>,
}

impl PartitionKey {
    /// The partition of event time `ms` (UTC).
    pub fn of(ms: i64, hourly: bool) -> PartitionKey {
        // Years 1970 to 9999 only: every folder name is a valid date (rows
        // outside are refused before they get here; this keeps names sane).
        const LAST_MS: i64 = 253_402_300_799_999;
        let text = bellwether_schemas::EventTime(ms.clamp(0, LAST_MS)).to_string();
        PartitionKey {
            date: text[..10].to_string(),
            hour: hourly.then(|| text[11..13].to_string()),
        }
    }

    fn dir(&self, table: &Path) -> PathBuf {
        let d = table.join(format!("date={}", self.date));
        match &self.hour {
            Some(h) => d.join(format!("hour={h}")),
            None => d,
        }
    }
}

/// One table's writer.
pub struct TableWriter {
    name: String,
    dir: PathBuf,
    schema: SchemaRef,
    row_group_rows: usize,
    run: String,
    seq: u64,
    buffered: BTreeMap<PartitionKey, (Vec<RecordBatch>, usize)>,
    rows_written: u64,
    files_written: u64,
}

impl TableWriter {
    /// A writer of table `name` under `root`; `.tmp` files an earlier crash
    /// left are deleted.
    pub fn new(
        root: &Path,
        name: &str,
        schema: SchemaRef,
        row_group_rows: usize,
        run: &str,
    ) -> TableWriter {
        let dir = root.join(name);
        remove_tmp_files(&dir);
        TableWriter {
            name: name.to_string(),
            dir,
            schema,
            row_group_rows: row_group_rows.max(1),
            run: run.to_string(),
            seq: 0,
            buffered: BTreeMap::new(),
            rows_written: 0,
            files_written: 0,
        }
    }

    /// Buffers `batch` (rows of one partition).
    pub fn push(&mut self, key: PartitionKey, batch: RecordBatch) -> Result<(), HistoryError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema() != self.schema {
            return Err(HistoryError::Rows {
                table: self.name.clone(),
                reason: format!("schema {:?} is not the table's", batch.schema()),
            });
        }
        let entry = self.buffered.entry(key.clone()).or_default();
        entry.1 += batch.num_rows();
        entry.0.push(batch);
        if entry.1 >= self.row_group_rows * 4 {
            // A failed write keeps the rows buffered for the next flush,
            // which reports the error: ingestion does not stop for history.
            if let Err(e) = self.write_partition(&key) {
                tracing::warn!("{e} (kept in memory, retried at the next flush)");
            }
        }
        Ok(())
    }

    /// Writes every buffered partition to its own file.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        let keys: Vec<PartitionKey> = self.buffered.keys().cloned().collect();
        for key in keys {
            self.write_partition(&key)?;
        }
        Ok(())
    }

    /// The sequence number of the last file written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Rows and files written so far.
    pub fn written(&self) -> (u64, u64) {
        (self.rows_written, self.files_written)
    }

    fn write_partition(&mut self, key: &PartitionKey) -> Result<(), HistoryError> {
        let Some((batches, rows)) = self.buffered.remove(key) else {
            return Ok(());
        };
        if rows == 0 {
            return Ok(());
        }
        if let Err(e) = self.write_file(key, &batches) {
            // Nothing is lost: the rows wait for the next attempt.
            self.buffered.insert(key.clone(), (batches, rows));
            return Err(e);
        }
        self.rows_written += rows as u64;
        self.files_written += 1;
        Ok(())
    }

    fn write_file(
        &mut self,
        key: &PartitionKey,
        batches: &[RecordBatch],
    ) -> Result<(), HistoryError> {
        let dir = key.dir(&self.dir);
        self.seq += 1;
        let path = dir.join(format!("part-{}-{:06}.parquet", self.run, self.seq));
        let tmp = path.with_extension("parquet.tmp");
        let fail = |p: &Path, e: &dyn std::fmt::Display| HistoryError::Write {
            path: p.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, &e))?;
        let batch = concat_batches(&self.schema, batches).map_err(|e| fail(&tmp, &e))?;
        let batch =
            sorted(&batch, super::tables::sort_key(&self.name)).map_err(|e| fail(&tmp, &e))?;
        let mut file = ParquetFile::create(&tmp, self.schema.clone(), self.row_group_rows)?;
        file.write(&batch)?;
        file.finish()?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&path, &e))
    }
}

/// `batch` ordered by the columns `key` names (unchanged for an empty key).
pub fn sorted(batch: &RecordBatch, key: &[&str]) -> Result<RecordBatch, arrow::error::ArrowError> {
    if key.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    // Rows converted once to comparable bytes sort several times faster
    // than a column-by-column comparison of strings.
    let columns = key
        .iter()
        .map(|name| Ok(batch.column(batch.schema().index_of(name)?).clone()))
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let rows = RowConverter::new(fields)?.convert_columns(&columns)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    take_record_batch(batch, &UInt32Array::from(order))
}

/// A Parquet file being written the way every history file is: ZSTD,
/// row groups of a set size, synced to disk when finished.
pub struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<std::fs::File>,
}

impl ParquetFile {
    /// Creates `path` for rows of `schema`.
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        row_group_rows: usize,
    ) -> Result<ParquetFile, HistoryError> {
        let fail = |e: &dyn std::fmt::Display| HistoryError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).map_err(|e| fail(&e))?,
            ))
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| fail(&e))?;
        Ok(ParquetFile {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), HistoryError> {
        self.writer.write(batch).map_err(|e| HistoryError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes the footer and syncs the file to disk.
    pub fn finish(self) -> Result<(), HistoryError> {
        let fail = |e: &dyn std::fmt::Display| HistoryError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let file = self.writer.into_inner().map_err(|e| fail(&e))?;
        file.sync_all().map_err(|e| fail(&e))
    }
}

/// Deletes `*.parquet.tmp` below `dir` (left by a crash mid-write).
fn remove_tmp_files(dir: &Path) {
    for path in super::checkpoint::files_below(dir) {
        if path.to_string_lossy().ends_with(".parquet.tmp") {
            tracing::warn!(file = %path.display(), "removing a history file a crash left half-written");
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::schema;
    use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;

    fn rows(n: i64) -> RecordBatch {
        let t: ArrayRef = Arc::new(TimestampMillisecondArray::from((0..n).collect::<Vec<_>>()));
        let s: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|_| "x")));
        let v: ArrayRef = Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)));
        RecordBatch::try_new(schema("samples"), vec![t, s.clone(), s, v]).unwrap()
    }

    #[test]
    fn a_failed_write_keeps_its_rows_for_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TableWriter::new(dir.path(), "samples", schema("samples"), 100, "1");
        let key = PartitionKey::of(0, true);
        // A file where the partition's folder must go: the write fails.
        let blocked = dir.path().join("samples/date=1970-01-01");
        std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
        std::fs::write(&blocked, b"in the way").unwrap();
        w.push(key.clone(), rows(10)).unwrap();
        let err = w.flush().unwrap_err().to_string();
        assert!(err.contains("date=1970-01-01"), "{err}");
        assert_eq!(w.written(), (0, 0));
        // More rows arrive; once the way is clear, all of them are written.
        w.push(key, rows(5)).unwrap();
        std::fs::remove_file(&blocked).unwrap();
        w.flush().unwrap();
        assert_eq!(w.written(), (15, 1));
    }
}
