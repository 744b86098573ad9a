"""How much head/tail information a checkpoint's user vectors carry: a linear probe.

    PYTHONPATH=sdk:training:export python benchmarks/probes/head_tail_probe.py CKPT.pt [CKPT.pt ...] \
        --data ../shared/data/beauty.txt

S4Rec's adversary (a head/tail classifier behind a gradient-reversal layer) is meant to make the user vector
z_u carry no information on whether the user is a head user (the 20% with the longest histories). This fits,
per checkpoint, a fresh logistic regression from the L2-normalised z_u of every user's validation history
(all but the last two items) to the head/tail label on 70% of the users, and reports on the other 30% its
accuracy (the base rate is 0.80), ROC AUC (0.5 = no information) and cross-entropy (the base-rate entropy
is 0.50). Same split and seed for every checkpoint, so the figures compare.
"""

from __future__ import annotations

from pathlib import Path

import click
import torch
import torch.nn.functional as F

from s4rec_train.checkpoint import load_checkpoint, model_from_checkpoint
from s4rec_train.data import leave_one_out, read_sequences, remap_to_vocabulary


def user_vectors(checkpoint: dict, data, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised z_u of every user's validation history (n, d) and the head labels (n,)."""
    model = model_from_checkpoint(checkpoint).eval()
    split = leave_one_out(remap_to_vocabulary(data, checkpoint["item_ids"]), checkpoint["config"]["max_len"])
    history = torch.from_numpy(split.valid_history)
    with torch.no_grad():
        z = torch.cat([model(history[i : i + batch_size], last_only=True) for i in range(0, len(history), batch_size)])
    return F.normalize(z, dim=-1), torch.from_numpy(split.is_head).long()


def probe(z: torch.Tensor, label: torch.Tensor, seed: int, steps: int = 1500) -> dict:
    """Fit on 70% of the users, evaluate on the rest."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(z), generator=generator)
    cut = len(z) * 7 // 10
    train, test = order[:cut], order[cut:]
    classifier = torch.nn.Linear(z.shape[1], 2)
    with torch.no_grad():
        classifier.weight.normal_(0.0, 0.01, generator=generator)
        classifier.bias.zero_()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(classifier(z[train]), label[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = classifier(z[test])
        p_head = logits.softmax(-1)[:, 1]
        truth = label[test]
        positive, negative = p_head[truth == 1], p_head[truth == 0]
        auc = (positive[:, None] > negative[None, :]).float().mean() + 0.5 * (
            positive[:, None] == negative[None, :]
        ).float().mean()
        return {
            "accuracy": float(((p_head > 0.5).long() == truth).float().mean()),
            "auc": float(auc),
            "cross_entropy": float(F.cross_entropy(logits, truth)),
            "head_share": float(label.float().mean()),
        }


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=2, show_default=True)
def main(checkpoints, data, seed, threads):
    torch.set_num_threads(threads)
    interactions = read_sequences(data)
    for path in checkpoints:
        z, label = user_vectors(load_checkpoint(path), interactions)
        r = probe(z, label, seed)
        print(
            f"{path}: {len(z)} users, head share {r['head_share']:.3f}; linear probe on 30% held out: "
            f"accuracy {r['accuracy']:.3f}, AUC {r['auc']:.3f}, cross-entropy {r['cross_entropy']:.3f}"
        )
    paths = " ".join(map(str, checkpoints))
    print(f"command: PYTHONPATH=sdk:training:export python benchmarks/probes/head_tail_probe.py {paths} --data {data}")


if __name__ == "__main__":
    main()
