//! One history table: Arrow batches buffered per date (and hour)
//! partition, written as ZSTD Parquet files under
//! `<root>/<table>/date=YYYY-MM-DD[/hour=HH]/`.
//!
//! A file is written whole or not at all (see [`super::store::Root::put`]):
//! readers never see a half-written file, and a crash leaves at most a
//! `.tmp` in a folder, which the next start deletes. File names carry the
//! writer's start time and a sequence number, so a restarted writer never
//! overwrites what an earlier one wrote.

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
use std::sync::Arc;
use thiserror::Error;

use super::store::Root;

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

/// Row groups a file holds when its partition fills one before a flush.
pub const FILE_ROW_GROUPS: usize = 2;

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

    /// Its folder below the table's: `date=…[/hour=…]`.
    pub fn rel(&self) -> String {
        match &self.hour {
            Some(h) => format!("date={}/hour={h}", self.date),
            None => format!("date={}", self.date),
        }
    }
}

/// One table's writer.
pub struct TableWriter {
    name: String,
    root: Arc<Root>,
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
    /// left in a folder are deleted.
    pub fn new(
        root: &Arc<Root>,
        name: &str,
        schema: SchemaRef,
        row_group_rows: usize,
        run: &str,
    ) -> TableWriter {
        if let Some(dir) = root.folder() {
            remove_tmp_files(&dir.join(name));
        }
        TableWriter {
            name: name.to_string(),
            root: root.clone(),
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
        // Two row groups a file: at 100,000 VMs a partition fills one in
        // seconds, and each buffered row is held again while its file is
        // sorted and encoded.
        if entry.1 >= self.row_group_rows * FILE_ROW_GROUPS {
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
        // One batch of the partition's rows, the buffered ones freed before
        // it is sorted and encoded (at 100,000 VMs a partition holds half a
        // million rows: each copy alive at once counts).
        let batch = match concat_batches(&self.schema, &batches) {
            Ok(batch) => batch,
            Err(e) => {
                self.buffered.insert(key.clone(), (batches, rows));
                return Err(HistoryError::Rows {
                    table: self.name.clone(),
                    reason: e.to_string(),
                });
            }
        };
        drop(batches);
        if let Err(e) = self.write_file(key, &batch) {
            // Nothing is lost: the rows wait for the next attempt.
            self.buffered.insert(key.clone(), (vec![batch], rows));
            return Err(e);
        }
        self.rows_written += rows as u64;
        self.files_written += 1;
        Ok(())
    }

    fn write_file(&mut self, key: &PartitionKey, batch: &RecordBatch) -> Result<(), HistoryError> {
        self.seq += 1;
        let rel = format!(
            "{}/{}/part-{}-{:06}.parquet",
            self.name,
            key.rel(),
            self.run,
            self.seq
        );
        let fail = |e: &dyn std::fmt::Display| HistoryError::Write {
            path: self.root.describe(&rel),
            reason: e.to_string(),
        };
        let batch = sorted(batch, super::tables::sort_key(&self.name)).map_err(|e| fail(&e))?;
        let bytes = encode(&batch, self.row_group_rows).map_err(|e| fail(&e))?;
        drop(batch);
        self.root.put(&rel, bytes)
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
    // The sort keys go before the sorted copy is made (peak memory).
    drop(rows);
    take_record_batch(batch, &UInt32Array::from(order))
}

/// `batch` as a Parquet file the way every history file is: ZSTD, row
/// groups of `row_group_rows`.
pub fn encode(
    batch: &RecordBatch,
    row_group_rows: usize,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.into_inner()
}

/// Deletes `*.parquet.tmp` below `dir` (left by a crash mid-write).
fn remove_tmp_files(dir: &Path) {
    for path in super::store::files_below(dir) {
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
        let root = Arc::new(Root::Folder(dir.path().to_path_buf()));
        let mut w = TableWriter::new(&root, "samples", schema("samples"), 100, "1");
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
