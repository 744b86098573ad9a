"""The "next day" protocol: is a warm start from yesterday's model as good as training from scratch on today's
data, in a fraction of the time, and does it recommend the items that are new today?

Beauty and Toys have no timestamps, so a day is simulated (docs/training.md, "Warm start"):

* **today** is the data set as it is; it is split leave-one-out as always (each user's last item is test, the
  one before validation, the rest trains).
* **yesterday** is every user's history minus its last ``--held-back`` items (3: the test item, the validation
  item and one training item of today's split that yesterday's model never saw); users left with fewer than 3
  items are not in yesterday's data (today they are new users). Yesterday's vocabulary is the items it holds.
* **new items** are the items of today's data that yesterday's data does not hold: they first occur in the
  held-back part.

Runs, all with the same settings (S4Rec's defaults; ``--loss``, see below; 1 torch thread); today's runs once per
``--seeds`` seed, each warm run compared with the scratch run of its seed (yesterday's model is seed 0's):

1. *yesterday*: trained from scratch on yesterday's data (up to ``--epochs``, 20 as in benchmarks/RESULTS.md's
   comparisons, early stopping with patience 5); not timed
   against the others: it exists before today begins. Evaluated on today's test as it is ("no update": new
   items it cannot score count as misses).
2. *scratch*: trained from scratch on today's data (up to ``--epochs``, early stopping). Wall time from the call
   to the written checkpoint.
3. *warm (init)*: ``--init-from`` yesterday's checkpoint on today's data with the settings the command line would
   use (``warmstart.warm_settings``: 30% of yesterday's time, S4Rec's auxiliary terms off after the first 2% of
   the steps, so 9 epochs after a 20-epoch yesterday, peak lr 10x yesterday's decaying linearly, one validation
   after the last epoch; ``--warm-epochs``, ``--warm-lr``, ``--warm-lr-schedule`` override parts of it), once
   per new-item initialisation (``cooccur``, ``mean``, ``normal``). Wall time includes reading the old checkpoint
   and growing the vocabulary.

Reported per run: test NDCG@20 and HR@20 over all users and over the users whose test item is a new item, how
many users get a new item in their top 20 and how many distinct new items are recommended at all, epochs, wall
time and the process's CPU time (1 torch thread: on a machine shared with other jobs, the wall time says as
much about them as about the run; the CPU time is what the run cost). The target: a warm start reaches >= 98%
of scratch's test NDCG@20 in <= 30% of its time. The default initialisation is the one with the best
*validation* NDCG@20 over both data sets (never test).

Loss: sampled softmax (1,024 uniform + up to 1,024 in-batch negatives) by default, not the full softmax that
``--loss auto`` picks for these 12k-item catalogues: it reaches 98.5% (Beauty) and 99.2% (Toys) of the full
softmax's test NDCG@20 at ~4x less time per epoch (docs/training.md), which keeps the 2 x 5 training runs of
this benchmark within an hour of one core. The comparison is between runs of the same loss; ``--loss softmax``
reruns it with the full softmax.

    nice -n 10 python benchmarks/next_day.py --data ../shared/data/beauty.txt --data ../shared/data/toys.txt --epochs 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s4rec_train.checkpoint import model_from_checkpoint
from s4rec_train.data import Interactions, leave_one_out, read_sequences, remap_to_vocabulary
from s4rec_train.evaluation import evaluate_targets, metrics_from_ranks, rank_split
from s4rec_train.ids import as_ids
from s4rec_train.splits import split_targets
from s4rec_train.train import TrainConfig, train
from s4rec_train.warmstart import WarmStart, warm_settings

INITS = ("cooccur", "mean", "normal")


def yesterday_of(today: Interactions, held_back: int) -> Interactions:
    """Every user's history minus its last ``held_back`` items; users left with fewer than 3 dropped; the
    vocabulary is the items that remain (re-indexed in today's vocabulary order)."""
    keep_length = today.lengths - held_back
    users = np.flatnonzero(keep_length >= 3)
    starts = today.offsets[:-1][users]
    lengths = keep_length[users]
    rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    items = today.items[rows]
    present = np.unique(items)
    index = np.zeros(today.num_items + 1, dtype=np.int32)
    index[present] = np.arange(1, len(present) + 1)
    item_ids = as_ids(today.item_ids.take(present - 1))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Interactions(item_ids, today.user_ids.take(users), index[items], offsets, f"{today.source} (yesterday)")


def new_item_figures(checkpoint: dict, today: Interactions, new_ids: set) -> dict:
    """Test NDCG@20 / HR@20 of the users whose test item is new, and how much the top 20 lists hold new items."""
    model = model_from_checkpoint(checkpoint)
    data = remap_to_vocabulary(today, checkpoint["item_ids"])  # every item of today is in the model's vocabulary
    assert data.num_users == today.num_users, "the model must know every item of today's data"
    split = leave_one_out(data, model.config.max_len)
    ranks, top = rank_split(model, split, "test", top=True)
    is_new = np.zeros(data.num_items + 1, dtype=bool)
    is_new[[i + 1 for i, item in enumerate(data.item_ids) if item in new_ids]] = True
    target_new = is_new[split.test_target]
    in_top = is_new[top[:, :20]]
    new_metrics = metrics_from_ranks(ranks[target_new])
    return {
        "new_target_users": int(target_new.sum()),
        "new_NDCG@20": new_metrics["NDCG@20"],
        "new_HR@20": new_metrics["HR@20"],
        "users_with_new_item_in_top20": int(in_top.any(1).sum()),
        "new_items_recommended": int(len(np.unique(top[:, :20][in_top]))),
        "new_items": int(is_new.sum()),
        "new_share_of_top20_slots": float(in_top.mean()),
    }


def run(label: str, log_file, **kwargs) -> tuple[dict, float]:
    lines = []

    def log(line: str) -> None:
        lines.append(line)
        print(f"  [{label}] {line}", file=log_file, flush=True)

    started = time.perf_counter()
    checkpoint = train(log=log, **kwargs)
    return checkpoint, time.perf_counter() - started


def summary(checkpoint: dict, seconds: float, cpu_seconds: float = float("nan")) -> dict:
    metrics = checkpoint["metrics"]
    return {
        "seconds": round(seconds, 1),
        # this process's CPU time (1 torch thread): on a shared machine, what the run cost regardless of how
        # much of a core the other jobs left it (wall time is both)
        "cpu_seconds": round(cpu_seconds, 1),
        "epochs_run": checkpoint["training"]["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "valid_NDCG@20": metrics["valid"]["overall"]["NDCG@20"],
        "test_NDCG@20": metrics["test"]["overall"]["NDCG@20"],
        "test_HR@20": metrics["test"]["overall"]["HR@20"],
        "test_MRR@20": metrics["test"]["overall"]["MRR@20"],
        "test_Coverage@20": metrics["test"]["overall"]["Coverage@20"],
    }


def one_data_set(path: Path, args, out: Path, log_file) -> dict:
    today = read_sequences(path)
    yesterday = yesterday_of(today, args.held_back)
    new_ids = set(today.item_ids.tolist()) - set(yesterday.item_ids.tolist())
    name = path.name.split(".")[0]
    print(
        f"{name}: today {today.num_users:,} users, {today.num_items:,} items; yesterday {yesterday.num_users:,} "
        f"users, {yesterday.num_items:,} items; {len(new_ids):,} new items",
        flush=True,
    )
    common = dict(epochs=args.epochs, patience=args.patience, seed=0, threads=1, loss=args.loss, device="cpu")
    results = {"data": str(path), "today_users": today.num_users, "yesterday_users": yesterday.num_users,
               "new_items": len(new_ids), "load_before": os.getloadavg()}  # fmt: skip
    old_path = args.yesterday or out / f"{name}_yesterday.pt"
    if args.yesterday is None:
        checkpoint, seconds = run("yesterday", log_file, data=yesterday, config=TrainConfig(**common), output=old_path)
    else:  # an earlier run's yesterday model (the runs of one data set split over processes: --only)
        checkpoint, seconds = torch.load(old_path, weights_only=True), float("nan")
    results["yesterday"] = summary(checkpoint, seconds)
    model = model_from_checkpoint(checkpoint)
    index_of = {item: i + 1 for i, item in enumerate(checkpoint["item_ids"])}
    mapping = np.array([0] + [index_of.get(item, 0) for item in today.item_ids], dtype=np.int64)
    test = evaluate_targets(model, split_targets(leave_one_out(today, model.config.max_len), "test").remapped(mapping))
    results["yesterday"]["today_test_NDCG@20"] = test["overall"]["NDCG@20"]
    results["yesterday"]["today_test_HR@20"] = test["overall"]["HR@20"]
    results["yesterday"]["today_unknown_targets"] = test["unknown"]["targets"]
    print(f"  yesterday: {results['yesterday']}", flush=True)
    for seed in args.seeds:  # today's runs; yesterday's model is the same for every seed
        common["seed"] = seed
        if "scratch" in args.only:
            cpu = time.process_time()
            checkpoint, seconds = run(f"scratch s{seed}", log_file, data=today, config=TrainConfig(**common),
                                      output=out / "s.pt")  # fmt: skip
            cpu = time.process_time() - cpu
            key = _key("scratch", seed)
            results[key] = {**summary(checkpoint, seconds, cpu), **new_item_figures(checkpoint, today, new_ids)}
            print(f"  {key}: {results[key]}", flush=True)
        for init in args.inits if "warm" in args.only else ():
            started, cpu = time.perf_counter(), time.process_time()
            warm = WarmStart.load(old_path, init)
            given = {k: v for k, v in {"epochs": args.warm_epochs, "lr": args.warm_lr,
                                       "lr_schedule": args.warm_lr_schedule}.items() if v is not None}  # fmt: skip
            # the product's settings, as `s4rec-train today --init-from yesterday.pt` merges them (warm_settings:
            # yesterday's settings, the warm schedule and its objectives, then what this command gives)
            notes = []
            model_config, config, objectives = warm_settings(
                warm.checkpoint, {}, {**given, "seed": seed, "threads": 1, "device": "cpu"}, {}, notes.append
            )
            results["warm_settings"] = {"notes": notes, "epochs": config.epochs, "lr": config.lr,
                                        "lr_schedule": config.lr_schedule, "validate_every": config.validate_every,
                                        "warmup": objectives["warmup"], "cooldown": objectives["cooldown"]}  # fmt: skip
            checkpoint, seconds = run(f"warm {init} s{seed}", log_file, data=today, model_config=model_config,
                                      config=config, objectives=objectives, output=out / "w.pt",
                                      init_from=warm)  # fmt: skip
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            key = _key(f"warm_{init}", seed)
            results[key] = {**summary(checkpoint, seconds, cpu), **new_item_figures(checkpoint, today, new_ids)}
            print(f"  {key}: {results[key]}", flush=True)
    results["load_after"] = os.getloadavg()
    return results


def _key(run: str, seed: int) -> str:
    """A run's key in the results: ``scratch@s1``; seed 0 keeps the plain name (the files of earlier runs)."""
    return run if seed == 0 else f"{run}@s{seed}"


def _runs(results: dict) -> list[tuple[str, int, str]]:
    """(run name, seed, key) of every scratch and warm run in ``results``."""
    out = []
    for key in results:
        name, _, seed = key.partition("@s")
        if name == "scratch" or (name.startswith("warm_") and name not in ("warm_schedule", "warm_settings")):
            out.append((name, int(seed or 0), key))
    return out


def ratio(value, baseline) -> str:
    return f"{value / baseline:.1%}" if value is not None and baseline else "-"


def table(all_results: dict) -> str:
    head = ("| data | run | epochs (best) | wall s | CPU s | CPU / scratch | test NDCG@20 | / scratch | test HR@20 | "
            "valid NDCG@20 | new-item targets NDCG@20 / HR@20 | users with a new item in top 20 | new items "
            "recommended |")  # fmt: skip
    lines = [head, "|" + "---|" * 13]
    paired = []
    for name, results in all_results.items():
        y = results["yesterday"]
        scratch = results.get("scratch", {})  # absent for a warm-only run (--only warm): no ratios
        lines.append(
            f"| {name} | yesterday, no update | {y['epochs_run']} ({y['best_epoch']}) | (yesterday) | | | "
            f"{y['today_test_NDCG@20']:.4f} | {ratio(y['today_test_NDCG@20'], scratch.get('test_NDCG@20'))} | "
            f"{y['today_test_HR@20']:.4f} | | 0 (new items unknown) | 0 | 0 |"
        )
        for run_name, seed, key in _runs(results):
            r, scratch = results[key], results.get(_key("scratch", seed), {})  # the same seed's scratch run
            if run_name != "scratch" and scratch:
                shares = [r[k] / scratch[k] for k in ("test_NDCG@20", "cpu_seconds", "valid_NDCG@20")]
                paired.append((name, run_name, *shares))
            lines.append(
                f"| {name} | {run_name.replace('_', ' ')} (seed {seed}) | {r['epochs_run']} ({r['best_epoch']}) | "
                f"{r['seconds']:.0f} | {r.get('cpu_seconds', float('nan')):.0f} | "
                f"{ratio(r.get('cpu_seconds'), scratch.get('cpu_seconds'))} | {r['test_NDCG@20']:.4f} | "
                f"{ratio(r['test_NDCG@20'], scratch.get('test_NDCG@20'))} | {r['test_HR@20']:.4f} | "
                f"{r['valid_NDCG@20']:.4f} | {r['new_NDCG@20']:.4f} / {r['new_HR@20']:.4f} "
                f"({r['new_target_users']} users) | {r['users_with_new_item_in_top20']:,} | "
                f"{r['new_items_recommended']} of {r['new_items']} |"
            )
    groups: dict = {}
    for name, run_name, test, cpu, valid in paired:
        groups.setdefault((name, run_name), []).append((test, cpu, valid))
    for (name, run_name), values in groups.items():
        test, cpu, valid = (np.array(column) for column in zip(*values))
        lines.append(
            f"\n{name} {run_name.replace('_', ' ')} / scratch of the same seed, over {len(test)} seed(s): test "
            f"NDCG@20 {test.mean():.1%} ± {test.std():.1%}, validation {valid.mean():.1%} ± {valid.std():.1%}, "
            f"CPU {cpu.mean():.1%} ± {cpu.std():.1%}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--held-back", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="yesterday's and scratch's upper bound")
    parser.add_argument("--patience", type=int, default=5)
    # The warm start's schedule: by default the product's (warmstart.warm_settings, as the command line); these
    # override parts of it.
    parser.add_argument("--warm-epochs", type=int, help="default: warm_schedule's (9 after a 20-epoch yesterday)")
    parser.add_argument("--warm-lr", type=float, help="the warm start's peak learning rate (default: 10x yesterday's)")
    parser.add_argument("--warm-lr-schedule", help="constant, or linear (warm-up, decay to 0; the default)")
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--loss", default="sampled")
    parser.add_argument("--seeds", default="0", help="today's runs, one per seed (yesterday's model: seed 0)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/next_day"))
    parser.add_argument("--only", default="scratch,warm", help="which of today's runs: scratch, warm or both")
    parser.add_argument("--yesterday", type=Path, help="reuse this yesterday checkpoint (one --data only)")
    parser.add_argument("--report", type=Path, nargs="+", help="only print the table of these result files, merged")
    args = parser.parse_args()
    if args.report:
        merged: dict = {}
        for path in args.report:
            for name, results in json.loads(path.read_text()).items():
                merged.setdefault(name, {}).update({k: v for k, v in results.items() if v == v})
        print(table(merged))
        return
    args.inits = args.inits.split(",")
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    all_results = {}
    work = Path(tempfile.mkdtemp(prefix="s4rec-next-day-"))  # the checkpoints; only figures go to --out
    with open(args.out / "train.log", "a") as log_file:
        for path in args.data:
            all_results[path.name.split(".")[0]] = one_data_set(path, args, work, log_file)
            (args.out / "next_day.json").write_text(json.dumps(all_results, indent=2))
    print(table(all_results))
    valid = {init: np.mean([r[_key(f"warm_{init}", seed)]["valid_NDCG@20"] for r in all_results.values()
                            for seed in args.seeds]) for init in args.inits}  # fmt: skip
    print(f"validation NDCG@20 by initialisation (mean over data sets): {valid}; best: {max(valid, key=valid.get)}")
    print("command: " + " ".join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
