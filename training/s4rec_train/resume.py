"""Resuming an interrupted run: the training state saved beside the checkpoint after every epoch, and its
reader (``s4rec-train ... --resume``).

The state file ``OUTPUT.state`` (``model.pt.state``) holds what the next epoch needs to run exactly as it would
have without the interruption: the epoch and step reached, the model's and S4Rec heads' weights, the optimizer
(Adam's moments and step counts; SparseAdam's too), the early-stopping bookkeeping (best score, epoch, weights
and validation figures, validations without improvement), the epoch history and every random stream the loop
draws from (torch's default generator: dropout; numpy's batch order and in-batch draws; the augmentation and
negative-sampling generators; numpy's and Python's global ones; under torchrun each process's own streams,
gathered). It is written atomically after every epoch (:func:`s4rec.files.atomic_file`: a kill mid-write leaves
the previous state), with the SHA-256 of its content, and removed once the run has written its final
checkpoint. It holds tensors and plain data only: ``torch.load(weights_only=True)`` reads it without
unpickling a class.

``--resume`` continues from the last completed epoch; on CPU the result is the uninterrupted run's, tensor for
tensor (tests/test_resume.py kills a run with SIGKILL). The state records a fingerprint of the run (the data's
SHA-256, the model, training and objective settings, the loss, the number of processes, the warm start's
source); a resume whose fingerprint differs is refused with the differences, since it would silently train
something else. Only ``threads`` and ``device`` may change (they are where the run executes, not what it
computes).
"""

from __future__ import annotations

import glob
import pickle
import random
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from s4rec.files import atomic_file

from .checkpoint import content_sha256
from .config import MACHINE_SETTINGS

__all__ = ["FORMAT", "ResumeError", "RunState", "Streams", "run_fingerprint", "state_path"]

FORMAT = "s4rec-training-state"
FORMAT_VERSION = 1


class ResumeError(ValueError):
    """A training state that cannot be resumed (another run's, damaged), with what to do."""


def state_path(output: str | Path) -> Path:
    """Where the training state of a run writing ``output`` lives: ``OUTPUT.state`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".state")


def run_fingerprint(data, model_config, config, objectives, loss: str, processes: int, warm_start) -> dict:
    """What must be the same for a state to be resumed: plain data, compared entry by entry."""
    return {
        "data": {"source": str(data.source), "sha256": data.content_sha256(), "users": data.num_users,
                 "items": data.num_items, "interactions": data.num_interactions},
        "model": model_config.to_dict(),
        "settings": {k: v for k, v in asdict(config).items() if k not in MACHINE_SETTINGS},
        "objectives": objectives.to_dict(),
        "next_item_loss": loss,
        "processes": processes,
        "init_from": None if warm_start is None else warm_start.summary(),
    }  # fmt: skip


def differences(saved, current, where: str = "") -> list[str]:
    """``name: saved -> current`` for every entry that differs (nested dicts walked)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            name = f"{where}.{key}" if where else str(key)
            out += differences(saved.get(key, "(none)"), current.get(key, "(none)"), name)
        return out
    return [] if saved == current else [f"{where}: {_short(saved)} -> {_short(current)}"]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Streams:
    """Every random stream the training loop draws from, read and set as tensors and plain data."""

    def __init__(self, batch_order: np.random.Generator, in_batch=None, augment=None, negatives=None, device=None):
        self.numpy = {"batch_order": batch_order, "in_batch": in_batch}
        self.torch = {"augment": augment, "negatives": negatives}
        self.device = device

    def state(self, group) -> dict:
        per_process = {"default": torch.get_rng_state()}  # dropout: each process its own under DDP
        if self.torch["augment"] is not None:
            per_process["augment"] = self.torch["augment"].get_state()
        if self.device is not None and self.device.type == "cuda":
            per_process["cuda"] = torch.cuda.get_rng_state(self.device)
        if group.enabled:  # gathered, so that rank 0 writes every process's streams
            per_process = {name: _gather(group, state) for name, state in per_process.items()}
        else:
            per_process = {name: state[None] for name, state in per_process.items()}
        global_numpy = np.random.get_state(legacy=False)
        return {
            "per_process": per_process,
            "negatives": None if self.torch["negatives"] is None else self.torch["negatives"].get_state(),
            "numpy": {name: None if g is None else g.bit_generator.state for name, g in self.numpy.items()},
            "numpy_global": dict(global_numpy, state={"key": torch.from_numpy(global_numpy["state"]["key"].astype(
                np.int64)), "pos": global_numpy["state"]["pos"]}),
            "python": [list(part) if isinstance(part, tuple) else part for part in random.getstate()],
        }  # fmt: skip

    def restore(self, state: dict, rank: int) -> None:
        per_process = state["per_process"]
        torch.set_rng_state(per_process["default"][rank].clone())
        if self.torch["augment"] is not None:
            self.torch["augment"].set_state(per_process["augment"][rank].clone())
        if "cuda" in per_process and self.device is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(per_process["cuda"][rank].clone(), self.device)
        if self.torch["negatives"] is not None:
            self.torch["negatives"].set_state(state["negatives"])
        for name, generator in self.numpy.items():
            if generator is not None:
                generator.bit_generator.state = state["numpy"][name]
        saved = state["numpy_global"]
        key = saved["state"]["key"].numpy().astype(np.uint32)
        np.random.set_state(dict(saved, state={"key": key, "pos": saved["state"]["pos"]}))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


def _gather(group, state: torch.Tensor) -> torch.Tensor:
    """(world, n) uint8: every process's ``state`` (same length everywhere), by a sum of zero-padded rows."""
    rows = torch.zeros(group.world_size, state.numel(), dtype=torch.int64)
    rows[group.rank] = state.to(torch.int64)
    return group.all_reduce(rows).to(torch.uint8)


def _optimizers(optimizer) -> tuple:
    return getattr(optimizer, "optimizers", (optimizer,))


def _cpu(module) -> dict | None:
    return None if module is None else {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class RunState:
    """A run's training state file: :meth:`save` after each epoch, :meth:`load` to resume, :meth:`remove` at
    the end. Every process of a torchrun group calls :meth:`save` (the streams are gathered); rank 0 writes."""

    def __init__(self, path: str | Path | None, fingerprint: dict, group):
        self.path = None if path is None else Path(path)
        self.fingerprint, self.group = fingerprint, group

    def save(self, epoch: int, step: int, stopped: bool, model, heads, optimizer, best: dict, history: list,
             train_seconds: float, streams: Streams) -> None:  # fmt: skip
        if self.path is None:
            return
        random_streams = streams.state(self.group)  # every process: each one's streams are gathered
        if not self.group.is_main:
            return
        state = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": self.fingerprint,
            "epoch": epoch, "step": step, "stopped": stopped,
            "model": _cpu(model), "heads": _cpu(heads),
            "optimizer": [one.state_dict() for one in _optimizers(optimizer)],
            "best": best, "history": history, "train_seconds": train_seconds,
            "streams": random_streams,
        }  # fmt: skip
        state["checksum"] = {"algorithm": "sha256", "value": content_sha256(state)}
        with atomic_file(self.path) as f:
            torch.save(state, f)

    def load(self) -> dict | None:
        """The saved state (None when there is none), checked: format, checksum, and the fingerprint of this
        run (:class:`ResumeError` naming what differs)."""
        if self.path is None:
            raise ResumeError("--resume needs the run's output path: the training state is saved beside it.")
        if self.group.is_main:
            self.discard_partial_writes()
        if not self.path.exists():
            return None
        damaged = f"Delete {self.path} to train from the start."
        if not zipfile.is_zipfile(self.path):
            raise ResumeError(f"{self.path}: not a readable training state (truncated, or another kind of file). "
                              f"{damaged}")  # fmt: skip
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as e:
            reason = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
            raise ResumeError(f"{self.path}: not a readable training state ({reason}). {damaged}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ResumeError(f"{self.path}: not an s4rec training state (no format={FORMAT!r} entry). {damaged}")
        if state.get("format_version") != FORMAT_VERSION:
            raise ResumeError(
                f"{self.path}: training state version {state.get('format_version')!r}, this s4rec reads "
                f"{FORMAT_VERSION}. {damaged}"
            )
        recorded = (state.get("checksum") or {}).get("value")
        if recorded != content_sha256({k: v for k, v in state.items() if k != "checksum"}):
            raise ResumeError(f"{self.path}: damaged (its content does not match its sha256). {damaged}")
        changed = differences(state["fingerprint"], self.fingerprint)
        if changed:
            shown = "; ".join(changed[:8]) + (f"; and {len(changed) - 8} more" if len(changed) > 8 else "")
            raise ResumeError(
                f"--resume refused: this run differs from the interrupted one ({self.path}): {shown}. Run with "
                f"the interrupted run's data and options, or without --resume to train from the start."
            )
        return state

    def discard_partial_writes(self) -> None:
        """Remove the temporary files a killed run's atomic writes of the checkpoint and of this state left
        (``.NAME.XXXX.partial``: a SIGKILL gives no chance to clean up; the files under the final names are
        whole)."""
        output = self.path.with_name(self.path.name.removesuffix(".state"))
        for name in (output.name, self.path.name):
            for partial in self.path.parent.glob(f".{glob.escape(name)}.*.partial"):
                partial.unlink(missing_ok=True)

    def restore(self, state: dict, model, heads, optimizer, streams: Streams) -> None:
        """Put a loaded state's weights, optimizer and random streams into this run."""
        model.load_state_dict(state["model"])
        if heads is not None:
            heads.load_state_dict(state["heads"])
        for one, saved in zip(_optimizers(optimizer), state["optimizer"]):
            one.load_state_dict(saved)
        streams.restore(state["streams"], self.group.rank)

    def remove(self) -> None:
        """The run is complete: its state is not needed any more."""
        if self.path is not None and self.group.is_main:
            self.path.unlink(missing_ok=True)
