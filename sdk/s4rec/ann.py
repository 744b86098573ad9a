"""Approximate retrieval for large catalogues (``pip install "s4rec[ann]"``): inverted lists of 4-bit codes.

``Recommender.load(path, retrieval="ann")`` finds a user's candidates in the index written by
``s4rec-export --ann`` (the ``ann_index`` sidecar: a faiss ``IndexIVFPQFastScan``, inner product; the items in
k-means lists, each stored as 64 4-bit product-quantizer codes, 32 bytes) instead of scoring every item:

1. the encoder-only graph gives the user vector ``q`` (no exhaustive score product: ONNX Runtime runs every node
   of a graph whatever outputs are fetched, so the full graph would pay it);
2. the lists are ranked by ``c . q + 0.5 |q| r`` (``c`` a list's centroid, ``r`` its items' mean distance to it:
   a tied table has rows of varying norms, and a wide list holds items far above its centroid's score) and the
   best lists holding ``probe_items`` items (3% of the catalogue, at least 10,000) are scanned (faiss's SIMD
   scan of the codes) for their
   ``max(ef_search, k + e)`` best approximate scores, ``e`` being the number of items excluded for that user
   (the seen items and ``exclude``);
3. the excluded candidates are dropped and the rest re-ranked by their exact float32 scores (the item table's
   rows, read from the memory-mapped ``item_table.npy``), best ``k`` kept.

So the exclusions and ``k`` mean what they mean for exact retrieval: seen items never crowd out the ``k`` asked
for, and the scores are the model's. Only which items are found is approximate: :mod:`s4rec.recall` measures it
against exact retrieval on a sample of histories (``s4rec-score --check-recall N``).

Chosen by measurement on trained tables grown to 10^5 and 10^6 items (benchmarks/probes/ann_candidates.py,
docs/sdk.md "Large catalogues") over hnswlib (float32 HNSW, the former index), faiss HNSW over 8-bit codes,
usearch and faiss IVF-SQ8: HNSW graphs lose their worst users on an inner-product table (10^6 items: a fifth of
the users below 0.6), while the lists, scanned widely at 4 bits an entry, keep them, from an index a fifth of
the table's size built in seconds. The file is read only after :func:`check_index_file` has walked it: every
count fits the file, every id is an item.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ArtifactVersionError, S4RecError
from .selection import members, ranked_prefixes, without_members

LIBRARY = "faiss"
KIND = "IVF-PQ4-fastscan"  # faiss IndexIVFPQFastScan, 4-bit codes, no residual
SPACE = "ip"  # inner product: tied tables have rows of varying norms
# one 4-bit product-quantizer code per dimension (a 64-wide table: 32 bytes an item)
# Measured on grown Beauty (benchmarks/probes/ann_candidates.py, 1,000 test users, 500 re-ranked): at 10^6
# items scanning 5% recalled 0.993 (5th percentile 0.9, worst 0.6) at p50 1.2 ms under load 4.6 (0.010x the
# exhaustive numpy query), 10% 0.997 (p5 1.0) at 1.6 ms, 20% 0.997 at 10.4 ms; at 10^5, 10% / 20% / 30%
# recalled 0.989 / 0.996 / 0.998 (32 codes of 2 dimensions instead: 0.985 / 0.992 / 0.993 with 1,000 re-ranked)
# at 10^5, 5% recalled 0.972 / 0.8 / 0.5 on grown Toys and 10% 0.990 / 0.9 / 0.6: at least PROBE_MIN_ITEMS.
# Share x depth at 10^6 (benchmarks/probes/ann_probe_sweep.py, 1,000 test users,
# recall mean / p5 / share of users below 0.8, single recommend p50 against 5% / 500 in the same run, load 6-7):
#   Beauty: 5% / 500 0.995 / 1.0 / 0.3% (1.50 ms); 3% / 300 0.988 / 0.9 / 0.8% (0.68x); 2% / 300 0.982 / 0.9 /
#   1.3% (0.56x); 1% / 500 0.957 / 0.7 / 5.2% (0.53x). Toys: 5% / 500 0.993 / 1.0 / 0.3% (1.41 ms); 3% / 300
#   0.989 / 0.9 / 0.3% (0.62x); 2% / 300 0.979 / 0.9 / 1.1% (0.52x); 1% / 500 0.949 / 0.7 / 5.4% (0.48x).
# 3% / 300: Toys loses no user below 0.8 against 5% / 500; p50 0.86-1.01 ms at load 6-7 (0.62-0.68x 5% / 500).
DEFAULT_PROBE_SHARE = 0.03  # share of the items whose lists are scanned (artifacts record it: older ones 5%)
PROBE_MIN_ITEMS = 10_000  # ... and at least this many (the floor rules up to 333,333 items)
DEFAULT_EF_SEARCH = 300  # candidates re-ranked exactly (at least k + the excluded items; older artifacts 500)
RADIUS_WEIGHT = 0.5  # list order c.q + 0.5 |q| r; measured against 0 (plain c.q), 1, 2 and the max radius
TRAIN_PER_LIST = 64  # k-means sample: rows per list
FAST_SCAN_BLOCK = 32  # faiss's fast-scan block: codes of 32 items interleaved
# Filtered queries (candidates, a view's catalogue, intent-diverse lists): the index is asked for OVERFETCH times
# the items expected to pass the filter, and exact ranking of the allowed rows replaces a query that would ask for
# EXACT_SHARE of the catalogue. Measured: benchmarks/app_features.py --large (docs/sdk.md, "Business rules").
OVERFETCH = 2.0
EXACT_SHARE = 0.05
RERANK_ROWS = 64  # user vectors re-ranked at a time: their candidates' rows, 64 x 500 x 64 float32, are 8 MB
COSINE_OVERFETCH = 4  # similar_items (cosine) from the inner-product index: 4x the candidates, re-ranked
MISSING_ANN = 'retrieval="ann" needs faiss: pip install "s4rec[ann]"'


def _faiss():
    try:
        import faiss
    except ImportError:
        raise S4RecError(MISSING_ANN) from None
    return faiss


def default_lists(num_items: int) -> int:
    """Lists for ``num_items`` items: 4 sqrt(N) (faiss's usual range), at least 1."""
    return max(1, min(num_items, int(4 * math.sqrt(num_items))))


def probe_items(num_items: int) -> int:
    """Items a query scans by default: :data:`DEFAULT_PROBE_SHARE` of them, at least :data:`PROBE_MIN_ITEMS`."""
    return min(num_items, max(PROBE_MIN_ITEMS, int(math.ceil(DEFAULT_PROBE_SHARE * num_items))))


def build_index(table: np.ndarray, path: Path, num_items: int, lists: int | None = None, threads: int = 0) -> dict:
    """Index rows 1..``num_items`` of ``table`` (faiss id ``i`` = item index ``i + 1``) and save it to ``path``;
    returns the fields of its sidecar entry (library, kind, space, lists and their radii, the default search
    settings, build seconds)."""
    faiss = _faiss()
    started = time.perf_counter()
    rows = table[1 : num_items + 1]
    d = int(table.shape[1])
    lists = lists or default_lists(num_items)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or previous)
    try:
        rng = np.random.default_rng(0)
        sample = np.ascontiguousarray(
            rows[np.sort(rng.choice(num_items, min(num_items, TRAIN_PER_LIST * lists), replace=False))],
            dtype=np.float32,
        )
        kmeans = faiss.Kmeans(d, lists, niter=10, seed=0, max_points_per_centroid=TRAIN_PER_LIST)
        kmeans.train(sample)
        quantizer = faiss.IndexFlatL2(d)
        quantizer.add(kmeans.centroids)
        index = faiss.IndexIVFPQFastScan(quantizer, d, lists, d, 4, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False
        index.train(sample[: 1 << 16])
        for start in range(0, num_items, 1 << 16):  # in slices: no float32 copy of the whole table
            index.add(np.ascontiguousarray(rows[start : start + (1 << 16)], dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(previous)
    # each list's radius (its items' mean distance to its centroid) from the lists faiss made: no second pass
    # of assignment over the table (that pass is a third of the build at 10^6 items)
    assign = np.empty(num_items, dtype=np.int64)
    counts = np.zeros(lists, dtype=np.int64)
    for i in range(lists):
        counts[i] = size = index.invlists.list_size(i)
        if size:
            assign[faiss.rev_swig_ptr(index.invlists.get_ids(i), size)] = i
    spread = np.zeros(lists)
    centroids = kmeans.centroids
    for start in range(0, num_items, 1 << 16):
        chunk = np.asarray(rows[start : start + (1 << 16)], dtype=np.float32)
        part = assign[start : start + len(chunk)]
        spread += np.bincount(part, weights=np.linalg.norm(chunk - centroids[part], axis=1), minlength=lists)
    faiss.write_index(index, str(path))
    return {
        "library": LIBRARY,
        "library_version": faiss.__version__,
        "kind": KIND,
        "space": SPACE,
        "lists": lists,
        "radii": [float(f"{r:.4g}") for r in (spread / np.maximum(counts, 1)).tolist()],
        "probe_items": probe_items(num_items),
        "ef_search": DEFAULT_EF_SEARCH,
        "elements": num_items,
        "build_seconds": round(time.perf_counter() - started, 1),
    }


class AnnIndex:
    """The loaded index with the float32 item table used to re-rank its candidates exactly."""

    def __init__(
        self, index: Any, table: np.ndarray, num_items: int, ef_search: int, path: Path, radii: np.ndarray, probe: int
    ) -> None:
        self.index, self.table, self.num_items, self.ef_search, self.path = index, table, num_items, ef_search, path
        # faiss would spread a batch over OpenMP threads: the SDK's own threads (Recommender threads=) run the
        # batches side by side instead, so faiss runs each on one (a process-wide setting of faiss's OpenMP)
        _faiss().omp_set_num_threads(1)
        lists = int(index.nlist)
        self.centroids = index.quantizer.reconstruct_n(0, lists)  # (lists, d) float32
        self.radii = radii.astype(np.float32)
        self.sizes = np.array([index.invlists.list_size(i) for i in range(lists)], dtype=np.int64)
        self.set_probe_items(probe)

    def set_probe_items(self, probe: int) -> None:
        """Scan the best lists holding at least ``probe`` items per query (1..N)."""
        if isinstance(probe, bool) or not isinstance(probe, int) or not 1 <= probe <= self.num_items:
            raise ValueError(f"probe_items must be an int in 1..{self.num_items}, got {probe!r}.")
        self.probe_items = probe
        # the most lists a query can need (the smallest ones first): faiss's Python search_preassigned takes
        # exactly index.nprobe lists per query, so it is set here and the unused ones are -1 (skipped)
        smallest = np.cumsum(np.sort(self.sizes))
        self.index.nprobe = self.width = int(min(len(self.sizes), np.searchsorted(smallest, probe) + 1))

    @classmethod
    def load(cls, path: Path, entry: dict, table: np.ndarray, num_items: int, ef_search: int | None) -> AnnIndex:
        if entry.get("library") == "hnswlib" or entry.get("kind") != KIND and entry.get("library") == LIBRARY:
            raise ArtifactVersionError(
                f"{path}: an ANN index of another kind ({entry.get('library')} {entry.get('kind', 'HNSW')}, written "
                f"by an older s4rec-export); this SDK reads {LIBRARY} {KIND} indexes. Re-export the artifact with "
                "s4rec-export --large-format --ann, or load it with retrieval='exact'."
            )
        lists, radii, probe = entry.get("lists"), entry.get("radii"), entry.get("probe_items")
        if (
            entry.get("library") != LIBRARY
            or entry.get("space") != SPACE
            or entry.get("elements") != num_items
            or isinstance(lists, bool)
            or not isinstance(lists, int)
            or not 1 <= lists <= num_items
            or not isinstance(radii, list)
            or len(radii) != lists
            or isinstance(probe, bool)
            or not isinstance(probe, int)
            or not 1 <= probe <= num_items
        ):
            raise ArtifactError(
                f"{path}: an ANN index of {entry.get('library')!r} {entry.get('kind')!r} ({entry.get('space')!r}, "
                f"{entry.get('elements')!r} elements, {lists!r} lists); this SDK reads {LIBRARY} {KIND} ({SPACE}) "
                f"over {num_items} items. Re-export the artifact with --ann."
            )
        try:
            radii = np.array(radii, dtype=np.float32)
        except (TypeError, ValueError):
            radii = np.array([np.nan], dtype=np.float32)
        if not np.all(np.isfinite(radii)) or np.any(radii < 0):
            raise ArtifactError(f"{path}: the ANN index's list radii are not finite non-negative numbers. Re-export.")
        ef = entry.get("ef_search", DEFAULT_EF_SEARCH) if ef_search is None else ef_search
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise ValueError(f"ef_search must be an int >= 1, got {ef!r}.")
        faiss = _faiss()
        check_index_file(path, num_items, int(table.shape[1]), lists)
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:
            raise ArtifactError(f"{path}: faiss cannot read the ANN index ({e}). Re-export with --ann.") from None
        return cls(index, table, num_items, ef, path, radii, probe)

    def _knn(self, queries: np.ndarray, count: int) -> np.ndarray:
        """Item indices ``(n, count)`` int64 of the ``count`` best approximate scores in each query's lists
        (0 where the scanned lists held fewer)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        count = min(count, self.num_items)
        score = -(queries @ self.centroids.T + RADIUS_WEIGHT * np.linalg.norm(queries, axis=1)[:, None] * self.radii)
        if self.width < len(self.sizes):
            # only the best `width` lists can be scanned: partition, then sort those (at 10^6 items, 4,000 lists,
            # width 365: 64 instead of 136 us a query, load 7, benchmarks/probes/ann_probe_sweep.py's setting)
            top = np.argpartition(score, self.width - 1, axis=1)[:, : self.width]
            order = np.take_along_axis(top, np.argsort(np.take_along_axis(score, top, axis=1), axis=1), axis=1)
        else:
            order = np.argsort(score, axis=1)
        covered = np.cumsum(self.sizes[order], axis=1)
        probes = np.minimum((covered < self.probe_items).sum(axis=1) + 1, self.width)
        keys = order.astype(np.int64)
        keys[np.arange(self.width)[None, :] >= probes[:, None]] = -1  # faiss skips a negative list
        distances = np.zeros(keys.shape, dtype=np.float32)  # no residuals: the lists' scores need no offset
        _, labels = self.index.search_preassigned(queries, count, keys, distances)
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

    def search(self, users: np.ndarray, k: int, banned: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items of each user vector ``(n, d)`` without its ``banned`` item indices, re-ranked by
        the exact dot product: ``(scores (n, k) float32, items (n, k) int64)``, best first; a row with fewer
        than ``k`` items left ends in -inf scores (and item 0), as the graph's output.

        One faiss query for all ``n`` vectors, then the re-ranking in numpy over :data:`RERANK_ROWS` vectors at a
        time, in calls that release the GIL (the read and write threads of ``s4rec-score`` share it): the banned
        items dropped by one sorted search over (row, item) keys, the candidates' rows gathered and scored by one
        ``einsum``, a stable sort per row (ties keep faiss's order). Measured on the 10^6 table
        (benchmarks/probes/ann_rerank.py, 256 users x 500 candidates): 0.92x the time of a loop per user (100 vs
        109 us a user, most of it the gather of 500 random rows), the same top 10."""
        n = len(users)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        items = np.zeros((n, k), dtype=np.int64)
        if not n:
            return scores, items
        excluded = max((len(b) for b in banned), default=0)
        labels = self._knn(users, max(self.ef_search, k + excluded))
        keep = labels > 0
        sizes = np.fromiter((len(b) for b in banned), dtype=np.int64, count=n)
        if sizes.any():  # keys row * (N + 1) + item: one search for every row's own banned items
            width = self.num_items + 1
            rows = np.arange(n, dtype=np.int64)
            keys = np.sort(np.repeat(rows, sizes) * width + np.concatenate(banned).astype(np.int64))
            wanted = rows[:, None] * width + labels
            found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            keep &= keys[found] != wanted
        users = np.asarray(users, dtype=np.float32)
        top = min(k, labels.shape[1])
        for start in range(0, n, RERANK_ROWS):
            part = slice(start, start + RERANK_ROWS)
            exact = np.einsum("rcd,rd->rc", self.table[labels[part]], users[part])  # the model's float32 scores
            exact[~keep[part]] = -np.inf
            best = np.argsort(-exact, axis=1, kind="stable")[:, :top]
            best_scores = np.take_along_axis(exact, best, axis=1)
            best_items = np.take_along_axis(labels[part], best, axis=1)
            best_items[~np.isfinite(best_scores)] = 0
            scores[part, :top], items[part, :top] = best_scores, best_items
        return scores, items


# --- the index file, walked before faiss reads it ------------------------------------------------------------
# faiss trusts its files: a count is allocated as declared and a list's codes are read as its id count says. The
# layout of an IndexIVFPQFastScan (faiss/impl/index_write.cpp, little-endian): "IwPf", the index header, the list
# count and nprobe, the quantizer ("IxF2": header, centroids), the direct map (none), the fast-scan fields, the
# product quantizer, then "ilbl": per list its ids and its codes in blocks of 32 items. A vector is a uint64
# count and its items.
_HEADER = struct.Struct("<iqqqBi")  # d, ntotal, two unused int64, is_trained, metric (0: inner product, 1: L2)
_LISTS = struct.Struct("<QQ")  # lists, nprobe
_FAST_SCAN = struct.Struct("<BQiQiQ")  # by_residual, code_size, bbs, M2, implem, qbs2
_PQ = struct.Struct("<QQQ")  # d, M, nbits
_BLOCKS = struct.Struct("<QQQQ")  # lists, code_size (unused: 2^64 - 1), items per block, bytes per block
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

    def header(self, fourcc: bytes, d: int, count: int, metric: int) -> None:
        if self.take(4).tobytes() != fourcc:
            raise self.fail(f"no {fourcc.decode()} block at byte {self.at - 4:,}")
        got_d, got_count, _, _, trained, got_metric = self.unpack(_HEADER)
        if (got_d, got_count, trained, got_metric) != (d, count, 1, metric):
            raise self.fail(f"{got_count:,} vectors of {got_d} dimensions (metric {got_metric}), for {count:,} of {d}")


def check_index_file(path: Path, num_items: int, dim: int, lists: int) -> None:
    """``path`` is a faiss IVF-PQ4 fast-scan inner-product index of ``num_items`` ``dim``-wide items in ``lists``
    lists, whose counts fit the file, whose codes match its ids and whose ids are all items (read through a
    memory map: nothing is allocated as declared)."""
    if path.stat().st_size < 4:
        raise ArtifactError(f"{path}: {path.stat().st_size} bytes, not a faiss {KIND} index. Re-export with --ann.")
    r = _Reader(path)
    r.header(b"IwPf", dim, num_items, 0)
    if r.unpack(_LISTS)[0] != lists:
        raise r.fail(f"not {lists} lists")
    r.header(b"IxF2", dim, lists, 1)
    if len(r.vector("<f4")) != lists * dim:
        raise r.fail("centroids")
    map_type = r.unpack(struct.Struct("<b"))[0]
    if map_type != 0 or len(r.vector("<i8")):
        raise r.fail("a direct map")
    residual, code_size, block, m2, _, _ = r.unpack(_FAST_SCAN)
    even = dim + dim % 2  # one code per dimension, packed in pairs
    if (residual, code_size, block, m2) != (0, (dim + 1) // 2, FAST_SCAN_BLOCK, even):
        raise r.fail(f"codes of {code_size} bytes in blocks of {block}")
    if r.unpack(_PQ) != (dim, dim, 4) or len(r.vector("<f4")) != 16 * dim:
        raise r.fail("product quantizer")
    if r.take(4).tobytes() != b"ilbl":
        raise r.fail("no inverted lists")
    block_bytes = FAST_SCAN_BLOCK * even // 2
    if r.unpack(_BLOCKS) != (lists, 2**64 - 1, FAST_SCAN_BLOCK, block_bytes):
        raise r.fail("list layout")
    total = 0
    for _ in range(lists):
        ids = r.vector("<i8")
        if len(r.vector("u1")) != -(-len(ids) // FAST_SCAN_BLOCK) * block_bytes:
            raise r.fail(f"codes for other than the {len(ids):,} ids of a list")
        if len(ids) and (ids.min() < 0 or ids.max() >= num_items):
            raise r.fail("ids that are not items")
        total += len(ids)
    if total != num_items or r.at != len(r.data):
        raise r.fail(f"{total:,} ids in the lists for {num_items:,} items")
