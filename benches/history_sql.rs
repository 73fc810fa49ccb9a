//! SQL over the history: three typical queries (`benches/history_queries.sql`)
//! over at least 10 million sample rows, timed in bellwether's DataFusion
//! engine and, in the same run on the same files, in DuckDB (PyPI `duckdb`,
//! through `benches/duckdb_queries.py`).
//!
//! `scripts/bench-history` installs DuckDB and runs this. By hand:
//! `BELLWETHER_BENCH_PYTHON=/path/to/python-with-duckdb cargo bench --bench history_sql`.
//! The history is generated once by the demo (720 VMs) into
//! `target/bench-history` and reused; `BELLWETHER_BENCH_RUNS` sets the timed
//! runs per query (default 10, after one warm-up run).

use bellwether::config::Config;
use bellwether::demo::{DemoOptions, run_demo};
use bellwether::history::sql;
use bellwether::history::{History, HistoryOptions};
use bellwether::simulator::PatchQuality;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const MIN_ROWS: u64 = 10_000_000;

fn queries() -> Vec<String> {
    let text: String = include_str!("history_queries.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(String::from)
        .collect()
}

async fn count(root: &Path) -> u64 {
    let Ok(ctx) = sql::context(root).await else {
        return 0;
    };
    let Ok(batches) = sql::query(&ctx, "SELECT count(*) AS n FROM samples").await else {
        return 0;
    };
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0) as u64)
        })
        .unwrap_or(0)
}

fn generate(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    let mut config = Config::default_config();
    config.fleet.vms = 720;
    let options = HistoryOptions::from_config(&config.history, 120_000, false);
    let history = Arc::new(Mutex::new(History::open(root, options).unwrap()));
    let started = Instant::now();
    run_demo(
        &config,
        DemoOptions::new(PatchQuality::Good),
        None,
        Some(&history),
        &mut |_| {},
    )
    .unwrap();
    eprintln!(
        "history generated in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        root.display()
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would not run this.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs: usize = std::env::var("BELLWETHER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-history");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = rt.block_on(count(&root));
    if rows < MIN_ROWS {
        generate(&root);
        rows = rt.block_on(count(&root));
    }
    assert!(rows >= MIN_ROWS, "only {rows} sample rows generated");
    let files = bellwether::history::store::files_below(&root.join("samples"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    println!("history: {rows} sample rows in {files} Parquet files");

    let queries = queries();
    let mut ours = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let (n, times) = rt.block_on(async {
            let ctx = sql::context(&root).await.unwrap();
            let n: usize = sql::query(&ctx, q)
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            let mut times = Vec::new();
            for _ in 0..runs {
                let started = Instant::now();
                sql::query(&ctx, q).await.unwrap();
                times.push(started.elapsed().as_secs_f64());
            }
            (n, times)
        });
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        ours.push((n, median(times), best));
        println!(
            "datafusion q{}: {n} rows, median {:.1} ms, best {:.1} ms",
            i + 1,
            ours[i].1 * 1e3,
            best * 1e3
        );
    }

    let python = std::env::var("BELLWETHER_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_queries.py");
    let sql_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/history_queries.sql");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&root)
        .arg(&sql_file)
        .arg(runs.to_string())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "duckdb side failed (is duckdb installed for {python}? scripts/bench-history installs it):\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("cannot run {python}: {e}");
            return;
        }
    };
    println!("\n| query | rows | bellwether (DataFusion) median | DuckDB median | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let i = v["query"].as_u64().unwrap() as usize - 1;
        let duck = v["median_s"].as_f64().unwrap();
        let duck_rows = v["rows"].as_u64().unwrap() as usize;
        assert_eq!(duck_rows, ours[i].0, "q{} returns different rows", i + 1);
        println!(
            "| q{} | {} | {:.1} ms | {:.1} ms | {:.2}x |",
            i + 1,
            duck_rows,
            ours[i].1 * 1e3,
            duck * 1e3,
            ours[i].1 / duck
        );
    }
}
