"""The checkpoint file (ARCHITECTURE.md contract 1).

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` reads without unpickling any
class, so a file from a stranger cannot run code:

==================  ===============================================================================
key                 value
==================  ===============================================================================
format              ``"s4rec-checkpoint"``
format_version      int, :data:`FORMAT_VERSION`
config              the :class:`~s4rec_train.model.ModelConfig` as a dict
state_dict          the encoder's (``SASRec``) state dict, tensors only; all that export freezes
item_ids            list: ``item_ids[i - 1]`` is the user's own id of item index ``i`` (0 = padding)
item_counts         int64 tensor (N + 1,): interactions per item index in the data (popularity fallback)
intent_centroids    float32 tensor (K, d), L2-normalised prototypes, or None without S4Rec clustering
intent_config       dict (num_intents, temperature, normalized) or None; the intent of a user vector z (the
                    encoder output at the last position) is ``argmax_k normalize(z) . intent_centroids[k]``
                    and its soft assignment ``softmax(normalize(z) @ intent_centroids.T / temperature)``
objective_state_dict  state dict of ``objectives.S4RecHeads`` (raw prototypes, head/tail classifier) for
                    resuming or inspecting training, or None for the backbone; not needed to serve
metrics             dict: best epoch, validation and test figures (overall/head/tail)
training            dict: the training settings, data source, seed, package version, seconds
==================  ===============================================================================

Writes are atomic: the file appears under its final name only once it is complete.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from .model import SASRec

FORMAT = "s4rec-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "state_dict", "item_ids")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used, with what to do."""


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)``, then move the finished file to ``path`` (same directory: an atomic move)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write a checkpoint atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint dict lacks {missing}")
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such checkpoint file. Train one with `s4rec-train DATA -o {path}`."
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
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({reason}). "
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
    from .model import ModelConfig

    model = SASRec(ModelConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
