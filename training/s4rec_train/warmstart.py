"""Warm start: train on a newer log from an older checkpoint (``s4rec-train NEW_DATA --init-from old.pt``).

The vocabulary grows, it never shrinks or moves: the old checkpoint's items keep their indices 1..N_old (and
their rows, bit for bit, until training moves them), items first seen in the new log get the indices after
them, and old items the new log no longer has stay in the vocabulary (counted in the log: yesterday's items
may come back, and an artifact that knows them still ignores nothing a user sends). The encoder (blocks,
positions, norms) and S4Rec's heads (the intent prototypes and the adversary) are carried over; only the new
items' rows are new, initialised by :data:`NEW_ITEM_INITS`:

* ``normal``: N(0, 0.02), as a training from scratch initialises every row;
* ``mean``: the mean of the old items' rows;
* ``cooccur``: the mean of the old rows of the items next to the new item (within :data:`COOCCUR_WINDOW`
  positions) in the training part of the new log's histories; the old mean where it has no old neighbour.
  Only the training part is read: the validation and test targets must not place their own items.

``benchmarks/next_day.py`` compares them (docs/training.md, "Warm start"). The settings come from the old
checkpoint (:func:`warm_settings`: model shape, training settings and S4Rec objectives) unless the command
line gives them; the model's shape and the number of intents cannot change. The schedule is the exception: a
warm start that copied the old run's (e.g. 30 epochs at a constant 1e-3, validated each epoch) would cost as
much as training from scratch, so unless the command line sets it the warm start runs :func:`warm_schedule`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import MACHINE_SETTINGS, NEW_ITEM_INITS, ObjectiveConfig, TrainConfig
from .data import DataError, Interactions, Split
from .ids import as_ids

__all__ = [
    "COOCCUR_WINDOW", "NEW_ITEM_INITS", "S4REC_EPOCH_COST", "SCHEDULE", "WARM_EPOCH_SHARE", "WARM_LR_FACTOR",
    "WARM_TERMS_UNTIL", "WarmStart", "cooccurrence_rows", "reference_run", "warm_objectives", "warm_schedule",
    "warm_settings",
]  # fmt: skip

COOCCUR_WINDOW = 3  # neighbours on each side of a new item's occurrence whose rows are averaged
SHAPE = ("max_len", "dim", "layers", "heads")  # what a warm start cannot change: the carried tensors' shapes
# The warm start's own schedule (:func:`warm_schedule`), chosen on validation NDCG@20 by benchmarks/next_day.py
# (Beauty and Toys, cooccur rows, against a 20-epoch scratch run; docs/training.md, "The next-day protocol"):
# * its time: 30% of the reference run's (WARM_EPOCH_SHARE, the budget the next-day protocol sets);
# * S4Rec's auxiliary terms fall to 0 over the first 2% of its steps (WARM_TERMS_UNTIL: `warmup=0`,
#   `cooldown=0.02`), then the next-item loss trains alone, the intent prototypes carried as they are. An epoch
#   without the terms costs 1/1.5 of one with them (S4REC_EPOCH_COST; Beauty, 6 warm epochs: 75.6 vs 122 s CPU),
#   so the same time buys 1.5x the epochs: after a 20-epoch S4Rec run, 9 epochs. Beauty seed 0, validation
#   NDCG@20: 6 epochs with the terms 0.0757, 6 without 0.0763, 9 without 0.0791 (scratch 0.0765): the terms
#   help a model learn from scratch and hold it back late (benchmarks/RESULTS.md section 11), and a warm start
#   is late. With any S4Rec weight given on the command line the terms stay on, and so does their cost.
# * a peak learning rate 10x the reference's, decaying linearly to 0 (4 epochs at a constant 1e-3: 0.0650;
#   5 linear from 5e-3: 0.0725; 6 linear from 1e-2: 0.0754, all with the terms);
# * one validation, after the last epoch (on a schedule that decays to 0 the last epoch was the best in every
#   warm run measured, and each validation costs about a quarter of a training epoch).
WARM_EPOCH_SHARE = 0.3
WARM_LR_FACTOR = 10.0
WARM_TERMS_UNTIL = 0.02
S4REC_EPOCH_COST = 1.5
SCHEDULE = ("epochs", "lr", "lr_schedule", "validate_every")  # what warm_schedule sets


def _id_kind(ids) -> str:
    kinds = {type(value) for value in ids}
    return "integers" if kinds <= {int} else "strings" if kinds <= {str} else "integers and strings"


@dataclass
class WarmStart:
    """An old checkpoint to start from; :meth:`grow` re-indexes new data onto its vocabulary, :meth:`apply`
    copies its weights into a freshly built model of the grown vocabulary."""

    path: Path
    checkpoint: dict
    new_item_init: str = "cooccur"
    # set by grow():
    old_items: int = 0
    new_items: int = 0
    absent_items: int = 0

    @classmethod
    def load(cls, path: str | Path, new_item_init: str = "cooccur") -> WarmStart:
        """Read ``path`` with the checkpoint checks (:func:`~s4rec_train.checkpoint.load_checkpoint`)."""
        if new_item_init not in NEW_ITEM_INITS:
            raise ValueError(f"new_item_init must be one of {NEW_ITEM_INITS}, got {new_item_init!r}")
        checkpoint = load_checkpoint(path)
        return cls(Path(path), checkpoint, new_item_init, old_items=int(checkpoint["config"]["num_items"]))

    @property
    def model_config(self) -> dict:
        """The old model's config without its ``num_items`` (the grown vocabulary sets that)."""
        return {k: v for k, v in self.checkpoint["config"].items() if k != "num_items"}

    @property
    def old_ids(self) -> list:
        return list(self.checkpoint["item_ids"])

    def grow(self, data: Interactions) -> Interactions:
        """``data`` re-indexed onto the old vocabulary plus its new items (appended in ``data``'s vocabulary
        order). A log whose ids are of another kind than the old vocabulary's (integers vs strings) is refused."""
        old_ids = self.old_ids
        old_kind, new_kind = _id_kind(old_ids), _id_kind(data.item_ids)
        if {old_kind, new_kind} == {"integers", "strings"}:
            raise DataError(
                f"{data.source}: its item ids are {new_kind} (e.g. {data.item_ids[0]!r}) but the vocabulary of "
                f"{self.path} holds {old_kind} (e.g. {old_ids[0]!r}): a warm start needs the ids the old model "
                "was trained on. Check --item-col, or train from scratch without --init-from."
            )
        index_of = {item: i + 1 for i, item in enumerate(old_ids)}
        own = data.item_ids.tolist()
        old_index = np.fromiter((index_of.get(item, 0) for item in own), dtype=np.int64, count=len(own))
        is_new = old_index == 0
        new_index = np.zeros(len(own), dtype=np.int64)
        new_index[is_new] = len(old_ids) + 1 + np.arange(int(is_new.sum()))
        mapping = np.concatenate([[0], np.where(is_new, new_index, old_index)]).astype(np.int32)
        self.new_items = int(is_new.sum())
        used = np.bincount(mapping[data.items], minlength=len(old_ids) + self.new_items + 1)
        self.absent_items = int((used[1 : len(old_ids) + 1] == 0).sum())  # old items without an interaction here
        vocabulary = old_ids + [item for item, new in zip(own, is_new.tolist()) if new]
        note = (
            f"warm start from {self.path}: {len(old_ids):,} items of its vocabulary keep their rows, "
            f"{self.new_items:,} new items get new rows ({self.new_item_init})"
            + (f", {self.absent_items:,} of its items are not in this log and are kept" if self.absent_items else "")
        )
        return Interactions(
            as_ids(vocabulary), data.user_ids, mapping[data.items], data.offsets, data.source, data.dropped_users,
            [*data.notes, note], data.timestamps,
        )  # fmt: skip

    def summary(self) -> dict:
        """What the new checkpoint records under ``training.warm_start``."""
        checksum = (self.checkpoint.get("checksum") or {}).get("value")
        return {
            "from": str(self.path), "checkpoint_sha256": checksum, "old_items": self.old_items,
            "new_items": self.new_items, "absent_items": self.absent_items, "new_item_init": self.new_item_init,
            "reference": reference_run(self.checkpoint),
        }  # fmt: skip

    @torch.no_grad()
    def apply(self, model: torch.nn.Module, heads: torch.nn.Module | None, split: Split, seed: int, log=print) -> None:
        """Copy the old encoder (and heads) into ``model`` (and ``heads``), built for the grown vocabulary;
        initialise the new items' rows. Raises ``ValueError`` if the model's shape is not the old one."""
        old_config = self.checkpoint["config"]
        new_config = model.config.to_dict()
        changed = [f"{k} {old_config[k]} -> {new_config[k]}" for k in SHAPE if old_config[k] != new_config[k]]
        if changed:
            changed = ", ".join(changed)
            raise ValueError(f"--init-from {self.path}: a warm start keeps the model's shape, but {changed}.")
        n_old = self.old_items
        own = model.state_dict()
        for name, tensor in self.checkpoint["state_dict"].items():
            if name == "item_embedding.weight":
                own[name][: n_old + 1].copy_(tensor)
                own[name][n_old + 1 :].copy_(self._new_rows(tensor, split, model.config.num_items - n_old, seed))
            else:
                own[name].copy_(tensor)
        if heads is None:
            return
        old_heads = self.checkpoint.get("objective_state_dict")
        if old_heads is None:
            log(f"warm start: {self.path} has no intent prototypes (a backbone model): S4Rec's heads start afresh")
            return
        if old_heads["prototypes"].shape != heads.prototypes.shape:
            raise ValueError(
                f"--init-from {self.path}: it has {old_heads['prototypes'].shape[0]} intent prototypes, this run "
                f"{heads.prototypes.shape[0]} (--intents). Keep its number of intents, or train from scratch."
            )
        heads.load_state_dict(old_heads)

    def _new_rows(self, table: torch.Tensor, split: Split, count: int, seed: int) -> torch.Tensor:
        """(count, d) rows for items n_old + 1 .. n_old + count (``table`` is the old (n_old + 1, d) table)."""
        old_mean = table[1:].mean(0)
        if self.new_item_init == "normal" or count == 0:
            generator = torch.Generator().manual_seed(seed + 5)  # its own stream: the encoder's is untouched
            return torch.randn(count, table.shape[1], generator=generator) * 0.02
        if self.new_item_init == "mean":
            return old_mean.expand(count, -1).clone()
        return cooccurrence_rows(table, split, self.old_items, count, old_mean)


def cooccurrence_rows(
    table: torch.Tensor, split: Split, n_old: int, count: int, fallback: torch.Tensor
) -> torch.Tensor:
    """For each new item (index > ``n_old``), the mean of the old rows of the old items within
    :data:`COOCCUR_WINDOW` positions of its occurrences in the training parts of ``split``; ``fallback`` where
    it has none."""
    starts = split.offsets[:-1]
    user_of = np.repeat(np.arange(split.num_users), np.diff(split.offsets))
    position = np.arange(len(split.items)) - starts[user_of]
    in_training = position < split.train_length[user_of]
    items = np.where(in_training, split.items, 0).astype(np.int64)  # validation and test items hidden
    occurrences = np.flatnonzero(items > n_old)
    sums = torch.zeros(count, table.shape[1], dtype=torch.float64)
    counts = np.zeros(count, dtype=np.int64)
    for offset in [o for o in range(-COOCCUR_WINDOW, COOCCUR_WINDOW + 1) if o]:
        other = occurrences + offset
        inside = (other >= 0) & (other < len(items))
        rows, other = occurrences[inside], other[inside]
        same_user = user_of[other] == user_of[rows]
        rows, other = rows[same_user], other[same_user]
        neighbour = items[other]
        old = (neighbour >= 1) & (neighbour <= n_old)
        new_row = torch.from_numpy(items[rows[old]] - n_old - 1)
        sums.index_add_(0, new_row, table[torch.from_numpy(neighbour[old])].double())
        counts += np.bincount(new_row.numpy(), minlength=count)
    rows = fallback.expand(count, -1).clone()
    seen = torch.from_numpy(counts > 0)
    rows[seen] = (sums[seen] / torch.from_numpy(counts[counts > 0])[:, None]).to(table.dtype)
    return rows


def reference_run(checkpoint: dict) -> dict:
    """The training from scratch a chain of warm starts descends from: its epochs run, learning rate and whether
    it trained S4Rec's auxiliary terms (the checkpoint's own run when it was trained from scratch; recorded in
    ``training.warm_start.reference`` by each warm start, so that day after day the schedule stays the same
    instead of shrinking by 30% a day)."""
    training = checkpoint.get("training") or {}
    recorded = (training.get("warm_start") or {}).get("reference")
    if recorded:
        return dict(recorded)
    settings = training.get("settings") or {}
    epochs = training.get("epochs_run") or settings.get("epochs") or TrainConfig.epochs
    terms = _old_objectives(checkpoint).needs_prototypes
    return {"epochs": int(epochs), "lr": float(settings.get("lr", TrainConfig.lr)), "s4rec_terms": bool(terms)}


def warm_objectives(checkpoint: dict, given: dict | None = None) -> dict:
    """The objective settings a warm start changes: S4Rec's auxiliary terms over by :data:`WARM_TERMS_UNTIL`
    of its steps, unless the old model has none or the command line gives any objective setting."""
    old = _old_objectives(checkpoint)
    if given or not old.needs_prototypes:
        return {}
    return {"warmup": 0.0, "cooldown": WARM_TERMS_UNTIL}


def warm_schedule(checkpoint: dict, given: dict | None = None, objectives_given: dict | None = None) -> dict:
    """The warm start's settings of :data:`SCHEDULE` not in ``given``: :data:`WARM_EPOCH_SHARE` of the reference
    run's time in epochs (1.5x as many when the terms are switched off: :func:`warm_objectives`), at least 1;
    peak learning rate :data:`WARM_LR_FACTOR` x its rate, decaying linearly; one validation after the last
    epoch."""
    given = given or {}
    reference = reference_run(checkpoint)
    cheaper = S4REC_EPOCH_COST if reference.get("s4rec_terms") and warm_objectives(checkpoint, objectives_given) else 1
    epochs = given.get("epochs", max(1, round(WARM_EPOCH_SHARE * reference["epochs"] * cheaper)))
    schedule = {"epochs": epochs, "lr": WARM_LR_FACTOR * reference["lr"], "lr_schedule": "linear",
                "validate_every": epochs}  # fmt: skip
    return {k: v for k, v in schedule.items() if k not in given}


def _old_objectives(checkpoint: dict) -> ObjectiveConfig:
    """The objectives the checkpoint was trained with, as far as this s4rec knows them (older checkpoints carry
    removed options, which ``ObjectiveConfig.from_dict`` refuses; warm_settings logs what it ignores)."""
    known = {f.name for f in fields(ObjectiveConfig)}
    stored = (checkpoint.get("training") or {}).get("objectives") or {}
    return ObjectiveConfig.from_stored({k: v for k, v in stored.items() if k in known})


def warm_settings(
    checkpoint: dict, model: dict, train: dict, objectives: dict, log: Callable[[str], None] = print
) -> tuple[dict, TrainConfig, dict]:
    """The run's (model config, :class:`TrainConfig`, objective settings): the old checkpoint's, with
    :func:`warm_schedule` and then the given ones (those set on the command line) on top; device and threads
    always from ``train``. Changing the model's shape or the number of intents is refused (``ValueError``)."""
    old_model = {k: v for k, v in checkpoint["config"].items() if k != "num_items"}
    clash = [f"--{k.replace('_', '-')} {model[k]} (it has {old_model[k]})" for k in SHAPE
             if k in model and model[k] != old_model.get(k)]  # fmt: skip
    if clash:
        raise ValueError(
            f"--init-from: a warm start keeps the old model's shape, but {', '.join(clash)} was given. Drop the "
            "option, or train from scratch."
        )
    training = checkpoint.get("training") or {}
    known = {f.name for f in fields(TrainConfig)}
    old_train = {k: v for k, v in (training.get("settings") or {}).items() if k in known and k not in MACHINE_SETTINGS}
    old_objectives = dict(training.get("objectives") or {})
    unknown = sorted(set(old_objectives) - {f.name for f in fields(ObjectiveConfig)} - {"adversary_queue",
                                                                                      "adversary_batch"})  # fmt: skip
    if unknown:
        log(f"warm start: ignoring objective settings this s4rec does not know: {unknown}")
        old_objectives = {k: v for k, v in old_objectives.items() if k not in unknown}
    switched = warm_objectives(checkpoint, objectives)
    if switched:
        log(f"warm start: S4Rec's auxiliary terms fall to 0 over the first {WARM_TERMS_UNTIL:.0%} of the steps, then "
            "the next-item loss trains alone (give any S4Rec weight to keep them on)")  # fmt: skip
    objective_values = {**ObjectiveConfig.from_stored(old_objectives).to_dict(), **switched, **objectives}
    old_heads = checkpoint.get("objective_state_dict")
    if old_heads is not None and "num_intents" in objectives:
        if objectives["num_intents"] != old_heads["prototypes"].shape[0]:
            raise ValueError(
                f"--init-from: the old model has {old_heads['prototypes'].shape[0]} intent prototypes, "
                f"--intents {objectives['num_intents']} was given. Drop --intents, or train from scratch."
            )
    schedule = warm_schedule(checkpoint, train, objectives)
    if schedule:
        reference = reference_run(checkpoint)
        log(
            "warm start schedule: " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in schedule.items())
            + f" (from a reference run of {reference['epochs']} epochs at lr {reference['lr']:g}; "
            + "give --epochs, --lr, --lr-schedule or --validate-every to change it)"
        )  # fmt: skip
    return {**old_model, **model}, TrainConfig(**{**old_train, **schedule, **train}), objective_values
