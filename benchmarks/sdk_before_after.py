"""Two SDK trees on one artifact, side by side: single-user ``recommend`` p50 and ``recommend_batch`` users/s.

    git worktree add --detach /tmp/sdk_base 71ebaf8^     # the SDK before (read-only checkout)
    flock /tmp/s4rec-cpu.lock python benchmarks/sdk_before_after.py --artifact DIR \\
        --data ../shared/data/beauty.txt --before /tmp/sdk_base/sdk --after sdk

Every figure comes from a fresh process whose ``PYTHONPATH`` is one tree's ``sdk/`` (the ``s4rec`` it imported is
printed), the two trees alternating within each round and their order swapped every round (A B, B A, ...), so
that the machine's drift hits both. In each process: ``recommend(history, k=10)`` (seen items excluded) on one
thread over ``--single`` test histories (all but each user's last item), p50 / p99; then ``recommend_batch`` of
every test history (k=10) on ``--batch-threads`` threads, the best of ``--repeats``. Printed: each round's
figures and load average, the medians, and the after / before ratio (median of the rounds' paired ratios, and the
spread of those ratios).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def load_average() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def histories(data: str) -> list[list[int]]:
    users = []
    for line in Path(data).read_text().splitlines():
        parts = line.split()
        if len(parts) > 2:
            users.append([int(x) for x in parts[1:-1]])  # the exporter keeps integer ids as ints
    return users


def worker(artifact: str, data: str, single: int, batch_threads: int, repeats: int) -> None:
    import s4rec
    from s4rec import Recommender

    everyone = histories(data)
    rng = np.random.default_rng(0)
    sample = [everyone[i] for i in rng.choice(len(everyone), size=min(single, len(everyone)), replace=False)]
    rec = Recommender.load(artifact, threads=1)
    for h in sample[:20]:
        rec.recommend(h, k=10)
    times = []
    for h in sample:
        start = time.perf_counter_ns()
        rec.recommend(h, k=10)
        times.append(time.perf_counter_ns() - start)
    ms = np.array(times) / 1e6
    batch = Recommender.load(artifact, threads=batch_threads)
    batch.recommend_batch(everyone[:512], k=10)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        batch.recommend_batch(everyone, k=10)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"sdk": s4rec.__file__, "p50_ms": float(np.percentile(ms, 50)),
                      "p99_ms": float(np.percentile(ms, 99)), "users_s": len(everyone) / best,
                      "users": len(everyone)}))  # fmt: skip


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--before", required=True, help="The earlier tree's sdk/ directory.")
    parser.add_argument("--after", default="sdk", help="The later tree's sdk/ directory.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batch-threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.artifact, args.data, args.single, args.batch_threads, args.repeats)
        return
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    print(f"artifact {args.artifact}; before {trees['before']}, after {trees['after']}; {load_average()}")
    figures: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for name in order:
            env = dict(os.environ, PYTHONPATH=trees[name], OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            command = [sys.executable, __file__, "--worker", "--artifact", args.artifact, "--data", args.data,
                       "--before", args.before, "--single", str(args.single), "--batch-threads",
                       str(args.batch_threads), "--repeats", str(args.repeats)]  # fmt: skip
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            f = json.loads(out.strip().splitlines()[-1])
            if not f["sdk"].startswith(trees[name]):
                raise SystemExit(f"{name}: imported {f['sdk']}, not from {trees[name]}")
            f["load"] = os.getloadavg()[0]
            figures[name].append(f)
            print(f"round {r + 1} {name:6s}: single p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms; "
                  f"recommend_batch {f['users_s']:,.0f} users/s ({f['users']:,} users); {load_average()}")  # fmt: skip
    print()
    for key, label in (("p50_ms", "single p50 ms"), ("p99_ms", "single p99 ms"), ("users_s", "batch users/s")):
        before = [f[key] for f in figures["before"]]
        after = [f[key] for f in figures["after"]]
        ratios = [a / b for a, b in zip(after, before)]
        print(f"{label:14s}: before median {statistics.median(before):,.3f}, after median "
              f"{statistics.median(after):,.3f}; after/before {statistics.median(ratios):.3f} (median of "
              f"{len(ratios)} paired rounds, range {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    print(load_average())
    print("command: flock /tmp/s4rec-cpu.lock python " + " ".join(map(shlex.quote, sys.argv)))


if __name__ == "__main__":
    main()
