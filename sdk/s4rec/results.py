"""What the recommender returns: :class:`Recommendations` for one history, :class:`RankedBatch` for many, and
:class:`ScoredChunk`, a chunk of offline batch scoring (:mod:`s4rec.batch`) with its records.

A :class:`RankedBatch` keeps a batch's results as the graph's arrays (scores and item indices) with the
vocabulary's id array, so that a caller that only formats them (``s4rec-score``) never builds a
``(item_id, score)`` list per user; :meth:`RankedBatch.recommendations` builds them when wanted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .records import Record


class Recommendations(list):
    """Ranked ``(item_id, score)`` pairs, best first, with a report of how the input was handled.

    * ``unknown_items``: the history's item ids the model does not know, which were ignored (for
      ``similar_items``: the query's);
    * ``fallback``: True when the history had no known item and the list holds the most popular items
      (their scores are NaN: there is no model score without a history);
    * ``unknown_candidates``: the ``candidates`` ids the model does not know, which were ignored.
    """

    __slots__ = ("unknown_items", "fallback", "unknown_candidates")

    def __init__(
        self, pairs: Iterable = (), unknown_items: tuple = (), fallback: bool = False, unknown_candidates: tuple = ()
    ):
        super().__init__(pairs)
        self.unknown_items = unknown_items
        self.fallback = fallback
        self.unknown_candidates = unknown_candidates

    def item_ids(self) -> list:
        return [item for item, _ in self]


class Scores(list):
    """The model's scores (floats) of the items given to :meth:`Recommender.score`, in their order, with a
    report: ``unknown_items`` (the given ids the model does not know: their score is NaN),
    ``unknown_history`` (the history's unknown ids, ignored) and ``fallback`` (True when the history had no
    known item: every score is NaN, there is no model score without a history; keep your own order)."""

    __slots__ = ("unknown_items", "unknown_history", "fallback")

    def __init__(
        self, scores: Iterable = (), unknown_items: tuple = (), unknown_history: tuple = (), fallback: bool = False
    ):
        super().__init__(scores)
        self.unknown_items = unknown_items
        self.unknown_history = unknown_history
        self.fallback = fallback


def kept_scores(scores: np.ndarray) -> list[list[float]]:
    """Rows of ``(n, k)`` scores as lists, without the -inf tail of a row that has fewer than k items left."""
    lists = scores.tolist()
    if np.isneginf(scores[:, -1]).any():
        for row in lists:
            if row[-1] == -math.inf:
                del row[row.index(-math.inf) :]
    return lists


def recommendation_lists(ids: np.ndarray, scores: np.ndarray, items: np.ndarray) -> list[Recommendations]:
    """Rows of ``(n, k)`` scores and item indices as :class:`Recommendations` (without reports); ``ids`` is
    the vocabulary's id array (:attr:`~s4rec.vocabulary.ItemVocabulary.ids_array`)."""
    return list(map(Recommendations, map(zip, ids[items].tolist(), kept_scores(scores))))


class RankedBatch:
    """The results of a batch as arrays, in input order (:meth:`Recommender.rank_batch`).

    * ``ids``: the vocabulary's id array, item index -> the user's own id (object array, ``ids[0]`` None);
    * ``scores`` (n, k) float32 and ``items`` (n, k) int64 item indices, best first; a row with fewer than k
      items left after the exclusions ends in -inf scores;
    * ``fallback`` (n,) bool: the histories with no known item (their rows are unused: they get ``popular``,
      the most popular items as :class:`Recommendations`);
    * ``unknown_of``: ``{row: unknown ids}`` for the rows whose history had unknown ids;
    * ``converted``: the rows already turned into :class:`Recommendations` while the batch ran, or None;
    * ``popular_of``: ``{row: fallback list}`` for fallback rows whose list is not ``popular`` (their own
      candidates); ``unknown_candidates_of``: ``{row: unknown candidate ids}``.
    """

    __slots__ = (
        "ids", "scores", "items", "fallback", "popular", "unknown_of", "converted", "popular_of",
        "unknown_candidates_of",
    )  # fmt: skip

    def __init__(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        items: np.ndarray,
        fallback: np.ndarray,
        popular: Recommendations,
        unknown_of: dict[int, tuple],
        converted: list | None = None,
        popular_of: dict[int, Recommendations] | None = None,
        unknown_candidates_of: dict[int, tuple] | None = None,
    ) -> None:
        self.ids, self.scores, self.items, self.fallback = ids, scores, items, fallback
        self.popular, self.unknown_of, self.converted = popular, unknown_of, converted
        self.popular_of, self.unknown_candidates_of = popular_of or {}, unknown_candidates_of or {}

    def __len__(self) -> int:
        return len(self.scores)

    def recommendations(self) -> list[Recommendations]:
        """Every row as :class:`Recommendations` with its report, in input order."""
        results = self.converted
        if results is None:
            results = recommendation_lists(self.ids, self.scores, self.items)
        for u in np.flatnonzero(self.fallback).tolist():
            results[u] = Recommendations(self.popular_of.get(u, self.popular), fallback=True)
        for u, unknown_items in self.unknown_of.items():
            results[u].unknown_items = unknown_items
        for u, unknown_candidates in self.unknown_candidates_of.items():
            results[u].unknown_candidates = unknown_candidates
        return results

    def recommendation(self, u: int) -> Recommendations:
        """Row ``u`` alone, with its report."""
        unknown_candidates = self.unknown_candidates_of.get(u, ())
        if self.fallback[u]:
            popular = self.popular_of.get(u, self.popular)
            return Recommendations(popular, self.unknown_of.get(u, ()), True, unknown_candidates)
        ids = self.ids[self.items[u : u + 1]].tolist()
        scores = kept_scores(self.scores[u : u + 1])
        return Recommendations(zip(ids[0], scores[0]), self.unknown_of.get(u, ()), False, unknown_candidates)


class ScoredChunk:
    """A scored chunk: its records and, per record, either its recommendations (``results``) or, from an
    s4rec :class:`~s4rec.Recommender`, the ranked arrays (``ranked``, a :class:`~s4rec.results.RankedBatch`)
    that the JSONL writer formats as they are, without building a ``(item_id, score)`` list per user."""

    __slots__ = ("records", "results", "ranked")

    def __init__(self, records: list[Record], results: list | None = None, ranked: RankedBatch | None = None) -> None:
        self.records, self.results, self.ranked = records, results, ranked

    def __len__(self) -> int:
        return len(self.records)

    def fallbacks(self) -> int:
        """Records that got the popular-items fallback (no known item in their history)."""
        if self.ranked is not None:
            return int(self.ranked.fallback.sum())
        return sum(bool(getattr(r, "fallback", False)) for r in self.results)

    def pairs(self) -> list[tuple]:
        """``(user, [(item_id, score), ...])`` per record."""
        results = self.results if self.ranked is None else self.ranked.recommendations()
        return [(record.user, recommendations) for record, recommendations in zip(self.records, results)]
