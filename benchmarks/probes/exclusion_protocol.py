"""How much excluding the whole history (not only the model's window) changes the test figures of a checkpoint.

    PYTHONPATH=sdk:training:export python benchmarks/probes/exclusion_protocol.py CHECKPOINT \
        --data ../shared/data/beauty.txt

The standard protocol (and `s4rec-train evaluate`, and the SDK) leaves every item of a user's history out of
the ranking. Before commit e21a317 evaluation left out only the last ``max_len`` items (the window the model
reads), so a user with a longer history could be "recommended" an item seen long ago, and such an item could
push the target down. This script ranks the same checkpoint's test (and validation) targets both ways and
prints the figures side by side, with how many users have histories longer than the window: the only users
whose ranks can differ.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
import numpy as np
import torch

from s4rec_train.checkpoint import item_ids, load_checkpoint, model_from_checkpoint
from s4rec_train.data import leave_one_out, load_interactions, remap_to_vocabulary
from s4rec_train.evaluation import KS, grouped_metrics, rank_targets


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--threads", default=2, show_default=True)
def main(checkpoint: Path, data: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    interactions = remap_to_vocabulary(load_interactions(data), item_ids(ckpt))
    split = leave_one_out(interactions, model.config.max_len)
    names = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS]
    print(f"{checkpoint} on {data}: {len(split.test_target):,} users, max_len {model.config.max_len}")
    for which in ("valid", "test"):
        history = split.valid_history if which == "valid" else split.test_history
        target = split.valid_target if which == "valid" else split.test_target
        items, starts, ends = split.seen(which)
        longer = int(((ends - starts) > model.config.max_len).sum())
        window = grouped_metrics(rank_targets(model, history, target), split.is_head)
        whole = grouped_metrics(rank_targets(model, history, target, seen=(items, starts, ends)), split.is_head)
        print(f"\n{which}: {longer:,} users with a history longer than the window")
        print(f"{'exclusion':22s}" + "".join(f"{n:>9s}" for n in names))
        for label, figures in (("window only (old)", window), ("whole history", whole)):
            print(f"{label:22s}" + "".join(f"{figures['overall'][n]:9.4f}" for n in names))
        change = [whole["overall"][n] / window["overall"][n] - 1 if window["overall"][n] else np.nan for n in names]
        print(f"{'relative change':22s}" + "".join(f"{c:+9.2%}" for c in change))
    print("\ncommand: PYTHONPATH=sdk:training:export python " + shlex.join(sys.argv))


if __name__ == "__main__":
    main()
