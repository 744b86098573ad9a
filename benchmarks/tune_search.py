"""`s4rec-train tune` measured: a short Optuna study on Beauty, then the best configuration and today's defaults
retrained with the same epochs and seed, compared on test.

Budget (2 shared cores; 1 torch thread): sampled softmax (1,024 uniform + up to 1,024 in-batch negatives),
``--trials`` trials of at most ``--epochs`` epochs with early stopping (patience 3) and median pruning by epoch;
the objective is validation NDCG@20 (the test split is never evaluated during the study). Then both

* the best trial's command, exactly as ``tune`` prints it, and
* ``s4rec-train DATA --epochs E --patience 3 --loss sampled --seed 0`` (today's defaults for everything searched)

are trained once (the same epochs bound, seed 0: one seed, so differences below ~0.002 NDCG@20 are within what
another seed moves) and their validation and test figures printed side by side.

    nice -n 10 python benchmarks/tune_search.py --data ../shared/data/beauty.txt --trials 4 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def s4rec_train(args: list[str], log) -> str:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "s4rec_train", *args], capture_output=True, text=True)
    print(result.stdout, file=log, flush=True)
    print(result.stderr[-2000:], file=log, flush=True)
    if result.returncode:
        raise SystemExit(f"s4rec-train {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    print(f"  ({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tune"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s4rec-tune-"))
    fixed = ["--epochs", str(args.epochs), "--patience", "3", "--loss", "sampled", "--seed", str(args.seed)]
    threads = ["--threads", "1"]
    results = {"load_before": os.getloadavg()}
    with open(args.out / "tune.log", "a") as log:
        started = time.perf_counter()
        study = work / "study.db"
        print(f"tune: {args.trials} trials, up to {args.epochs} epochs each", flush=True)
        output = s4rec_train(["tune", str(args.data), "--study", str(study), "--trials", str(args.trials), *fixed,
                              *threads], log)  # fmt: skip
        results["tune_seconds"] = round(time.perf_counter() - started, 1)
        print(output, flush=True)
        command = shlex.split(output.split("train it with:")[1].strip().splitlines()[0])
        results["best_command"] = " ".join(command)
        runs = {"best": command[1:], "defaults": [str(args.data), "-o", "model.pt", *fixed]}
        for name, run_args in runs.items():
            run_args = list(run_args)
            run_args[run_args.index("-o") + 1] = str(work / f"{name}.pt")
            print(f"retrain {name}: s4rec-train {' '.join(run_args)}", flush=True)
            s4rec_train([*run_args, *threads, "--quiet"], log)
            metrics = torch.load(work / f"{name}.pt", weights_only=True)["metrics"]
            results[name] = {
                "command": "s4rec-train " + " ".join(run_args[:2] + ["-o", "model.pt"] + run_args[4:]),
                "best_epoch": metrics["best_epoch"],
                "valid": metrics["valid"]["overall"],
                "test": metrics["test"]["overall"],
            }
    results["load_after"] = os.getloadavg()
    (args.out / "tune_search.json").write_text(json.dumps(results, indent=2))
    print("| run | best epoch | valid NDCG@20 | test NDCG@20 | test HR@20 | test MRR@20 | test Coverage@20 |")
    print("|---|---|---|---|---|---|---|")
    for name in ("defaults", "best"):
        r = results[name]
        print(f"| {name} | {r['best_epoch']} | {r['valid']['NDCG@20']:.4f} | {r['test']['NDCG@20']:.4f} | "
              f"{r['test']['HR@20']:.4f} | {r['test']['MRR@20']:.4f} | {r['test']['Coverage@20']:.4f} |")  # fmt: skip
    print(
        f"tuning took {results['tune_seconds']:.0f} s; load average before {results['load_before']}, after "
        f"{results['load_after']}"
    )
    print("command: " + " ".join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
