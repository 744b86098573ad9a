"""Experiment tracking (``s4rec-train ... --track``): every run a directory of TensorBoard event files, local,
no server; off by default.

A run ``DIR/YYYYmmdd-HHMMSS-NAME/`` holds the event file (the settings as text and as hyperparameters, each
epoch's losses, S4Rec terms, validation figures and seconds as scalars, the final validation and test figures;
tags such as ``train/loss``, ``train/term/contrastive``, ``valid/NDCG_20``, ``final/test/HR_10``),
``settings.json`` (the data, the model, training and objective settings, the warm start's source) and, once
the run is complete, a copy of its checkpoint ``model.pt``. ``pip install tensorboard && tensorboard --logdir
DIR`` shows and compares the runs (the HParams tab lines runs up by their settings).

Why TensorBoard files written with tensorboardX (``pip install '.[track]'``), not MLflow's local store, measured
with ``benchmarks/tracking_backends.py`` (fresh venvs; this 2-core machine, load averages 9.1 / 7.6 / 4.4 over
1 / 5 / 15 min when it ended; docs/training.md):

==================  ===========  ========  ======  ====================  ==============================
candidate           installed    packages  import  per logged epoch      local store
==================  ===========  ========  ======  ====================  ==============================
tensorboardX 2.6.5  3.9 MB       6         0.74 s  0.68 ms (12 scalars)  event files
tensorboard 2.21    76.8 MB      14        2.25 s  0.51 ms               event files (+ the viewer)
mlflow-skinny 3.18  104.1 MB     46        2.17 s  1.0 ms                file store: refused by default
mlflow 3.17         709.0 MB     89        9.15 s  76.8 ms               SQLite (its local default)
==================  ===========  ========  ======  ====================  ==============================

MLflow 3 puts its file store in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``; its
local default is a SQLite database that only the full 709 MB package opens, at 77 ms per logged epoch. The
sequential-recommendation tools this project is compared with write TensorBoard: RecBole's built-in logger,
TensorFlow Recommenders' guides, the Hugging Face Trainer under Transformers4Rec (TensorBoard first when
installed); PyTorch ships a writer for it. tensorboardX writes the same files as ``torch.utils.tensorboard``
without needing the 77 MB ``tensorboard`` package to write them. TensorBoard has no artifact store, so the
checkpoint is copied into the run's directory.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

MISSING = "--track writes TensorBoard files with tensorboardX: pip install '/path/to/s4rec[track]' (or tensorboardX)"


class TrackingUnavailable(RuntimeError):
    """The tracking extra is not installed."""


def tag(prefix: str, name: str) -> str:
    """A TensorBoard tag: ``valid/NDCG_20`` for ``NDCG@20`` (TensorBoard turns ``@`` into ``_`` itself)."""
    return f"{prefix}/{name.replace('@', '_')}"


def _scalar_items(prefix: str, values: dict) -> list[tuple[str, float]]:
    return [(tag(prefix, name), float(value)) for name, value in values.items() if isinstance(value, (int, float))]


class Tracker:
    """One tracked run: :meth:`log_settings` first, :meth:`log_epoch` per epoch (``train(on_epoch=...)``),
    :meth:`finish` with the final checkpoint, :meth:`close` always (a run closed before finishing is marked
    failed)."""

    def __init__(self, root: str | Path, name: str = "run"):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise TrackingUnavailable(MISSING) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = Path(root)
        directory, number = root / f"{stamp}-{name}", 1
        while directory.exists():  # two runs in one second
            number += 1
            directory = root / f"{stamp}-{name}-{number}"
        self.directory = directory
        self.writer = SummaryWriter(str(directory))
        self.settings: dict = {}
        self.finished = False

    @property
    def run_id(self) -> str:
        return self.directory.name

    @property
    def location(self) -> str:
        return str(self.directory.parent)

    def log_settings(self, settings: dict) -> None:
        """The run's settings: as text in the event file and as ``settings.json`` beside it."""
        self.settings = settings
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "settings.json").write_text(json.dumps(settings, indent=2, default=str))
        self.writer.add_text("settings", "```\n" + json.dumps(settings, indent=2, default=str) + "\n```", 0)
        self.writer.flush()

    def log_epoch(self, record: dict) -> None:
        """One epoch's history record (``checkpoint["training"]["history"]`` entries): losses, terms,
        validation figures (overall), seconds; flushed, so a killed run keeps its epochs."""
        epoch = int(record["epoch"])
        scalars = [("train/loss", float(record["loss"])), ("time/epoch_seconds", float(record["seconds"]))]
        scalars += _scalar_items("train/term", record.get("terms") or {})
        scalars += _scalar_items("valid", record.get("valid") or {})
        for tag, value in scalars:
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def finish(self, checkpoint: dict, output: str | Path | None) -> None:
        """The final figures (as scalars at the best epoch and as the hyperparameter run's metrics) and a copy
        of the checkpoint."""
        metrics = checkpoint["metrics"]
        best = int(metrics.get("best_epoch") or 0)
        final = {}
        for part in ("valid", "test"):
            for name, value in ((metrics.get(part) or {}).get("overall") or {}).items():
                self.writer.add_scalar(tag(f"final/{part}", name), float(value), best)
                final[tag(f"final/{part}", name)] = float(value)
        hparams = {}
        for group, values in self.settings.items():
            for name, value in (values or {}).items() if isinstance(values, dict) else ():
                if isinstance(value, (int, float, str, bool)):
                    hparams[f"{group}.{name}"] = value
        self.writer.add_hparams(hparams, final, name="hparams", global_step=best)
        if output is not None and Path(output).is_file():
            shutil.copyfile(output, self.directory / "model.pt")
        self.finished = True

    def close(self) -> None:
        if not self.finished:
            self.writer.add_text("status", "failed or interrupted before its final checkpoint", 0)
        self.writer.close()


def open_tracker(root: str | Path, data: str | Path, output: str | Path | None) -> Tracker:
    """A :class:`Tracker` under ``root`` named after the output file (``model`` for ``model.pt``)."""
    return Tracker(root, Path(output).stem if output is not None else Path(data).stem)
