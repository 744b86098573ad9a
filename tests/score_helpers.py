"""Inputs for the scoring and example tests, next to the session's tiny exported artifact (conftest.py).

:func:`score_inputs` gives a directory with ``artifact`` (a link to the ``plain_artifact`` fixture: the tiny
model without intents, 40 items, top_k 40) and the same 120 synthetic users as ``users.txt`` (benchmark
text) and ``users.jsonl``, in the model's own item ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import NUM_ITEMS

from s4rec_train.data import synthetic_interactions, write_sequences

NUM_USERS = 120


def score_inputs(artifact: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("score_inputs")
    (root / "artifact").symlink_to(artifact, target_is_directory=True)
    data = synthetic_interactions(num_users=NUM_USERS, num_items=NUM_ITEMS, seed=3)
    write_sequences(data, root / "users.txt")
    with open(root / "users.jsonl", "w") as f:
        for user, seq in zip(data.user_ids, data.sequences):
            f.write(json.dumps({"user": user, "history": [data.item_ids[i - 1] for i in seq.tolist()]}) + "\n")
    return root


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]
