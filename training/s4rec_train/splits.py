"""Which interactions train, which validate and which test: the leave-one-out split's sibling for logs with
timestamps (:class:`TimeSplit`), and :class:`Targets`, the one shape every evaluation ranks.

**Time split** (``--split time``, :func:`time_split`). Leave-one-out tests every user on their own last item,
whenever it happened, so a model may train on interactions that come *after* another user's test item: the
data leakage of Ji et al. ("A Critical Study on Data Leakage in Recommender System Offline Evaluation", TOIS
2023). A global temporal split draws two cut times over the whole log instead, as a model that is retrained
daily meets its data:

* training: every interaction at or before the validation cut;
* validation: each user's first interaction after the validation cut and at or before the test cut, read
  from the user's training interactions;
* test: each user's first interaction after the test cut, read from everything the user did before it
  (training and validation period).

The cuts are quantiles of the interactions' times: by default the last 10% of the interactions (in time) are
the test period and the 10% before them the validation period, as RecBole's ordered ratio split does. A
fraction of the *time range* instead would put the cut wherever one stray early or late timestamp stretches
the range. A user is evaluated in a period only with an interaction in it and one before it; users who
arrive in the test period have no history to read and are counted, not ranked. Head users are the 20% with
the longest training parts, as in leave-one-out.

:class:`TimeSplit` is a :class:`~s4rec_train.data.Split` (the training loop reads its training windows the
same way); its validation and test targets are those of the users :meth:`TimeSplit.targets` lists.

**Targets** are ``(history, target)`` pairs over a flat item array: what :func:`s4rec_train.evaluation.evaluate_targets`
ranks. A time split makes them for the users of a period; ``s4rec-train evaluate`` makes them for a newer log
(:meth:`Targets.remapped`): items the model does not know are dropped from the histories (as the SDK ignores
them) and, as targets, count as misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SPLITS
from .data import DataError, Interactions, Split, head_users, leave_one_out

__all__ = ["SPLITS", "Targets", "TimeSplit", "make_split", "split_targets", "time_split"]


@dataclass
class Targets:
    """``(history, target)`` pairs: pair r reads ``items[starts[r]:ends[r]]`` (all of it is excluded from the
    ranking, its last ``max_len`` items are the window) and should rank ``target[r]`` (0: an item the model does
    not know, always a miss)."""

    items: np.ndarray  # int32 item indices, flat
    starts: np.ndarray  # int64 (pairs,)
    ends: np.ndarray  # int64 (pairs,)
    target: np.ndarray  # int64 (pairs,), 0 = unknown
    is_head: np.ndarray  # bool (pairs,)
    users: np.ndarray  # int64 (pairs,): the user row of each pair in its split
    unknown_history_items: int = 0  # dropped from the histories by remapped()

    def __len__(self) -> int:
        return len(self.target)

    @property
    def unknown_targets(self) -> int:
        return int((self.target == 0).sum())

    def remapped(self, mapping: np.ndarray) -> Targets:
        """The same pairs in another vocabulary: ``mapping[i]`` is the new index of item index i (0: unknown).
        Unknown items leave the histories (the rest keep their order) and unknown targets become 0."""
        mapped = np.asarray(mapping, dtype=np.int64)[self.items]
        known = mapped > 0
        before = np.concatenate([[0], np.cumsum(known)])  # known items before each flat position
        target = np.asarray(mapping, dtype=np.int64)[self.target]
        in_histories = np.zeros(len(self.items) + 1, dtype=np.int64)
        np.add.at(in_histories, self.starts, 1)
        np.add.at(in_histories, self.ends, -1)
        inside = np.cumsum(in_histories[:-1]) > 0
        unknown = int((inside & ~known).sum())
        return Targets(
            mapped[known].astype(np.int32), before[self.starts], before[self.ends], target, self.is_head,
            self.users, self.unknown_history_items + unknown,
        )  # fmt: skip


def split_targets(split: Split, which: str) -> Targets:
    """The ``valid`` or ``test`` pairs of a split: every user's for leave-one-out, those with an interaction
    in that period for a :class:`TimeSplit`."""
    if isinstance(split, TimeSplit):
        return split.targets(which)
    items, starts, ends = split.seen(which)
    target = split.valid_target if which == "valid" else split.test_target
    users = np.arange(split.num_users)
    return Targets(items, starts, ends, target, split.is_head, users)


@dataclass
class TimeSplit(Split):
    """A global temporal split over users' time-ordered histories (see the module docstring).

    ``train_length`` counts each user's interactions at or before ``valid_cut``; ``valid_position`` and
    ``test_position`` are the flat indices of each user's validation and test targets, -1 where there is none.
    """

    train_counts: np.ndarray = None  # int64 (users,), the value of train_length
    valid_position: np.ndarray = None  # int64 (users,)
    test_position: np.ndarray = None  # int64 (users,)
    valid_cut: float = 0.0
    test_cut: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.train_length = self.train_counts
        starts = self.offsets[:-1]
        self.valid_target = np.where(self.valid_position >= 0, self.items[np.maximum(self.valid_position, 0)], 0)
        self.test_target = np.where(self.test_position >= 0, self.items[np.maximum(self.test_position, 0)], 0)
        self.valid_target, self.test_target = self.valid_target.astype(np.int64), self.test_target.astype(np.int64)
        # windows end at the target (the test one reads the validation period too); no target: the training part
        self._test_end = np.where(self.test_position >= 0, self.test_position, starts + self.train_counts)

    def ends(self, part: str, users: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        if part != "test":
            return super().ends(part, users)
        end = self._test_end[users]
        return end, np.minimum(end - self.offsets[:-1][users], self.max_len)

    def seen(self, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        starts = self.offsets[:-1]
        ends = starts + self.train_counts if which == "valid" else self._test_end
        return self.items, starts, ends

    def targets(self, which: str) -> Targets:
        """The users with a target in the ``valid`` or ``test`` period and at least one interaction before it."""
        items, starts, ends = self.seen(which)
        target = self.valid_target if which == "valid" else self.test_target
        users = np.flatnonzero((target > 0) & (ends > starts))
        return Targets(items, starts[users], ends[users], target[users], self.is_head[users], users)


def time_split(
    data: Interactions, max_len: int = 50, valid_fraction: float = 0.1, test_fraction: float = 0.1,
    head_fraction: float = 0.2,
) -> TimeSplit:  # fmt: skip
    """Cut ``data`` at two times: the last ``test_fraction`` of its interactions (by time) are the test
    period, the ``valid_fraction`` before them the validation period (module docstring)."""
    if data.timestamps is None:
        raise DataError(
            f"{data.source}: --split time needs interaction times, and this file has none (the benchmark format "
            "`user item item ...` has no timestamps). Use a CSV/TSV/Parquet log with a time column (--time-col), "
            "or the leave-one-out split (--split loo)."
        )
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"the time split's fractions must be > 0 and leave room for training: valid {valid_fraction}, "
            f"test {test_fraction}."
        )
    times = data.timestamps
    user_of = np.repeat(np.arange(data.num_users), data.lengths)
    if (np.diff(times) < 0)[user_of[1:] == user_of[:-1]].any():
        raise ValueError("timestamps must ascend within each user's history (as the log reader orders them)")
    test_cut = float(np.quantile(times, 1.0 - test_fraction, method="lower"))
    valid_cut = float(np.quantile(times, 1.0 - test_fraction - valid_fraction, method="lower"))
    starts = data.offsets[:-1]
    train_counts = np.bincount(user_of, weights=times <= valid_cut, minlength=data.num_users).astype(np.int64)
    # times ascend within each user, so a period's first interaction is where the user's count before it ends
    before_test = np.bincount(user_of, weights=times <= test_cut, minlength=data.num_users).astype(np.int64)
    lengths = data.lengths
    valid_position = np.where(before_test > train_counts, starts + train_counts, -1)
    test_position = np.where(lengths > before_test, starts + before_test, -1)
    if valid_cut >= test_cut or not (times <= valid_cut).any():
        raise DataError(
            f"{data.source}: the time split finds no distinct periods (validation cut {valid_cut:g}, test cut "
            f"{test_cut:g}): too few distinct times. Use larger --valid-fraction / --test-fraction or more data."
        )
    split = TimeSplit(
        max_len, data.items, data.offsets, data.num_items, head_users(train_counts, head_fraction),
        train_counts, valid_position, test_position, valid_cut, test_cut,
    )  # fmt: skip
    valid, test = split.targets("valid"), split.targets("test")
    if not len(valid) or not len(test):
        raise DataError(
            f"{data.source}: the time split leaves no user to {'validate' if not len(valid) else 'test'} on "
            f"(cuts at {valid_cut:g} and {test_cut:g}). Use larger --valid-fraction / --test-fraction."
        )
    cold = int(((test_position >= 0) & (test_position == starts)).sum())
    split.notes.append(
        f"time split: training up to {valid_cut:g} ({int(train_counts.sum()):,} interactions), validation "
        f"to {test_cut:g} ({len(valid):,} users), test after ({len(test):,} users"
        + (f"; {cold:,} users first seen in the test period have no history and are not ranked)" if cold else ")")
    )
    return split


def make_split(data: Interactions, max_len: int, split: str = "loo", valid_fraction=0.1, test_fraction=0.1) -> Split:
    """The split ``TrainConfig.split`` names: leave-one-out (``loo``) or the global time split (``time``)."""
    if split == "loo":
        return leave_one_out(data, max_len)
    if split == "time":
        return time_split(data, max_len, valid_fraction, test_fraction)
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
