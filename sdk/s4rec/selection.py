"""Which items a call may return and how they are ranked when that is not the whole catalogue: candidate sets
(allow-lists), a recommender's catalogue restriction (:meth:`Recommender.restricted_to` / ``without``) and
intent-diverse lists (``per_intent``). numpy only; :mod:`s4rec.recommender` runs the graph.

Item sets are sorted, duplicate-free int64 arrays of item indices, so that intersections and differences are
merges (``np.intersect1d`` / ``np.setdiff1d`` with ``assume_unique``) in time proportional to the sets.

Two ways to rank a candidate set C for one user (:func:`scores_rows`):

* **rows**: the user vector (the encoder graph) times the rows of C (``table[C] @ user``), then the top k of
  those |C| scores;
* **mask**: the full graph with every item outside C excluded (its ``exclude`` input), which scores and ranks
  the whole catalogue inside ONNX Runtime.

Rows cost ~|C| row reads, the mask the whole product plus the excluded list; :func:`use_rows` switches at
:data:`ROWS_SHARE` of the catalogue (measured: ``benchmarks/app_features.py``, docs/sdk.md "Business rules").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .vocabulary import unique_indices

# Rows when |C| <= ROWS_SHARE * N (or at most ROWS_MIN items), else the mask. Measured on Beauty (12,101 items,
# format 2, encoder graph) and a grown 10^6-item table (format 3, fp32), single calls, 1 thread: see
# benchmarks/app_features.py --sweep (docs/sdk.md "Candidates: rows or mask").
ROWS_SHARE = 0.25
ROWS_MIN = 2048
# With retrieval="ann", candidate sets up to this size are scored exactly row by row (about as fast as a filtered
# query there, and recall 1); larger ones are a filtered query of the index (s4rec.ann.AnnIndex.ranked).
ANN_ROWS = 16384

EMPTY = np.zeros(0, dtype=np.int64)
EMPTY.setflags(write=False)


def use_rows(candidates: int, num_items: int, approximate: bool = False) -> bool:
    """Score ``candidates`` items row by row (True), or through the graph with the rest excluded (False; with
    ``approximate`` retrieval: a filtered query of the ANN index, above :data:`ANN_ROWS` candidates)."""
    if approximate:
        return candidates <= ANN_ROWS
    return candidates <= max(ROWS_MIN, ROWS_SHARE * num_items)


def sorted_unique(indices) -> np.ndarray:
    """``indices`` sorted, without duplicates and without 0 (the padding index: an unknown id), int64."""
    return unique_indices(np.asarray(indices, dtype=np.int64))


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` without ``b`` (both sorted, duplicate-free). A binary search of ``a`` in ``b``: ~10x faster than
    ``np.setdiff1d`` for the small sets of a single call (100 candidates less a history: 3 us instead of 30)."""
    if not len(b) or not len(a):
        return a
    if len(b) * 16 < len(a):  # a few removed from many (a history from a view's allowed set): find them in a
        position = np.minimum(np.searchsorted(a, b), len(a) - 1)
        return np.delete(a, position[a[position] == b])
    return a[~members(a, b)]


def intersection(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """``a`` and ``b`` (None: every item), sorted."""
    if a is None:
        return b
    if b is None:
        return a
    if len(a) > len(b):
        a, b = b, a
    return a[members(a, b)]


def members(items: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``items`` (any order) are in ``within`` (sorted); O(len(items) log len(within))."""
    if not len(within):
        return np.zeros(len(items), dtype=bool)
    position = np.minimum(np.searchsorted(within, items), len(within) - 1)
    return within[position] == items


def without_members(items: np.ndarray, banned: np.ndarray) -> np.ndarray:
    """``items`` (any order, kept) less those in ``banned`` (sorted)."""
    return items[~members(items, banned)] if len(banned) else items


def complement(items: np.ndarray, num_items: int) -> np.ndarray:
    """Item indices 1..``num_items`` not in ``items`` (sorted)."""
    keep = np.ones(num_items + 1, dtype=bool)
    keep[0] = False
    keep[items] = False
    return np.flatnonzero(keep)


@dataclass(frozen=True, eq=False)
class Restriction:
    """A recommender view's catalogue: ``allowed`` (sorted item indices; None: every item) less ``denied``
    (sorted item indices), both fixed when the view is made. ``unknown_items``: the ids given to
    ``restricted_to`` / ``without`` that the model does not know (ignored). ``rows``: the item vectors of
    ``allowed`` gathered into one contiguous array when the view ranks its items row by row (see
    :func:`with_rows`), else None."""

    allowed: np.ndarray | None
    denied: np.ndarray
    unknown_items: tuple = ()
    rows: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> int | None:
        """Items the view may return (None: the catalogue less ``denied``)."""
        return None if self.allowed is None else len(self.allowed)


def with_rows(restriction: Restriction, vectors: np.ndarray) -> Restriction:
    """``restriction`` with its allowed items' vectors gathered once, when it is small enough to be ranked row by
    row (:func:`use_rows`). Gathering the rows of a 10% allow-list from a memory-mapped 10^6-item table touches
    ~80% of its pages at random, which cost each call as much as the graph's whole product (measured: 0.96x the
    unrestricted call); their contiguous copy (|allowed| x d x 4 bytes: 25.6 MB there) is read sequentially."""
    allowed = restriction.allowed
    if allowed is None or not use_rows(len(allowed), len(vectors) - 1):
        return restriction
    rows = np.ascontiguousarray(vectors[allowed])
    rows.setflags(write=False)
    return Restriction(allowed, restriction.denied, restriction.unknown_items, rows)


def restrict(base: Restriction | None, allowed: np.ndarray | None, denied: np.ndarray, unknown: tuple) -> Restriction:
    """``base`` (a view's restriction, or None) narrowed by an allow-list and/or a deny-list: allowed sets
    intersect, denied sets unite; the allowed set never holds a denied item."""
    if base is not None:
        allowed = intersection(base.allowed, allowed)
        denied = np.union1d(base.denied, denied) if len(denied) else base.denied
        unknown = base.unknown_items + unknown
    if allowed is not None:
        allowed = difference(allowed, denied)
        allowed.setflags(write=False)
        denied = EMPTY  # the allowed set already leaves them out
    denied.setflags(write=False)
    return Restriction(allowed, denied, unknown)


# Above this many scores, top_positions picks the k best through group maxima (below, one argpartition)
GROUPED_TOP = 2048
GROUP_ROWS = 64


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``scores`` (any order; ties at the k-th score broken arbitrarily).

    numpy's argpartition over 12,101 float32 scores took ~210 us here (ONNX Runtime's whole score product and
    blocked ranking: ~50 us). So, as the graph ranks: the scores are cut into groups (the columns of a
    (GROUP_ROWS, n / GROUP_ROWS) view, whose column maxima are one vectorised reduction: ~10 us), the k groups
    with the largest maxima are kept (every one of the k best scores lies in one of them: a group holding one
    has a maximum at least that score, and only groups holding a score at least as large can rank above it)
    and the k best of their k x GROUP_ROWS scores (and the few beyond the last whole row) are chosen: ~25 us in
    all at 12,101 scores, ~4 ms at 10^6 (benchmarks/app_features.py)."""
    n = len(scores)
    if k >= n:
        return np.arange(n)
    groups = n // GROUP_ROWS
    if n <= GROUPED_TOP or k >= groups:
        return np.argpartition(scores, n - k)[n - k :]
    grid = scores[: groups * GROUP_ROWS].reshape(GROUP_ROWS, groups)  # column j: scores j, j + groups, ...
    best_groups = np.argpartition(grid.max(axis=0), groups - k)[groups - k :]
    candidates = (np.arange(GROUP_ROWS)[:, None] * groups + best_groups).ravel()
    if groups * GROUP_ROWS < n:
        candidates = np.concatenate([candidates, np.arange(groups * GROUP_ROWS, n)])
    chosen = scores[candidates]
    return candidates[np.argpartition(chosen, len(chosen) - k)[len(chosen) - k :]]


SORTED_TOP = 512  # up to this many scores, one stable argsort ranks them (3 us for 100)


def top(scores: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(scores, items)`` of parallel arrays (``items`` sorted ascending), best first (ties: the
    lower item index first, as the graph's TopK), -inf scores left out."""
    if len(scores) <= k:  # items sorted ascending: a stable sort puts the lower index first on ties
        order = np.argsort(-scores, kind="stable")
    elif len(scores) <= SORTED_TOP:  # the k best by a partition, then the k sorted (lower index first on ties)
        chosen = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
        order = chosen[np.lexsort((items[chosen], -scores[chosen]))]
    else:
        chosen = top_positions(scores, k)
        order = chosen[np.lexsort((items[chosen], -scores[chosen]))]
    scores, items = scores[order], items[order]
    if len(scores) and scores[-1] == -np.inf:  # excluded items (-inf) are last
        finite = np.isfinite(scores)
        scores, items = scores[finite], items[finite]
    return scores, items


def ranked_prefixes(scores: np.ndarray, items: np.ndarray, first: int):
    """The ranking of ``(scores, items)`` in growing prefixes (``first`` items, then 4x as many, ...), each
    ``(scores, items)`` sorted best first; only as much of the array is sorted as the consumer reads."""
    m = max(1, first)
    while True:
        prefix = top(scores, items, min(m, len(scores)))
        yield prefix
        if m >= len(scores):
            return
        m *= 4


def diverse_positions(intents: np.ndarray, per_intent: int, k: int) -> list[int]:
    """Positions of a ranked list (``intents``: each entry's intent, in rank order) that keep at most
    ``per_intent`` entries of one intent, greedily from the top, at most ``k`` of them. A Python loop that
    stops at the k-th position kept: ~4 us for a list of 40 (numpy's grouping took ~40 us)."""
    taken: dict[int, int] = {}
    kept = []
    for position, intent in enumerate(intents.tolist()):
        count = taken.get(intent, 0)
        if count < per_intent:
            taken[intent] = count + 1
            kept.append(position)
            if len(kept) == k:
                break
    return kept


def first_k(prefixes, k: int, intents: np.ndarray | None, per_intent: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` entries of growing ranked prefixes (:func:`ranked_prefixes`, or the ANN index's), at most
    ``per_intent`` of one intent when given."""
    if per_intent is not None:
        scores, items, _ = diverse_top(prefixes, intents, per_intent, k)
        return scores, items
    prefix = (EMPTY, EMPTY)
    for prefix in prefixes:
        if len(prefix[1]) >= k:
            break
    return prefix[0][:k], prefix[1][:k]


def diverse_top(prefixes, intents: np.ndarray, per_intent: int, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The first ``k`` entries of a ranking (``prefixes``: :func:`ranked_prefixes` or any iterable of growing
    ranked ``(scores, items)`` prefixes) keeping at most ``per_intent`` items of one intent (``intents``: by
    item index). Returns ``(scores, items, complete)``; ``complete`` is False when the prefixes ran out
    before ``k`` items were found: the caller may rank more."""
    scores = items = EMPTY
    for scores, items in prefixes:
        keep = diverse_positions(intents[items], per_intent, k)
        if len(keep) == k:
            return scores[keep], items[keep], True
    keep = diverse_positions(intents[items], per_intent, k)
    return scores[keep], items[keep], False
