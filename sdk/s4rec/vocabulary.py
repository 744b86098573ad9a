"""The item vocabulary: the user's own item ids <-> the model's item indices, and what to do with unknown ids.

An artifact stores its item ids in index order (index 0 is padding, :data:`~s4rec.windows.PADDING_INDEX`):
:class:`ItemVocabulary` maps histories of ids to indices (one at a time, or many at once with a constant
number of Python calls per history), exclusion ids to indices, and indices back to ids. Ids are compared as
they are (``5`` and ``"5"`` are different items); numpy integers count as ints.

Unknown ids follow a policy, ``"ignore"`` (dropped and reported) or ``"error"`` (:class:`UnknownItemError`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np

from .errors import UnknownItemError

logger = logging.getLogger("s4rec")

ItemId = Any  # int or str, as in the training data
UNKNOWN_POLICIES = ("ignore", "error")

_ID_TYPES = {int, str}
_INT = {int}
_LIST_TYPES = {list, tuple}
# A dense id -> index table is used when the artifact's ids are ints in 0..limit; at most this many entries
# per item (plus a constant), so that a catalogue of sparse ids never gets a huge table.
_DENSE_ENTRIES_PER_ITEM = 4
_DENSE_EXTRA_ENTRIES = 1 << 16


class ItemVocabulary:
    """The item ids of an artifact, by item index (index ``i + 1`` is ``item_ids[i]``; 0 is padding).

    * ``index_of``: ``{item id: item index}`` (``.get(id, default)``);
    * ``ids``: ``[None, *item_ids]``, item index -> id (for per-item lookups);
    * ``ids_array``: the same as a numpy array (``ids_array[items]`` maps a whole array of indices);
    * ``dense_table``: ``dense_table[id]`` = the index of int id ``id`` (0: unknown), used by
      :meth:`map_histories` when every id is a small non-negative int (None otherwise: the dict is used;
      setting it to None forces the dict, which gives the same results).

    ``item_ids`` is a sequence of ids (format 2 artifacts: a dict, a list and an object array), or an int64
    numpy array (format 3's ``items.npy``): then no Python object is made per item, which at 10^6 items saves
    ~1 s and ~150 MB. ``index_of`` is then an :class:`ArrayIndex` (the dense table, or the ids sorted for
    ``searchsorted`` when they are sparse), ``ids`` an :class:`IdList` and ``ids_array`` the int64 ids with a
    0 in front (index 0, padding, is never returned).
    """

    def __init__(self, item_ids: Sequence[ItemId] | np.ndarray) -> None:
        if isinstance(item_ids, np.ndarray):
            if item_ids.dtype != np.int64 or item_ids.ndim != 1:
                raise ValueError(f"item ids as an array must be int64 (N,), got {item_ids.dtype}{item_ids.shape}")
            self.item_ids = item_ids
            self.index_of = ArrayIndex(item_ids)  # ValueError on duplicates
            self.ids_array = np.concatenate([np.zeros(1, dtype=np.int64), item_ids])
            self.ids = IdList(self.ids_array)
            self.dense_table = self.index_of.dense
            return
        self.item_ids = tuple(item_ids)
        self.index_of = {item: i + 1 for i, item in enumerate(self.item_ids)}
        self.ids = [None, *self.item_ids]
        self.ids_array = np.array(self.ids, dtype=object)
        self.dense_table = dense_table(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        mapping = "dict" if self.dense_table is None else "dense table"
        return f"ItemVocabulary({len(self.item_ids)} items, {mapping})"

    def map_history(self, history: Sequence[ItemId], unknown: str = "ignore") -> tuple[list[int], tuple]:
        """One history's item indices (in order) and its unknown ids, which are dropped under
        ``unknown="ignore"`` and raise :class:`UnknownItemError` under ``"error"``.

        ``history``: a list, tuple, range or 1-D numpy array of int or str ids; anything else is a
        ``TypeError`` naming the value.
        """
        if unknown not in UNKNOWN_POLICIES:
            check_unknown_policy(unknown)
        if isinstance(history, np.ndarray):
            if history.ndim != 1 or history.dtype.kind not in "iuUO":
                raise TypeError(
                    f"history must be a 1-D sequence of int or str item ids, got a numpy array of shape "
                    f"{history.shape} and dtype {history.dtype}."
                )
            history = history.tolist()
        elif isinstance(history, (str, bytes)) or not isinstance(history, (list, tuple, range)):
            raise TypeError(
                f"history must be a list, tuple or 1-D numpy array of item ids (oldest first), got "
                f"{type(history).__name__}: {_short(history)}."
            )
        if not set(map(type, history)) <= _ID_TYPES:
            history = [_check_item_id(item) for item in history]
        index_of = self.index_of
        indices = [index_of.get(item) for item in history]
        if None not in indices:
            return indices, ()
        unknown_items = tuple(item for item, i in zip(history, indices, strict=True) if i is None)
        if unknown == "error":
            raise _unknown_error(unknown_items)
        logger.debug("ignored %d unknown item id(s): %r", len(unknown_items), unknown_items[:5])
        return [i for i in indices if i is not None], unknown_items

    def map_histories(
        self, histories: Iterable[Sequence[ItemId]], unknown: str = "ignore"
    ) -> tuple[np.ndarray, np.ndarray, dict[int, tuple]]:
        """Map many histories at once: the known item indices of all of them concatenated (int64), the number
        of known items per history (int64), and ``{history number: unknown ids}`` for those with unknown ids.

        The same results, errors and reports as :meth:`map_history` history by history (which it falls back
        to when a history is not a list or tuple of int and str ids, so that errors name the same value), with
        a constant number of Python calls per history instead of one per item.
        """
        histories = check_histories(histories)
        if unknown not in UNKNOWN_POLICIES:
            check_unknown_policy(unknown)
        n = len(histories)
        flat = types = None
        if set(map(type, histories)) <= _LIST_TYPES:
            flat = list(chain.from_iterable(histories))
            types = set(map(type, flat))
        if flat is None or not types <= _ID_TYPES:  # numpy arrays, ranges, odd ids: checked one by one
            rows = [self.map_history(h, unknown) for h in histories]
            counts = np.fromiter(map(len, (r[0] for r in rows)), dtype=np.int64, count=n)
            known = np.fromiter(chain.from_iterable(r[0] for r in rows), dtype=np.int64, count=int(counts.sum()))
            return known, counts, {u: r[1] for u, r in enumerate(rows) if r[1]}
        counts = np.fromiter(map(len, histories), dtype=np.int64, count=n)
        indices = self._lookup(flat, types)
        missing = np.flatnonzero(indices == 0)
        if not len(missing):
            return indices, counts, {}
        owner = np.searchsorted(np.cumsum(counts), missing, side="right")  # the history of each unknown id
        unknown_of: dict[int, list] = {}
        for u, j in zip(owner.tolist(), missing.tolist()):
            unknown_of.setdefault(u, []).append(flat[j])
        unknown_of = {u: tuple(items) for u, items in unknown_of.items()}
        if unknown == "error":
            raise _unknown_error(unknown_of[min(unknown_of)])
        for items in unknown_of.values():
            logger.debug("ignored %d unknown item id(s): %r", len(items), items[:5])
        counts -= np.bincount(owner, minlength=n)
        return indices[indices != 0], counts, unknown_of

    def exclusion_indices(self, exclude: Iterable[ItemId]) -> set[int]:
        """The item indices of the ids in ``exclude`` (a collection of ids; unknown ids are ignored)."""
        if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
            raise TypeError(
                f"exclude must be a collection of item ids, got {type(exclude).__name__}: {_short(exclude)}."
            )
        index_of = self.index_of
        found = (index_of.get(_check_item_id(item)) for item in exclude)
        return {i for i in found if i is not None}

    def item_indices(
        self, items: Iterable[ItemId], unknown: str = "ignore", name: str = "candidates"
    ) -> tuple[np.ndarray, tuple]:
        """The item index of each id of a collection (a list, tuple, set, range or 1-D numpy array), in its
        order (int64, 0 for an id the model does not know), and those unknown ids in the order given: reported
        under ``unknown="ignore"``, :class:`UnknownItemError` under ``"error"``. ``name`` is the argument's name
        in the ``TypeError`` for anything else (a string, a dict, None, ids that are not int or str)."""
        if isinstance(items, np.ndarray):
            if items.ndim != 1 or items.dtype.kind not in "iuUO":
                raise TypeError(
                    f"{name} must be a 1-D collection of int or str item ids, got a numpy array of shape "
                    f"{items.shape} and dtype {items.dtype}."
                )
            items = items.tolist()
        elif isinstance(items, (str, bytes, dict)) or not isinstance(items, (list, tuple, set, frozenset, range)):
            raise TypeError(
                f"{name} must be a list, tuple, set or 1-D numpy array of item ids, got {type(items).__name__}: "
                f"{_short(items)}."
            )
        flat = items if type(items) is list else list(items)
        types = set(map(type, flat))
        if not types <= _ID_TYPES:
            flat = [_check_item_id(item, name) for item in flat]
            types = set(map(type, flat))
        indices = self._lookup(flat, types) if flat else np.zeros(0, dtype=np.int64)
        unknown_items: tuple = ()
        if not indices.all():
            unknown_items = tuple(item for item, i in zip(flat, indices.tolist()) if not i)
            if unknown == "error":
                raise _unknown_error(unknown_items, name)
        return indices, unknown_items

    def item_set(
        self, items: Iterable[ItemId], unknown: str = "ignore", name: str = "candidates"
    ) -> tuple[np.ndarray, tuple]:
        """:meth:`item_indices` as a set: the known indices sorted, without duplicates (int64), and the unknown
        ids."""
        table = self.dense_table
        if table is not None and type(items) in (list, tuple):
            ids = np.array(items)
            # ints (numpy's too): not floats or strings, and not bools, which numpy turns into ints beside ints
            boolean = bool in map(type, items) or np.bool_ in map(type, items)
            if ids.dtype.kind == "i" and ids.ndim == 1 and not boolean:
                # The common case in few numpy calls (it runs next to a ~60 us encoder call: 100 candidates took
                # 31 us through item_indices, 11 here): look up, sort, drop unknowns (0) and duplicates.
                found = np.sort(table[np.minimum(ids.view(np.uint64), len(table) - 1)])
                repeated = found[1:] == found[:-1]
                if repeated.any():
                    found = found[np.concatenate(([True], ~repeated))]
                if not len(found) or found[0]:
                    return found, ()
                unknown_items = tuple(item for item in items if self.index_of.get(int(item)) is None)
                if unknown == "error":
                    raise _unknown_error(unknown_items, name)
                return found[1:], unknown_items
        indices, unknown_items = self.item_indices(items, unknown, name)
        return unique_indices(indices), unknown_items

    def _lookup(self, flat: list, types: set) -> np.ndarray:
        """Item indices (int64, 0 for an unknown id) of a list of int and str ids."""
        table = self.dense_table
        index_of = self.index_of
        if type(index_of) is ArrayIndex and table is None and types == _INT:
            try:
                return index_of.lookup(np.array(flat, dtype=np.int64))
            except OverflowError:  # beyond int64: unknown, mapped one by one below
                pass
        if table is not None and types == _INT:
            try:
                ids = np.array(flat, dtype=np.int64)
            except OverflowError:  # beyond int64: unknown to a table of small ids, mapped by the dict below
                pass
            else:
                outside = len(table) - 1  # the table's last entry is 0 (unknown)
                return table[np.minimum(ids.view(np.uint64), outside)].astype(np.int64)
        get = self.index_of.get
        return np.fromiter(map(get, flat, repeat(0)), dtype=np.int64, count=len(flat))


def unique_indices(indices: np.ndarray) -> np.ndarray:
    """``indices`` sorted, without duplicates and without 0 (an unknown id). A sort and a neighbour comparison:
    ~4 us for 100 indices, where ``np.unique`` (hashing) took ~10 us."""
    found = np.sort(indices)
    if len(found) > 1:
        found = found[np.concatenate(([True], found[1:] != found[:-1]))]
    return found[1:] if len(found) and found[0] == 0 else found


class ArrayIndex:
    """``{item id: item index}`` over an int64 id array, without a Python object per item: the dense table when
    the ids are small non-negative ints (:func:`dense_table`), else the ids sorted, looked up with
    ``searchsorted``. Raises ``ValueError`` when the ids have duplicates."""

    def __init__(self, item_ids: np.ndarray) -> None:
        n = len(item_ids)
        self.dense = None
        self.sorted_ids = self.sorted_index = None
        low, high = (int(item_ids.min()), int(item_ids.max())) if n else (0, -1)
        if n and low >= 0 and high < _DENSE_ENTRIES_PER_ITEM * n + _DENSE_EXTRA_ENTRIES:
            table = np.zeros(high + 2, dtype=np.int32 if n < 2**31 - 1 else np.int64)
            indices = np.arange(1, n + 1, dtype=table.dtype)
            table[item_ids] = indices
            if not np.array_equal(table[item_ids], indices):  # a repeated id kept only its last index
                raise ValueError("item_ids has duplicates")
            self.dense = table
        else:
            order = np.argsort(item_ids, kind="stable")
            self.sorted_ids = item_ids[order]
            if n > 1 and (self.sorted_ids[1:] == self.sorted_ids[:-1]).any():
                raise ValueError("item_ids has duplicates")
            self.sorted_index = order + 1

    def get(self, item: ItemId, default: Any = None) -> Any:
        if type(item) is not int:  # a str (or a bool) is never an int vocabulary's id
            return default
        if self.dense is not None:
            index = int(self.dense[item]) if 0 <= item < len(self.dense) - 1 else 0
            return index or default
        if not -(2**63) <= item < 2**63:
            return default
        position = int(np.searchsorted(self.sorted_ids, item))
        if position < len(self.sorted_ids) and self.sorted_ids[position] == item:
            return int(self.sorted_index[position])
        return default

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Item indices (int64, 0 for unknown) of an int64 array of ids."""
        if self.dense is not None:
            return self.dense[np.minimum(ids.view(np.uint64), len(self.dense) - 1)].astype(np.int64)
        if not len(self.sorted_ids):
            return np.zeros(len(ids), dtype=np.int64)
        position = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
        return np.where(self.sorted_ids[position] == ids, self.sorted_index[position], 0)


class IdList:
    """Item index -> the user's own id (a Python int) over the int64 ids array (``ids[0]``: None, padding)."""

    __slots__ = ("array",)

    def __init__(self, ids_array: np.ndarray) -> None:
        self.array = ids_array

    def __getitem__(self, index: int) -> int | None:
        return int(self.array[index]) if index else None

    def __len__(self) -> int:
        return len(self.array)


def dense_table(item_ids: Sequence[ItemId]) -> np.ndarray | None:
    """``table[id]`` = the item index of int id ``id`` (0: unknown), ending with a 0 entry for ids beyond it;
    None when the ids are not all small non-negative ints."""
    if not item_ids or any(type(i) is not int for i in item_ids):
        return None
    low, high = min(item_ids), max(item_ids)
    if low < 0 or high >= _DENSE_ENTRIES_PER_ITEM * len(item_ids) + _DENSE_EXTRA_ENTRIES:
        return None
    table = np.zeros(high + 2, dtype=np.int32 if len(item_ids) < 2**31 - 1 else np.int64)
    table[np.array(item_ids, dtype=np.int64)] = np.arange(1, len(item_ids) + 1)
    return table


def check_unknown_policy(policy: str) -> None:
    """Raise ``ValueError`` unless ``policy`` is one of :data:`UNKNOWN_POLICIES`."""
    if policy not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {list(UNKNOWN_POLICIES)}, got {policy!r}.")


def check_histories(histories: Any) -> list:
    """``histories`` as a list, or ``TypeError`` when it is not a collection of histories (a string, a dict, ...)."""
    if isinstance(histories, (str, bytes, dict)) or not isinstance(histories, Iterable):
        raise TypeError(f"histories must be a list of histories, got {type(histories).__name__}: {_short(histories)}.")
    if isinstance(histories, np.ndarray) and histories.ndim != 2 and histories.dtype != object:
        raise TypeError(f"histories as a numpy array must be 2-D or of dtype object, got shape {histories.shape}.")
    return list(histories)


def _unknown_error(unknown_items: tuple, name: str = "") -> UnknownItemError:
    shown = ", ".join(repr(i) for i in unknown_items[:5]) + (", ..." if len(unknown_items) > 5 else "")
    where = f" in {name}" if name else ""
    return UnknownItemError(
        f"{len(unknown_items)} item id(s){where} unknown to the model: {shown}. Remove them, or use "
        "unknown='ignore' to drop them.",
        unknown_items,
    )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_item_id(item: Any, name: str = "") -> ItemId:
    if type(item) is int or isinstance(item, str):
        return str(item) if type(item) is not str and isinstance(item, str) else item
    if isinstance(item, np.integer):
        return int(item)
    where = f" (in {name})" if name else ""
    raise TypeError(f"item ids must be ints or strings{where}, got {type(item).__name__}: {_short(item)}.")
