"""Times the history queries in DuckDB, for `scripts/bench-history`.

Usage: duckdb_queries.py HISTORY_DIR QUERIES_FILE RUNS
Registers each table as a view over its hive-partitioned Parquet files (the
names the queries use), runs each query once to warm up, then RUNS times,
and prints one JSON line per query: rows, median and best seconds.
"""
import json
import pathlib
import statistics
import sys
import time

import duckdb


def queries(path):
    text = "\n".join(
        line for line in pathlib.Path(path).read_text().splitlines()
        if not line.strip().startswith("--")
    )
    return [q.strip() for q in text.split(";") if q.strip()]


def main():
    root, query_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    con = duckdb.connect()
    for table in sorted(p.name for p in pathlib.Path(root).iterdir() if p.is_dir()):
        glob = f"{root}/{table}/**/*.parquet"
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
        )
    for i, q in enumerate(queries(query_file), start=1):
        rows = len(con.execute(q).fetchall())
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(q).fetchall()
            times.append(time.perf_counter() - start)
        print(json.dumps({"query": i, "rows": rows, "median_s": statistics.median(times), "best_s": min(times)}))


if __name__ == "__main__":
    main()
