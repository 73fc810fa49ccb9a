//! Training data: per-VM window means of the scored metrics, from the
//! simulated fleet's unpatched history, a Parquet history folder or a CSV
//! file of samples.

use crate::config::Config;
use crate::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::EventTime;
use bellwether_schemas::metric::sample_columns;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Training data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A CSV line is malformed.
    #[error("{file}:{line}: {reason}")]
    Csv {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The history could not be queried.
    #[error("history: {0}")]
    History(String),
    /// Nothing to train on.
    #[error("no training data: {0}")]
    Empty(String),
}

/// Window means of a set of VMs: `vm × window × metric`, NaN where a VM
/// has no data for a metric in a window.
#[derive(Debug, Clone)]
pub struct TrainingSeries {
    /// Metrics, in value order.
    pub metrics: Vec<String>,
    /// Window width, ms.
    pub window_ms: i64,
    /// Start of the first window, ms since the epoch.
    pub start_ms: i64,
    /// Windows per VM.
    pub windows: usize,
    /// VM ids.
    pub vms: Vec<String>,
    /// The means.
    pub values: Vec<f64>,
    /// Where the data came from, for the bundle.
    pub source: String,
}

impl TrainingSeries {
    /// The means of VM `vm` in window `w`.
    pub fn at(&self, vm: usize, w: usize) -> &[f64] {
        let m = self.metrics.len();
        &self.values[(vm * self.windows + w) * m..][..m]
    }

    /// Start of window `w`, ms.
    pub fn window_start(&self, w: usize) -> i64 {
        self.start_ms + w as i64 * self.window_ms
    }
}

/// Sums samples into windows.
#[derive(Debug)]
pub struct WindowMeans {
    metrics: Vec<String>,
    metric_index: HashMap<String, usize>,
    window_ms: i64,
    vms: Vec<String>,
    vm_index: HashMap<String, usize>,
    cells: BTreeMap<(usize, i64), (Vec<f64>, Vec<u32>)>,
}

impl WindowMeans {
    /// An empty accumulator for `metrics` and windows of `window_ms`.
    pub fn new(metrics: &[String], window_ms: i64) -> WindowMeans {
        WindowMeans {
            metrics: metrics.to_vec(),
            metric_index: metrics
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), i))
                .collect(),
            window_ms,
            vms: Vec::new(),
            vm_index: HashMap::new(),
            cells: BTreeMap::new(),
        }
    }

    /// Adds one sample; metrics that are not scored are ignored.
    pub fn add(&mut self, vm: &str, time_ms: i64, metric: &str, value: f64) {
        let Some(&m) = self.metric_index.get(metric) else {
            return;
        };
        if !value.is_finite() {
            return;
        }
        let v = match self.vm_index.get(vm) {
            Some(&v) => v,
            None => {
                self.vms.push(vm.to_string());
                self.vm_index.insert(vm.to_string(), self.vms.len() - 1);
                self.vms.len() - 1
            }
        };
        let n = self.metrics.len();
        let cell = self
            .cells
            .entry((v, time_ms.div_euclid(self.window_ms)))
            .or_insert_with(|| (vec![0.0; n], vec![0; n]));
        cell.0[m] += value;
        cell.1[m] += 1;
    }

    /// The window means, every VM over the same span of windows.
    pub fn finish(self, source: String) -> Result<TrainingSeries, DataError> {
        let (Some(first), Some(last)) = (
            self.cells.keys().map(|k| k.1).min(),
            self.cells.keys().map(|k| k.1).max(),
        ) else {
            return Err(DataError::Empty(format!(
                "{source} holds no samples of the scored metrics {:?}",
                self.metrics
            )));
        };
        let windows = (last - first + 1) as usize;
        let m = self.metrics.len();
        let mut values = vec![f64::NAN; self.vms.len() * windows * m];
        for ((vm, w), (sums, counts)) in self.cells {
            let at = (vm * windows + (w - first) as usize) * m;
            for i in 0..m {
                if counts[i] > 0 {
                    values[at + i] = sums[i] / counts[i] as f64;
                }
            }
        }
        Ok(TrainingSeries {
            metrics: self.metrics,
            window_ms: self.window_ms,
            start_ms: first * self.window_ms,
            windows,
            vms: self.vms,
            values,
            source,
        })
    }
}

/// The unpatched history of a simulated fleet: `config`'s fleet with
/// `seed`, sampled for `hours`.
pub fn from_simulator(config: &Config, seed: u64, hours: f64) -> Result<TrainingSeries, DataError> {
    let mut config = config.clone();
    config.simulation.seed = seed;
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let metrics = config.thresholds.metrics.clone();
    let mut means = WindowMeans::new(&metrics, config.window.slide_secs as i64 * 1000);
    let interval = config.fleet.sample_interval_secs as i64 * 1000;
    let start = crate::simulator::DEMO_START.0 - (hours * 3_600_000.0) as i64;
    let mut now = start;
    while now < crate::simulator::DEMO_START.0 {
        for batch in fleet.tick(EventTime(now)) {
            let c = sample_columns(&batch).map_err(|e| DataError::History(e.to_string()))?;
            for row in 0..c.values.len() {
                means.add(
                    c.vm_names.value(c.vm_keys[row] as usize),
                    c.times.value(row),
                    c.metric_names.value(c.metric_keys[row] as usize),
                    c.values[row],
                );
            }
        }
        now += interval;
    }
    means.finish(format!(
        "simulator: {} VMs, seed {seed}, {hours} h before {}",
        config.fleet.vms,
        chrono::DateTime::from_timestamp_millis(crate::simulator::DEMO_START.0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    ))
}

/// Samples from a CSV file with the header `timestamp,vm_id,metric,value`
/// (timestamps RFC 3339 or milliseconds since the epoch).
pub fn from_csv(
    path: &Path,
    metrics: &[String],
    window_ms: i64,
) -> Result<TrainingSeries, DataError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: file.clone(),
        source,
    })?;
    let bad = |line: usize, reason: String| DataError::Csv {
        file: file.clone(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "timestamp,vm_id,metric,value" => {}
        other => {
            return Err(bad(
                1,
                format!(
                    "expected the header `timestamp,vm_id,metric,value`, found `{}`",
                    other.map(|(_, h)| h).unwrap_or("")
                ),
            ));
        }
    }
    let mut means = WindowMeans::new(metrics, window_ms);
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [time, vm, metric, value] = fields[..] else {
            return Err(bad(
                i + 1,
                format!("expected 4 fields, found {}", fields.len()),
            ));
        };
        let time_ms = match time.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => chrono::DateTime::parse_from_rfc3339(time)
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(i + 1, format!("timestamp `{time}`: {e}")))?,
        };
        let value: f64 = value
            .parse()
            .map_err(|e| bad(i + 1, format!("value `{value}`: {e}")))?;
        means.add(vm, time_ms, metric, value);
    }
    means.finish(format!("csv: {file}"))
}

/// Samples from a Parquet history folder, each VM's up to its first patch.
pub fn from_history(
    root: &Path,
    metrics: &[String],
    window_ms: i64,
) -> Result<TrainingSeries, DataError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    let query = "SELECT s.vm_id, CAST(s.time AS BIGINT) AS t, s.metric, s.value \
                 FROM samples s LEFT JOIN (SELECT vm_id, min(executed_at) AS patched_at \
                 FROM executions WHERE action = 'patch' GROUP BY vm_id) p ON s.vm_id = p.vm_id \
                 WHERE p.patched_at IS NULL OR s.time < p.patched_at";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| DataError::History(e.to_string()))?;
    let batches = runtime
        .block_on(async {
            let ctx = crate::history::sql::context(root).await?;
            crate::history::sql::query(&ctx, query).await
        })
        .map_err(|e| DataError::History(format!("{}: {e}", root.display())))?;
    let mut means = WindowMeans::new(metrics, window_ms);
    for batch in &batches {
        let vm = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| DataError::History(e.to_string()))?;
        let metric = arrow::compute::cast(batch.column(2), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| DataError::History(e.to_string()))?;
        let (vm, metric) = (vm.as_string::<i32>(), metric.as_string::<i32>());
        let t = batch.column(1).as_primitive::<Int64Type>();
        let v = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            if vm.is_valid(row) && metric.is_valid(row) && t.is_valid(row) {
                means.add(vm.value(row), t.value(row), metric.value(row), v.value(row));
            }
        }
    }
    means.finish(format!("history: {}", root.display()))
}
