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
==================  ===============================================================================

Writes are atomic: the file appears under its final name only once it is complete. This module is the one
home of the format: :func:`new_checkpoint` and :func:`with_weights` build it (training), :func:`save_checkpoint`
writes it, :func:`load_checkpoint` reads it back and :func:`intent_table`, :func:`item_popularity`,
:func:`item_ids` and :func:`checkpoint_metrics` are what its readers (export, evaluation) take from it.
"""

from __future__ import annotations

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
    """Write a checkpoint atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint dict lacks {missing}")
    with atomic_file(path) as f:
        torch.save(checkpoint, f)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file. Train one with `s4rec-train DATA -o {path}`.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (not a torch zip archive; truncated or another kind of "
            "file). Re-create it with s4rec-train."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, the file needs pickled Python objects to load ({str(e).splitlines()[0]}). "
            "s4rec checkpoints hold only tensors and plain data; re-create it with s4rec-train, or re-save "
            "a trusted file as a plain dict."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__}). "
            "The file may be truncated or of another kind; re-create it with s4rec-train."
        ) from None
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
    return checkpoint


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
