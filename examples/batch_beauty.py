"""Offline batch scoring end to end on Amazon Beauty: train -> export -> score every user -> show a few.

    python examples/batch_beauty.py [--epochs 20] [--workdir runs/batch_beauty]

Writes ``WORKDIR/model.pt`` (s4rec-train), ``WORKDIR/artifact/`` (s4rec-export) and ``WORKDIR/recs.jsonl``
(s4rec-score over the users' whole histories: the next items for each user after everything we know). The
same three steps from the shell:

    s4rec-train examples/data/beauty.txt.gz -o runs/batch_beauty/model.pt --epochs 20
    s4rec-export runs/batch_beauty/model.pt -o runs/batch_beauty/artifact
    s4rec-score runs/batch_beauty/artifact -i examples/data/beauty.txt.gz -o runs/batch_beauty/recs.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "beauty.txt.gz"


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--epochs", default=20, show_default=True, help="~20 reaches full quality on Beauty (~8 min, 2 cores).")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("runs/batch_beauty"), show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for training and scoring [default: all].")
@click.option("--model", "model_json", default="{}", help="Model settings as JSON, e.g. '{\"dim\": 32}'.")
@click.option("--show", default=3, show_default=True, help="Users whose recommendations are printed.")
def main(data, epochs, workdir, k, threads, model_json, show):
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    from s4rec import Recommender
    from s4rec.batch import available_cores, score_file
    from s4rec.cli import ProgressBar
    from s4rec_export import export_checkpoint
    from s4rec_train.data import load_interactions
    from s4rec_train.train import TrainConfig, train

    workdir.mkdir(parents=True, exist_ok=True)
    threads = threads or available_cores()
    checkpoint, artifact, recs = workdir / "model.pt", workdir / "artifact", workdir / "recs.jsonl"

    click.echo(f"1/3 train on {data.name} for up to {epochs} epochs -> {checkpoint}")
    config = TrainConfig(epochs=epochs, threads=threads, device="cpu")
    result = train(load_interactions(data), json.loads(model_json), config, checkpoint, log=click.echo)
    click.echo(f"    test NDCG@10 {result['metrics']['test']['overall']['NDCG@10']:.4f}")

    click.echo(f"2/3 export -> {artifact}")
    export_checkpoint(checkpoint, artifact, force=True)

    click.echo(f"3/3 score every user in {data.name} -> {recs}")
    recommender = Recommender.load(artifact, threads=threads)
    report = score_file(recommender, data, recs, k=k, force=True, on_progress=ProgressBar())
    click.echo(f"    {report.summary()}")

    with open(recs) as f:
        for line, _ in zip(f, range(show)):
            row = json.loads(line)
            click.echo(f"    user {row['user']}: {row['items']}")


if __name__ == "__main__":
    main()
