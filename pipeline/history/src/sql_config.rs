//! `[sql]`: the bounds of a query a user sends, beside the SQL engine that
//! keeps them (a file of its own so config loading needs no DataFusion).

/// Bounds of a query a user sends (`bellwether sql`, `/api/sql`).
#[derive(
    Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// Memory a query's sorts, joins and aggregations may hold, in MB.
    #[serde(default = "default_memory_limit_mb")]
    pub memory_limit_mb: u64,
    /// Longest a query may run, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Largest result a query may return, in MB.
    #[serde(default = "default_max_result_mb")]
    pub max_result_mb: u64,
    /// Queries `/api/sql` runs at once; more are answered 503.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

/// Half a GiB: ample for the history's aggregations, far from the machine's size.
fn default_memory_limit_mb() -> u64 {
    512
}

fn default_timeout_secs() -> u64 {
    30
}

/// 64 MB of rows is more than any person or dashboard reads.
fn default_max_result_mb() -> u64 {
    64
}

/// One query per core of a two-core machine.
fn default_max_concurrent() -> usize {
    2
}

impl Default for SqlConfig {
    fn default() -> SqlConfig {
        SqlConfig {
            memory_limit_mb: default_memory_limit_mb(),
            timeout_secs: default_timeout_secs(),
            max_result_mb: default_max_result_mb(),
            max_concurrent: default_max_concurrent(),
        }
    }
}

impl SqlConfig {
    /// The first key out of range, with the reason.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let bad = |key, value: u64, max: u64| {
            (value == 0 || value > max)
                .then(|| (key, format!("{value} is not between 1 and {max}")))
        };
        bad("sql.memory_limit_mb", self.memory_limit_mb, 1 << 20)
            .or_else(|| bad("sql.timeout_secs", self.timeout_secs, 86_400))
            .or_else(|| bad("sql.max_result_mb", self.max_result_mb, 1 << 20))
            .or_else(|| bad("sql.max_concurrent", self.max_concurrent as u64, 1024))
    }
}
