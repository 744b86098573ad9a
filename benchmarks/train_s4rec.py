"""Train S4Rec and its ablations next to the full-softmax backbone; print test figures, timings, intents.

    python benchmarks/train_s4rec.py --data ../shared/data/beauty.txt --arms backbone,s4rec --seeds 0 \\
        --epochs 20 --threads 2 --json-out beauty.json

Full against sampled softmax (issue 13; the same arms and seeds, quality and s/epoch side by side):

    python benchmarks/train_s4rec.py --data ../shared/data/beauty.txt --arms backbone,s4rec --loss sampled \\
        --negatives 1024 --epochs 20 --threads 2 --json-out beauty_sampled.json

Arms, named as the paper's Table 3 names them (METHOD.md sections 8 and 10; CSD is the sequence-level
contrastive module *and* the cluster-level self-distillation module together):

* ``sr``             SR only: the next-item loss alone (all auxiliary weights 0; the backbone);
* ``sr_csd``         SR + CSD: the next-item loss with L_SCL and L_CKD (no clustering loss, no adversary: the
                     prototypes move only through those two terms);
* ``no_csd``         S4Rec without CSD: L_Clust and the adversary (L_SCL and L_CKD off);
* ``no_adv``         S4Rec without the head/tail adversary;
* ``full``           everything: L_Clust, L_SCL, L_CKD and the adversary (lambda 1.0, the paper's).

and single-term arms that earlier versions of this script misnamed (``distill`` / ``no_distill``):

* ``clust_ckd``      the next-item loss with L_Clust and L_CKD only (no contrastive term, no adversary);
* ``no_ckd``         everything but L_CKD (adversary on);
* ``s4rec``          the shipped defaults of ``ObjectiveConfig`` (whatever they are at this commit).

``backbone`` is accepted as another name of ``sr``. ``--set name=value`` overrides an ``ObjectiveConfig`` field
for every S4Rec arm (e.g. ``--set side_vector=mean --set crop_ratio=0.2``); the arm's own weights win over it.
Each run prints its per-epoch lines (with the adversary's cross-entropy against ln 2, L_Clust against its uniform
value 2 ln K, the intents in use and the largest intent's share); the end prints, per arm, the mean and spread
over seeds of test HR@5/HR@20/NDCG@5/NDCG@20 overall, for head and for tail users, validation NDCG@20, seconds
per training epoch, the intents used of K and the spread of the head share across intents, followed by the exact
command line.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import click
import numpy as np
import torch
from results_table import arm_summary  # sibling script in benchmarks/ (on sys.path when run as a script)

from s4rec_train.data import read_sequences
from s4rec_train.objectives import ObjectiveConfig
from s4rec_train.train import TrainConfig, train

ARMS = {
    "sr": dict(cluster_weight=0.0, contrastive_weight=0.0, distill_weight=0.0, adversary_weight=0.0),
    "sr_csd": dict(cluster_weight=0.0, adversary_weight=0.0),
    "no_csd": dict(contrastive_weight=0.0, distill_weight=0.0, adversary_weight=1.0),
    "no_adv": dict(adversary_weight=0.0),
    "full": dict(adversary_weight=1.0),
    "clust_ckd": dict(contrastive_weight=0.0, adversary_weight=0.0),
    "no_ckd": dict(distill_weight=0.0, adversary_weight=1.0),
    "s4rec": {},
}
ALIASES = {"backbone": "sr"}
METRICS = ("HR@5", "HR@20", "NDCG@5", "NDCG@20")


def parse_overrides(values: tuple[str, ...]) -> dict:
    types = {f.name: f.type for f in fields(ObjectiveConfig)}
    out = {}
    for item in values:
        name, _, raw = item.partition("=")
        if name not in types:
            raise click.BadParameter(f"{name!r} is not an ObjectiveConfig field; known: {sorted(types)}")
        kind = types[name]
        if kind in ("bool", bool):
            out[name] = raw.lower() in ("1", "true", "yes")
        elif kind in ("int", int):
            out[name] = int(raw)
        elif kind in ("float", float):
            out[name] = float(raw)
        else:
            out[name] = raw
    return out


def summary(runs: list[dict]) -> str:
    lines = []
    header = f"{'arm':11s}{'group':9s}" + "".join(f"{m:>17s}" for m in METRICS) + f"{'valid NDCG@20':>17s}"
    lines.append(header)
    for arm in dict.fromkeys(r["arm"] for r in runs):
        arm_runs = [r for r in runs if r["arm"] == arm]
        for group in ("overall", "head", "tail"):
            cells = []
            for m in METRICS:
                values = np.array([r["test"][group][m] for r in arm_runs])
                cells.append(f"{values.mean():.4f}±{values.std():.4f}" if len(values) > 1 else f"{values[0]:.4f}")
            valid = np.array([r["valid"][group]["NDCG@20"] for r in arm_runs])
            cells.append(f"{valid.mean():.4f}±{valid.std():.4f}" if len(valid) > 1 else f"{valid[0]:.4f}")
            lines.append(f"{arm:11s}{group:9s}" + "".join(f"{c:>17s}" for c in cells))
    lines.append("")
    lines.append(f"{'arm':11s}{'seeds':>8s}{'s/ep(med)':>10s}{'best epochs':>14s}{'intents used':>14s}"
                 f"{'head share std (weighted)':>28s}")  # fmt: skip
    for arm in dict.fromkeys(r["arm"] for r in runs):
        arm_runs = [r for r in runs if r["arm"] == arm]
        seconds, best, used, spread = arm_summary(arm_runs)
        seeds = ",".join(str(r["seed"]) for r in arm_runs)
        lines.append(f"{arm:11s}{seeds:>8s}{seconds:10.1f}{best:>14s}{used:>14s}{spread:>28s}")
    return "\n".join(lines)


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--arms", default="backbone,s4rec", show_default=True, help=f"Comma-separated, from {list(ARMS)}.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--patience", default=5, show_default=True)
@click.option("--layers", default=2, show_default=True, help="Transformer blocks (the paper searches 1-3).")
@click.option("--threads", default=2, show_default=True)
@click.option(
    "--batching",
    type=click.Choice(["auto", "tokens", "users", "random"]),
    default="auto",
    show_default=True,
    help="How users are grouped into batches, for every arm (s4rec-train --batching; auto: tokens for the "
    "backbone, random for S4Rec arms with the clustering or the adversary).",
)
@click.option(
    "--loss", type=click.Choice(["softmax", "sampled", "auto", "bce"]), default="softmax", show_default=True,
    help="Next-item loss for every arm: full softmax, sampled softmax (--negatives shared negatives, logQ), auto "
    "(softmax up to 50,000 items), or bce with one sampled negative (the paper's SASRec).",
)  # fmt: skip
@click.option("--negatives", default=1024, show_default=True, help="Sampled softmax: negatives per step.")
@click.option("--negative-sampler", type=click.Choice(["uniform", "popularity", "mixed"]), default="uniform",
              show_default=True, help="Sampled softmax: where the negatives are drawn from.")  # fmt: skip
@click.option("--in-batch-negatives", default=1024, show_default=True, help="Sampled softmax: in-batch items.")
@click.option("--sparse-items", is_flag=True, help="Sampled losses: SparseAdam on the item table's rows.")
@click.option("--prefix-split", is_flag=True, help="Train on every prefix of each history (sub-sequence split).")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--set", "overrides", multiple=True, help="ObjectiveConfig override for S4Rec arms: name=value.")
@click.option("--json-out", type=click.Path(path_type=Path), help="Write every run's figures as JSON here.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (TrainConfig.device).")
@click.option("--bf16", is_flag=True, help="bf16 autocast (GPU runs; the stored CPU figures are fp32).")
def main(data, arms, seeds, epochs, batch_size, patience, layers, threads, batching, loss, negatives, negative_sampler,
         in_batch_negatives, sparse_items, prefix_split, lr, overrides, json_out, device, bf16):  # fmt: skip
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    torch.set_num_threads(threads)
    interactions = read_sequences(data)
    overrides = parse_overrides(overrides)
    arm_names = [ALIASES.get(a.strip(), a.strip()) for a in arms.split(",") if a.strip()]
    unknown = [a for a in arm_names if a not in ARMS]
    if unknown:
        raise click.BadParameter(f"unknown arms {unknown}; choose from {list(ARMS)}", param_hint="--arms")
    runs = []
    for seed in [int(s) for s in seeds.split(",")]:
        for arm in arm_names:
            objective = dict(ARMS[arm]) if arm == "sr" else {**overrides, **ARMS[arm]}
            config = TrainConfig(
                epochs=epochs, batch_size=batch_size, patience=patience, seed=seed, threads=threads,
                device=device, bf16=bf16, batching=batching, loss=loss, lr=lr, negatives=negatives,
                negative_sampler=negative_sampler, in_batch_negatives=in_batch_negatives, sparse_items=sparse_items,
                prefix_split=prefix_split,
            )  # fmt: skip
            print(f"\n== {data.name} arm {arm} seed {seed}: {objective or 'defaults'}", flush=True)
            log = lambda line: print(line, flush=True)  # noqa: E731
            checkpoint = train(interactions, {"layers": layers}, config, log=log, objectives=objective)
            history = checkpoint["training"]["history"]
            metrics = checkpoint["metrics"]
            runs.append(
                {"arm": arm, "seed": seed, "objectives": checkpoint["training"]["objectives"],
                 "batching": checkpoint["training"]["settings"]["batching"], "layers": layers,
                 "settings": checkpoint["training"]["settings"],
                 "next_item_loss": checkpoint["training"]["next_item_loss"],
                 "test": metrics["test"], "valid": metrics["valid"], "best_epoch": metrics["best_epoch"],
                 "epochs_run": len(history), "epoch_seconds": [h["seconds"] for h in history],
                 "history": history, "intents": metrics.get("intents")}
            )  # fmt: skip
            if json_out:
                json_out.write_text(json.dumps({"command": "python " + shlex.join(sys.argv), "runs": runs}, indent=1))
    print(f"\n{data.name}: test figures (mean±std over seeds where several), validation NDCG@20 of the chosen epoch")
    print(summary(runs))
    print("command: python " + shlex.join(sys.argv))


if __name__ == "__main__":
    main()
