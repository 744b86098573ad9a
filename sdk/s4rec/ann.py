"""Approximate retrieval for large catalogues (``pip install "s4rec[ann]"``): an HNSW index over the item table.

``Recommender.load(path, retrieval="ann")`` finds a user's candidates in the index written by
``s4rec-export --ann`` (the ``ann_index`` sidecar, hnswlib, inner-product space: a tied SASRec table has rows of
varying norms, so the search is for the largest dot product, not cosine) instead of scoring every item:

1. the encoder-only graph gives the user vector (no exhaustive score product: ONNX Runtime runs every node of
   a graph whatever outputs are fetched, so the full graph would pay it);
2. the index returns ``k + e`` candidates, ``e`` being the number of items excluded for that user (the seen
   items and ``exclude``), with the search breadth ``ef = max(ef_search, k + e)``;
3. the excluded candidates are dropped and the rest re-ranked by their exact float32 scores (the item table's
   rows, read from the memory-mapped ``item_table.npy``), best ``k`` kept.

So the exclusions and ``k`` mean what they mean for exact retrieval: seen items never crowd out the ``k`` asked
for, and the scores are the model's. Only which items are found is approximate: :func:`recall_at_k` measures
it against exact retrieval on a sample of histories (``s4rec-score --check-recall N``).

hnswlib was chosen over usearch and faiss-cpu by measurement (docs/sdk.md, "Large catalogues"): the fastest
build and search at the same recall here, and the smallest install (8 MB).
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, S4RecError
from .selection import members, ranked_prefixes, without_members

LIBRARY = "hnswlib"
SPACE = "ip"  # inner product: tied tables have rows of varying norms
# Measured at 10^6 grown-Beauty items with Beauty test-history user vectors (docs/sdk.md, "Large catalogues"):
# M 16 / ef_construction 100 built in 218 s and recalled 0.882 / 0.906 / 0.919 at ef 64 / 128 / 256 (search
# p50 0.11 / 0.18 / 0.44 ms); M 32 / ef_construction 200 built in 1,068 s (2 busy cores) and recalled
# 0.959 / 0.972 / 0.979 (0.26 / 0.42 / 0.94 ms). Recall is what the index is for, so the second, with ef 128.
DEFAULT_M = 32  # links per node
DEFAULT_EF_CONSTRUCTION = 200  # build breadth
DEFAULT_EF_SEARCH = 128  # search breadth (at least k + the excluded items)
# Filtered queries (candidates, a view's catalogue, intent-diverse lists): the index is asked for OVERFETCH times
# the items expected to pass the filter, and exact ranking of the allowed rows replaces a query that would ask for
# EXACT_SHARE of the catalogue. Measured: benchmarks/app_features.py --large (docs/sdk.md, "Business rules").
OVERFETCH = 2.0
EXACT_SHARE = 0.05
COSINE_OVERFETCH = 4  # similar_items (cosine) from the inner-product index: 4x the candidates, re-ranked
MISSING_ANN = 'retrieval="ann" needs hnswlib: pip install "s4rec[ann]"'
# The start of hnswlib's index file (native size_t): offsetLevel0, max_elements, cur_element_count,
# size_data_per_element. hnswlib sizes its arrays by the header's max_elements whenever cur_element_count
# exceeds the max_elements it is given, and touches ~50 bytes per element at once: read it first.
_HNSW_HEADER = struct.Struct("@4N")


def _hnswlib():
    try:
        import hnswlib
    except ImportError:
        raise S4RecError(MISSING_ANN) from None
    return hnswlib


def build_index(
    table: np.ndarray,
    path: Path,
    num_items: int,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    threads: int = 0,
) -> dict:
    """Index rows 1..``num_items`` of ``table`` (labels = item indices) and save it to ``path``; returns the
    fields of its sidecar entry (library, space, M, ef_construction, the default ef_search, build seconds)."""
    hnswlib = _hnswlib()
    started = time.perf_counter()
    index = hnswlib.Index(space=SPACE, dim=int(table.shape[1]))
    index.init_index(max_elements=num_items, ef_construction=ef_construction, M=m, random_seed=0)
    index.set_num_threads(threads or -1)
    for start in range(1, num_items + 1, 1 << 16):  # in slices: no float32 copy of the whole table
        stop = min(start + (1 << 16), num_items + 1)
        index.add_items(np.ascontiguousarray(table[start:stop], dtype=np.float32), np.arange(start, stop))
    index.save_index(str(path))
    return {
        "library": LIBRARY,
        "library_version": _version(),
        "space": SPACE,
        "M": m,
        "ef_construction": ef_construction,
        "ef_search": DEFAULT_EF_SEARCH,
        "elements": num_items,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hnswlib")
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


class AnnIndex:
    """The loaded index with the float32 item table used to re-rank its candidates exactly."""

    def __init__(self, index: Any, table: np.ndarray, num_items: int, ef_search: int, path: Path) -> None:
        self.index, self.table, self.num_items, self.ef_search, self.path = index, table, num_items, ef_search, path
        index.set_ef(ef_search)
        # ef is the index's state: a search that needs more than ef_search (many excluded items) raises it
        # under this lock and puts it back; searches that need no more run concurrently (a raised ef only
        # widens theirs)
        self._wider = threading.Lock()

    @classmethod
    def load(cls, path: Path, entry: dict, table: np.ndarray, num_items: int, ef_search: int | None) -> AnnIndex:
        hnswlib = _hnswlib()
        if entry.get("library") != LIBRARY or entry.get("space") != SPACE or entry.get("elements") != num_items:
            raise ArtifactError(
                f"{path}: an ANN index of {entry.get('library')!r} ({entry.get('space')!r}, "
                f"{entry.get('elements')!r} elements); this SDK reads {LIBRARY} ({SPACE}) over {num_items} items. "
                "Re-export the artifact with --ann."
            )
        check_index_header(path, num_items)
        index = hnswlib.Index(space=SPACE, dim=int(table.shape[1]))
        try:
            index.load_index(str(path), max_elements=num_items)
        except (RuntimeError, ValueError) as e:
            raise ArtifactError(f"{path}: hnswlib cannot read the ANN index ({e}). Re-export with --ann.") from None
        if index.get_current_count() != num_items:
            raise ArtifactError(f"{path}: {index.get_current_count()} elements for {num_items} items. Re-export.")
        index.set_num_threads(1)
        ef = entry.get("ef_search", DEFAULT_EF_SEARCH) if ef_search is None else ef_search
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise ValueError(f"ef_search must be an int >= 1, got {ef!r}.")
        return cls(index, table, num_items, ef, path)

    def _knn(self, queries: np.ndarray, count: int, threads: int = 1) -> np.ndarray:
        """Labels ``(n, count)`` int64 of the approximate ``count`` nearest items (search breadth at least
        ``count``)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if count <= self.ef_search:
            labels, _ = self.index.knn_query(queries, k=count, num_threads=threads)
        else:
            with self._wider:
                self.index.set_ef(count)
                try:
                    labels, _ = self.index.knn_query(queries, k=count, num_threads=threads)
                finally:
                    self.index.set_ef(self.ef_search)
        return labels.astype(np.int64)

    def ranked(
        self,
        vector: np.ndarray,
        first: int,
        banned: np.ndarray,
        allowed: np.ndarray | None = None,
        norms: np.ndarray | None = None,
    ):
        """Growing ranked prefixes ``(scores, items)`` (exact float32 scores, best first) of the items near
        ``vector`` (d,) that are not ``banned`` and, with ``allowed`` (sorted item indices), among those: a
        filtered query by over-fetching. The index is asked for ``(first + e) / share * OVERFETCH`` items
        (``e`` = the banned items, ``share`` = the allowed share of the catalogue), those outside ``allowed``
        or banned dropped and the rest re-ranked exactly; the next prefix asks for 4x as many. Once a query
        would ask for :data:`EXACT_SHARE` of the catalogue, the last prefix is the exact ranking of every
        allowed row (recall 1). :func:`filtered_recall_at_k` measures the recall against exact filtered
        ranking.

        ``norms`` (the rows' norms, by item index): rank by the cosine with ``vector`` (a unit vector) instead.
        The index is an inner-product one, whose neighbours of a unit vector are the largest ``norm x cosine``:
        it is asked for :data:`COSINE_OVERFETCH` times as many, and they are re-ranked by the cosine."""
        n = self.num_items
        share = 1.0 if allowed is None else max(len(allowed), 1) / n
        fetch = max(1, first)
        factor = OVERFETCH * (COSINE_OVERFETCH if norms is not None else 1)
        while True:
            count = int(math.ceil((fetch + len(banned)) / share * factor))
            if count >= EXACT_SHARE * n:
                pool = np.arange(1, n + 1, dtype=np.int64) if allowed is None else allowed
                pool = without_members(pool, banned)
                scores = np.asarray(self.table[pool] @ vector, dtype=np.float32)
                if norms is not None:
                    scores /= norms[pool]
                yield from ranked_prefixes(scores, pool, fetch)
                return
            labels = self._knn(vector[None, :], count)[0]
            if len(banned):
                labels = without_members(labels, banned)
            if allowed is not None:
                labels = labels[members(labels, allowed)]
            exact = np.asarray(self.table[labels] @ vector, dtype=np.float32)
            if norms is not None:
                exact /= norms[labels]
            order = np.lexsort((labels, -exact))
            yield exact[order], labels[order]
            fetch *= 4

    def search(
        self, users: np.ndarray, k: int, banned: Sequence[np.ndarray], threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items of each user vector ``(n, d)`` without its ``banned`` item indices, re-ranked by
        the exact dot product: ``(scores (n, k) float32, items (n, k) int64)``, best first; a row with fewer
        than ``k`` items left ends in -inf scores (and item 0), as the graph's output."""
        n = len(users)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        items = np.zeros((n, k), dtype=np.int64)
        if not n:
            return scores, items
        excluded = max((len(b) for b in banned), default=0)
        fetch = min(self.num_items, k + excluded)
        queries = np.ascontiguousarray(users, dtype=np.float32)
        if fetch <= self.ef_search:
            labels, _ = self.index.knn_query(queries, k=fetch, num_threads=threads)
        else:
            with self._wider:
                self.index.set_ef(fetch)
                try:
                    labels, _ = self.index.knn_query(queries, k=fetch, num_threads=threads)
                finally:
                    self.index.set_ef(self.ef_search)
        labels = labels.astype(np.int64)
        table = self.table
        for row in range(n):
            candidates = labels[row]
            if len(banned[row]):
                candidates = candidates[~np.isin(candidates, banned[row])]
            exact = table[candidates] @ users[row]  # (c,) float32, the model's scores
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)] = exact[best]
            items[row, : len(best)] = candidates[best]
        return scores, items


def check_index_header(path: Path, num_items: int) -> None:
    """The index file holds ``num_items`` elements, each of a size its file can hold, so that hnswlib allocates
    for ``num_items`` elements (what ``load_index`` is given), not for a count its header declares."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_HNSW_HEADER.size)
    if len(head) < _HNSW_HEADER.size:
        raise ArtifactError(f"{path}: {size} bytes, too short for an hnswlib index. Re-export with --ann.")
    _, _, count, per_element = _HNSW_HEADER.unpack(head)
    if count != num_items or count * per_element > size:
        raise ArtifactError(
            f"{path}: an ANN index of {count:,} elements of {per_element:,} bytes in a file of {size:,} bytes, for "
            f"{num_items:,} items. The file is damaged or belongs to another export; re-export with --ann."
        )


# --- recall against exact retrieval --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecallReport:
    """Recall@k of approximate retrieval against exact retrieval on a sample of histories."""

    k: int
    users: int
    recall: float  # mean share of the exact top k that the approximate top k holds
    min_recall: float  # the worst user's
    ann_seconds: float
    exact_seconds: float

    def summary(self) -> str:
        return (
            f"recall@{self.k} of ANN against exact retrieval: {self.recall:.4f} (worst user {self.min_recall:.2f}) "
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
    recalls = []
    for row, u in enumerate(keep.tolist()):
        want = set(exact[row][exact[row] > 0].tolist())
        if want:
            got = set(ranked.items[u][np.isfinite(ranked.scores[u])].tolist())
            recalls.append(len(got & want) / len(want))
    if not recalls:
        raise ValueError("no history with a known item to measure recall on.")
    return RecallReport(k, len(recalls), float(np.mean(recalls)), float(np.min(recalls)), ann_seconds, exact_seconds)


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
