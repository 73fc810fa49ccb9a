//! Training data: per-VM window means of the scored metrics, summed from
//! samples wherever they come from (a CSV file here; the simulated fleet
//! or a Parquet history in the `bellwether` package).

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
