//! History: everything bellwether sees and decides, as Parquet tables
//! under one folder, for SQL ([`sql`]) and for retraining.
//!
//! Tables ([`tables::TABLES`]): `samples` (partitioned by date and hour),
//! `scores`, `verdicts`, `commands`, `executions`, `window_reports`,
//! `rollout_events`, `model_versions` (by date). Rows are buffered and
//! written by [`writer::TableWriter`] (temporary name, then rename).

pub mod sql;
pub mod tables;
pub mod writer;

use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take;
use bellwether_schemas::metric::sample_columns;
use bellwether_schemas::{ControlMessage, RolloutEvent, ScoreRecord};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use writer::{HistoryError, PartitionKey, TableWriter};

/// Rows per Parquet row group (files hold up to four groups).
pub const ROW_GROUP_ROWS: usize = 131_072;

/// The history writer of one process.
pub struct History {
    root: PathBuf,
    writers: HashMap<&'static str, TableWriter>,
    samples: bool,
    scores: Vec<ScoreRecord>,
    control: Vec<ControlMessage>,
}

/// A history shared by the pipeline's parts.
pub type SharedHistory = Arc<Mutex<History>>;

impl History {
    /// Opens (creates) the history under `root`; `samples` false keeps
    /// metric samples out of it.
    pub fn open(root: &Path, samples: bool) -> Result<History, HistoryError> {
        std::fs::create_dir_all(root).map_err(|e| HistoryError::Write {
            path: root.to_path_buf(),
            reason: e.to_string(),
        })?;
        let run = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let writers = tables::TABLES
            .iter()
            .map(|&name| {
                let w = TableWriter::new(root, name, tables::schema(name), ROW_GROUP_ROWS, &run);
                (name, w)
            })
            .collect();
        Ok(History {
            root: root.to_path_buf(),
            writers,
            samples,
            scores: Vec::new(),
            control: Vec::new(),
        })
    }

    /// Where it writes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn writer(&mut self, table: &str) -> &mut TableWriter {
        // Every table of TABLES has a writer, made in open().
        self.writers
            .get_mut(table)
            .unwrap_or_else(|| panic!("no writer for {table}"))
    }

    /// Records metric samples (the long metric-sample schema).
    pub fn samples(&mut self, batch: &RecordBatch) -> Result<(), HistoryError> {
        if !self.samples || batch.num_rows() == 0 {
            return Ok(());
        }
        let bad = |e: &dyn std::fmt::Display| HistoryError::Rows {
            table: "samples".into(),
            reason: e.to_string(),
        };
        let cols = sample_columns(batch).map_err(|e| bad(&e))?;
        let vm_keys = UInt32Array::from(cols.vm_keys.to_vec());
        let metric_keys = UInt32Array::from(
            cols.metric_keys
                .iter()
                .map(|&k| k as u32)
                .collect::<Vec<_>>(),
        );
        let vms = take(cols.vm_names, &vm_keys, None).map_err(|e| bad(&e))?;
        let metrics = take(cols.metric_names, &metric_keys, None).map_err(|e| bad(&e))?;
        let times: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(cols.times.values().to_vec()).with_timezone("UTC"),
        );
        let values: ArrayRef = Arc::new(arrow::array::Float64Array::from(cols.values.to_vec()));
        let rows =
            RecordBatch::try_new(tables::schema("samples"), vec![times, vms, metrics, values])
                .map_err(|e| bad(&e))?;
        // Split by hour partition (one tick is usually one hour).
        let mut by_key: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
        for (i, t) in cols.times.values().iter().enumerate() {
            by_key
                .entry(PartitionKey::of(*t, true))
                .or_default()
                .push(i as u32);
        }
        if by_key.len() == 1 {
            let (key, _) = by_key.pop_first().unwrap_or_default();
            return self.writer("samples").push(key, rows);
        }
        for (key, idx) in by_key {
            let part = take_rows(&rows, &idx).map_err(|e| bad(&e))?;
            self.writer("samples").push(key, part)?;
        }
        Ok(())
    }

    /// Records a score (and its per-metric verdicts).
    pub fn score(&mut self, score: &ScoreRecord) {
        self.scores.push(score.clone());
    }

    /// Records a control-topic message.
    pub fn control(&mut self, message: &ControlMessage) {
        self.control.push(message.clone());
    }

    /// Records rollout events.
    pub fn rollout_events(&mut self, events: &[RolloutEvent]) -> Result<(), HistoryError> {
        let mut by_key: BTreeMap<PartitionKey, Vec<&RolloutEvent>> = BTreeMap::new();
        for e in events {
            by_key
                .entry(PartitionKey::of(e.time.0, false))
                .or_default()
                .push(e);
        }
        for (key, rows) in by_key {
            let batch = tables::rollout_event_rows(&rows);
            self.writer("rollout_events").push(key, batch)?;
        }
        Ok(())
    }

    /// Records the model in use.
    pub fn model_version(
        &mut self,
        forecaster: &str,
        version: &str,
        detail: &str,
    ) -> Result<(), HistoryError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let batch = tables::model_version_row(now, forecaster, version, detail);
        self.writer("model_versions")
            .push(PartitionKey::of(now, false), batch)
    }

    /// Writes everything buffered to Parquet files.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        let scores = std::mem::take(&mut self.scores);
        let mut by_key: BTreeMap<PartitionKey, Vec<&ScoreRecord>> = BTreeMap::new();
        for s in &scores {
            by_key
                .entry(PartitionKey::of(s.window_end.0, false))
                .or_default()
                .push(s);
        }
        for (key, rows) in by_key {
            let (s, v) = tables::score_rows(&rows);
            self.writer("scores").push(key.clone(), s)?;
            self.writer("verdicts").push(key, v)?;
        }
        let control = std::mem::take(&mut self.control);
        let mut by_key: BTreeMap<PartitionKey, Vec<&ControlMessage>> = BTreeMap::new();
        for m in &control {
            by_key
                .entry(PartitionKey::of(tables::control_time(m), false))
                .or_default()
                .push(m);
        }
        for (key, rows) in by_key {
            let [commands, executions, reports, events] = tables::control_rows(&rows);
            self.writer("commands").push(key.clone(), commands)?;
            self.writer("executions").push(key.clone(), executions)?;
            self.writer("window_reports").push(key.clone(), reports)?;
            self.writer("rollout_events").push(key, events)?;
        }
        for name in tables::TABLES {
            self.writer(name).flush()?;
        }
        Ok(())
    }

    /// Rows written per table so far.
    pub fn written(&self) -> Vec<(&'static str, u64)> {
        tables::TABLES
            .iter()
            .map(|&t| (t, self.writers.get(t).map_or(0, |w| w.written().0)))
            .collect()
    }
}

fn take_rows(batch: &RecordBatch, idx: &[u32]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let idx = UInt32Array::from(idx.to_vec());
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c, &idx, None))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}
