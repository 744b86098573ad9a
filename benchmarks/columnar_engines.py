"""Which columnar engine s4rec-train reads interaction logs with: pyarrow, polars and DuckDB on one pipeline.

The pipeline is what ``s4rec_train.data`` does with a log: read the user, item and timestamp columns (Parquet
or CSV), iterate the k-core filter to its fixed point, drop users with fewer than 3 events, order users by
their first kept event (file order) and each user's events by (time, file row), number the items in sorted
id order (1..N) and return flat arrays: ``offsets`` (users + 1) and ``items``. Each engine runs in its own
process (so that peak RSS is its own); the script checks that all of them give the same arrays and prints
seconds and peak RSS per engine and format, with the machine's load.

    python benchmarks/columnar_engines.py LOG.parquet LOG.csv [--engines pyarrow,polars,duckdb]

Needs the engines it compares installed (pyarrow is s4rec's ``[train]`` dependency; polars and duckdb are
not). The log is made by ``benchmarks/synthetic_log.py`` (10^7 events, 10^6 users, 10^6 items by default).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import time

import numpy as np

MIN_COUNT = 5  # k of the k-core: s4rec-train's --min-count default
MIN_INTERACTIONS = 3


def _numpy_tail(user_code, item_code, item_values, timestamp, num_users):
    """The steps after reading, on dense integer codes (shared by pyarrow: it has no k-core of its own)."""
    keep = np.ones(len(user_code), dtype=bool)
    while True:
        users = np.bincount(user_code[keep], minlength=num_users)
        items = np.bincount(item_code[keep], minlength=len(item_values))
        new = keep & (users[user_code] >= MIN_COUNT) & (items[item_code] >= MIN_COUNT)
        if new.sum() == keep.sum():
            break
        keep = new
    keep &= np.bincount(user_code[keep], minlength=num_users)[user_code] >= MIN_INTERACTIONS
    rows = np.flatnonzero(keep)
    user_code, item_code, timestamp = user_code[rows], item_code[rows], timestamp[rows]
    first = np.full(num_users, len(keep), dtype=np.int64)
    np.minimum.at(first, user_code, rows)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")  # users by first kept row
    order = np.argsort(timestamp, kind="stable")
    order = order[np.argsort(rank[user_code[order]], kind="stable")]
    used = np.zeros(len(item_values), dtype=bool)
    used[item_code] = True
    index = np.zeros(len(item_values), dtype=np.int64)
    kept_values = np.flatnonzero(used)
    index[kept_values[np.argsort(item_values[kept_values], kind="stable")]] = np.arange(1, len(kept_values) + 1)
    counts = np.bincount(rank[user_code], minlength=num_users)
    counts = counts[counts > 0]
    return np.concatenate([[0], np.cumsum(counts)]), index[item_code[order]]


def run_pyarrow(path: str):
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        table = pq.read_table(path, columns=["user", "item", "timestamp"])
    else:
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(include_columns=["user", "item", "timestamp"]))
    user = pc.dictionary_encode(table["user"].combine_chunks())  # codes in first-appearance order
    item = pc.dictionary_encode(table["item"].combine_chunks())
    timestamp = table["timestamp"].to_numpy().astype(np.float64)
    del table
    return _numpy_tail(
        user.indices.to_numpy().astype(np.int64), item.indices.to_numpy().astype(np.int64),
        item.dictionary.to_numpy(), timestamp, len(user.dictionary),
    )  # fmt: skip


def run_polars(path: str):
    import polars as pl

    if path.endswith(".parquet"):
        frame = pl.scan_parquet(path)
    else:
        frame = pl.scan_csv(path, schema_overrides={"timestamp": pl.Float64})
    df = frame.select("user", "item", pl.col("timestamp").cast(pl.Float64)).with_row_index("row").collect()
    while True:
        n = df.height
        df = df.filter((pl.len().over("user") >= MIN_COUNT) & (pl.len().over("item") >= MIN_COUNT))
        if df.height == n:
            break
    df = df.filter(pl.len().over("user") >= MIN_INTERACTIONS)
    df = df.with_columns(pl.col("row").min().over("user").alias("first"), pl.col("item").rank("dense").alias("index"))
    df = df.sort(["first", "timestamp", "row"])
    counts = df.group_by("first", maintain_order=True).len()["len"].to_numpy()
    return np.concatenate([[0], np.cumsum(counts)]), df["index"].to_numpy().astype(np.int64)


def run_duckdb(path: str):
    import duckdb

    con = duckdb.connect()
    con.execute("set preserve_insertion_order = true")
    source = f"read_parquet('{path}')" if path.endswith(".parquet") else f"read_csv('{path}')"
    con.execute(f"create table e as select user, item, timestamp::double as timestamp from {source}")
    con.execute("create table k as select rowid as row, * from e")
    con.execute("drop table e")
    while True:
        n = con.execute("select count(*) from k").fetchone()[0]
        con.execute(
            f"""create or replace table k as select row, user, item, timestamp from (
                select *, count(*) over (partition by user) as nu, count(*) over (partition by item) as ni from k)
            where nu >= {MIN_COUNT} and ni >= {MIN_COUNT}"""
        )
        if con.execute("select count(*) from k").fetchone()[0] == n:
            break
    result = con.execute(
        f"""select first, dense_rank() over (order by item) as idx, timestamp, row from (
              select *, min(row) over (partition by user) as first, count(*) over (partition by user) as n from k)
            where n >= {MIN_INTERACTIONS} order by first, timestamp, row"""
    ).fetchnumpy()
    first = result["first"]
    change = np.flatnonzero(np.diff(first)) + 1
    return np.concatenate([[0], change, [len(first)]]), result["idx"].astype(np.int64)


ENGINES = {"pyarrow": run_pyarrow, "polars": run_polars, "duckdb": run_duckdb}


def child(engine: str, path: str) -> None:
    started = time.perf_counter()
    offsets, items = ENGINES[engine](path)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(np.asarray(offsets, np.int64).tobytes() + np.asarray(items, np.int64).tobytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.2f} {peak:.0f} {len(offsets) - 1} {len(items)} {digest.hexdigest()[:16]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--engines", default="pyarrow,polars,duckdb")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    digests = set()
    for path in args.logs:
        for engine in args.engines.split(","):
            out = subprocess.run(
                [sys.executable, __file__, path, "--child", engine, path], capture_output=True, text=True
            )
            if out.returncode:
                print(f"{engine:8s} {path}: failed\n{out.stderr[-2000:]}")
                continue
            seconds, peak, users, events, digest = out.stdout.split()
            digests.add(digest)
            print(
                f"{engine:8s} {os.path.basename(path):14s} {float(seconds):6.1f} s  peak RSS {float(peak):6.0f} MB  "
                f"{int(users):,} users {int(events):,} events  (arrays {digest})  load {os.getloadavg()[0]:.1f}"
            )
    print("all engines gave the same arrays" if len(digests) == 1 else f"engines DISAGREE: {sorted(digests)}")


if __name__ == "__main__":
    main()
