"""Interaction data as flat arrays, and the leave-one-out split.

Three input formats:

* the benchmark format: one line per user, ``user_id item item ...`` oldest first (plain or ``.gz``;
  :mod:`s4rec_train.textformat`);
* interaction logs: CSV/TSV (plain or ``.gz``) with a header row, or Parquet, with a user, an item and a
  timestamp column (names configurable), string or integer ids, grouped by user, ordered by time and k-core
  filtered (:mod:`s4rec_train.columnar`, pyarrow).

Either way the result is an :class:`Interactions`: the item vocabulary (index -> the user's own item id,
index 0 = padding) and every user's history as one slice of a flat array (``items[offsets[u]:offsets[u+1]]``),
never one Python object per user: 10^7 events of 10^6 users take 40 MB of items and 8 MB of offsets.
:func:`leave_one_out` makes the :class:`Split`, which is the same arrays plus the split's bookkeeping; the
windows the model reads are cut from them batch by batch (:func:`s4rec.windows.right_aligned`), as the SDK
does, so no (users x max_len) array is ever built for training or evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s4rec.logs import LogColumns
from s4rec.windows import left_pad, right_aligned

from . import columnar
from .columnar import k_core as _k_core
from .errors import DataError
from .ids import Ids, as_ids
from .textformat import read_benchmark_text

__all__ = [
    "DataError", "Interactions", "Split", "head_users", "k_core", "leave_one_out", "left_pad",
    "load_interactions", "read_interactions", "read_sequences", "remap_to_vocabulary", "synthetic_interactions",
    "write_sequences",
]  # fmt: skip

MIN_INTERACTIONS = 3  # one for training, one for validation, one for test


class Histories(Sequence):
    """Users' histories as a read-only list of int32 arrays (views into the flat ``items``)."""

    def __init__(self, items: np.ndarray, offsets: np.ndarray):
        self.items, self.offsets = items, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, user: int) -> np.ndarray:
        if not -len(self) <= user < len(self):
            raise IndexError(f"user row {user} out of range for {len(self)} users")
        user %= len(self)
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.items[a:b] for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist()))


@dataclass
class Interactions:
    """Users' histories as item indices, plus the vocabulary that maps indices back to item ids.

    User u's history, oldest first, is ``items[offsets[u]:offsets[u + 1]]`` (``sequences[u]``).
    """

    item_ids: Ids  # item_ids[i - 1] is the user's own id of item index i (index 0 is padding)
    user_ids: Ids
    items: np.ndarray  # int32 item indices 1..N of every user, concatenated
    offsets: np.ndarray  # int64 (users + 1,): where each user's history starts, then the total
    source: str = ""
    dropped_users: int = 0  # users with fewer than MIN_INTERACTIONS after filtering
    notes: list[str] = field(default_factory=list)
    # float64 per entry of ``items`` (each user's ascending) for logs; None for the benchmark format, which has
    # no times. Only the time split (:mod:`s4rec_train.splits`) reads them.
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.item_ids, self.user_ids = as_ids(self.item_ids), as_ids(self.user_ids)
        self.items = np.asarray(self.items, dtype=np.int32)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if len(self.offsets) != len(self.user_ids) + 1:
            raise ValueError(f"offsets must have users + 1 = {len(self.user_ids) + 1} entries, got {len(self.offsets)}")
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
            if len(self.timestamps) != len(self.items):
                raise ValueError(
                    f"timestamps must have one entry per item ({len(self.items)}), got {len(self.timestamps)}"
                )

    @classmethod
    def from_sequences(cls, item_ids, user_ids, sequences, source: str = "", **kwargs) -> Interactions:
        """From one array (or list) of item indices per user: for small data made in code."""
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        items = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences]) if len(sequences) else []
        return cls(item_ids, user_ids, items, offsets, source, **kwargs)

    @property
    def sequences(self) -> Histories:
        return Histories(self.items, self.offsets)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def item_counts(self) -> np.ndarray:
        """Interactions per item index (length N + 1, index 0 = 0)."""
        return np.bincount(self.items, minlength=self.num_items + 1).astype(np.int64)

    def content_sha256(self) -> str:
        """SHA-256 of what training reads: the histories, both vocabularies and the timestamps. A resumed run
        and a tuning study compare it to refuse other data (:mod:`s4rec_train.resume`, :mod:`s4rec_train.tune`)."""
        digest = hashlib.sha256()
        for array in (self.items, self.offsets, self.timestamps):
            digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
        for ids in (self.item_ids, self.user_ids):
            values = ids.values
            digest.update(values.tobytes() if values.dtype == np.int64 else json.dumps(ids.tolist()).encode())
            digest.update(str(values.dtype == np.int64).encode())
        return digest.hexdigest()


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file. Pass a benchmark-format .txt or a CSV/TSV/Parquet interaction log.")
    if path.is_dir():
        raise DataError(f"{path}: is a directory. Pass a data file.")
    return path


def _interactions(path: Path, grouped: columnar.Grouped) -> Interactions:
    if not grouped.user_ids:
        raise DataError(
            f"{path}: no user is left with the {MIN_INTERACTIONS} interactions training needs (one each for "
            f"training, validation and test): the log has {grouped.read_users:,} users and "
            f"{grouped.read_events:,} interactions, and "
            + "; ".join(grouped.notes or ["every user has fewer"])
            + ". Use more data or a lower --min-count (the k-core filter keeps users and items with at least "
            "that many interactions)."
        )
    return Interactions(
        grouped.item_ids, grouped.user_ids, grouped.items, grouped.offsets, str(path), grouped.dropped_users,
        grouped.notes, grouped.timestamps,
    )  # fmt: skip


def read_sequences(path: str | Path) -> Interactions:
    """Read the benchmark format: ``user_id item item ...`` per line, items oldest first."""
    path = _check_file(path)
    return _interactions(path, read_benchmark_text(path, MIN_INTERACTIONS))


def k_core(user_code: np.ndarray, item_code: np.ndarray, min_count: int) -> np.ndarray:
    """Events kept by repeatedly dropping users and items with fewer than ``min_count`` events (bool mask,
    iterated to a fixed point); ``user_code`` / ``item_code`` are integer codes per event."""
    return _k_core(np.asarray(user_code, dtype=np.int64), np.asarray(item_code, dtype=np.int64), min_count)


def read_interactions(
    path: str | Path,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    sep: str | None = None,
    min_count: int = 5,
) -> Interactions:
    """Read a CSV/TSV log with a header row (plain or ``.gz``) or a Parquet log, group by user, order by
    time, k-core filter.

    ``sep`` defaults to a tab for ``.tsv`` files and to whatever the header uses (comma, tab, semicolon).
    Timestamps must be numbers (e.g. Unix seconds; Parquet may also store times); ties keep file order.
    """
    path = _check_file(path)
    events = columnar.read_log_events(path, LogColumns(user_col, item_col, time_col, sep))
    if not len(events.user_code):
        raise DataError(f"{path}: no interactions after the header row.")
    return _interactions(path, columnar.group_events(events, min_count, MIN_INTERACTIONS))


LOG_SUFFIXES = (".csv", ".tsv", *columnar.PARQUET_SUFFIXES)


def load_interactions(path: str | Path, **log_options) -> Interactions:
    """Read either format: ``.csv``/``.tsv`` (optionally ``.gz``) or ``.parquet`` as a log, anything else as
    sequences."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if any(s in LOG_SUFFIXES for s in suffixes):
        return read_interactions(path, **log_options)
    return read_sequences(path)


@dataclass
class Split:
    """Leave-one-out split over the flat histories of :class:`Interactions`.

    * training: all but the last two items of each user (``train_length`` of them);
    * validation: history = all but the last two items, target = second last;
    * test: history = all but the last item, target = last.

    :meth:`ends` gives where each user's window of a part ends in ``items`` and how long it is (at most
    ``max_len``); :meth:`window` cuts those windows for some users, left-padded with 0.
    """

    max_len: int
    items: np.ndarray  # int32, every user's whole sequence concatenated
    offsets: np.ndarray  # int64 (users + 1,)
    num_items: int
    is_head: np.ndarray  # bool: the 20% of users with the longest training histories
    train_length: np.ndarray = field(init=False)  # items in each user's training part
    valid_target: np.ndarray = field(init=False)
    test_target: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        lengths = np.diff(self.offsets)
        self.train_length = lengths - 2
        self.valid_target = self.items[self.offsets[1:] - 2].astype(np.int64)
        self.test_target = self.items[self.offsets[1:] - 1].astype(np.int64)

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    def ends(self, part: str, users: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """``(ends, lengths)`` of the windows of ``part`` for ``users``: ``train_input``, ``train_target``
        (the inputs shifted by one), ``valid`` or ``test`` history."""
        start, train = self.offsets[:-1][users], self.train_length[users]
        if part == "train_input":
            return start + train - 1, np.minimum(np.maximum(train - 1, 0), self.max_len)
        if part == "train_target":
            return start + train, np.minimum(np.maximum(train - 1, 0), self.max_len)
        if part == "valid":
            return start + train, np.minimum(train, self.max_len)
        if part == "test":
            return start + train + 1, np.minimum(train + 1, self.max_len)
        raise ValueError(f"part must be train_input, train_target, valid or test, got {part!r}")

    def window(self, part: str, users: np.ndarray | slice = slice(None), width: int | None = None) -> np.ndarray:
        """``(len(users), width)`` int64 windows of ``part``, left-padded (width: ``max_len`` by default)."""
        ends, lengths = self.ends(part, users)
        return right_aligned(self.items, ends, lengths, self.max_len if width is None else width)

    # The whole padded (users x max_len) arrays, for small data and inspection only: training and evaluation
    # cut their windows batch by batch instead.
    train_input = property(lambda self: self.window("train_input"))
    train_target = property(lambda self: self.window("train_target"))
    valid_history = property(lambda self: self.window("valid"))
    test_history = property(lambda self: self.window("test"))

    def seen(self, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, starts, ends)``: user u's history before the ``valid`` or ``test`` target is
        ``items[starts[u]:ends[u]]`` (all of it, however long)."""
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        held_out = 2 if which == "valid" else 1
        return self.items, self.offsets[:-1], self.offsets[1:] - held_out

    def window_item_counts(self, part: str = "valid") -> np.ndarray:
        """How often each item index (N + 1,) occurs in the windows of ``part`` (the insert augmentation's
        popularity: the items the model reads), counted on the flat array."""
        ends, lengths = self.ends(part)
        marks = np.zeros(len(self.items) + 1, dtype=np.int64)
        np.add.at(marks, ends - lengths, 1)
        np.add.at(marks, ends, -1)
        inside = np.cumsum(marks[:-1]) > 0
        return np.bincount(self.items[inside], minlength=self.num_items + 1)


def head_users(train_length: np.ndarray, head_fraction: float = 0.2) -> np.ndarray:
    """Head = the ``head_fraction`` of users with the longest training histories (ties broken by order)."""
    num_head = int(round(len(train_length) * head_fraction))
    order = np.argsort(-train_length, kind="stable")
    is_head = np.zeros(len(train_length), dtype=bool)
    is_head[order[:num_head]] = True
    return is_head


def leave_one_out(data: Interactions, max_len: int = 50, head_fraction: float = 0.2) -> Split:
    """Split every user: train on all but the last two items, validate on the second last, test on the last."""
    train_length = data.lengths - 2
    is_head = head_users(train_length, head_fraction)
    return Split(max_len, data.items, data.offsets, data.num_items, is_head)


def require_both_groups(split: Split, source: str, head_fraction: float = 0.2) -> None:
    """A :class:`DataError` when the split's head or tail group is empty (a handful of users): their figures
    would be NaN, so training and evaluation refuse such data up front."""
    if split.is_head.all() or not split.is_head.any():
        raise DataError(
            f"{source}: too small to train and evaluate: {len(split.is_head)} user(s) with at least "
            f"{MIN_INTERACTIONS} interactions, which leaves the head group (the {head_fraction:.0%} of users with "
            "the longest histories) or the tail group empty, so their figures would be undefined. Use data with "
            f"at least {int(np.ceil(0.5 / head_fraction))} such users (real data: thousands)."
        )


def synthetic_interactions(
    num_users: int = 200, num_items: int = 50, mean_length: float = 8.0, seed: int = 0
) -> Interactions:
    """Tiny data with learnable structure (items follow each other in cycles), for tests and demos."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_users):
        length = int(np.clip(rng.poisson(mean_length), 3, 4 * mean_length))
        start = rng.integers(1, num_items + 1)
        step = rng.integers(1, 4)
        seq = (start - 1 + step * np.arange(length)) % num_items + 1
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(1, num_items + 1, noise.sum())
        sequences.append(seq)
    return Interactions.from_sequences(list(range(1, num_items + 1)), list(range(num_users)), sequences, "synthetic")


def write_sequences(data: Interactions, path: str | Path) -> None:
    """Write users' histories in the benchmark format, with the user's own item ids."""
    ids = np.array(["<pad>", *map(str, data.item_ids)], dtype=object)
    with open(path, "w", encoding="utf-8") as f:
        for user, seq in zip(data.user_ids, data.sequences):
            f.write(" ".join([str(user), *ids[seq].tolist()]) + "\n")


def remap_to_vocabulary(data: Interactions, item_ids: list) -> Interactions:
    """Re-index ``data`` to another vocabulary (a checkpoint's); unknown items are dropped and counted."""
    index_of = {item: i + 1 for i, item in enumerate(item_ids)}
    own = data.item_ids
    mapping = np.array([0] + [index_of.get(item, 0) for item in own], dtype=np.int32)
    unknown = int((mapping[1:] == 0).sum())
    if unknown == len(own):
        raise DataError(
            f"{data.source}: none of its {len(own)} items is in the model's vocabulary. "
            "Evaluate on data with the item ids the model was trained on."
        )
    mapped = mapping[data.items]
    known = mapped > 0
    user_of_event = np.repeat(np.arange(data.num_users), data.lengths)
    lengths = np.bincount(user_of_event[known], minlength=data.num_users)
    keep = lengths >= MIN_INTERACTIONS
    dropped = int((~keep).sum())
    if not keep.any():
        raise DataError(f"{data.source}: no user keeps {MIN_INTERACTIONS} known items.")
    offsets = np.concatenate([[0], np.cumsum(lengths[keep])])
    notes = list(data.notes)
    if unknown:
        notes.append(f"{unknown} items unknown to the model were dropped")
    if dropped:
        notes.append(f"{dropped} users with fewer than {MIN_INTERACTIONS} known items were dropped")
    kept = known & keep[user_of_event]
    return Interactions(
        as_ids(item_ids), data.user_ids.take(np.flatnonzero(keep)), mapped[kept], offsets,
        data.source, data.dropped_users + dropped, notes, None if data.timestamps is None else data.timestamps[kept],
    )  # fmt: skip
