//! Config of the Parquet history: `[history]`.

use bellwether_schemas::check::{Problem, positive};
use serde::{Deserialize, Serialize};

/// Samples kept in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SampleRetention {
    /// Every sample.
    Raw,
    /// One row per VM, metric and `downsample_secs` bucket, holding the
    /// bucket's aggregate (`downsample_aggregate`, per metric overridable).
    Downsampled,
    /// None (scores, verdicts, commands and events are still kept).
    None,
}

/// How a downsampled bucket's samples become its one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The mean.
    Mean,
    /// The smallest sample.
    Min,
    /// The largest sample.
    Max,
    /// The latest sample (by event time).
    Last,
}

/// History in Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Folder of the Parquet history tables (samples, scores, verdicts,
    /// commands, executions, window_reports, rollout_events, model_versions)
    /// that `bellwether demo` and `bellwether run` write; "" keeps none. Query
    /// it with `bellwether sql`, or over HTTP at /api/sql while `run` serves.
    pub dir: std::path::PathBuf,
    /// "raw": every metric sample; "downsampled": one row per VM, metric and
    /// bucket of downsample_secs; "none": no samples (the rest is still kept).
    pub samples: SampleRetention,
    /// Bucket width of downsampled samples, in seconds.
    pub downsample_secs: u64,
    /// Aggregate of a downsampled bucket.
    pub downsample_aggregate: Aggregate,
    /// Per-metric aggregates overriding `downsample_aggregate`.
    #[serde(default)]
    pub downsample_per_metric: std::collections::BTreeMap<String, Aggregate>,
    /// `bellwether run` writes buffered rows at least this often (seconds).
    pub flush_secs: u64,
    /// Partitions whose date is more than this many days before today are
    /// deleted; 0 keeps everything.
    pub retention_days: u64,
    /// In the background, a partition with this many files or more is merged
    /// into one file, checked every maintenance_secs.
    pub compact_min_files: usize,
    /// Seconds between two background compaction and retention passes.
    pub maintenance_secs: u64,
}

impl HistoryConfig {
    /// Checks intervals and compaction: the error names the key.
    pub fn check(&self) -> Result<(), Problem> {
        positive("history.flush_secs", self.flush_secs as f64)?;
        positive("history.maintenance_secs", self.maintenance_secs as f64)?;
        if self.downsample_secs == 0 || 86_400 % self.downsample_secs != 0 {
            return Err(Problem::new(
                "history.downsample_secs",
                "must divide a day (e.g. 60, 300, 3600)",
            ));
        }
        if self.compact_min_files < 2 {
            return Err(Problem::new(
                "history.compact_min_files",
                "must be at least 2 (merging one file gains nothing)",
            ));
        }
        Ok(())
    }
}
