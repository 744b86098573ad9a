"""One process against two gloo processes (DDP) on this machine: seconds per training epoch on Beauty-sized
synthetic data, through the command line as a user runs it.

    python benchmarks/ddp_scale.py [--users 22363 --items 12101] [--epochs 2] [--backbone]

Runs ``python -m s4rec_train DATA`` with 1 process x 2 threads and 1 process x 1 thread, and
``torchrun --nproc-per-node 2 -m s4rec_train DATA --threads 1`` (2 processes x 1 thread, gloo), each for
``--epochs`` epochs of S4Rec's defaults (``--backbone``: the next-item loss alone; full softmax: the catalogue
is Beauty's size), and prints the training seconds per epoch (from the epoch lines, evaluation excluded),
the ratio to the one-process runs and the load average around each run: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def run(command: list[str], env: dict) -> tuple[list[float], str]:
    before = os.getloadavg()[0]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    seconds = [float(s) for s in re.findall(r"train ([0-9.]+)s eval", out.stdout)]
    return seconds, f"load {before:.1f} -> {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=22_363)
    parser.add_argument("--items", type=int, default=12_101)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbone", action="store_true")
    args = parser.parse_args()
    from s4rec_train.data import synthetic_interactions, write_sequences

    print("command:", " ".join(["python", *sys.argv]))
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "data.txt"
        write_sequences(synthetic_interactions(args.users, args.items, mean_length=8.9, seed=0), data)
        common = [str(data), "-o", str(Path(work) / "model.pt"), "--epochs", str(args.epochs), "--patience", "99"]
        common += ["--device", "cpu", "--quiet"] + ["--backbone"] * args.backbone
        env = dict(os.environ, OMP_NUM_THREADS="1")
        runs = {
            "1 process x 2 threads": [sys.executable, "-m", "s4rec_train", *common, "--threads", "2"],
            "1 process x 1 thread": [sys.executable, "-m", "s4rec_train", *common, "--threads", "1"],
            "2 processes x 1 thread (gloo DDP)": [
                sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "s4rec_train",
                *common, "--threads", "1",
            ],
        }  # fmt: skip
        results = {}
        for name, command in runs.items():
            seconds, load = run(command, env)
            results[name] = sum(seconds) / len(seconds)
            print(f"{name:36s} {results[name]:7.1f} s/epoch  (epochs {', '.join(f'{s:.1f}' for s in seconds)}; {load})")
        two = results["2 processes x 1 thread (gloo DDP)"]
        for name in list(runs)[:2]:
            print(f"2 processes vs {name}: {results[name] / two:.2f}x the epochs per second")


if __name__ == "__main__":
    main()
