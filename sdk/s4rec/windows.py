"""The padding convention every part of s4rec shares: item index 0 is padding, histories are left-padded.

A window holds the most recent ``length`` items of a history, right-aligned, with :data:`PADDING_INDEX`
before them; positions are right-aligned in the model too, so a window trimmed of its all-padding columns
gives exactly the outputs of the full ``max_len`` window. Training builds its arrays with :func:`left_pad`,
the SDK its graph inputs with :func:`right_aligned` (the same thing over histories stored end to end) and
the graph's ``exclude`` input with :func:`exclude_input`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PADDING_INDEX = 0  # item index 0: never an item, never recommended


def right_aligned(items: np.ndarray, ends: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """``(len(ends), width)`` int64: row r holds the last ``min(lengths[r], width)`` items of
    ``items[: ends[r]]``, right-aligned, :data:`PADDING_INDEX` before them (``lengths[r]`` must not exceed
    the items that history has)."""
    columns = np.arange(width - 1, -1, -1)  # distance from the row's end
    source = ends[:, None] - 1 - columns  # index into items of each cell
    window = np.take(items, source, mode="clip") if len(items) else np.zeros(source.shape, dtype=np.int64)
    window[columns >= lengths[:, None]] = PADDING_INDEX
    return window.astype(np.int64, copy=False)


def left_pad(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """The most recent ``length`` items of each sequence, left-padded: int64 ``(len(sequences), length)``."""
    counts = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    if not counts.any():
        return np.zeros((len(sequences), length), dtype=np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences if len(s)])
    return right_aligned(items, np.cumsum(counts), np.minimum(counts, length), length)


def history_window(indices: list[int], max_len: int) -> np.ndarray:
    """``(1, width)`` int64: the most recent ``max_len`` of one history's item indices, trimmed to its length
    (positions are right-aligned, so this equals the left-padded ``max_len`` window); an empty history is
    one :data:`PADDING_INDEX` position."""
    if not indices:
        return np.zeros((1, 1), dtype=np.int64)
    return np.array([indices[-max_len:]], dtype=np.int64)


def exclude_input(
    window: np.ndarray,
    items: np.ndarray,
    ends: np.ndarray,
    counts: np.ndarray,
    skip: list[int],
    exclude_seen: bool,
) -> np.ndarray:
    """The graph's ``exclude`` input for a bucket: ``(b, e)`` item indices, :data:`PADDING_INDEX` where there
    is nothing to exclude.

    ``window`` is the bucket's graph input (:func:`right_aligned` over ``items``, ``ends``), ``counts`` the
    number of items of each of its histories, ``skip`` the item indices excluded for every history. Usually
    the window itself (its padding excludes nothing). When a history is longer than the window (all of it
    counts as seen) or there are ``skip`` indices: each whole history, right-aligned, then ``skip`` as
    columns (the graph treats ``exclude`` as a set, so the order does not matter).
    """
    width = window.shape[1]
    longest = int(counts.max()) if exclude_seen else 0
    if exclude_seen and longest <= width and not skip:
        return window
    excluded = np.zeros((len(window), max(1, longest + len(skip))), dtype=np.int64)  # 0: PADDING_INDEX
    if exclude_seen:
        excluded[:, :longest] = window if longest <= width else right_aligned(items, ends, counts, longest)
    if skip:
        excluded[:, longest:] = skip
    return excluded
