"""A tiny trained and exported artifact, built once per test session, for the scoring and example tests.

Kept out of conftest.py on purpose (other test modules have their own fixtures); the tests that need it call
:func:`tiny_artifact` from a fixture, and the module-level cache makes it one build per session.
"""

from __future__ import annotations

import json
from pathlib import Path

from s4rec_train.data import synthetic_interactions, write_sequences

TINY_MODEL = {"max_len": 12, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.1}
_CACHE: dict[str, Path] = {}


def tiny_artifact(tmp_path_factory) -> Path:
    """Directory with ``model.pt``, the exported ``artifact/`` and ``users.txt`` / ``users.jsonl`` inputs."""
    if "root" not in _CACHE:
        from s4rec_export import export_checkpoint
        from s4rec_train.train import TrainConfig, train

        root = tmp_path_factory.mktemp("tiny_artifact")
        data = synthetic_interactions(num_users=120, num_items=30, seed=3)
        train(data, TINY_MODEL, TrainConfig(epochs=2, batch_size=64, seed=0, lr=5e-3), root / "model.pt")
        export_checkpoint(root / "model.pt", root / "artifact", top_k=20)
        write_sequences(data, root / "users.txt")
        with open(root / "users.jsonl", "w") as f:
            for user, seq in zip(data.user_ids, data.sequences):
                f.write(json.dumps({"user": user, "history": [data.item_ids[i - 1] for i in seq.tolist()]}) + "\n")
        _CACHE["root"] = root
    return _CACHE["root"]


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]
