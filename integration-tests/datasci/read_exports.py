"""Reads a visionlog export snapshot from S3 as a data scientist would: pyarrow's S3FileSystem and
duckdb's httpfs, nothing of visionlog's. Prints one JSON object: per dataset, the row counts each
reader sees, the date partitions, and a few sample values.

usage: read_exports.py ENDPOINT SNAPSHOT_URL   (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
"""
import json
import os
import sys
from urllib.parse import urlparse

import duckdb
import duckdb_extensions
import pyarrow.dataset as ds
import pyarrow.fs as pafs

endpoint, snapshot_url = sys.argv[1], sys.argv[2]
host = urlparse(endpoint).netloc
key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
snapshot = snapshot_url.removeprefix("s3://")

fs = pafs.S3FileSystem(access_key=key, secret_key=secret, endpoint_override=host, scheme="http", region="us-east-1")
with fs.open_input_stream(f"{snapshot}/dataset_card.json") as f:
    card = json.loads(f.read())

con = duckdb.connect()
duckdb_extensions.import_extension("httpfs", con=con)
for setting, value in [("s3_endpoint", host), ("s3_url_style", "path"), ("s3_use_ssl", False),
                       ("s3_access_key_id", key), ("s3_secret_access_key", secret), ("s3_region", "us-east-1")]:
    con.execute(f"SET {setting} = ?", [value])

out = {"card_as_of_ms": card["as_of_ms"], "datasets": {}}
for name in card["datasets"]:
    table = ds.dataset(f"{snapshot}/{name}", filesystem=fs, format="parquet", partitioning="hive").to_table()
    rows = table.to_pylist()
    glob = f"s3://{snapshot}/{name}/*/*.parquet"
    duck_rows = con.execute(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()[0]
    dates = [r[0] for r in con.execute(
        f"SELECT DISTINCT CAST(date AS VARCHAR) FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY 1").fetchall()]
    entry = {"pyarrow_rows": len(rows), "duckdb_rows": duck_rows, "dates": dates, "columns": table.column_names}
    if name == "task_results":
        entry["per_task_objects"] = {r["task_id"]: r["objects"] for r in rows if r["revision"] == 1}
        entry["max_result_at_ms"] = con.execute(f"SELECT max(result_at_ms) FROM read_parquet('{glob}')").fetchone()[0]
    if name == "training_examples":
        entry["per_task"] = {}
        for r in rows:
            entry["per_task"][r["task_id"]] = entry["per_task"].get(r["task_id"], 0) + 1
        entry["annotated"] = sum(1 for r in rows if r["annotator"] is not None)
    if name == "predictions":
        entry["reviewed"] = sum(1 for r in rows if r["reviewed"])
        entry["per_model"] = {f'{m}:{v}': n for m, v, n in con.execute(
            f"SELECT model_id, model_version, count(*) FROM read_parquet('{glob}') GROUP BY 1, 2").fetchall()}
    if name in ("training_examples", "predictions"):
        entry["class_names"] = {str(r["class_id"]): r["class_name"] for r in rows if r["class_id"] is not None}
    if name == "predictions":
        entry["per_kind"] = {}
        for r in rows:
            entry["per_kind"][r["kind"]] = entry["per_kind"].get(r["kind"], 0) + 1
    if name == "operator_sessions":
        entry["operators"] = sorted({r["operator"] for r in rows})
    out["datasets"][name] = entry
print(json.dumps(out))
