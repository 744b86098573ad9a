"""Approximate retrieval for large catalogues (``pip install "s4rec[ann]"``): an HNSW graph over 8-bit item codes.

``Recommender.load(path, retrieval="ann")`` finds a user's candidates in the index written by
``s4rec-export --ann`` (the ``ann_index`` sidecar: a faiss ``IndexHNSWSQ``, inner product, each item stored as
8-bit per-dimension scalar codes; a tied SASRec table has rows of varying norms, so the search is for the
largest dot product, not cosine) instead of scoring every item:

1. the encoder-only graph gives the user vector (no exhaustive score product: ONNX Runtime runs every node of
   a graph whatever outputs are fetched, so the full graph would pay it);
2. the index returns ``k + e`` candidates, ``e`` being the number of items excluded for that user (the seen
   items and ``exclude``), with the search breadth ``ef = max(ef_search, k + e)`` (a per-query faiss search
   parameter: nothing shared is changed, so concurrent searches need no lock);
3. the excluded candidates are dropped and the rest re-ranked by their exact float32 scores (the item table's
   rows, read from the memory-mapped ``item_table.npy``), best ``k`` kept.

So the exclusions and ``k`` mean what they mean for exact retrieval: seen items never crowd out the ``k`` asked
for, and the scores are the model's. Only which items are found is approximate: :func:`recall_at_k` measures
it against exact retrieval on a sample of histories (``s4rec-score --check-recall N``).

faiss HNSW-SQ8 was chosen over hnswlib (float32 HNSW), usearch (float16 HNSW), faiss IVF-SQ8 and a numpy IVF
by measurement on trained tables grown to 10^5 and 10^6 items (benchmarks/probes/ann_candidates.py, docs/sdk.md
"Large catalogues"): at the same recall it builds 1.4-3x faster and its file is ~0.5x hnswlib's (the 8-bit codes
instead of float32 rows; the exact re-rank reads the float32 table anyway). The file is read only after
:func:`check_index_file` has walked it: every count fits the file, every link points at an item.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ArtifactVersionError, S4RecError
from .selection import members, ranked_prefixes, without_members

LIBRARY = "faiss"
KIND = "HNSW-SQ8"  # faiss IndexHNSWSQ, QT_8bit codes
SPACE = "ip"  # inner product: tied tables have rows of varying norms
DEFAULT_M = 32  # links per node (level 0 has 2 M)
DEFAULT_EF_CONSTRUCTION = 100  # build breadth
DEFAULT_EF_SEARCH = 256  # search breadth (at least k + the excluded items)
# Filtered queries (candidates, a view's catalogue, intent-diverse lists): the index is asked for OVERFETCH times
# the items expected to pass the filter, and exact ranking of the allowed rows replaces a query that would ask for
# EXACT_SHARE of the catalogue. Measured: benchmarks/app_features.py --large (docs/sdk.md, "Business rules").
OVERFETCH = 2.0
EXACT_SHARE = 0.05
COSINE_OVERFETCH = 4  # similar_items (cosine) from the inner-product index: 4x the candidates, re-ranked
MISSING_ANN = 'retrieval="ann" needs faiss: pip install "s4rec[ann]"'
_TRAIN_ROWS = 1 << 18  # rows the 8-bit quantizer's per-dimension ranges are taken from (min/max: cheap)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise S4RecError(MISSING_ANN) from None
    return faiss


def build_index(
    table: np.ndarray,
    path: Path,
    num_items: int,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    threads: int = 0,
) -> dict:
    """Index rows 1..``num_items`` of ``table`` (faiss position ``i`` = item index ``i + 1``) and save it to
    ``path``; returns the fields of its sidecar entry (library, kind, space, M, ef_construction, the default
    ef_search, build seconds)."""
    faiss = _faiss()
    started = time.perf_counter()
    rows = table[1 : num_items + 1]
    index = faiss.IndexHNSWSQ(int(table.shape[1]), faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    # the 8-bit ranges from every row when that is cheap, else from an even stride of them (the ranges are
    # per-dimension min/max; a row outside them is clipped in the codes only: the re-rank is float32)
    stride = max(1, num_items // _TRAIN_ROWS)
    index.train(np.ascontiguousarray(rows[::stride], dtype=np.float32))
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or previous)
    try:
        for start in range(0, num_items, 1 << 16):  # in slices: no float32 copy of the whole table
            index.add(np.ascontiguousarray(rows[start : start + (1 << 16)], dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(previous)
    faiss.write_index(index, str(path))
    return {
        "library": LIBRARY,
        "library_version": faiss.__version__,
        "kind": KIND,
        "space": SPACE,
        "M": m,
        "ef_construction": ef_construction,
        "ef_search": DEFAULT_EF_SEARCH,
        "elements": num_items,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


class AnnIndex:
    """The loaded index with the float32 item table used to re-rank its candidates exactly."""

    def __init__(self, index: Any, table: np.ndarray, num_items: int, ef_search: int, path: Path) -> None:
        self.index, self.table, self.num_items, self.ef_search, self.path = index, table, num_items, ef_search, path
        self._faiss = _faiss()

    @classmethod
    def load(cls, path: Path, entry: dict, table: np.ndarray, num_items: int, ef_search: int | None) -> AnnIndex:
        if entry.get("library") == "hnswlib":
            raise ArtifactVersionError(
                f"{path}: an hnswlib ANN index (written by an older s4rec-export); this SDK reads {LIBRARY} "
                f"{KIND} indexes. Re-export the artifact with s4rec-export --large-format --ann, or load it with "
                "retrieval='exact'."
            )
        if (
            entry.get("library") != LIBRARY
            or entry.get("kind") != KIND
            or entry.get("space") != SPACE
            or entry.get("elements") != num_items
        ):
            raise ArtifactError(
                f"{path}: an ANN index of {entry.get('library')!r} {entry.get('kind')!r} ({entry.get('space')!r}, "
                f"{entry.get('elements')!r} elements); this SDK reads {LIBRARY} {KIND} ({SPACE}) over {num_items} "
                "items. Re-export the artifact with --ann."
            )
        ef = entry.get("ef_search", DEFAULT_EF_SEARCH) if ef_search is None else ef_search
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise ValueError(f"ef_search must be an int >= 1, got {ef!r}.")
        faiss = _faiss()
        check_index_file(path, num_items, int(table.shape[1]))
        try:
            # the 8-bit codes stay mapped (IO_FLAG_MMAP_IFC); the links are read
            index = faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
        except RuntimeError as e:
            raise ArtifactError(f"{path}: faiss cannot read the ANN index ({e}). Re-export with --ann.") from None
        return cls(index, table, num_items, ef, path)

    def _knn(self, queries: np.ndarray, count: int, threads: int = 1) -> np.ndarray:
        """Item indices ``(n, count)`` int64 of the approximate ``count`` nearest items (search breadth at least
        ``count``; -1 + 1 = 0 where the graph found fewer)."""
        faiss = self._faiss
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        count = min(count, self.num_items)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, count)
        if len(queries) > 1 and threads != faiss.omp_get_max_threads():
            # faiss spreads a batch over OpenMP threads (process-wide): asked for, then put back
            previous = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(max(1, threads))
            try:
                _, labels = self.index.search(queries, count, params=params)
            finally:
                faiss.omp_set_num_threads(previous)
        else:
            _, labels = self.index.search(queries, count, params=params)
        return labels.astype(np.int64) + 1

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
            labels = labels[labels > 0]
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
        labels = self._knn(users, min(self.num_items, k + excluded), threads)
        table = self.table
        for row in range(n):
            candidates = labels[row]
            candidates = candidates[candidates > 0]
            if len(banned[row]):
                candidates = candidates[~np.isin(candidates, banned[row])]
            exact = table[candidates] @ users[row]  # (c,) float32, the model's scores
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)] = exact[best]
            items[row, : len(best)] = candidates[best]
        return scores, items


# --- the index file, walked before faiss reads it ------------------------------------------------------------
# faiss trusts its files: a count is allocated as declared and a link is followed unchecked. The layout of an
# IndexHNSWSQ (faiss/impl/index_write.cpp, little-endian): "IHNs", the index header, the HNSW (five vectors, then
# five int32), "IxSQ", the header again, the quantizer and its codes. A vector is a uint64 count and its items.
_HEADER = struct.Struct("<iqqqBi")  # d, ntotal, two unused int64, is_trained, metric (0: inner product)
_HNSW_TAIL = struct.Struct("<5i")  # entry point, max level, efConstruction, efSearch, (unused)
_SQ = struct.Struct("<iifQQ")  # quantizer type (0: QT_8bit), range statistic, its argument, d, code size
_COUNT = struct.Struct("<Q")


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path, self.at = path, 0
        self.data = np.memmap(path, dtype=np.uint8, mode="r")  # pages are read as the walk touches them

    def fail(self, what: str) -> ArtifactError:
        return ArtifactError(
            f"{self.path}: not a faiss {KIND} index of this artifact ({what}). The file is damaged or belongs to "
            "another export; re-export with --ann."
        )

    def take(self, size: int) -> np.ndarray:
        if size > len(self.data) - self.at:
            raise self.fail(f"{size:,} bytes declared at byte {self.at:,} of {len(self.data):,}")
        view = self.data[self.at : self.at + size]
        self.at += size
        return view

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size).tobytes())

    def vector(self, dtype: str) -> np.ndarray:
        (count,) = self.unpack(_COUNT)
        size = np.dtype(dtype).itemsize
        if count > (len(self.data) - self.at) // size:
            raise self.fail(f"a list of {count:,} items declared at byte {self.at:,} of {len(self.data):,}")
        return self.take(count * size).view(dtype)


def check_index_file(path: Path, num_items: int, dim: int) -> None:
    """``path`` is a faiss HNSW-SQ8 inner-product index of ``num_items`` ``dim``-wide items whose counts fit the
    file and whose links all point at an item (read through a memory map; nothing is allocated as declared)."""
    if path.stat().st_size < 4:
        raise ArtifactError(f"{path}: {path.stat().st_size} bytes, not a faiss {KIND} index. Re-export with --ann.")
    _check(_Reader(path), num_items, dim)


def _check(r: _Reader, num_items: int, dim: int) -> None:
    def header(fourcc: bytes) -> None:
        if bytes(r.take(4)) != fourcc:
            raise r.fail(f"no {fourcc.decode()} block")
        d, ntotal, _, _, trained, metric = r.unpack(_HEADER)
        if (d, ntotal, trained, metric) != (dim, num_items, 1, 0):
            raise r.fail(f"{ntotal:,} items of {d} dimensions, metric {metric}, for {num_items:,} of {dim}")

    header(b"IHNs")
    r.vector("<f8")  # level assignment probabilities
    per_level = r.vector("<i4")  # cumulative links per level
    levels = r.vector("<i4")  # per item: its top level + 1
    offsets = r.vector("<u8")  # per item: where its links start
    links = r.vector("<i4")
    entry, max_level, _, _, _ = r.unpack(_HNSW_TAIL)
    if len(levels) != num_items or len(offsets) != num_items + 1 or len(per_level) < 2:
        raise r.fail(f"{len(levels):,} levels and {len(offsets):,} offsets for {num_items:,} items")
    if levels.min(initial=1) < 1 or levels.max(initial=1) >= len(per_level) or np.any(np.diff(per_level) < 0):
        raise r.fail("levels outside the link table")
    if offsets[0] != 0 or np.any(np.diff(offsets).astype(np.int64) != per_level[levels].astype(np.int64)):
        raise r.fail("link offsets that do not follow the levels")
    if offsets[-1] != len(links) or (len(links) and (links.min() < -1 or links.max() >= num_items)):
        raise r.fail("links to items that do not exist")
    if not (0 <= entry < num_items and max_level == int(levels[entry]) - 1):
        raise r.fail(f"entry point {entry}")
    header(b"IxSQ")
    kind, _, _, d, code_size = r.unpack(_SQ)
    if (kind, d, code_size) != (0, dim, dim):
        raise r.fail(f"quantizer {kind} with {code_size} bytes per item")
    if len(r.vector("<f4")) != 2 * dim:  # the per-dimension ranges
        raise r.fail("quantizer ranges")
    if len(r.vector("u1")) != num_items * dim or r.at != len(r.data):
        raise r.fail("codes that are not one per item")


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
