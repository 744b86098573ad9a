"""Sampled softmax on a 10^6-item catalogue on CPU: seconds per 1,000 steps and peak RSS, and the memory the
full softmax would need (computed, not run).

    python benchmarks/sampled_scale.py [--users 1e6 --items 1e6 --events 1e7] [--steps 1000] [--threads 2] \\
        [--backbone] [--dense-steps 100]

The data are ``benchmarks/synthetic_log.py``'s (Zipf(1.1) popularity, geometric lengths, mean 10 events),
kept whole: no k-core, so the model's item table has all 10^6 rows (users with fewer than 3 events drop
out, as s4rec-train drops them). Training is ``s4rec_train.train.train`` itself, S4Rec's default objectives
(``--backbone``: the next-item loss alone), ``--loss sampled`` with 1,024 uniform + up to 1,024 in-batch
negatives, stopped after ``--steps`` optimizer steps; timed from the 10th step on. It runs once with
``sparse_items`` (SparseAdam on the item table) and once, for ``--dense-steps``, with the dense Adam.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

WARMUP = 10


class Enough(Exception):
    pass


def child(args) -> None:
    import numpy as np
    from synthetic_log import synthetic_log  # sibling script

    from s4rec_train.data import Interactions
    from s4rec_train.objectives import ObjectiveConfig
    from s4rec_train.train import TrainConfig, train

    table = synthetic_log(int(args.events), int(args.users), int(args.items), seed=0)
    user, item, stamp = (table[c].to_numpy() for c in ("user", "item", "timestamp"))
    del table
    order = np.lexsort((stamp, user))
    user, item = user[order], item[order]
    counts = np.bincount(user, minlength=int(args.users))
    keep = counts[user] >= 3
    kept_counts = counts[counts >= 3]
    offsets = np.concatenate([[0], np.cumsum(kept_counts)])
    data = Interactions(np.arange(int(args.items)), np.flatnonzero(counts >= 3), item[keep] + 1, offsets, "synthetic")
    del user, item, stamp, order, keep
    objectives = ObjectiveConfig.backbone() if args.backbone else ObjectiveConfig()
    config = TrainConfig(
        epochs=1, batch_size=256, loss="sampled", negatives=1024, in_batch_negatives=1024, device="cpu",
        threads=args.threads, sparse_items=args.sparse,
    )  # fmt: skip
    marks = {}

    def on_progress(progress) -> None:
        if progress.step == WARMUP:
            marks["start"] = time.perf_counter()
        if progress.step == args.steps:
            marks["end"] = time.perf_counter()
            marks["loss"] = progress.loss
            marks["steps_per_epoch"] = progress.steps
            raise Enough

    lines = []
    started = time.perf_counter()
    try:
        train(data, {}, config, log=lines.append, objectives=objectives, on_progress=on_progress)
    except Enough:
        pass
    per_1000 = (marks["end"] - marks["start"]) / (args.steps - WARMUP) * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    positions = np.minimum(np.maximum(np.diff(offsets) - 3, 0), 50)
    mean_batch_positions = 256 * positions[positions > 0].mean()
    print(
        f"{per_1000:.1f} {peak:.2f} {marks['loss']:.4f} {marks['steps_per_epoch']} {data.num_users} "
        f"{data.num_items} {data.num_interactions} {mean_batch_positions:.0f} {time.perf_counter() - started:.0f}"
    )
    for line in lines[:6]:
        print("#", line, file=sys.stderr)


def main() -> None:
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=float, default=1e6)
    parser.add_argument("--items", type=float, default=1e6)
    parser.add_argument("--events", type=float, default=1e7)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dense-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", action="store_true")
    parser.add_argument("--sparse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print("command:", " ".join(["python", *sys.argv]))
    print(f"cores {os.cpu_count()}, torch threads {args.threads}, load average before {os.getloadavg()}")
    for sparse, steps in ((True, args.steps), (False, args.dense_steps)):
        command = [sys.executable, __file__, "--child", "--steps", str(steps), "--threads", str(args.threads)]
        command += ["--users", str(args.users), "--items", str(args.items), "--events", str(args.events)]
        command += ["--backbone"] * args.backbone + ["--sparse"] * sparse
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode:
            print(f"failed:\n{out.stderr[-3000:]}")
            continue
        per_1000, peak, loss, per_epoch, users, items, events, positions, wall = out.stdout.split()
        name = "sparse_items (SparseAdam on the table)" if sparse else "dense Adam over the table"
        print(f"\n{name}: {float(per_1000):,.0f} s per 1,000 steps ({steps} steps run, timed from step {WARMUP}), "
              f"peak RSS {float(peak):.2f} GB, running loss {float(loss):.3f}, {int(per_epoch):,} steps per epoch, "
              f"wall {wall} s incl. data; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    users, items, positions = int(users), int(items), float(positions)
    block = positions * items * 4
    print(f"\ndata: {users:,} users, {items:,} items, {int(events):,} events; ~{positions:,.0f} positions a batch")
    print(
        f"full softmax would need a ({positions:,.0f} x {items:,}) float32 logits block per step: "
        f"{block / 2**30:.1f} GB, {2 * block / 2**30:.1f} GB with its gradient (not run)"
    )


if __name__ == "__main__":
    main()
