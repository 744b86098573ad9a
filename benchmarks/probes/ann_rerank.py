"""The exact re-ranking of ANN candidates (``s4rec.ann.AnnIndex.search`` after its faiss query): the former loop
per user against the numpy batch, side by side on one table, same run.

    env PYTHONPATH=sdk OPENBLAS_NUM_THREADS=1 python benchmarks/probes/ann_rerank.py \\
        --table /tmp/large_bench/artifact_1000000/item_table.npy

The table is memory-mapped as the SDK maps it. Each of ``--users`` random unit-normal user vectors gets
``--candidates`` random item indices (what the faiss query hands over; 500 is the default ``ef_search``) and 1-19
banned items drawn from them (a history); both methods re-rank the same inputs, ``--reps`` times interleaved, best
time per user printed with the ratio and whether their top 10 agree. Prints the load average before and after.
"""

from __future__ import annotations

import os
import time

import click
import numpy as np

from s4rec.ann import AnnIndex


def loop_per_user(table, labels, users, banned, k):
    """The re-ranking as it was: one user at a time."""
    n = len(users)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    items = np.zeros((n, k), dtype=np.int64)
    for row in range(n):
        candidates = labels[row][labels[row] > 0]
        if len(banned[row]):
            candidates = candidates[~np.isin(candidates, banned[row])]
        exact = table[candidates] @ users[row]
        best = np.argsort(-exact, kind="stable")[:k]
        scores[row, : len(best)], items[row, : len(best)] = exact[best], candidates[best]
    return scores, items


@click.command()
@click.option("--table", type=click.Path(exists=True), required=True, help="An item_table.npy (format 3).")
@click.option("--users", default=256, show_default=True)
@click.option("--candidates", default=500, show_default=True)
@click.option("--reps", default=5, show_default=True)
def main(table, users, candidates, reps):
    print("load average before " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    rows = np.load(table, mmap_mode="r")
    rng = np.random.default_rng(0)
    labels = rng.integers(1, len(rows), (users, candidates))
    vectors = rng.standard_normal((users, rows.shape[1])).astype(np.float32)
    banned = [np.unique(rng.choice(labels[i], rng.integers(1, 20))) for i in range(users)]
    index = AnnIndex.__new__(AnnIndex)  # the re-ranking alone: the faiss query replaced by the fixed candidates
    index.table, index.num_items, index.ef_search = rows, len(rows) - 1, candidates
    index._knn = lambda queries, count: labels
    methods = {"loop per user": lambda: loop_per_user(rows, labels, vectors, banned, 10),
               "AnnIndex.search": lambda: index.search(vectors, 10, banned)}  # fmt: skip
    best = {name: float("inf") for name in methods}
    for _ in range(reps):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            best[name] = min(best[name], (time.perf_counter() - start) / users * 1e6)
    (_, a), (_, b) = methods["loop per user"](), methods["AnnIndex.search"]()
    for name, us in best.items():
        print(f"{name:16s}: {us:7.1f} us a user ({us / best['loop per user']:.2f}x the loop)")
    print(f"top 10 identical for {np.mean(np.all(a == b, axis=1)):.3f} of the users; {table}, {users} users x "
          f"{candidates} candidates, best of {reps}")  # fmt: skip
    print("load average after " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
