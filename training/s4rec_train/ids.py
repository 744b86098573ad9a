"""The users' own ids (of users and items) as compact arrays, and how raw tokens become them.

s4rec reads an id that looks like an integer as that integer and anything else as a string
(:func:`s4rec.records.parse_id`, shared with the SDK, so that ``5`` in a training file matches the item id
``5`` of an artifact). Training turns millions of tokens into ids: :func:`parse_unique` applies that rule to
each *distinct* token once (pyarrow casts the plain ASCII integers; Python's ``int()`` sees only the rare
tokens that could still be integers, e.g. ``+5`` or ``1_000``), and :func:`factorize` gives each row the code
of its id in first-appearance order, merging tokens that name the same id (``7`` and ``007``).

:class:`Ids` holds ids in one numpy array (int64, or numpy's variable-width strings; an object array only
when integers and strings are mixed) and reads like a list of Python ints and strings: 10^6 user ids take
8 MB instead of the ~36 MB of a list of ints (or ~60 MB of strings).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from s4rec.records import parse_id

# numpy >= 2 stores strings compactly (short ones inline, no Python object each); older numpy uses objects.
STRINGS = np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else object
_PLAIN_INT = r"^-?[0-9]{1,18}$"  # what pyarrow casts exactly as int() would (and what fits in int64)
_MAYBE_INT = r"^[+-]?[\p{Nd}_]+$"  # the other tokens int() might accept: Unicode digits, '+', underscores


class Ids(Sequence):
    """A read-only list of ids backed by one numpy array; items come out as Python ints and strings."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray):
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Ids(self.values[index])
        value = self.values[index]
        return value.item() if isinstance(value, np.generic) else value

    def __iter__(self) -> Iterator:
        return iter(self.values.tolist())

    def take(self, indices: np.ndarray) -> Ids:
        return Ids(self.values[indices])

    def tolist(self) -> list:
        return self.values.tolist()

    def __eq__(self, other) -> bool:
        if isinstance(other, Ids | list | tuple):
            return len(self) == len(other) and self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # mutable container semantics, as a list

    def __repr__(self) -> str:
        shown = self.values[:6].tolist()
        return f"Ids({shown}{' ...' if len(self) > 6 else ''}, {len(self)} ids)"


def as_ids(values: Iterable | Ids | np.ndarray) -> Ids:
    """``values`` (a list of ints and/or strings, an array or :class:`Ids`) as :class:`Ids`."""
    if isinstance(values, Ids):
        return values
    if isinstance(values, np.ndarray):
        return Ids(values)
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= {int}:
        try:
            return Ids(np.array(values, dtype=np.int64))
        except OverflowError:  # an integer id beyond int64
            pass
    elif kinds <= {str}:
        return Ids(np.array(values, dtype=STRINGS))
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return Ids(array)


def parse_unique(tokens: pa.Array) -> np.ndarray:
    """:func:`~s4rec.records.parse_id` of each (distinct) string token: int64 when all are integers, strings
    when none is, otherwise an object array of both."""
    plain = pc.match_substring_regex(tokens, _PLAIN_INT).to_numpy(zero_copy_only=False)
    if plain.all():
        return pc.cast(tokens, pa.int64()).to_numpy()
    maybe = np.flatnonzero(pc.match_substring_regex(tokens, _MAYBE_INT).to_numpy(zero_copy_only=False) & ~plain)
    if not plain.any() and not len(maybe):
        return tokens.to_numpy(zero_copy_only=False).astype(STRINGS)
    parsed = np.empty(len(tokens), dtype=object)
    parsed[:] = tokens.to_numpy(zero_copy_only=False)
    is_int = plain.copy()
    if plain.any():
        parsed[plain] = pc.cast(tokens.filter(pa.array(plain)), pa.int64()).to_numpy().tolist()
    for row in maybe.tolist():
        parsed[row] = parse_id(parsed[row])
        is_int[row] = type(parsed[row]) is int
    if is_int.all():
        try:
            return parsed.astype(np.int64)
        except OverflowError:  # an integer id beyond int64 stays a Python int
            return parsed
    if not is_int.any():
        return parsed.astype(STRINGS)
    return parsed


def first_occurrence_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, unique)``: ``unique[codes] == values``, ``unique`` in order of first occurrence in ``values``."""
    if values.dtype == object:  # mixed ints and strings cannot be sorted together: hash them
        index: dict = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), np.int64, len(values))
        unique = np.empty(len(index), dtype=object)
        unique[:] = list(index)
        return codes, unique
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], unique[order]


def factorize(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, Ids]:
    """``(codes, ids)`` of a column of raw ids (integers or string tokens): ``ids[codes[r]]`` is row r's id,
    ids numbered in order of first appearance. Distinct tokens are parsed once (:func:`parse_unique`)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    dictionary = encoded.dictionary
    if pa.types.is_integer(dictionary.type):
        return indices, Ids(dictionary.to_numpy().astype(np.int64, copy=False))
    parsed = parse_unique(dictionary)
    codes, unique = first_occurrence_codes(parsed)
    if len(unique) == len(parsed):  # no two tokens named the same id: the dictionary's order stands
        return indices, Ids(parsed)
    return codes[indices], Ids(unique)


def sorted_order(ids: Ids) -> np.ndarray:
    """Positions of ``ids`` in s4rec's vocabulary order: integers ascending, then strings ascending."""
    values = ids.values
    if values.dtype != object:
        return np.argsort(values, kind="stable")
    as_list = values.tolist()
    return np.array(sorted(range(len(as_list)), key=lambda i: (isinstance(as_list[i], str), as_list[i])), np.int64)


def number_items(item_code: np.ndarray, item_ids: Ids) -> tuple[np.ndarray, Ids]:
    """``(index, vocabulary)``: item index 1..N of each event and the vocabulary (``vocabulary[i - 1]`` is
    index i's id) over the items the events use, in vocabulary order (:func:`sorted_order`)."""
    used = np.flatnonzero(np.bincount(item_code, minlength=len(item_ids)))
    vocabulary = item_ids.take(used)
    in_order = sorted_order(vocabulary)
    index = np.zeros(len(item_ids), dtype=np.int32)
    index[used[in_order]] = np.arange(1, len(used) + 1, dtype=np.int32)
    return index[item_code], vocabulary.take(in_order)
