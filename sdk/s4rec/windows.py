"""The padding convention every part of s4rec shares: item index 0 is padding, histories are left-padded.

A window holds the most recent ``length`` items of a history, right-aligned, with :data:`PADDING_INDEX`
before them; positions are right-aligned in the model too, so a window trimmed of its all-padding columns
gives exactly the outputs of the full ``max_len`` window. Training builds its arrays with :func:`left_pad`,
the SDK its graph inputs with :func:`right_aligned` (the same thing over histories stored end to end).
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
