"""The whole s4rec job on the built-in data: train a model, then show a few users' recommendations.

    python examples/quickstart.py [--epochs 3] [--workdir runs/quickstart]

The built-in data is the Amazon Beauty benchmark (examples/data/beauty.txt.gz, see examples/data/README.md).
"""

from __future__ import annotations

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
    import torch

    from s4rec_train.checkpoint import load_checkpoint, model_from_checkpoint
    from s4rec_train.data import load_interactions
    from s4rec_train.evaluation import format_table
    from s4rec_train.train import TrainConfig, train

    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = workdir / "model.pt"
    interactions = load_interactions(data)
    click.echo(f"1/2 training on {data.name} for {epochs} epochs -> {checkpoint_path}")
    checkpoint = train(interactions, {}, TrainConfig(epochs=epochs), checkpoint_path, log=click.echo, progress=True)
    click.echo(format_table({"test": checkpoint["metrics"]["test"]}))

    click.echo(f"\n2/2 recommendations for {users} users (their own item ids, most recent last):")
    model = model_from_checkpoint(load_checkpoint(checkpoint_path))
    item_ids = checkpoint["item_ids"]
    with torch.no_grad():
        for user, sequence in list(zip(interactions.user_ids, interactions.sequences))[:users]:
            history = torch.as_tensor(sequence[-model.config.max_len :])[None]
            scores = model.scores(model.user_embedding(history))[0]
            scores[history[0] - 1] = float("-inf")
            top = scores.topk(5).indices + 1
            click.echo(f"  user {user}: history {[item_ids[i - 1] for i in sequence[-5:]]} -> "
                       f"{[item_ids[i - 1] for i in top.tolist()]}")  # fmt: skip


if __name__ == "__main__":
    main()
