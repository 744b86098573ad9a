"""In which order should an IVF index probe its lists on a trained inner-product table? Recall@10 if the lists
are scanned exactly, in each order, until a share of the items is covered.

Lists: k-means (L2) over the grown table (as benchmarks/large_checkpoint.py grows it, seed 0), every item in
the list of its nearest centroid. Orders: ``c . q`` and ``c . q + w |q| r`` (``r`` a list's mean or maximum
distance of its items to the centroid). Users: the trained encoder's vectors of the base data's test histories,
the history excluded. Printed: mean, 5th percentile and worst user per order and share, and the load average.

    env PYTHONPATH=sdk:training:export:benchmarks python benchmarks/probes/ivf_probe_order.py \\
        --base /tmp/beauty.pt --data ../shared/data/beauty.txt --items 100000
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--base", type=click.Path(exists=True, path_type=Path), required=True, help="Trained checkpoint.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True, help="Its data.")
@click.option("--items", default=100_000, show_default=True)
@click.option("--users", default=1000, show_default=True)
def main(base, data, items, users):
    import faiss
    from ann_candidates import base_vectors, exact_top, load_average
    from large_checkpoint import grown_table

    print(f"{load_average()}; base {base}, {items:,} items, {users} users")
    base_table, counts, vectors, histories = base_vectors(base, data, users)
    table = grown_table(base_table, counts, items, 0.5, 0)
    exact = exact_top(table, vectors, [np.unique(np.array(h, dtype=np.int64)) for h in histories])
    rows = np.ascontiguousarray(table[1:])
    lists = int(4 * np.sqrt(items))
    kmeans = faiss.Kmeans(rows.shape[1], lists, niter=10, seed=0, max_points_per_centroid=64)
    kmeans.train(rows)
    distances, assign = kmeans.index.search(rows, 1)
    assign, radius = assign[:, 0], np.sqrt(np.maximum(distances[:, 0], 0))
    sizes = np.bincount(assign, minlength=lists)
    mean_r = np.bincount(assign, weights=radius, minlength=lists) / np.maximum(sizes, 1)
    max_r = np.zeros(lists)
    np.maximum.at(max_r, assign, radius)
    c = kmeans.centroids
    orders = {
        "c.q": (0, mean_r),
        "c.q + 0.5|q| r_mean": (0.5, mean_r),
        "c.q + 1|q| r_mean": (1, mean_r),
        "c.q + 2|q| r_mean": (2, mean_r),
        "c.q + 0.5|q| r_max": (0.5, max_r),
        "c.q + |q| r_max": (1, max_r),
    }
    shares = (0.01, 0.02, 0.05, 0.1)
    for name, (weight, r) in orders.items():
        found = {s: [] for s in shares}
        for q, want in zip(vectors, exact):
            order = np.argsort(-(c @ q + weight * np.linalg.norm(q) * r))
            covered = np.cumsum(sizes[order]) / len(rows)
            rank = np.empty(lists, dtype=np.int64)
            rank[order] = np.arange(lists)
            reached = covered[rank[assign[want - 1]]]  # share scanned when each of the exact top 10 is reached
            for s in shares:
                found[s].append(float((reached <= s).mean()))
        print(f"{name:20s} " + " | ".join(f"{s:.0%}: {np.mean(found[s]):.4f} / {np.percentile(found[s], 5):.2f} / "
                                           f"{np.min(found[s]):.2f}" for s in shares))  # fmt: skip
    print(load_average())
    print(f"command: env PYTHONPATH={os.environ.get('PYTHONPATH', '')} python " + " ".join(map(shlex.quote, sys.argv)))


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parent)]
    main()
