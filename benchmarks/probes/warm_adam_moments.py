"""Probe (measured no gain, deleted after this commit; benchmarks/RESULTS.md, "Next day"): does carrying
yesterday's Adam moments into the warm start help?

    PYTHONPATH=training:sdk:export:benchmarks python benchmarks/probes/warm_adam_moments.py yesterday
    PYTHONPATH=training:sdk:export:benchmarks python benchmarks/probes/warm_adam_moments.py warm --carry 0
    PYTHONPATH=training:sdk:export:benchmarks python benchmarks/probes/warm_adam_moments.py warm --carry 1

``yesterday`` trains next_day.py's yesterday model keeping its final training state (the moments); ``warm`` runs
the warm start (6 epochs linear from 1e-2, cooccur rows) with (``--carry 1``: old moments and step; new item rows
get m = 0 and v = the old rows' mean) or without them.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from next_day import new_item_figures, summary, yesterday_of

import s4rec_train.resume as resume
import s4rec_train.train as training
from s4rec_train.data import read_sequences
from s4rec_train.warmstart import WarmStart

parser = argparse.ArgumentParser()
parser.add_argument("phase", choices=["yesterday", "warm"])
parser.add_argument("--carry", type=int, default=0)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data", default="../shared/data/beauty.txt")
parser.add_argument("--out", type=Path, default=Path("runs/warm_adam_moments"))
args = parser.parse_args()
torch.set_num_threads(1)
args.out.mkdir(parents=True, exist_ok=True)
today = read_sequences(args.data)
old = str(args.out / "yesterday.pt")
common = dict(epochs=20, patience=5, seed=0, threads=1, loss="sampled", device="cpu")
if args.phase == "yesterday":
    resume.RunState.remove = lambda self: None  # keep the final state: the moments
    training.train(yesterday_of(today, 3), config=training.TrainConfig(**common), output=old)
    raise SystemExit
if args.carry:
    saved = torch.load(old + ".state", weights_only=True)["optimizer"][0]["state"]
    original = training._optimizer

    def carried(model, parameters, config, loss, group):
        optimizer = original(model, parameters, config, loss, group)
        for i, parameter in enumerate(parameters):
            if i not in saved:  # never had a gradient (the adversary, off)
                continue
            m, v = saved[i]["exp_avg"], saved[i]["exp_avg_sq"]
            if m.shape != parameter.shape:  # the grown item table
                extra = parameter.shape[0] - m.shape[0]
                m = torch.cat([m, torch.zeros(extra, m.shape[1])])
                v = torch.cat([v, v[1:].mean(0, keepdim=True).expand(extra, -1)])
            optimizer.state[parameter] = {"step": saved[i]["step"].clone(), "exp_avg": m, "exp_avg_sq": v}
        return optimizer

    training._optimizer = carried
new_ids = set(today.item_ids.tolist()) - set(yesterday_of(today, 3).item_ids.tolist())
config = training.TrainConfig(**{**common, "seed": args.seed, "epochs": 6, "lr": 1e-2, "lr_schedule": "linear"})
wall, cpu = time.perf_counter(), time.process_time()
checkpoint = training.train(today, config=config, output=args.out / "warm.pt", init_from=WarmStart.load(old, "cooccur"))
result = summary(checkpoint, time.perf_counter() - wall, time.process_time() - cpu)
print(json.dumps({**result, **new_item_figures(checkpoint, today, new_ids)}))
