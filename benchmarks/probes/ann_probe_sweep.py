"""How much of the catalogue must an ANN query scan, and how many candidates must it re-rank? One artifact, the
SDK's own ``Recommender.load(retrieval="ann")``, its scanned share (``AnnIndex.set_probe_items``) and re-rank
depth (``ef_search``) swept in one process, the artifact's recorded setting as the same-run baseline.

For each (share, depth): recall@10 against exact float32 retrieval (seen items excluded; mean, 5th percentile,
worst user; the exact top 10 computed once) on ``--recall-users`` test histories through ``rank_batch``, and
single-user ``recommend(history, k=10)`` latency on one thread, p50 / p95 over ``--single`` histories per round,
the settings timed in turn within each round (A B C ... A B C ...) and the median of the rounds' figures kept;
every latency is also printed as a ratio to the baseline's in the same round (median of the rounds' ratios). The
load average is printed with every round and figure.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export:benchmarks OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/probes/ann_probe_sweep.py --artifact /tmp/large_bench/artifact_1000000 \\
        --data ../shared/data/beauty.txt --shares 0.02,0.03,0.04,0.05 --depths 200,300,500
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import math  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402
from large_catalogue import load_average, time_each  # noqa: E402 (benchmarks/ is on PYTHONPATH)


def test_histories(data: Path, count: int, seed: int = 0) -> list[list]:
    """The data's test inputs (all but the last item of each user), a sample, in the data's item ids."""
    users = []
    for line in data.read_text().splitlines():
        parts = line.split()
        if len(parts) > 2:
            users.append([int(x) for x in parts[1:-1]])  # the exporter keeps integer ids as ints
    rng = np.random.default_rng(seed)
    return [users[i] for i in rng.choice(len(users), size=min(count, len(users)), replace=False)]


@click.command()
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True, help="Histories (ids).")
@click.option("--shares", default="0.02,0.03,0.04,0.05", show_default=True, help="Scanned shares of the items.")
@click.option("--depths", default="200,300,500", show_default=True, help="Candidates re-ranked (ef_search).")
@click.option("--min-items", default=10_000, show_default=True, help="Scan at least this many items.")
@click.option("--recall-users", default=1000, show_default=True)
@click.option("--single", default=300, show_default=True, help="Histories timed one by one per round.")
@click.option("--rounds", default=5, show_default=True)
def main(artifact, data, shares, depths, min_items, recall_users, single, rounds):
    from s4rec import Recommender
    from s4rec.recall import exact_top_k, user_recalls

    rec = Recommender.load(artifact, retrieval="ann")
    ann = rec.ann
    n = ann.num_items
    baseline = (ann.probe_items, ann.ef_search)
    settings = [baseline]
    for share in (float(s) for s in shares.split(",")):
        for depth in (int(d) for d in depths.split(",")):
            probe = min(n, max(min_items, int(math.ceil(share * n))))
            if (probe, depth) not in settings:
                settings.append((probe, depth))
    print(f"{artifact}: {n:,} items, {len(ann.sizes):,} lists; baseline (the artifact's) probe_items "
          f"{baseline[0]:,} ({baseline[0] / n:.1%}), ef_search {baseline[1]}; {load_average()}")  # fmt: skip

    def use(setting):
        ann.set_probe_items(setting[0])
        ann.ef_search = setting[1]

    histories = test_histories(data, max(recall_users, single))
    started = time.perf_counter()
    users, banned, keep = rec.user_vectors(histories[:recall_users], exclude_seen=True)
    exact = exact_top_k(ann.table, users, 10, banned)
    print(f"exact top 10 of {len(keep)} users in {time.perf_counter() - started:.1f} s; {load_average()}")
    quality = {}
    for setting in settings:
        use(setting)
        ranked = rec.rank_batch(histories[:recall_users], k=10, exclude_seen=True)
        recalls = user_recalls(ranked, exact, keep)
        quality[setting] = (float(np.mean(recalls)), float(np.percentile(recalls, 5)), float(np.min(recalls)),
                            float(np.mean(np.array(recalls) < 0.8)), len(recalls))  # fmt: skip

    sample = histories[:single]
    timings: dict = {s: [] for s in settings}
    for r in range(rounds):
        for setting in settings:
            use(setting)
            timings[setting].append(time_each(lambda h: rec.recommend(h, k=10), sample, upper=95))
        base = timings[baseline][-1]
        print(f"round {r + 1}: baseline p50 {base[0]:.3f} ms, p95 {base[1]:.3f} ms; {load_average()}")

    print(f"\n{'share':>6} {'probe':>8} {'depth':>5} | {'recall':>6} {'p5':>5} {'worst':>5} {'<0.8':>5} | "
          f"{'p50 ms':>7} {'p95 ms':>7} | {'p50/base':>8} {'p95/base':>8}")  # fmt: skip
    for setting in settings:
        mean, p5, worst, below, count = quality[setting]
        p50 = statistics.median(t[0] for t in timings[setting])
        p95 = statistics.median(t[1] for t in timings[setting])
        r50 = statistics.median(t[0] / b[0] for t, b in zip(timings[setting], timings[baseline]))
        r95 = statistics.median(t[1] / b[1] for t, b in zip(timings[setting], timings[baseline]))
        mark = " (baseline)" if setting == baseline else ""
        print(f"{setting[0] / n:6.1%} {setting[0]:8,} {setting[1]:5} | {mean:6.4f} {p5:5.2f} {worst:5.2f} "
              f"{below:5.1%} | {p50:7.3f} {p95:7.3f} | {r50:8.3f} {r95:8.3f}{mark}")  # fmt: skip
    print(f"recall on {count} users, latency median of {rounds} rounds x {single} users; {load_average()}")
    print(f"command: env PYTHONPATH={os.environ.get('PYTHONPATH', '')} python " + " ".join(map(shlex.quote, sys.argv)))


if __name__ == "__main__":
    main()
