"""Reads bellwether's Parquet history with pyarrow (no bellwether code) and
prints, as one JSON object, each table's row count and the rollbacks."""
import json
import sys

import pyarrow.dataset as ds

root = sys.argv[1]
tables = sys.argv[2:]
out = {"rows": {}, "rollbacks": []}
for table in tables:
    data = ds.dataset(f"{root}/{table}", format="parquet", partitioning="hive").to_table()
    out["rows"][table] = data.num_rows
    if table == "commands":
        rows = data.filter(ds.field("action") == "rollback").to_pylist()
        out["rollbacks"] = sorted([r["vm_id"], r["reason"], str(r["date"])] for r in rows)
    if table == "samples":
        # Types survive: millisecond timestamps (UTC by convention), doubles.
        out["samples_schema"] = {f.name: str(f.type) for f in data.schema}
print(json.dumps(out))
