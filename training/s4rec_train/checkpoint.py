"""The checkpoint file (ARCHITECTURE.md contract 1).

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` reads without unpickling any
class, so a file from a stranger cannot run code:

==================  ===============================================================================
key                 value
==================  ===============================================================================
format              ``"s4rec-checkpoint"``
format_version      int, :data:`FORMAT_VERSION`
config              the :class:`~s4rec_train.model.ModelConfig` as a dict
state_dict          the encoder's (``SASRec``) state dict, tensors only
item_ids            list: ``item_ids[i - 1]`` is the user's own id of item index ``i`` (0 = padding)
item_counts         int64 tensor (N + 1,): interactions per item index in the data (popularity fallback)
intent_centroids    float32 tensor (K, d), L2-normalised prototypes, or None without S4Rec clustering
intent_config       dict (num_intents, temperature, normalized) or None
metrics             dict: best epoch, validation and test figures (overall/head/tail)
training            dict: the training settings, data source, seed, package version, seconds
checksum            ``{"algorithm": "sha256", "value": hex}`` over every other entry (:func:`content_sha256`);
                    written by :func:`save_checkpoint` since this release; files without it still load
==================  ===============================================================================

Writes are atomic: the file appears under its final name only once it is complete. Reads check what a
damaged or foreign file could get wrong before anything uses it (:func:`check_checkpoint`): the recorded
checksum (or, in files written before it, the zip archive's CRCs, since torch does not check them and a
flipped byte in a tensor would otherwise load silently), the config, every tensor's shape against it, the
item ids and the intent table; each problem is a one-line :class:`CheckpointError`. This module is the one
home of the format: :func:`new_checkpoint` and :func:`with_weights` build it (training), :func:`save_checkpoint`
writes it, :func:`load_checkpoint` reads it back and :func:`intent_table`, :func:`item_popularity`,
:func:`item_ids` and :func:`checkpoint_metrics` are what its readers (export, evaluation) take from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from s4rec.files import atomic_file

from .model import ModelConfig, SASRec

FORMAT = "s4rec-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "state_dict", "item_ids")


CHECKSUM_KEY = "checksum"
DAMAGED = "Re-train it, or copy it again from where it was made."


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used, with what to do."""


def new_checkpoint(model_config: ModelConfig, item_ids: list, item_counts: np.ndarray, training: dict) -> dict:
    """A checkpoint without weights yet: the model config, the item vocabulary and counts, training info."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model_config.to_dict(),
        "item_ids": list(item_ids),
        "item_counts": torch.from_numpy(np.asarray(item_counts, dtype=np.int64)),
        "intent_centroids": None,
        "intent_config": None,
        "objective_state_dict": None,
        "training": training,
    }


def with_weights(
    checkpoint: dict,
    state_dict: dict,
    heads_state: dict | None = None,
    intent_temperature: float = 1.0,
    metrics: dict | None = None,
) -> dict:
    """``checkpoint`` with the encoder's weights and, from S4Rec's heads (``prototypes``, ``adversary.*``),
    the objective weights and the L2-normalised intent-centroid table the SDK uses:
    ``intent = argmax_k normalize(z_u) . intent_centroids[k]``, ``p = softmax(that / intent_temperature)``."""
    out = dict(checkpoint, state_dict=state_dict, metrics=dict(metrics or {}))
    if heads_state is None:
        return dict(out, objective_state_dict=None, intent_centroids=None, intent_config=None)
    centroids = F.normalize(heads_state["prototypes"].float(), dim=-1).contiguous()
    config = {"num_intents": int(centroids.shape[0]), "temperature": float(intent_temperature), "normalized": True}
    return dict(out, objective_state_dict=heads_state, intent_centroids=centroids, intent_config=config)


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write a checkpoint atomically, with the checksum of its content."""
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint dict lacks {missing}")
    content = {k: v for k, v in checkpoint.items() if k != CHECKSUM_KEY}  # a loaded one's is stale
    content[CHECKSUM_KEY] = {"algorithm": "sha256", "value": content_sha256(content)}
    with atomic_file(path) as f:
        torch.save(content, f)


def content_sha256(checkpoint: dict) -> str:
    """sha256 over every entry but ``checksum``: keys in sorted order, each tensor as its dtype, shape and
    bytes, everything else as JSON. The same dict gives the same digest after a save and a load."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in checkpoint.items() if k != CHECKSUM_KEY})
    return digest.hexdigest()


_PLAIN = {int, float, str, bool, type(None)}


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{list(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    elif isinstance(value, dict):
        digest.update(b"{%d" % len(value))
        for key in sorted(value, key=repr):
            digest.update(json.dumps(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)) and not set(map(type, value)) <= _PLAIN:
        digest.update(b"[%d" % len(value))
        for item in value:
            _feed(digest, item)
    else:  # plain data, item id lists included: one json.dumps however long
        digest.update(b"=" + json.dumps(value, sort_keys=True, default=repr).encode() + b"\n")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check it (:func:`check_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file. Train one with `s4rec-train DATA -o {path}`.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a readable s4rec checkpoint (not a torch zip archive: truncated, or another kind of "
            f"file). {DAMAGED}"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, the file needs pickled Python objects to load, or is damaged "
            f"({_first_line(e)}). s4rec checkpoints hold only tensors and plain data; re-create it with "
            "s4rec-train, or re-save a trusted file as a plain dict."
        ) from None
    except Exception as e:  # a damaged archive raises RuntimeError, ValueError, UnicodeDecodeError, ...
        raise CheckpointError(f"{path}: not a readable s4rec checkpoint ({_first_line(e)}). {DAMAGED}") from None
    check_checkpoint(checkpoint, path)
    return checkpoint


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


def check_checkpoint(checkpoint, path: str | Path = "checkpoint") -> None:
    """A :class:`CheckpointError` naming ``path`` and the entry, for anything export and evaluation would
    trip over later with a traceback (or, for a changed tensor, not notice at all)."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an s4rec checkpoint (no format={FORMAT!r} entry).")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r}, this s4rec reads version {FORMAT_VERSION}. "
            "Use the s4rec release that wrote it, or retrain."
        )
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; re-create it with s4rec-train.")
    _check_integrity(checkpoint, Path(path))
    config = _check_config(checkpoint["config"], path)
    _check_state_dict(checkpoint["state_dict"], config, path)
    _check_item_ids(checkpoint["item_ids"], config.num_items, path)
    intent_config = checkpoint.get("intent_config")
    if intent_config is not None and not isinstance(intent_config, dict):
        raise CheckpointError(f"{path}: intent_config must be a dict or None, got {type(intent_config).__name__}.")
    intent_table(checkpoint, path)


def _check_integrity(checkpoint: dict, path: Path) -> None:
    recorded = checkpoint.get(CHECKSUM_KEY)
    if recorded is None:  # written before checksums: the archive's CRCs cover the same bytes
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as e:  # a damaged directory entry
            bad = _first_line(e)
        if bad is not None:
            raise CheckpointError(f"{path}: damaged (its zip archive fails its CRC check at {bad}). {DAMAGED}")
        return
    if not isinstance(recorded, dict) or recorded.get("algorithm") != "sha256":
        raise CheckpointError(f"{path}: its checksum entry is not a sha256 record ({recorded!r}). {DAMAGED}")
    if recorded.get("value") != content_sha256(checkpoint):
        raise CheckpointError(
            f"{path}: damaged: its content does not match the sha256 save_checkpoint recorded (the file changed "
            f"after it was written). {DAMAGED}"
        )


SHAPE_KEYS = ("num_items", "max_len", "dim", "layers", "heads")  # what the tensors' shapes follow from


def _check_config(config, path) -> ModelConfig:
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config must be a dict of the model's settings, got {type(config).__name__}.")
    missing = [k for k in SHAPE_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{path}: config lacks {missing}; re-create it with s4rec-train.")
    for key in SHAPE_KEYS:
        if type(config[key]) is not int or config[key] < 1:
            raise CheckpointError(f"{path}: config {key} must be an integer >= 1, got {config[key]!r}.")
    for key in ("dropout", "layer_norm_eps"):
        if key in config and type(config[key]) not in (int, float):
            raise CheckpointError(f"{path}: config {key} must be a number, got {config[key]!r}.")
    try:
        return ModelConfig.from_dict(config)
    except ValueError as e:
        raise CheckpointError(f"{path}: config: {e}. Re-create it with s4rec-train.") from None


def _check_state_dict(state_dict, config: ModelConfig, path) -> None:
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: state_dict must be a dict of tensors, got {type(state_dict).__name__}.")
    with torch.device("meta"):  # the shapes the config implies, without allocating the item table
        expected = {name: tuple(t.shape) for name, t in SASRec(config).state_dict().items()}
    missing = [name for name in expected if name not in state_dict]
    extra = [name for name in state_dict if name not in expected]
    if missing or extra:
        raise CheckpointError(
            f"{path}: state_dict does not fit the config's model: missing {missing[:3]}, unexpected {extra[:3]}. "
            "Re-create it with s4rec-train."
        )
    for name, shape in expected.items():
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{path}: state_dict[{name!r}] must be a floating-point tensor, got {kind}.")
        if tuple(tensor.shape) != shape:
            why = (
                f"num_items + 1 = {config.num_items + 1} rows of dim {config.dim}"
                if name == "item_embedding.weight"
                else f"dim {config.dim}, max_len {config.max_len}"
            )
            raise CheckpointError(
                f"{path}: state_dict[{name!r}] has shape {tuple(tensor.shape)}, the config needs {shape} ({why}). "
                "The weights and the config disagree; re-create it with s4rec-train."
            )


def _check_item_ids(ids, num_items: int, path) -> None:
    if not isinstance(ids, (list, tuple)):
        raise CheckpointError(f"{path}: item_ids must be a list, got {type(ids).__name__}.")
    if len(ids) != num_items:
        raise CheckpointError(
            f"{path}: item_ids has {len(ids):,} ids, the item table {num_items:,} items (config num_items). "
            "Re-create it with s4rec-train."
        )
    if not set(map(type, ids)) <= {int, str}:
        bad = next(i for i in ids if type(i) not in (int, str))
        raise CheckpointError(f"{path}: item_ids must be integers or strings, got {bad!r}.")
    if len(set(ids)) != len(ids):
        seen: set = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))
        raise CheckpointError(
            f"{path}: item_ids names {duplicate!r} more than once; each item index needs its own id. "
            "Re-create it with s4rec-train."
        )


def model_from_checkpoint(checkpoint: dict) -> SASRec:
    """Rebuild the encoder from a loaded checkpoint, in eval mode."""
    model = SASRec(ModelConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def item_ids(checkpoint: dict) -> list:
    """The item vocabulary: ``item_ids(checkpoint)[i - 1]`` is the user's own id of item index ``i``."""
    return list(checkpoint["item_ids"])


def item_popularity(checkpoint: dict) -> np.ndarray | None:
    """Interactions per item index (N + 1,), index 0 = padding, or None when the checkpoint has no counts."""
    counts = checkpoint.get("item_counts")
    num_items = checkpoint["config"]["num_items"]
    if isinstance(counts, torch.Tensor) and counts.numel() == num_items + 1:
        return counts.numpy()
    return None


def checkpoint_metrics(checkpoint: dict) -> dict:
    """The best epoch and its validation and test figures (whatever of them the checkpoint has)."""
    metrics = checkpoint.get("metrics") or {}
    return {k: metrics[k] for k in ("best_epoch", "valid", "test") if k in metrics}


@dataclass(frozen=True)
class IntentTable:
    """The intent-centroid table and how to use it: ``softmax(normalize(z) @ centroids.T / temperature)``."""

    centroids: torch.Tensor  # (K, d) float32
    temperature: float
    normalized: bool  # normalise the user vector first (True for every S4Rec checkpoint)


def intent_table(checkpoint: dict, path: str | Path = "checkpoint") -> IntentTable | None:
    """The checkpoint's intents, checked against the model (``None`` for a model without intents)."""
    centroids = checkpoint.get("intent_centroids")
    if centroids is None:
        return None
    dim = checkpoint["config"]["dim"]
    config = checkpoint.get("intent_config") or {}
    if not isinstance(centroids, torch.Tensor) or centroids.dim() != 2 or centroids.shape[1] != dim:
        shape = tuple(centroids.shape) if isinstance(centroids, torch.Tensor) else type(centroids).__name__
        raise CheckpointError(f"{path}: intent_centroids must be a (K, {dim}) tensor, got {shape}. Re-create it.")
    if not torch.isfinite(centroids).all():
        raise CheckpointError(f"{path}: intent_centroids holds NaN or inf values. Re-train or fix the checkpoint.")
    temperature = float(config.get("temperature", 1.0))
    if not temperature > 0 or not math.isfinite(temperature):
        raise CheckpointError(f"{path}: intent_config temperature must be > 0, got {temperature!r}.")
    num_intents = config.get("num_intents", centroids.shape[0])
    if num_intents != centroids.shape[0]:
        raise CheckpointError(
            f"{path}: intent_config says {num_intents} intents, intent_centroids has {centroids.shape[0]}."
        )
    return IntentTable(centroids.float(), temperature, bool(config.get("normalized", True)))
