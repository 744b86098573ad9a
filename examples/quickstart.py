"""The whole s4rec job on the built-in data: train a model, export it, score every user, show a few.

    python examples/quickstart.py [--epochs 3] [--workdir runs/quickstart] [--users 3]

1. ``s4rec-train``: a short training run on the built-in data (Amazon Beauty, examples/data/beauty.txt.gz,
   see examples/data/README.md) -> ``WORKDIR/model.pt``;
2. ``s4rec-export``: the checkpoint frozen into a verified ONNX artifact -> ``WORKDIR/artifact/``;
3. ``s4rec-score``: every user's next items, scored by the torch-free SDK -> ``WORKDIR/recs.jsonl``;
   a few users' recommendations are printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "beauty.txt.gz"


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--epochs", default=3, show_default=True, help="A short run; use ~20 for full quality.")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("runs/quickstart"), show_default=True)
@click.option("--users", default=3, show_default=True, help="How many users' recommendations to print.")
def main(data: Path, epochs: int, workdir: Path, users: int) -> None:
    from s4rec import Recommender
    from s4rec.batch import available_cores, score_file
    from s4rec.cli import ProgressBar
    from s4rec_export import export_checkpoint
    from s4rec_train.cli import progress_reporter
    from s4rec_train.data import load_interactions
    from s4rec_train.evaluation import format_table
    from s4rec_train.train import TrainConfig, train

    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, artifact, recs = workdir / "model.pt", workdir / "artifact", workdir / "recs.jsonl"
    interactions = load_interactions(data)
    click.echo(f"1/3 training on {data.name} for {epochs} epochs -> {checkpoint_path}")
    config = TrainConfig(epochs=epochs)
    checkpoint = train(interactions, {}, config, checkpoint_path, log=click.echo, on_progress=progress_reporter())
    click.echo(format_table({"test": checkpoint["metrics"]["test"]}))

    click.echo(f"\n2/3 exporting -> {artifact}")
    for line in export_checkpoint(checkpoint_path, artifact, force=True).lines():
        click.echo(f"    {line}")

    click.echo(f"\n3/3 scoring every user of {data.name} -> {recs}")
    recommender = Recommender.load(artifact, threads=available_cores())
    click.echo(f"    {score_file(recommender, data, recs, k=10, force=True, on_progress=ProgressBar()).summary()}")

    click.echo(f"\nrecommendations for {users} users (their own item ids; history most recent last):")
    histories = dict(zip(interactions.user_ids, interactions.sequences))
    item_ids = interactions.item_ids
    with open(recs) as f:
        for line, _ in zip(f, range(users)):
            row = json.loads(line)
            recent = [item_ids[i - 1] for i in histories[row["user"]][-5:]]
            click.echo(f"  user {row['user']}: history ...{recent} -> {row['items'][:5]}")


if __name__ == "__main__":
    main()
