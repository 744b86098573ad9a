"""A synthetic interaction log at scale: Zipf item popularity, geometric history lengths, shuffled rows.

    python benchmarks/synthetic_log.py --events 1e7 --users 1e6 --items 1e6 --out /tmp/s4rec_scale \\
        [--formats parquet,csv,text] [--cover]

Writes ``log.parquet`` / ``log.csv`` (columns user, item, timestamp; rows in random order, as logs come) and
``log.txt`` (the benchmark format, one line per user, oldest first). History lengths are geometric with mean
events / users (most users short, a long tail, like Beauty's ~9 with a max of hundreds); items are drawn with
Zipf(1.1) popularity over a random permutation of the catalogue, so a 5-core keeps ~80% of the events.
Adapted from the engine comparison's generator; ``benchmarks/load_scale.py`` and
``benchmarks/sampled_scale.py`` read what it writes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq


def synthetic_log(events: int, users: int, items: int, seed: int = 0, cover: bool = False) -> pa.Table:
    """``cover``: ``items`` random events take the items 0..items-1, one each, so that every item occurs (a
    10^6-item catalogue survives reading the log without a k-core)."""
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.geometric(users / events, users))
    lengths = (lengths * (events / lengths.sum())).astype(np.int64).clip(1)
    lengths[-1] += events - lengths.sum()
    user = np.repeat(np.arange(users, dtype=np.int64), lengths)
    ranks = np.empty(0, dtype=np.int64)
    while len(ranks) < len(user):
        more = rng.zipf(1.1, size=len(user))
        ranks = np.concatenate([ranks, more[more <= items]])
    item = rng.permutation(items)[ranks[: len(user)] - 1].astype(np.int64)
    if cover:
        spread = rng.permutation(len(user))[:items]
        item[spread] = np.arange(items)
    timestamp = rng.integers(1_500_000_000, 1_700_000_000, len(user))
    order = rng.permutation(len(user))
    return pa.table({"user": user[order], "item": item[order], "timestamp": timestamp[order]})


def write_text(table: pa.Table, path: Path) -> None:
    """The benchmark format: each user's items ordered by time, ``user item item ...`` per line."""
    order = pc.sort_indices(table, sort_keys=[("user", "ascending"), ("timestamp", "ascending")])
    table = table.take(order)
    user = table["user"].to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(np.diff(user)) + 1])
    offsets = pa.array(np.concatenate([starts, [len(user)]]).astype(np.int32))
    histories = pa.ListArray.from_arrays(offsets, pc.cast(table["item"].combine_chunks(), pa.string()))
    users = pc.cast(pa.array(user[starts]), pa.string())
    lines = pc.binary_join_element_wise(users, pc.binary_join(histories, " "), " ")
    with open(path, "wb") as f:
        for chunk in range(0, len(lines), 100_000):
            f.write(("\n".join(lines[chunk : chunk + 100_000].to_pylist()) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=1e7)
    parser.add_argument("--users", type=float, default=1e6)
    parser.add_argument("--items", type=float, default=1e6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/s4rec_scale"))
    parser.add_argument("--formats", default="parquet,csv,text")
    parser.add_argument("--cover", action="store_true", help="every item occurs at least once")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    table = synthetic_log(int(args.events), int(args.users), int(args.items), args.seed, args.cover)
    formats = args.formats.split(",")
    if "parquet" in formats:
        pq.write_table(table, args.out / "log.parquet")
    if "csv" in formats:
        pcsv.write_csv(table, args.out / "log.csv", pcsv.WriteOptions(quoting_style="none"))
    if "text" in formats:
        write_text(table, args.out / "log.txt")
    print(f"wrote {len(table):,} events ({args.formats}) to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
