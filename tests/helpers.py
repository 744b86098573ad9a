"""Helpers for the export and SDK tests: tiny trained checkpoints, with and without intent centroids."""

from __future__ import annotations

from pathlib import Path

TINY_MODEL = {"max_len": 10, "dim": 16, "layers": 2, "heads": 2, "dropout": 0.1}
NUM_ITEMS = 40
NUM_INTENTS = 5
# Item ids that JSON, Python's ensure_ascii checksum and JavaScript each treat in their own way: non-ASCII
# (two-byte, CJK, an astral emoji), quotes, backslashes, control characters, and 5 next to "5" (the
# JavaScript SDK's tests rewrite the tiny model's ids to these: index i -> MIXED_IDS[i - 1]).
SPECIAL_IDS = ["café", "日本", "😀", 'say "hi"', "back\\slash", "tab\t", "5", 5, "x/y", "\u2028", "\x7f"]
MIXED_IDS = SPECIAL_IDS + [f"item-{i}" for i in range(len(SPECIAL_IDS) + 1, NUM_ITEMS + 1)]


def train_tiny(path: Path, seed: int = 0, model: dict | None = None, num_items: int = NUM_ITEMS) -> dict:
    """Train a tiny SASRec on synthetic cycles for a few epochs (about a second) and save it to ``path``."""
    import torch

    from s4rec_train.checkpoint import save_checkpoint
    from s4rec_train.data import synthetic_interactions
    from s4rec_train.objectives import ObjectiveConfig
    from s4rec_train.train import TrainConfig, train

    torch.set_num_threads(1)
    data = synthetic_interactions(num_users=200, num_items=num_items, seed=seed)
    config = TrainConfig(epochs=4, batch_size=64, lr=5e-3, seed=seed, threads=1)
    # The SASRec backbone: intent centroids are added explicitly by with_intents (or by S4Rec training).
    checkpoint = train(data, model or TINY_MODEL, config, log=lambda _: None, objectives=ObjectiveConfig.backbone())
    save_checkpoint(checkpoint, path)
    return checkpoint


def with_intents(checkpoint: dict, path: Path, num_intents: int = NUM_INTENTS, seed: int = 0) -> dict:
    """The checkpoint with L2-normalised random intent centroids (as S4Rec training stores them), saved."""
    import torch

    from s4rec_train.checkpoint import save_checkpoint

    generator = torch.Generator().manual_seed(seed)
    dim = checkpoint["config"]["dim"]
    centroids = torch.nn.functional.normalize(torch.randn(num_intents, dim, generator=generator), dim=-1)
    checkpoint = dict(checkpoint, intent_centroids=centroids)
    checkpoint["intent_config"] = {"num_intents": num_intents, "temperature": 0.1, "normalized": True}
    save_checkpoint(checkpoint, path)
    return checkpoint


def synthetic_histories(num_items: int = NUM_ITEMS, count: int = 60, seed: int = 3) -> list[list[int]]:
    """Histories in the tiny models' own item ids (1..num_items), lengths 0..25 (some longer than max_len)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(1, num_items + 1, int(rng.integers(0, 26))).tolist() for _ in range(count)]


# Metadata edits the SDKs must refuse at load (the graph disagrees), with the words both SDKs say: name, the
# changed metadata fields for the tiny plain artifact (40 items, max_len 10, dim 16, top_k 40), a fragment.
GRAPH_MISMATCH_CASES = [
    ("top_k above the graph's", {"num_items": 50, "top_k": 45, "item_ids": list(range(1, 51))},
     "k = 45 returns 40 items, so top_k is not 45"),
    ("fewer items than the graph", {"num_items": 30, "top_k": 30, "item_ids": list(range(30)), "popular_items": [1]},
     "item index 31 is an item, so the graph has more than num_items 30 items"),
    ("more items than the graph", {"num_items": 50, "item_ids": list(range(1, 51))},
     "item index 50 reads as padding, so the graph has fewer than num_items 50 items"),
    ("max_len above the graph's", {"max_len": 20}, "the graph reads fewer than max_len 20 items of a history"),
    ("embedding_dim other than the graph's", {"embedding_dim": 8},
     "user vectors of shape (4, 16), not (4, embedding_dim 8)"),
]  # fmt: skip


def with_edited_metadata(artifact: Path, target: Path, **changes) -> Path:
    """A copy of the format 2 ``artifact`` directory at ``target`` whose fp32 model's metadata JSON has ``changes``
    (its item checksum and the manifest's file checksum updated to match, so only the graph can disagree)."""
    import hashlib
    import json
    import shutil

    import onnx

    from s4rec.artifact import items_checksum

    shutil.copytree(artifact, target)
    model = onnx.load(str(target / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "s4rec.metadata":
            values = dict(json.loads(prop.value), **changes)
            values["item_ids_sha256"] = items_checksum(values["item_ids"])
            prop.value = json.dumps(values)
    onnx.save(model, str(target / "model.onnx"))
    manifest = json.loads((target / "s4rec.json").read_text())
    data = (target / "model.onnx").read_bytes()
    manifest["variants"]["fp32"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (target / "s4rec.json").write_text(json.dumps(manifest))
    return target
