"""How good approximate retrieval is: recall@k of a recommender's ANN results against exact retrieval
(:func:`recall_at_k`, ``s4rec-score --check-recall N``), and the exact top k it is measured against.

Separate from :mod:`s4rec.ann`, which builds and queries the index: this module reads the whole float32 table for
every user (slices of a bounded score matrix), so it is a measurement, never a serving path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RecallReport", "exact_top_k", "recall_at_k", "user_recalls"]


@dataclass(frozen=True)
class RecallReport:
    """Recall@k of approximate retrieval against exact retrieval on a sample of histories."""

    k: int
    users: int
    recall: float  # mean share of the exact top k that the approximate top k holds
    min_recall: float  # the worst user's
    p5_recall: float  # the 5th percentile of the users' recalls
    ann_seconds: float
    exact_seconds: float

    def summary(self) -> str:
        return (
            f"recall@{self.k} of ANN against exact retrieval: {self.recall:.4f} (5th percentile "
            f"{self.p5_recall:.2f}, worst user {self.min_recall:.2f}) "
            f"on {self.users:,} histories; ANN {self.ann_seconds:.2f} s, exact {self.exact_seconds:.2f} s"
        )


def recall_at_k(
    recommender: Any,  # an s4rec.Recommender, not imported: s4rec.recommender imports this module
    histories: Iterable[Sequence[Any]],
    k: int = 10,
    exclude_seen: bool = True,
    sample: int | None = 1000,
    seed: int = 0,
) -> RecallReport:
    """Recall@``k`` of the approximate retrieval of ``recommender`` (a :class:`~s4rec.Recommender` loaded with
    ``retrieval="ann"``) against exact retrieval with the same exclusions: the exact top ``k`` of the float32
    scores of every item (the item table times the user vectors, numpy, in slices), on ``sample`` histories drawn
    from ``histories`` (all: None). Histories with no known item (the popular-items fallback, the same for both)
    are left out."""
    if recommender.retrieval != "ann":
        raise ValueError('recall_at_k needs a recommender loaded with retrieval="ann".')
    histories = list(histories)
    if sample is not None and len(histories) > sample:
        rng = np.random.default_rng(seed)
        histories = [histories[i] for i in sorted(rng.choice(len(histories), sample, replace=False))]
    started = time.perf_counter()
    ranked = recommender.rank_batch(histories, k=k, exclude_seen=exclude_seen)
    ann_seconds = time.perf_counter() - started
    started = time.perf_counter()
    users, banned, keep = recommender.user_vectors(histories, exclude_seen=exclude_seen)
    exact = exact_top_k(recommender.ann.table, users, k, banned)
    exact_seconds = time.perf_counter() - started
    recalls = user_recalls(ranked, exact, keep)
    if not recalls:
        raise ValueError("no history with a known item to measure recall on.")
    return RecallReport(
        k,
        len(recalls),
        float(np.mean(recalls)),
        float(np.min(recalls)),
        float(np.percentile(recalls, 5)),
        ann_seconds,
        exact_seconds,
    )


def user_recalls(ranked: Any, exact: np.ndarray, keep: np.ndarray) -> list[float]:
    """Per user of ``keep`` (rows of ``exact``, users of ``ranked``: a :class:`~s4rec.results.RankedBatch`), the
    share of its exact top k (``exact`` rows, 0-padded) found among its approximate results; users whose exact top
    k is empty are left out."""
    recalls = []
    for row, u in enumerate(keep.tolist()):
        want = set(exact[row][exact[row] > 0].tolist())
        if want:
            got = set(ranked.items[u][np.isfinite(ranked.scores[u])].tolist())
            recalls.append(len(got & want) / len(want))
    return recalls


def exact_top_k(table: np.ndarray, users: np.ndarray, k: int, banned: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, k)`` item indices (0 where fewer are left) of the exact top ``k`` dot products of rows 1..N of
    ``table`` (the padding row and any rows beyond N are left out by the caller's table slice)."""
    out = np.zeros((len(users), k), dtype=np.int64)
    items = table.shape[0]
    step = max(1, (1 << 24) // items)  # bounded (step, items) score matrix
    for start in range(0, len(users), step):
        scores = users[start : start + step] @ np.asarray(table).T  # (s, rows)
        scores[:, 0] = -np.inf
        for row in range(len(scores)):
            banned_row = banned[start + row]
            if len(banned_row):
                scores[row, banned_row] = -np.inf
            best = np.argpartition(-scores[row], k)[:k] if items > k else np.arange(items)
            best = best[np.argsort(-scores[row, best], kind="stable")][:k]
            best = best[np.isfinite(scores[row, best])]
            out[start + row, : len(best)] = best
    return out
