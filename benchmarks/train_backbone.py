"""Train the full-softmax SASRec backbone on a benchmark file and print test metrics and timings.

    python benchmarks/train_backbone.py --data ../shared/data/beauty.txt --epochs 20 --threads 2

Prints per-epoch lines, the test table (history-excluded full ranking, overall/head/tail), seconds per
training epoch, seconds for a full valid + test evaluation, and the exact command line used.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click
import torch

from s4rec_train.data import leave_one_out, read_sequences
from s4rec_train.evaluation import evaluate_split, format_table
from s4rec_train.objectives import ObjectiveConfig
from s4rec_train.train import TrainConfig, train


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--patience", default=5, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--batching", type=click.Choice(["tokens", "users", "random"]), default="tokens", show_default=True)
@click.option("--json-out", type=click.Path(path_type=Path), help="Write the figures as JSON here.")
def main(data, epochs, batch_size, patience, threads, seed, batching, json_out):
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    torch.set_num_threads(threads)
    interactions = read_sequences(data)
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, patience=patience, seed=seed, threads=threads,
        device="cpu", batching=batching,
    )  # fmt: skip
    checkpoint = train(interactions, {}, config, objectives=ObjectiveConfig.backbone())
    history = checkpoint["training"]["history"]
    epoch_seconds = [h["seconds"] for h in history]

    from s4rec_train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(checkpoint)
    split = leave_one_out(interactions, model.config.max_len)
    started = time.perf_counter()
    results = {"valid": evaluate_split(model, split, "valid"), "test": evaluate_split(model, split, "test")}
    eval_seconds = time.perf_counter() - started

    print(f"\n{data.name}: best epoch {checkpoint['metrics']['best_epoch']} of {len(history)}")
    print(format_table({"test": results["test"]}))
    mean_epoch = sum(epoch_seconds) / len(epoch_seconds)
    low, high = min(epoch_seconds), max(epoch_seconds)
    print(f"train seconds/epoch: mean {mean_epoch:.1f}, min {low:.1f}, max {high:.1f}"
          f" (batch {batch_size}, {threads} threads, {torch.get_num_threads()} torch threads)")  # fmt: skip
    print(f"full evaluation (valid + test, {len(split.test_target)} users each): {eval_seconds:.2f}s")
    print("command: python " + shlex.join(sys.argv))
    if json_out:
        json_out.write_text(
            json.dumps(
                {"test": results["test"], "epoch_seconds": epoch_seconds, "eval_seconds": eval_seconds,
                 "best_epoch": checkpoint["metrics"]["best_epoch"], "command": shlex.join(sys.argv)},
                indent=2,
            )
        )  # fmt: skip


if __name__ == "__main__":
    main()
