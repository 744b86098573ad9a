"""A large-catalogue checkpoint grown from a trained one, for benchmarks/large_catalogue.py.

No data set here has 10^6 items, and a random table would give user vectors and a score distribution unlike a
trained model's. So the large table is grown from a trained checkpoint (e.g. 3 epochs of Beauty, 12,101 items):
its items keep their rows (indices 1..N0, so its test histories and its trained encoder give real user
vectors), and every further item is a child of a base item drawn by popularity: the parent's row scaled by a
log-normal factor (norms vary, as in a tied SASRec table where popular items are longer) plus Gaussian noise of
``spread`` times the parent's norm, so the table has the cluster structure of the trained one. The encoder
weights are the trained ones. Without a base checkpoint, a random SASRec with a clustered table is made
instead (the user vectors are then of an untrained encoder).

    python benchmarks/large_checkpoint.py --base /tmp/beauty.pt --items 1000000 -o /tmp/large_1m.pt
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from s4rec_train.checkpoint import (
    item_ids,
    item_popularity,
    load_checkpoint,
    new_checkpoint,
    save_checkpoint,
    with_weights,
)
from s4rec_train.config import ModelConfig
from s4rec_train.model import SASRec


def grown_table(base: np.ndarray, counts: np.ndarray | None, num_items: int, spread: float, seed: int) -> np.ndarray:
    """``(num_items + 1, d)`` float32: ``base`` (N0 + 1, d) rows first, then children of popular base rows."""
    rng = np.random.default_rng(seed)
    n0, d = base.shape[0] - 1, base.shape[1]
    weights = (counts[1:] if counts is not None else np.ones(n0)).astype(np.float64) + 1.0
    parents = rng.choice(np.arange(1, n0 + 1), size=num_items - n0, p=weights / weights.sum())
    table = np.empty((num_items + 1, d), dtype=np.float32)
    table[: n0 + 1] = base
    start = n0 + 1
    for a in range(0, len(parents), 1 << 18):  # in slices: bounded temporary memory
        p = parents[a : a + (1 << 18)]
        rows = base[p].astype(np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        noise = rng.standard_normal(rows.shape, dtype=np.float32) * (spread * norms / np.sqrt(d))
        scale = rng.lognormal(0.0, 0.25, (len(p), 1)).astype(np.float32)
        table[start + a : start + a + len(p)] = rows * scale + noise
    return table


def large_checkpoint(base_path: Path | None, num_items: int, spread: float = 0.5, seed: int = 0) -> dict:
    """A checkpoint of ``num_items`` items grown from ``base_path`` (module docstring), ids 1..num_items."""
    torch.manual_seed(seed)
    if base_path is not None:
        base = load_checkpoint(base_path)
        config = ModelConfig.from_dict(dict(base["config"], num_items=num_items))
        state = {k: v.clone() for k, v in base["state_dict"].items()}
        base_table = state["item_embedding.weight"].numpy()
        counts = item_popularity(base)
        base_ids = item_ids(base)
        if num_items < len(base_ids):
            raise click.BadParameter(f"--items {num_items} is below the base checkpoint's {len(base_ids)} items")
    else:
        config = ModelConfig(num_items=num_items, dropout=0.0)
        state = SASRec(ModelConfig(num_items=4096, dropout=0.0)).state_dict()
        rng = np.random.default_rng(seed)
        base_table = (rng.standard_normal((4097, config.dim)) * 0.5).astype(np.float32)
        base_table[0] = 0
        counts = np.concatenate([[0], rng.zipf(1.5, 4096)])
    table = grown_table(base_table, counts, num_items, spread, seed)
    state["item_embedding.weight"] = torch.from_numpy(table)
    model = SASRec(config)
    model.load_state_dict(state)  # checks every shape
    # the base items keep their popularity; the grown ones get their parents' count, scaled down
    all_counts = np.ones(num_items + 1, dtype=np.int64)
    all_counts[0] = 0
    if base_path is not None:
        all_counts[: len(counts)] = counts
    training = {"source": f"grown from {base_path} (benchmarks/large_checkpoint.py)", "seed": seed}
    ids: list = list(range(1, num_items + 1))
    if base_path is not None:  # the base items keep their ids (their histories stay valid), new ones follow
        first_new = 1 + max((i for i in base_ids if isinstance(i, int)), default=0)
        ids = [*base_ids, *range(first_new, first_new + num_items - len(base_ids))]
    checkpoint = new_checkpoint(config, ids, all_counts, training)
    return with_weights(checkpoint, model.state_dict())


@click.command()
@click.option("--base", type=click.Path(exists=True, path_type=Path), default=None, help="Trained checkpoint.")
@click.option("--items", default=1_000_000, show_default=True)
@click.option("--spread", default=0.5, show_default=True, help="Noise of a grown row, times its parent's norm.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
def main(base, items, spread, output):
    save_checkpoint(large_checkpoint(base, items, spread), output)
    click.echo(f"wrote {output} ({items:,} items)")


if __name__ == "__main__":
    main()
