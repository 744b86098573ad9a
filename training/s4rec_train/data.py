"""Reading interaction data and making the leave-one-out split.

Two input formats:

* the benchmark format: one line per user, ``user_id item item ...`` oldest first (plain or ``.gz``);
* raw interaction logs: CSV/TSV with a user, an item and a timestamp column (names configurable), string or
  integer ids, which are grouped by user, ordered by time and k-core filtered.

Either way the result is a :class:`Interactions`: the item vocabulary (index -> the user's own item id,
index 0 = padding) and one array of item indices per user. :func:`leave_one_out` turns it into the padded
tensors that training and evaluation use.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s4rec.errors import InputError
from s4rec.logs import LogColumns, log_events
from s4rec.records import BadRecord, parse_id
from s4rec.windows import left_pad

MIN_INTERACTIONS = 3  # one for training, one for validation, one for test


class DataError(InputError):
    """Input data that cannot be used, with the file, line and what to do."""


@dataclass
class Interactions:
    """Users' histories as item indices, plus the vocabulary that maps indices back to item ids."""

    item_ids: list  # item_ids[i - 1] is the user's own id of item index i (index 0 is padding)
    user_ids: list
    sequences: list[np.ndarray]  # int64 item indices 1..N, oldest first, one per user
    source: str = ""
    dropped_users: int = 0  # users with fewer than MIN_INTERACTIONS after filtering
    notes: list[str] = field(default_factory=list)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def item_counts(self) -> np.ndarray:
        """Interactions per item index (length N + 1, index 0 = 0)."""
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        if self.sequences:
            np.add.at(counts, np.concatenate(self.sequences), 1)
        return counts


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file. Pass a benchmark-format .txt or a CSV/TSV interaction log.")
    if path.is_dir():
        raise DataError(f"{path}: is a directory. Pass a data file.")
    return path


def _finish(path: Path, user_ids: list, raw_sequences: list[list], notes: list[str]) -> Interactions:
    """Build the vocabulary over kept users and drop users too short to split."""
    kept_users, kept_raw, dropped = [], [], 0
    for user, seq in zip(user_ids, raw_sequences):
        if len(seq) < MIN_INTERACTIONS:
            dropped += 1
            continue
        kept_users.append(user)
        kept_raw.append(seq)
    if not kept_raw:
        raise DataError(
            f"{path}: no user has at least {MIN_INTERACTIONS} interactions after filtering "
            f"({dropped} users dropped). Use more data or a lower --min-count."
        )
    vocabulary = sorted({item for seq in kept_raw for item in seq}, key=lambda v: (isinstance(v, str), v))
    index_of = {item: i + 1 for i, item in enumerate(vocabulary)}
    sequences = [np.fromiter((index_of[i] for i in seq), dtype=np.int64, count=len(seq)) for seq in kept_raw]
    if dropped:
        notes.append(f"dropped {dropped} users with fewer than {MIN_INTERACTIONS} interactions")
    return Interactions(vocabulary, kept_users, sequences, str(path), dropped, notes)


def read_sequences(path: str | Path) -> Interactions:
    """Read the benchmark format: ``user_id item item ...`` per line, items oldest first."""
    path = _check_file(path)
    user_ids, raw = [], []
    seen_users: set = set()
    with _open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise DataError(
                    f"{path}:{line_no}: a user with no items ({line.strip()!r}). Each line must be "
                    "'user_id item item ...'."
                )
            user = parse_id(tokens[0])
            if user in seen_users:
                raise DataError(
                    f"{path}:{line_no}: user {user!r} appears on more than one line. Give each user one line "
                    "with the whole history, oldest first."
                )
            seen_users.add(user)
            user_ids.append(user)
            raw.append([parse_id(t) for t in tokens[1:]])
    if not raw:
        raise DataError(f"{path}: the file is empty. Expected one line per user: 'user_id item item ...'.")
    return _finish(path, user_ids, raw, [])


def k_core(events: list[tuple], min_count: int) -> list[tuple]:
    """Repeatedly drop users and items with fewer than ``min_count`` interactions (events: (user, item, ...))."""
    if min_count <= 1:
        return events
    while True:
        users = Counter(e[0] for e in events)
        items = Counter(e[1] for e in events)
        kept = [e for e in events if users[e[0]] >= min_count and items[e[1]] >= min_count]
        if len(kept) == len(events):
            return kept
        events = kept


def read_interactions(
    path: str | Path,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    sep: str | None = None,
    min_count: int = 5,
) -> Interactions:
    """Read a CSV/TSV interaction log with a header row, group by user, order by time, k-core filter.

    ``sep`` defaults to a tab for ``.tsv`` files and to whatever the header uses (comma, tab, semicolon).
    Timestamps must be numbers (e.g. Unix seconds); ties keep file order.
    """
    path = _check_file(path)
    tsv = ".tsv" in [suffix.lower() for suffix in path.suffixes]
    events = []
    with _open_text(path) as f:
        try:
            for event in log_events(f, LogColumns(user_col, item_col, time_col, sep), tsv):
                if type(event) is BadRecord:
                    raise DataError(f"{path}:{event.line}: {event.reason}. Fix the row or remove it.")
                line_no, user, item, timestamp = event
                events.append((user, item, timestamp, line_no))
        except InputError as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: {e}", flags=e.flags) from None
    if not events:
        raise DataError(f"{path}: no interactions after the header row.")
    total = len(events)
    events = k_core(events, min_count)
    notes = []
    if len(events) < total:
        notes.append(f"{min_count}-core filtering kept {len(events)} of {total} interactions")
    by_user: dict = defaultdict(list)
    for user, item, timestamp, line_no in events:
        by_user[user].append((timestamp, line_no, item))
    user_ids = list(by_user)
    raw = [[item for _, _, item in sorted(by_user[user])] for user in user_ids]
    return _finish(path, user_ids, raw, notes)


def load_interactions(path: str | Path, **log_options) -> Interactions:
    """Read either format: ``.csv``/``.tsv`` (optionally ``.gz``) as a log, anything else as sequences."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if ".csv" in suffixes or ".tsv" in suffixes:
        return read_interactions(path, **log_options)
    return read_sequences(path)


@dataclass
class Split:
    """Leave-one-out split as padded arrays (left padding with 0, most recent ``max_len`` items kept).

    * training: ``train_input`` / ``train_target`` (users, max_len), target 0 where there is nothing to learn;
    * validation: history = all but the last two items, target = second last;
    * test: history = all but the last item, target = last.
    """

    max_len: int
    train_input: np.ndarray
    train_target: np.ndarray
    valid_history: np.ndarray
    valid_target: np.ndarray
    test_history: np.ndarray
    test_target: np.ndarray
    train_length: np.ndarray  # items in each user's training part
    is_head: np.ndarray  # bool: the 20% of users with the longest training histories
    num_items: int
    # Every user's whole sequence, concatenated (int64 item indices), and where each starts (users + 1,):
    # evaluation excludes the whole history from the ranking, not only the max_len items of the window.
    items: np.ndarray | None = None
    offsets: np.ndarray | None = None

    def seen(self, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, starts, ends)``: user u's history before the ``valid`` or ``test`` target is
        ``items[starts[u]:ends[u]]`` (all of it, however long)."""
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        held_out = 2 if which == "valid" else 1
        return self.items, self.offsets[:-1], self.offsets[1:] - held_out


def head_users(train_length: np.ndarray, head_fraction: float = 0.2) -> np.ndarray:
    """Head = the ``head_fraction`` of users with the longest training histories (ties broken by order)."""
    num_head = int(round(len(train_length) * head_fraction))
    order = np.argsort(-train_length, kind="stable")
    is_head = np.zeros(len(train_length), dtype=bool)
    is_head[order[:num_head]] = True
    return is_head


def leave_one_out(data: Interactions, max_len: int = 50, head_fraction: float = 0.2) -> Split:
    """Split every user: train on all but the last two items, validate on the second last, test on the last."""
    train_parts = [s[:-2] for s in data.sequences]
    train_input = left_pad([t[:-1] for t in train_parts], max_len)
    train_target = left_pad([t[1:] for t in train_parts], max_len)
    train_length = np.array([len(t) for t in train_parts], dtype=np.int64)
    lengths = np.fromiter(map(len, data.sequences), dtype=np.int64, count=len(data.sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate(data.sequences).astype(np.int64) if data.sequences else np.zeros(0, np.int64)
    return Split(
        max_len=max_len,
        train_input=train_input,
        train_target=train_target,
        valid_history=left_pad(train_parts, max_len),
        valid_target=np.array([s[-2] for s in data.sequences], dtype=np.int64),
        test_history=left_pad([s[:-1] for s in data.sequences], max_len),
        test_target=np.array([s[-1] for s in data.sequences], dtype=np.int64),
        train_length=train_length,
        is_head=head_users(train_length, head_fraction),
        num_items=data.num_items,
        items=items,
        offsets=offsets,
    )


def synthetic_interactions(
    num_users: int = 200, num_items: int = 50, mean_length: float = 8.0, seed: int = 0
) -> Interactions:
    """Tiny data with learnable structure (items follow each other in cycles), for tests and demos."""
    rng = np.random.default_rng(seed)
    sequences, user_ids = [], []
    for user in range(num_users):
        length = int(np.clip(rng.poisson(mean_length), 3, 4 * mean_length))
        start = rng.integers(1, num_items + 1)
        step = rng.integers(1, 4)
        seq = (start - 1 + step * np.arange(length)) % num_items + 1
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(1, num_items + 1, noise.sum())
        sequences.append(seq.astype(np.int64))
        user_ids.append(user)
    return Interactions(list(range(1, num_items + 1)), user_ids, sequences, "synthetic")


def write_sequences(data: Interactions, path: str | Path) -> None:
    """Write users' histories in the benchmark format, with the user's own item ids."""
    with open(path, "w", encoding="utf-8") as f:
        for user, seq in zip(data.user_ids, data.sequences):
            f.write(" ".join([str(user)] + [str(data.item_ids[i - 1]) for i in seq]) + "\n")


def remap_to_vocabulary(data: Interactions, item_ids: list) -> Interactions:
    """Re-index ``data`` to another vocabulary (a checkpoint's); unknown items are dropped and counted."""
    index_of = {item: i + 1 for i, item in enumerate(item_ids)}
    own = data.item_ids
    mapping = np.array([0] + [index_of.get(item, 0) for item in own], dtype=np.int64)
    unknown = int((mapping[1:] == 0).sum())
    if unknown == len(own):
        raise DataError(
            f"{data.source}: none of its {len(own)} items is in the model's vocabulary. "
            "Evaluate on data with the item ids the model was trained on."
        )
    user_ids, sequences, dropped = [], [], 0
    for user, seq in zip(data.user_ids, data.sequences):
        seq = mapping[seq]
        seq = seq[seq > 0]
        if len(seq) < MIN_INTERACTIONS:
            dropped += 1
            continue
        user_ids.append(user)
        sequences.append(seq)
    if not sequences:
        raise DataError(f"{data.source}: no user keeps {MIN_INTERACTIONS} known items.")
    notes = list(data.notes)
    if unknown:
        notes.append(f"{unknown} items unknown to the model were dropped")
    if dropped:
        notes.append(f"{dropped} users with fewer than {MIN_INTERACTIONS} known items were dropped")
    return Interactions(list(item_ids), user_ids, sequences, data.source, data.dropped_users + dropped, notes)
