//! Bellwether's history: everything bellwether sees and decides, as Parquet tables
//! under one folder or object-store prefix ([`store`]), for SQL ([`sql`])
//! and for retraining.
//!
//! Tables ([`tables::TABLES`]): `samples` (partitioned by date and hour),
//! `scores`, `verdicts`, `commands`, `executions`, `window_reports`,
//! `rollout_events`, `model_versions` (by date). Rows are buffered and
//! written by [`writer::TableWriter`] (temporary name, then rename).

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub(crate) mod downsample;
pub mod maintenance;
mod seen;
pub mod sql;
pub mod sql_config;
#[cfg(feature = "sql")]
mod sql_engine;
#[cfg(feature = "sql")]
pub(crate) mod sql_functions;
#[cfg(feature = "sql")]
pub(crate) mod sql_guard;
pub mod store;
pub mod tables;
pub mod writer;

use crate::config::{HistoryConfig, SampleRetention};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, take};
use bellwether_schemas::metric::sample_columns;
use bellwether_schemas::{ControlMessage, RolloutEvent, ScoreRecord};
use checkpoint::Checkpoint;
use downsample::Downsampler;
use seen::SeenSamples;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use store::Root;
use writer::{HistoryError, PartitionKey, TableWriter};

/// Rows per Parquet row group (a written file holds up to two, a merged one up to eight).
pub const ROW_GROUP_ROWS: usize = 131_072;

/// What a history keeps, and whether it resumes an earlier one.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Metric samples kept.
    pub samples: SampleRetention,
    /// Downsampling rule (with `SampleRetention::Downsampled`): bucket
    /// width, lateness after which a bucket closes, aggregates.
    pub downsample_ms: i64,
    /// Samples this late after their bucket's end are not waited for.
    pub lateness_ms: i64,
    /// The aggregate of a bucket.
    pub aggregate: crate::config::Aggregate,
    /// Per-metric aggregates.
    pub per_metric: HashMap<String, crate::config::Aggregate>,
    /// Skip what the checkpoint says is already written (a restarted
    /// `bellwether run` replaying its input); the demo, a new simulation
    /// each time, does not.
    pub resume: bool,
    /// This instance's prefix under an object-store history (unused for a
    /// folder).
    pub instance: String,
    /// Record the control topic's messages ([`History::control`]).
    pub record_control: bool,
}

impl HistoryOptions {
    /// The options of `config`; `lateness_ms` is the scorer's allowed lateness.
    pub fn from_config(config: &HistoryConfig, lateness_ms: i64, resume: bool) -> HistoryOptions {
        HistoryOptions {
            samples: config.samples,
            downsample_ms: config.downsample_secs as i64 * 1000,
            lateness_ms,
            aggregate: config.downsample_aggregate,
            per_metric: config
                .downsample_per_metric
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            resume,
            instance: config.instance_name(),
            record_control: config.record_control,
        }
    }
}

/// The file marking a folder a demo wrote (the next demo empties it).
pub const DEMO_MARKER: &str = "_demo";

/// The history writer of one process.
pub struct History {
    root: Arc<Root>,
    writers: HashMap<&'static str, TableWriter>,
    samples: SampleRetention,
    record_control: bool,
    downsampler: Option<Downsampler>,
    scores: Vec<ScoreRecord>,
    control: Vec<ControlMessage>,
    /// What an earlier run wrote (skipped when resuming).
    floor: Checkpoint,
    /// What this one has written, or will have at its next flush.
    progress: Checkpoint,
    /// Per VM and metric: samples before this time were taken in. A VM's
    /// samples of one metric arrive in time order (Kafka keeps a key's
    /// messages in order), so an older one is a replay, not news.
    seen: SeenSamples,
    events_at_floor: usize,
    /// Checkpoints saved by this writer.
    checkpoints: u64,
    /// Held while it writes: one writer per folder (an object store's
    /// instances each write their own prefix).
    _lock: Option<std::fs::File>,
}

/// A history shared by the pipeline's parts.
pub type SharedHistory = Arc<Mutex<History>>;

impl History {
    /// Opens (creates) the history under `dir`: a folder, or this
    /// instance's prefix (`options.instance`) under an object-store URL.
    /// Files an earlier run wrote after its last checkpoint are deleted
    /// (they are replayed).
    pub fn open(dir: &Path, options: HistoryOptions) -> Result<History, HistoryError> {
        let root = Root::open(dir, &options.instance)?;
        let lock = match &root {
            Root::Folder(dir) => Some(Self::lock(dir)?),
            Root::Store(_) => None,
        };
        Self::open_locked(Arc::new(root), options, lock)
    }

    /// Opens the history under `root` (a folder without its writer's lock:
    /// for tests and tools that own the folder).
    pub fn open_root(root: Root, options: HistoryOptions) -> Result<History, HistoryError> {
        Self::open_locked(Arc::new(root), options, None)
    }

    /// Opens `root` for a demo, afresh: a folder an earlier demo wrote is
    /// emptied first (a second demo does not append a second copy of the
    /// same simulated days). A folder with history a demo did not write
    /// (`bellwether run`'s) is refused, never emptied.
    pub fn open_afresh(root: &Path, options: HistoryOptions) -> Result<History, HistoryError> {
        if store::is_url(root) {
            return Err(HistoryError::Write {
                path: root.to_path_buf(),
                reason: "a demo writes its history to a local folder (--history DIR), \
                         not an object store"
                    .into(),
            });
        }
        let lock = Self::lock(root)?;
        let marker = root.join(DEMO_MARKER);
        let used = tables::TABLES.iter().any(|t| root.join(t).exists());
        if used && !marker.exists() {
            return Err(HistoryError::Write {
                path: root.to_path_buf(),
                reason: "this folder holds history a demo did not write; a demo starts its \
                         folder afresh, so give it another (--history DIR) or --no-history"
                    .into(),
            });
        }
        let write_err = |path: &Path, e: std::io::Error| HistoryError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        for table in tables::TABLES {
            let dir = root.join(table);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| write_err(&dir, e))?;
            }
        }
        let checkpoint = root.join(checkpoint::FILE);
        if checkpoint.exists() {
            std::fs::remove_file(&checkpoint).map_err(|e| write_err(&checkpoint, e))?;
        }
        std::fs::write(
            &marker,
            "written by `bellwether demo`, emptied by the next one\n",
        )
        .map_err(|e| write_err(&marker, e))?;
        Self::open_locked(
            Arc::new(Root::Folder(root.to_path_buf())),
            options,
            Some(lock),
        )
    }

    /// Creates `root` and takes its writer's lock.
    fn lock(root: &Path) -> Result<std::fs::File, HistoryError> {
        std::fs::create_dir_all(root).map_err(|e| HistoryError::Write {
            path: root.to_path_buf(),
            reason: e.to_string(),
        })?;
        let lock_path = root.join("_writer.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| HistoryError::Write {
            path: lock_path.clone(),
            reason: e.to_string(),
        })?;
        if lock.try_lock().is_err() {
            return Err(HistoryError::Write {
                path: root.to_path_buf(),
                reason: "another bellwether process is writing this history folder \
                         (one writer per folder: give each instance its own history.dir)"
                    .into(),
            });
        }
        Ok(lock)
    }

    fn open_locked(
        root: Arc<Root>,
        options: HistoryOptions,
        lock: Option<std::fs::File>,
    ) -> Result<History, HistoryError> {
        let earlier = Checkpoint::load(&root)?.unwrap_or_default();
        if !earlier.run.is_empty() {
            for table in tables::TABLES {
                let committed = earlier.committed.get(table).copied().unwrap_or(0);
                checkpoint::remove_uncommitted(&root, table, &earlier.run, committed);
            }
        }
        // File names carry the run: a new run must never reuse the last
        // one's name (its files would be overwritten).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let run = now
            .max(earlier.run.parse::<u128>().map_or(0, |r| r + 1))
            .to_string();
        let writers = tables::TABLES
            .iter()
            .map(|&name| {
                let w = TableWriter::new(&root, name, tables::schema(name), ROW_GROUP_ROWS, &run);
                (name, w)
            })
            .collect();
        let mut floor = if options.resume {
            earlier
        } else {
            Checkpoint::default()
        };
        // Samples already taken in, per VM and metric: raw ones resume from
        // the checkpoint (kept in `seen` from here on); downsampled ones
        // from the first open bucket.
        let samples_through = std::mem::take(&mut floor.samples_through);
        let seen = if options.samples == SampleRetention::Raw {
            SeenSamples::from_checkpoint(samples_through)
        } else {
            SeenSamples::default()
        };
        // Progress starts where the earlier run stopped (when resuming): a
        // run that writes nothing new must not forget what that one wrote.
        let progress = Checkpoint {
            run,
            committed: BTreeMap::new(),
            ..floor.clone()
        };
        let downsampler = (options.samples == SampleRetention::Downsampled).then(|| {
            Downsampler::new(
                options.downsample_ms,
                options.lateness_ms,
                options.aggregate,
                options.per_metric.clone(),
                floor.buckets_through,
            )
        });
        progress.save(&root)?;
        Ok(History {
            root,
            writers,
            samples: options.samples,
            record_control: options.record_control,
            downsampler,
            scores: Vec::new(),
            control: Vec::new(),
            floor,
            progress,
            seen,
            events_at_floor: 0,
            checkpoints: 0,
            _lock: lock,
        })
    }

    /// Where it writes.
    pub fn root(&self) -> &Arc<Root> {
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
        if self.samples == SampleRetention::None || batch.num_rows() == 0 {
            return Ok(());
        }
        let bad = |e: &dyn std::fmt::Display| HistoryError::Rows {
            table: "samples".into(),
            reason: e.to_string(),
        };
        let cols = sample_columns(batch).map_err(|e| bad(&e))?;
        // Replays (a restart's, or a rebalance's within a run) are skipped:
        // per VM and metric, only samples past the newest taken in pass.
        let vm_slots: Vec<u32> = (0..cols.vm_names.len())
            .map(|i| self.seen.vm_slot(cols.vm_names.value(i)))
            .collect();
        let metric_columns: Vec<u32> = (0..cols.metric_names.len())
            .map(|i| self.seen.metric_column(cols.metric_names.value(i)))
            .collect();
        let times = cols.times.values();
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let slot = vm_slots[cols.vm_keys[i] as usize];
                let column = metric_columns[cols.metric_keys[i] as usize];
                let news = times[i] >= self.seen.get(slot, column);
                if news {
                    self.seen.set(slot, column, times[i] + 1);
                }
                Some(news)
            })
            .collect();
        if let Some(d) = self.downsampler.as_mut() {
            for i in (0..batch.num_rows()).filter(|&i| keep.value(i)) {
                let vm = self.seen.vm_name(vm_slots[cols.vm_keys[i] as usize]);
                let metric = self
                    .seen
                    .metric_name(metric_columns[cols.metric_keys[i] as usize]);
                d.add(times[i], vm, metric, cols.values[i]);
            }
            return Ok(());
        }
        let vm_keys = UInt32Array::from(cols.vm_keys.to_vec());
        let metric_keys = UInt32Array::from(
            cols.metric_keys
                .iter()
                .map(|&k| k as u32)
                .collect::<Vec<_>>(),
        );
        let vms = take(cols.vm_names, &vm_keys, None).map_err(|e| bad(&e))?;
        let metrics = take(cols.metric_names, &metric_keys, None).map_err(|e| bad(&e))?;
        let time_col: ArrayRef = Arc::new(TimestampMillisecondArray::from(times.to_vec()));
        let values: ArrayRef = Arc::new(Float64Array::from(cols.values.to_vec()));
        let rows = RecordBatch::try_new(
            tables::schema("samples"),
            vec![time_col, vms, metrics, values],
        )
        .map_err(|e| bad(&e))?;
        let rows = if keep.true_count() == rows.num_rows() {
            rows
        } else {
            filter_record_batch(&rows, &keep).map_err(|e| bad(&e))?
        };
        self.push_samples(rows)
    }

    /// Pushes sample rows to their hour partitions.
    fn push_samples(&mut self, rows: RecordBatch) -> Result<(), HistoryError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let bad = |e: &dyn std::fmt::Display| HistoryError::Rows {
            table: "samples".into(),
            reason: e.to_string(),
        };
        let times = rows
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| bad(&"time is not a timestamp"))?
            .values()
            .to_vec();
        // Split by hour partition (one tick is usually one hour).
        let mut by_hour: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, t) in times.iter().enumerate() {
            by_hour
                .entry(t.div_euclid(bellwether_schemas::EventTime::HOUR_MS))
                .or_default()
                .push(i as u32);
        }
        let mut by_key: BTreeMap<PartitionKey, Vec<u32>> = by_hour
            .into_iter()
            .map(|(hour, rows)| {
                (
                    PartitionKey::of(hour * bellwether_schemas::EventTime::HOUR_MS, true),
                    rows,
                )
            })
            .collect();
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

    /// Event time reached `watermark` (ms): downsampled buckets it left
    /// behind are written.
    pub fn advance(&mut self, watermark: Option<i64>) -> Result<(), HistoryError> {
        if watermark.is_none() {
            return Ok(());
        }
        self.close_buckets(watermark)
    }

    fn close_buckets(&mut self, watermark: Option<i64>) -> Result<(), HistoryError> {
        let Some(d) = self.downsampler.as_mut() else {
            return Ok(());
        };
        let rows = d.close(watermark);
        self.progress.buckets_through = d.closed_through();
        if rows.is_empty() {
            return Ok(());
        }
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ));
        let vms: ArrayRef = Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.1.as_ref()),
        ));
        let metrics: ArrayRef = Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.2.as_ref()),
        ));
        let values: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3)));
        let batch =
            RecordBatch::try_new(tables::schema("samples"), vec![times, vms, metrics, values])
                .map_err(|e| HistoryError::Rows {
                    table: "samples".into(),
                    reason: e.to_string(),
                })?;
        self.push_samples(batch)
    }

    /// Samples not written because their downsampled bucket was already.
    pub fn late_samples(&self) -> u64 {
        self.downsampler.as_ref().map_or(0, |d| d.late())
    }

    /// Records a score (and its per-metric verdicts).
    pub fn score(&mut self, score: &ScoreRecord) {
        let end = score.window_end.0;
        // Windows an earlier run wrote, or older than this one's latest.
        if self.floor.scores_through.is_some_and(|f| end <= f)
            || self.progress.scores_through.is_some_and(|t| end < t)
        {
            return;
        }
        self.progress.scores_through =
            Some(self.progress.scores_through.map_or(end, |t| t.max(end)));
        self.scores.push(score.clone());
    }

    /// Records a control-topic message; `offset`, its offset in the control
    /// topic if it came from Kafka.
    pub fn control(&mut self, message: &ControlMessage, offset: Option<i64>) {
        if !self.record_control {
            return;
        }
        if let Some(offset) = offset {
            if self
                .progress
                .control_next_offset
                .is_some_and(|f| offset < f)
            {
                return;
            }
            let next = offset + 1;
            self.progress.control_next_offset = Some(
                self.progress
                    .control_next_offset
                    .map_or(next, |n| n.max(next)),
            );
        }
        self.control.push(message.clone());
    }

    /// Records rollout events (an actor's audit trail, in order).
    pub fn rollout_events(&mut self, events: &[RolloutEvent]) -> Result<(), HistoryError> {
        let mut by_key: BTreeMap<PartitionKey, Vec<&RolloutEvent>> = BTreeMap::new();
        for e in events {
            let t = e.time.0;
            match self.progress.events_through {
                Some((latest, n)) if t == latest => self.progress.events_through = Some((t, n + 1)),
                Some((latest, _)) if t < latest => {}
                _ => self.progress.events_through = Some((t, 1)),
            }
            if let Some((floor, n)) = self.floor.events_through {
                if t < floor {
                    continue;
                }
                if t == floor && self.events_at_floor < n {
                    self.events_at_floor += 1;
                    continue;
                }
            }
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
            let [commands, executions, reports, events, outcomes] = tables::control_rows(&rows);
            self.writer("commands").push(key.clone(), commands)?;
            self.writer("executions").push(key.clone(), executions)?;
            self.writer("window_reports").push(key.clone(), reports)?;
            self.writer("rollout_events").push(key.clone(), events)?;
            self.writer("outcomes").push(key, outcomes)?;
        }
        for name in tables::TABLES {
            self.writer(name).flush()?;
        }
        if self.samples == SampleRetention::Raw {
            self.checkpoints += 1;
            let name = checkpoint::save_samples(
                &self.root,
                &self.progress.run,
                self.checkpoints,
                self.seen.iter(),
            )?;
            self.progress.samples_file = Some(name);
        }
        for name in tables::TABLES {
            let seq = self.writers.get(name).map_or(0, |w| w.seq());
            self.progress.committed.insert(name.to_string(), seq);
        }
        self.progress.save(&self.root)?;
        if let Some(name) = &self.progress.samples_file {
            checkpoint::remove_other_samples_files(&self.root, name);
        }
        Ok(())
    }

    /// Closes every open downsampled bucket and flushes: the end of a
    /// stream that will not resume (the demo). `bellwether run` only
    /// flushes, leaving open buckets to the replay after a restart.
    pub fn finish(&mut self) -> Result<(), HistoryError> {
        self.close_buckets(None)?;
        self.flush()
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

/// Test support shared by the history's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::store::Root;
    use arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Every sample row in the Parquet files below `rel` of `root`, sorted.
    pub(crate) fn sample_rows(root: &Root, rel: &str) -> Vec<(i64, String, String, f64)> {
        let mut out = Vec::new();
        for path in root.list(rel).unwrap() {
            if !path.ends_with(".parquet") {
                continue;
            }
            let file = root.get(&path).unwrap().unwrap();
            for b in ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
            {
                let b = b.unwrap();
                let t = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .unwrap();
                let vm = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                let m = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
                let v = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
                for i in 0..b.num_rows() {
                    out.push((
                        t.value(i),
                        vm.value(i).into(),
                        m.value(i).into(),
                        v.value(i),
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.partial_cmp(b).unwrap());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::sample_rows;
    use super::*;
    use crate::config::Aggregate;
    use arrow::array::{DictionaryArray, StringArray};
    use arrow::datatypes::{UInt16Type, UInt32Type};

    /// One minute of samples of 3 VMs × 2 metrics at minute `m`.
    fn minute(m: i64) -> RecordBatch {
        let mut vms = Vec::new();
        let mut metrics = Vec::new();
        let mut times = Vec::new();
        let mut values = Vec::new();
        for vm in 0..3u32 {
            for metric in 0..2u16 {
                vms.push(vm);
                metrics.push(metric);
                times.push(m * 60_000);
                values.push((m * 10 + vm as i64) as f64 + metric as f64 / 10.0);
            }
        }
        let vms = DictionaryArray::<UInt32Type>::try_new(
            vms.into(),
            Arc::new(StringArray::from(vec!["vm-a", "vm-b", "vm-c"])),
        )
        .unwrap();
        let metrics = DictionaryArray::<UInt16Type>::try_new(
            metrics.into(),
            Arc::new(StringArray::from(vec!["cpu", "err"])),
        )
        .unwrap();
        bellwether_schemas::metric::sample_batch(vms, times, metrics, values).unwrap()
    }

    fn options(samples: SampleRetention) -> HistoryOptions {
        HistoryOptions {
            samples,
            downsample_ms: 300_000,
            lateness_ms: 60_000,
            aggregate: Aggregate::Mean,
            per_metric: HashMap::from([("err".to_string(), Aggregate::Max)]),
            resume: true,
            instance: "instance-1".into(),
            record_control: true,
        }
    }

    #[test]
    fn a_second_demo_starts_its_folder_afresh_and_a_run_folder_is_refused() {
        let demo = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let mut h = History::open_afresh(demo.path(), options(SampleRetention::Raw)).unwrap();
            for m in 0..10 {
                h.samples(&minute(m)).unwrap();
            }
            h.finish().unwrap();
        }
        // The second demo's rows, once: three VMs and two metrics a minute.
        assert_eq!(
            sample_rows(&Root::Folder(demo.path().into()), "samples").len(),
            10 * 3 * 2
        );

        let run = tempfile::tempdir().unwrap();
        let mut h = History::open(run.path(), options(SampleRetention::Raw)).unwrap();
        h.samples(&minute(0)).unwrap();
        h.finish().unwrap();
        drop(h);
        let err = History::open_afresh(run.path(), options(SampleRetention::Raw))
            .err()
            .expect("a run's folder refused")
            .to_string();
        assert!(err.contains("--history DIR"), "{err}");
        assert_eq!(
            sample_rows(&Root::Folder(run.path().into()), "samples").len(),
            3 * 2
        );
    }

    /// Writes minutes 0..40 straight through, and again with a crash: the
    /// first writer flushes at minute 17, takes in 8 more minutes (a file
    /// of them written, no checkpoint) and dies; the second replays from
    /// minute 5 on, as `run` replays its input. Both histories must hold
    /// the same rows, each once.
    fn crash_and_replay(samples: SampleRetention) {
        let straight = tempfile::tempdir().unwrap();
        let mut h = History::open(straight.path(), options(samples)).unwrap();
        for m in 0..40 {
            h.samples(&minute(m)).unwrap();
            h.advance(Some(m * 60_000)).unwrap();
        }
        h.finish().unwrap();
        let expected = sample_rows(&Root::Folder(straight.path().into()), "samples");

        let crashed = tempfile::tempdir().unwrap();
        let store = store::Location::in_memory("history");
        let roots: [&dyn Fn() -> Root; 2] = [&|| Root::Folder(crashed.path().into()), &|| {
            Root::in_store(&store, "instance-1").unwrap()
        }];
        for root in roots {
            let mut h = History::open_root(root(), options(samples)).unwrap();
            for m in 0..17 {
                h.samples(&minute(m)).unwrap();
                h.advance(Some(m * 60_000)).unwrap();
            }
            h.flush().unwrap();
            for m in 17..25 {
                h.samples(&minute(m)).unwrap();
                h.advance(Some(m * 60_000)).unwrap();
            }
            // Written but not committed: the crash comes before the checkpoint.
            for w in h.writers.values_mut() {
                w.flush().unwrap();
            }
            drop(h);
            let mut h = History::open_root(root(), options(samples)).unwrap();
            for m in 5..40 {
                h.samples(&minute(m)).unwrap();
                h.advance(Some(m * 60_000)).unwrap();
            }
            h.finish().unwrap();
            assert_eq!(sample_rows(&root(), "samples"), expected);
        }
    }

    #[test]
    fn raw_samples_are_written_once_across_a_crash_and_replay() {
        crash_and_replay(SampleRetention::Raw);
    }

    #[test]
    fn downsampled_buckets_are_written_once_across_a_crash_and_replay() {
        crash_and_replay(SampleRetention::Downsampled);
    }

    #[test]
    fn downsampled_rows_hold_each_metrics_aggregate() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path(), options(SampleRetention::Downsampled)).unwrap();
        for m in 0..10 {
            h.samples(&minute(m)).unwrap();
        }
        h.finish().unwrap();
        let got = sample_rows(&Root::Folder(dir.path().into()), "samples");
        // 2 buckets × 3 VMs × 2 metrics; vm-a's cpu in minutes 0-4 is
        // 0, 10, 20, 30, 40 (mean 20); its err is 0.1 + the same (max 40.1).
        assert_eq!(got.len(), 12);
        assert_eq!(got[0], (0, "vm-a".into(), "cpu".into(), 20.0));
        assert_eq!(got[1], (0, "vm-a".into(), "err".into(), 40.1));
    }
}
