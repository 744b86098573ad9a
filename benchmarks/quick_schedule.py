"""Which short training run should the main job (examples/quickstart.py) make? Test NDCG@20 and training
seconds of candidate schedules on the built-in data, against the full-budget run measured in the same run.

    PYTHONPATH=sdk:training:export python benchmarks/quick_schedule.py --threads 2 --json-out runs/quick.json

Each candidate is ``name:objectives:loss:lr:schedule:epochs``; it validates only after its last epoch (a quick
run has no use for early stopping), so its seconds are the whole training. The reference is the default
``s4rec-train`` schedule (constant lr 1e-3, validation every epoch, early stopping, at most --reference-epochs);
``--no-reference`` reuses a figure given with ``--reference-ndcg`` instead (say where it came from).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent / "examples" / "data" / "beauty.txt.gz"
CANDIDATES = (
    "s4rec-3e-3-linear:s4rec:softmax:3e-3:linear:8",
    "s4rec-5e-3-linear:s4rec:softmax:5e-3:linear:8",
    "s4rec-sampled-5e-3-linear:s4rec:sampled:5e-3:linear:8",
)


def run(interactions, objectives: str, loss: str, lr: float, schedule: str, epochs: int, threads: int, **extra):
    from s4rec_train.config import ObjectiveConfig
    from s4rec_train.train import TrainConfig, train

    objective_config = ObjectiveConfig.backbone() if objectives == "backbone" else ObjectiveConfig()
    config = TrainConfig(epochs=epochs, lr=lr, lr_schedule=schedule, loss=loss, threads=threads, **extra)
    started = time.perf_counter()
    checkpoint = train(interactions, {}, config, None, log=lambda line: None, objectives=objective_config)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "test": checkpoint["metrics"]["test"]["overall"],
            "best_epoch": checkpoint["metrics"]["best_epoch"]}  # fmt: skip


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--candidates", default=",".join(CANDIDATES), show_default=True,
              help="Comma-separated name:objectives:loss:lr:schedule:epochs.")  # fmt: skip
@click.option("--threads", default=2, show_default=True)
@click.option("--reference/--no-reference", default=True, show_default=True)
@click.option("--reference-epochs", default=30, show_default=True)
@click.option("--reference-ndcg", type=float, default=None, help="With --no-reference: the full-budget figure.")
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
def main(data, candidates, threads, reference, reference_epochs, reference_ndcg, json_out):
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    from s4rec_train.data import load_interactions

    interactions = load_interactions(data)
    results = {}
    if reference:
        click.echo(f"reference: backbone, softmax, lr 1e-3 constant, up to {reference_epochs} epochs, early stopping")
        results["reference"] = run(
            interactions, "backbone", "auto", 1e-3, "constant", reference_epochs, threads, validate_every=1
        )
        reference_ndcg = results["reference"]["test"]["NDCG@20"]
        r = results["reference"]
        click.echo(f"  test NDCG@20 {reference_ndcg:.4f}, best epoch {r['best_epoch']}, {r['seconds']:.0f} s")
    for spec in candidates.split(","):
        name, objectives, loss, lr, schedule, epochs = spec.split(":")
        epochs = int(epochs)
        r = run(interactions, objectives, loss, float(lr), schedule, epochs, threads, validate_every=epochs)
        results[name] = r
        t = r["test"]
        ratio = f", {t['NDCG@20'] / reference_ndcg:.1%} of the reference" if reference_ndcg else ""
        click.echo(
            f"{name}: {r['seconds']:.0f} s training ({epochs} epochs, {threads} threads), test NDCG@20 "
            f"{t['NDCG@20']:.4f} HR@10 {t['HR@10']:.4f}{ratio}"
        )
    click.echo("command: PYTHONPATH=sdk:training:export python " + " ".join(shlex.quote(a) for a in sys.argv))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2))


if __name__ == "__main__":
    main()
