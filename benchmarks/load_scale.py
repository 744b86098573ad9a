"""Seconds and peak RSS of reading, filtering and splitting a large interaction log (issue 13's target: a log
of 10^7 events, 10^6 users, 10^6 items in <= 60 s and <= 3 GB on 2 cores).

    python benchmarks/synthetic_log.py --out /tmp/s4rec_scale        # log.parquet, log.csv, log.txt
    python benchmarks/load_scale.py /tmp/s4rec_scale/log.parquet /tmp/s4rec_scale/log.csv /tmp/s4rec_scale/log.txt

Each file is read in its own process (its peak RSS is its own) the way ``s4rec-train`` reads it:
``load_interactions`` (pyarrow read, 5-core filter for logs, group by user, order by time, item vocabulary),
then ``leave_one_out`` and the training sequences and target counts a run starts from (``prefix_sequences``
too, the largest of them). Prints the machine's load next to each figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time


def child(path: str) -> None:
    from s4rec_train.batching import prefix_sequences, target_items, user_sequences
    from s4rec_train.data import leave_one_out, load_interactions

    started = time.perf_counter()
    data = load_interactions(path)
    loaded = time.perf_counter()
    split = leave_one_out(data, 50)
    sequences = user_sequences(split)
    prefixes = prefix_sequences(split)
    target_items(split, sequences)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"{loaded - started:.1f} {done - loaded:.1f} {peak:.2f} {data.num_users} {data.num_items} "
        f"{data.num_interactions} {len(prefixes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    print("command:", " ".join(["python", *sys.argv]))
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()}")
    for path in args.paths:
        out = subprocess.run([sys.executable, __file__, "x", "--child", path], capture_output=True, text=True)
        if out.returncode:
            print(f"{path}: failed\n{out.stderr[-2000:]}")
            continue
        load, split, peak, users, items, events, prefixes = out.stdout.split()
        total = float(load) + float(split)
        print(
            f"{os.path.basename(path):12s} load+filter {float(load):5.1f} s  split+sequences {float(split):4.1f} s  "
            f"total {total:5.1f} s  peak RSS {float(peak):.2f} GB  -> {int(users):,} users, {int(items):,} items, "
            f"{int(events):,} events ({int(prefixes):,} prefixes)  load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
