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
    /// that `bellwether demo` and `bellwether run` write; "" keeps none. Or an
    /// object store, "s3://bucket/prefix", that several `run` instances
    /// share, each writing under prefix/<instance> (credentials, region and
    /// endpoint from the AWS_* environment variables). Query it with
    /// `bellwether sql`, or over HTTP at /api/sql while `run` serves: SQL
    /// reads every instance's files as one set of tables.
    pub dir: std::path::PathBuf,
    /// This instance's name under an object-store history: its files go
    /// under <dir>/<instance>/. "" takes the host name. Letters, digits, '.',
    /// '_' and '-'; each instance of a consumer group needs its own.
    #[serde(default)]
    pub instance: String,
    /// Whether this instance records the control topic (commands,
    /// executions, window reports, rollout events, outcomes). Every instance
    /// of a consumer group reads the whole control topic: when several share
    /// an object-store history, let one record it and set false on the
    /// others, or SQL sees each message once per instance.
    #[serde(default = "yes")]
    pub record_control: bool,
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
    /// `instance`, or the host name when it is "".
    pub fn instance_name(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .map(|c| if allowed_in_instance(c) { c } else { '-' })
            .collect();
        if host.is_empty() {
            "bellwether".into()
        } else {
            host
        }
    }

    /// Checks intervals and compaction: the error names the key.
    pub fn check(&self) -> Result<(), Problem> {
        if is_url(&self.dir) {
            check_url(&self.dir.to_string_lossy())?;
        }
        if !self.instance.chars().all(allowed_in_instance)
            || self.instance == "."
            || self.instance == ".."
        {
            return Err(Problem::new(
                "history.instance",
                "may hold letters, digits, '.', '_' and '-' only",
            ));
        }
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

fn yes() -> bool {
    true
}

fn allowed_in_instance(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Whether `dir` names an object store (`s3://…`) rather than a folder.
pub fn is_url(dir: &std::path::Path) -> bool {
    dir.to_str().is_some_and(|s| s.contains("://"))
}

/// The bucket and prefix an object-store URL names (`s3://bucket/prefix`),
/// or why it is not one this build writes to.
pub fn bucket_and_prefix(url: &str) -> Result<(&str, &str), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or((url, ""));
    if scheme != "s3" {
        return Err(format!(
            "history on {scheme}:// is not supported; use a folder or s3://bucket/prefix"
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("names no bucket (s3://bucket/prefix)".into());
    }
    Ok((bucket, prefix.trim_matches('/')))
}

fn check_url(url: &str) -> Result<(), Problem> {
    bucket_and_prefix(url)
        .map(|_| ())
        .map_err(|reason| Problem::new("history.dir", format!("{url}: {reason}")))
}
