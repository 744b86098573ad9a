"""The :class:`Recommender`: next-item recommendations, user embeddings and intents from an s4rec artifact.

One ONNX Runtime session per recommender, shared by every call and every thread (``InferenceSession.run`` is
thread-safe and the recommender holds no other mutable state). Histories are the user's own item ids, oldest
first; they are mapped to item indices, cut to the most recent ``max_len`` and left-padded. Batches are sorted
by length and each bucket is trimmed to its longest history, which is exact because the graph's positions
are right-aligned.

The graph ranks without the items it is told to exclude (input ``exclude``) and returns exactly the ``k``
asked for (input ``k``): seen and excluded items are removed inside the graph, before its top-k, so no
candidates beyond ``k`` are ranked, copied or filtered here. For the common case (exclude the history seen
within the window, nothing else) the history window itself is passed as ``exclude``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .artifact import (
    EXCLUDE,
    INPUT,
    INTENT_PROBABILITIES,
    K_INPUT,
    TOP_ITEMS,
    TOP_SCORES,
    USER_EMBEDDING,
    ArtifactMetadata,
    check_signature,
    parse_metadata,
    resolve_model_file,
    verify_checksum,
)
from .errors import ArtifactError, ArtifactVersionError, S4RecError, UnknownItemError

logger = logging.getLogger("s4rec")

UNKNOWN_POLICIES = ("ignore", "error")
OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ONNX Runtime's SkipLayerNormalization kernel (the fusion of a residual Add and a LayerNormalization) took
# ~7x the time of the LayerNormalization it replaces on 64-wide rows (x86, onnxruntime 1.32): without the
# fusion, recommend_batch on Beauty ran 1.09x faster, single requests the same.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
ItemId = Any  # int or str, as in the training data


class Recommendations(list):
    """Ranked ``(item_id, score)`` pairs, best first, with a report of how the input was handled.

    * ``unknown_items``: the history's item ids the model does not know, which were ignored;
    * ``fallback``: True when the history had no known item and the list holds the most popular items
      (their scores are NaN: there is no model score without a history).
    """

    __slots__ = ("unknown_items", "fallback")

    def __init__(self, pairs: Iterable = (), unknown_items: tuple = (), fallback: bool = False):
        super().__init__(pairs)
        self.unknown_items = unknown_items
        self.fallback = fallback

    def item_ids(self) -> list:
        return [item for item, _ in self]


class RankedBatch:
    """The results of a batch as arrays, in input order (internal: what recommend_batch turns into
    :class:`Recommendations`, and what s4rec-score formats without building them).

    ``scores`` (n, k) float32 and ``items`` (n, k) int64 item indices; a row with fewer than k items left
    after the exclusions ends in -inf scores; ``fallback`` (n,) bool marks the histories with no known item
    (their rows are unused: they get ``popular``); ``unknown_of`` maps a row to its unknown ids;
    ``converted``: the rows already turned into :class:`Recommendations` while the batch ran (or None).
    """

    __slots__ = ("recommender", "scores", "items", "fallback", "popular", "unknown_of", "converted")

    def __init__(self, recommender, scores, items, fallback, popular, unknown_of, converted=None):
        self.recommender, self.scores, self.items, self.fallback = recommender, scores, items, fallback
        self.popular, self.unknown_of, self.converted = popular, unknown_of, converted

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def convert(recommender: Recommender, scores: np.ndarray, items: np.ndarray) -> list[Recommendations]:
        """Rows of scores and item indices as :class:`Recommendations` (without reports)."""
        ids, kept = recommender._ids_array[items].tolist(), Recommender._kept_scores(scores)
        return list(map(Recommendations, map(zip, ids, kept)))

    def recommendations(self) -> list[Recommendations]:
        results = self.converted
        if results is None:
            results = self.convert(self.recommender, self.scores, self.items)
        for u in np.flatnonzero(self.fallback).tolist():
            results[u] = Recommendations(self.popular, fallback=True)
        for u, unknown_items in self.unknown_of.items():
            results[u].unknown_items = unknown_items
        return results

    def recommendation(self, u: int) -> Recommendations:
        """Row ``u`` alone."""
        if self.fallback[u]:
            return Recommendations(self.popular, self.unknown_of.get(u, ()), fallback=True)
        ids = self.recommender._ids_array[self.items[u : u + 1]].tolist()
        scores = Recommender._kept_scores(self.scores[u : u + 1])
        return Recommendations(zip(ids[0], scores[0]), self.unknown_of.get(u, ()))


class Recommender:
    """Scores histories with an s4rec artifact. Build it with :meth:`Recommender.load`."""

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: ArtifactMetadata,
        path: Path,
        unknown: str = "ignore",
        threads: int = 1,
    ):
        _check_policy(unknown)
        self.session = session
        self.threads = threads  # batch methods run up to this many buckets at once
        self.metadata = metadata
        self.path = Path(path)
        self.unknown = unknown
        self.max_len = metadata.max_len
        self.top_k = metadata.top_k
        self._index_of = {item: i + 1 for i, item in enumerate(metadata.item_ids)}
        self._ids = [None, *metadata.item_ids]  # item index -> the user's own id
        self._ids_array = np.array(self._ids, dtype=object)
        self._dense = _dense_table(metadata.item_ids)  # None: ids are mapped with _index_of
        self._rank_outputs = [TOP_SCORES, TOP_ITEMS]
        self._k_inputs = [np.array(i, dtype=np.int64) for i in range(self.top_k + 1)]  # the scalar input k

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"Recommender({str(self.path)!r}, variant={m.variant!r}, items={m.num_items}, "
            f"intents={m.num_intents}, max_len={m.max_len}, top_k={m.top_k})"
        )

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        path: str | Path,
        threads: int = 1,
        variant: str = "fp32",
        unknown: str = "ignore",
        optimization: str = "all",
    ) -> Recommender:
        """Load and validate an artifact directory (or a single ``.onnx``/``.ort`` file).

        ``threads``: cores the recommender may use. Every ONNX Runtime call runs on one thread (fastest for
        single requests on small machines); the batch methods run up to ``threads`` buckets at once, so use
        the number of cores (or 0, all of them) for batch scoring. ``variant``: fp32, int8, fp16 or
        mobile (ignored for a single file). ``unknown``: default policy for unknown item ids, ``"ignore"``
        (drop them, reported in ``Recommendations.unknown_items``) or ``"error"`` (raise
        :class:`UnknownItemError`). Raises :class:`ArtifactError` (or a subclass) for anything it cannot use.
        """
        _check_policy(unknown)
        model_path, expected_sha256 = resolve_model_file(path, variant)
        verify_checksum(model_path, expected_sha256)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}.")
        threads = threads or os.cpu_count() or 1
        session = cls.make_session(model_path, 1, optimization)
        metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, model_path)
        check_signature(session, metadata, model_path)
        return cls(session, metadata, model_path, unknown, threads)

    @staticmethod
    def make_session(model: str | Path | bytes, threads: int = 1, optimization: str = "all") -> ort.InferenceSession:
        """The one place where the ONNX Runtime session is built (CPU, intra-op threads, optimisation level)."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0 = ONNX Runtime's default), got {threads!r}.")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"optimization must be one of {list(OPTIMIZATION_LEVELS)}, got {optimization!r}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        options.log_severity_level = 3  # errors only; ONNX Runtime's warnings are not the user's business
        source = model if isinstance(model, bytes) else str(model)
        try:
            providers = ["CPUExecutionProvider"]
            return ort.InferenceSession(source, options, providers, disabled_optimizers=DISABLED_OPTIMIZERS)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            name = "<bytes>" if isinstance(model, bytes) else model
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            reason = re.search(r"(Unsupported .*|Opset .*|.*not supported.*)", text)
            text = reason.group(1) if reason else text
            if any(word in text.lower() for word in ("ir version", "opset", "domain_version", "not supported")):
                raise ArtifactVersionError(
                    f"{name}: onnxruntime {ort.__version__} cannot run this model ({text}). "
                    "Upgrade it (pip install -U onnxruntime) or re-export with an older opset."
                ) from None
            raise ArtifactError(f"{name}: ONNX Runtime cannot load the model ({text}). Re-export it.") from None

    # ---------------------------------------------------------------- recommendations

    def recommend(
        self,
        history: Sequence[ItemId],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
    ) -> Recommendations:
        """The ``k`` best next items for one history (the user's own item ids, oldest first).

        Items of the history are left out with ``exclude_seen``, and so are the ids in ``exclude``. The
        result may be shorter than ``k`` only when the exclusions remove more than ``top_k - k`` of the
        artifact's ``top_k`` candidates. An empty history (or one with no known item) gets the most popular
        items (``fallback`` is True).
        """
        k = self._check_k(k)
        indices, unknown_items = self._indices(history, self._policy(unknown))
        skip = self._exclude_indices(exclude) if type(exclude) is not tuple or exclude else _NOTHING
        if not indices:
            return self._popular(k, skip, unknown_items)
        window = np.array([indices[-self.max_len :]], dtype=np.int64)
        if exclude_seen:
            banned = window if len(indices) <= self.max_len and not skip else np.array([[*indices, *skip]])
        else:
            banned = np.array([[0, *skip]], dtype=np.int64)  # 0: the padding index, never returned anyway
        feed = {INPUT: window, EXCLUDE: banned, K_INPUT: self._k_inputs[k]}
        scores, items = self.session.run(self._rank_outputs, feed)
        scores, ids = scores[0].tolist(), self._ids
        if scores[-1] == -math.inf:  # fewer than k items remain after the exclusions
            scores = scores[: scores.index(-math.inf)]
        return Recommendations(zip([ids[i] for i in items[0, : len(scores)].tolist()], scores), unknown_items)

    def recommend_batch(
        self,
        histories: Iterable[Sequence[ItemId]],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
        batch_size: int = 256,
    ) -> list[Recommendations]:
        """:meth:`recommend` for many histories at once, in input order; ``exclude`` applies to all of them.

        Histories are sorted by length and run in buckets of ``batch_size``, each trimmed to its longest
        history, so short histories do not pay for padding to ``max_len``.
        """
        ranked = self._rank_batch(histories, k, exclude_seen, exclude, unknown, batch_size, convert=True)
        return ranked.recommendations()

    def _rank_batch(
        self,
        histories: Iterable[Sequence[ItemId]],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
        batch_size: int = 256,
        convert: bool = False,
    ) -> RankedBatch:
        """:meth:`recommend_batch`'s work, with the results left as arrays (s4rec-score formats them as they are).

        ``convert``: also turn each bucket into :class:`Recommendations` as soon as it is ranked, in the thread
        that ranked it, so that with several threads this Python work overlaps the other buckets' ONNX Runtime
        calls (which release the GIL) instead of following them all.
        """
        k = self._check_k(k)
        batch_size = _check_positive_int(batch_size, "batch_size")
        known, counts, unknown_of = self._map_histories(_check_histories(histories), self._policy(unknown))
        skip = sorted(self._exclude_indices(exclude))
        n = len(counts)
        ends = np.cumsum(counts)
        lengths = np.minimum(counts, self.max_len)
        order = np.argsort(lengths, kind="stable")
        first = int(np.searchsorted(lengths[order], 1))  # histories with no known item come first
        all_scores = np.zeros((n, k), dtype=np.float32)
        all_items = np.zeros((n, k), dtype=np.int64)
        k_input = self._k_inputs[k]
        converted = [None] * n if convert else None

        def rank(chunk: np.ndarray) -> None:
            chunk_ends, chunk_lengths = ends[chunk], lengths[chunk]
            window = _right_aligned(known, chunk_ends, chunk_lengths, int(chunk_lengths[-1]))
            banned = self._banned(window, known, chunk_ends, counts[chunk], skip, exclude_seen)
            scores, items = self.session.run(self._rank_outputs, {INPUT: window, EXCLUDE: banned, K_INPUT: k_input})
            all_scores[chunk], all_items[chunk] = scores, items  # rows of different chunks never overlap
            if converted is not None:
                for u, recommendations in zip(chunk.tolist(), RankedBatch.convert(self, scores, items)):
                    converted[u] = recommendations

        list(self._map(rank, [order[start : start + batch_size] for start in range(first, n, batch_size)]))
        popular = self._popular(k, set(skip), ()) if first else Recommendations()
        return RankedBatch(self, all_scores, all_items, lengths == 0, popular, unknown_of, converted)

    # ---------------------------------------------------------------- embeddings and intents

    def embed(self, history: Sequence[ItemId], unknown: str | None = None) -> np.ndarray:
        """The user vector z_u (float32, ``(embedding_dim,)``). An empty history gives the model's
        no-history vector (the encoder run on one padding position)."""
        indices, _ = self._indices(history, self._policy(unknown))
        window = self._pad([indices], max(1, min(len(indices), self.max_len)))
        return self.session.run([USER_EMBEDDING], self._feed_nothing_ranked(window))[0][0]

    def embed_batch(
        self, histories: Iterable[Sequence[ItemId]], unknown: str | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """User vectors for many histories, ``(n, embedding_dim)`` float32, in input order (bucketed)."""
        return self._run_bucketed(histories, USER_EMBEDDING, unknown, batch_size)

    def intents(self, history: Sequence[ItemId], top: int = 3, unknown: str | None = None) -> list[tuple[int, float]]:
        """The ``top`` most probable intents ``(intent, probability)`` of a history, most probable first."""
        self._require_intents()
        top = _check_positive_int(top, "top")
        if top > self.metadata.num_intents:
            raise ValueError(f"top must be in 1..{self.metadata.num_intents} (the number of intents), got {top}.")
        indices, _ = self._indices(history, self._policy(unknown))
        window = self._pad([indices], max(1, min(len(indices), self.max_len)))
        probabilities = self.session.run([INTENT_PROBABILITIES], self._feed_nothing_ranked(window))[0][0]
        best = np.argsort(-probabilities, kind="stable")[:top]
        return [(int(i), float(probabilities[i])) for i in best]

    def intents_batch(
        self, histories: Iterable[Sequence[ItemId]], unknown: str | None = None, batch_size: int = 256
    ) -> np.ndarray:
        """Intent probabilities for many histories, ``(n, num_intents)`` float32, in input order."""
        self._require_intents()
        return self._run_bucketed(histories, INTENT_PROBABILITIES, unknown, batch_size)

    def items_for_intent(self, intent: int, k: int = 10) -> list[ItemId]:
        """The ``k`` items closest (dot product) to an intent's centroid, closest first."""
        self._require_intents()
        num_intents = self.metadata.num_intents
        if isinstance(intent, bool) or not isinstance(intent, (int, np.integer)):
            raise TypeError(f"intent must be an int, got {type(intent).__name__}: {intent!r}.")
        if not 0 <= intent < num_intents:
            raise ValueError(f"intent must be in 0..{num_intents - 1}, got {intent}.")
        k = self._check_k(k)
        return [self._ids[i] for i in self.metadata.intent_top_items[int(intent)][:k]]

    # ---------------------------------------------------------------- helpers

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}: {k!r}.")
        if not 1 <= k <= self.top_k:
            raise ValueError(
                f"k must be in 1..{self.top_k} (the artifact's top_k), got {k}. "
                f"Ask for fewer items, or re-export with a larger --top-k."
            )
        return int(k)

    def _indices(self, history: Sequence[ItemId], policy: str) -> tuple[list[int], tuple]:
        """Map a history to item indices; unknown ids are dropped (returned) or raise, per ``policy``."""
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
        index_of = self._index_of
        indices = [index_of.get(item) for item in history]
        if None not in indices:
            return indices, ()
        unknown_items = tuple(item for item, i in zip(history, indices, strict=True) if i is None)
        if policy == "error":
            raise _unknown_error(unknown_items)
        logger.debug("ignored %d unknown item id(s): %r", len(unknown_items), unknown_items[:5])
        return [i for i in indices if i is not None], unknown_items

    def _policy(self, unknown: str | None) -> str:
        if unknown is None:
            return self.unknown
        _check_policy(unknown)
        return unknown

    def _exclude_indices(self, exclude: Iterable[ItemId]) -> set[int]:
        if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
            raise TypeError(
                f"exclude must be a collection of item ids, got {type(exclude).__name__}: {_short(exclude)}."
            )
        index_of = self._index_of
        found = (index_of.get(_check_item_id(item)) for item in exclude)
        return {i for i in found if i is not None}

    def _popular(self, k: int, skip: set[int], unknown_items: tuple) -> Recommendations:
        ids = self._ids
        chosen = [i for i in self.metadata.popular_items if i not in skip][:k]
        return Recommendations([(ids[i], math.nan) for i in chosen], unknown_items, fallback=True)

    def _pad(self, sequences: list[list[int]], length: int) -> np.ndarray:
        """Left-pad (keeping the most recent ``length`` items) into an int64 ``(n, length)`` array."""
        window = np.zeros((len(sequences), length), dtype=np.int64)
        for row, seq in enumerate(sequences):
            if seq:
                seq = seq[-length:]
                window[row, length - len(seq) :] = seq
        return window

    def _banned(
        self,
        window: np.ndarray,
        known: np.ndarray,
        ends: np.ndarray,
        counts: np.ndarray,
        skip: list[int],
        exclude_seen: bool,
    ) -> np.ndarray:
        """The graph's ``exclude`` input for a bucket: (b, e) item indices, 0 where there is nothing to exclude.

        Usually the window itself (its padding 0 excludes nothing). When a history is longer than the window
        (all of it counts as seen) or there are ``exclude`` ids: each whole history, right-aligned, then the
        ``exclude`` ids as columns (the graph treats ``exclude`` as a set, so the order does not matter).
        """
        width = window.shape[1]
        longest = int(counts.max()) if exclude_seen else 0
        if exclude_seen and longest <= width and not skip:
            return window
        banned = np.zeros((len(window), max(1, longest + len(skip))), dtype=np.int64)
        if exclude_seen:
            banned[:, :longest] = window if longest <= width else _right_aligned(known, ends, counts, longest)
        if skip:
            banned[:, longest:] = skip
        return banned

    @staticmethod
    def _kept_scores(scores: np.ndarray) -> list[list[float]]:
        """Scores per row as lists, without the -inf tail of a row that has fewer than k items left."""
        lists = scores.tolist()
        if np.isneginf(scores[:, -1]).any():
            for row in lists:
                if row[-1] == -math.inf:
                    del row[row.index(-math.inf) :]
        return lists

    def _feed_nothing_ranked(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs for the embedding and intent outputs: rank as little as the graph allows (k = 1)."""
        return {INPUT: window, EXCLUDE: np.zeros((len(window), 1), dtype=np.int64), K_INPUT: self._k_inputs[1]}

    def _run_bucketed(self, histories, output: str, unknown: str | None, batch_size: int) -> np.ndarray:
        batch_size = _check_positive_int(batch_size, "batch_size")
        known, counts, _ = self._map_histories(_check_histories(histories), self._policy(unknown))
        ends = np.cumsum(counts)
        lengths = np.minimum(counts, self.max_len)
        order = np.argsort(np.maximum(lengths, 1), kind="stable")
        width = self.metadata.num_intents if output == INTENT_PROBABILITIES else self.metadata.embedding_dim
        out = np.empty((len(counts), width), dtype=np.float32)

        def run(chunk: np.ndarray) -> None:
            chunk_lengths = lengths[chunk]
            window = _right_aligned(known, ends[chunk], chunk_lengths, max(1, int(chunk_lengths[-1])))
            out[chunk] = self.session.run([output], self._feed_nothing_ranked(window))[0]

        list(self._map(run, [order[start : start + batch_size] for start in range(0, len(counts), batch_size)]))
        return out

    def _map_histories(self, histories: list, policy: str) -> tuple[np.ndarray, np.ndarray, dict[int, tuple]]:
        """Map many histories at once: the known item indices of all of them concatenated (int64), the number
        of known items per history, and ``{history number: unknown ids}`` for those with unknown ids.

        The same results, errors and reports as :meth:`_indices` history by history (which it falls back to
        when a history is not a list or tuple of int and str ids, so that errors name the same value), with
        a constant number of Python calls per history instead of one per item.
        """
        n = len(histories)
        flat = types = None
        if set(map(type, histories)) <= _LIST_TYPES:
            flat = list(chain.from_iterable(histories))
            types = set(map(type, flat))
        if flat is None or not types <= _ID_TYPES:  # numpy arrays, ranges, odd ids: checked one by one
            rows = [self._indices(h, policy) for h in histories]
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
        if policy == "error":
            raise _unknown_error(unknown_of[min(unknown_of)])
        for items in unknown_of.values():
            logger.debug("ignored %d unknown item id(s): %r", len(items), items[:5])
        counts -= np.bincount(owner, minlength=n)
        return indices[indices != 0], counts, unknown_of

    def _lookup(self, flat: list, types: set) -> np.ndarray:
        """Item indices (int64, 0 for an unknown id) of a list of int and str ids."""
        if self._dense is not None and types == _INT:
            try:
                ids = np.array(flat, dtype=np.int64)
            except OverflowError:  # beyond int64: unknown to a table of small ids, mapped by the dict below
                pass
            else:
                outside = len(self._dense) - 1  # the table's last entry is 0 (unknown)
                return self._dense[np.minimum(ids.view(np.uint64), outside)].astype(np.int64)
        get = self._index_of.get
        return np.fromiter(map(get, flat, repeat(0)), dtype=np.int64, count=len(flat))

    def _map(self, fn, chunks: list) -> Iterable:
        """``map(fn, chunks)``, with up to ``threads`` chunks in flight (ONNX Runtime releases the GIL)."""
        if self.threads == 1 or len(chunks) < 2:
            return map(fn, chunks)
        with ThreadPoolExecutor(min(self.threads, len(chunks)), thread_name_prefix="s4rec") as pool:
            return list(pool.map(fn, chunks))

    def _require_intents(self) -> None:
        if not self.metadata.num_intents:
            raise S4RecError(
                f"{self.path}: this model has no intents (it was exported from a checkpoint without intent "
                "centroids). Export an S4Rec checkpoint trained with intents to use intents()."
            )


_ID_TYPES = {int, str}
_NOTHING: frozenset = frozenset()  # no item to exclude
_INT = {int}
_LIST_TYPES = {list, tuple}
# A dense id -> index table is used when the artifact's ids are ints in 0..limit; at most this many entries
# per item (plus a constant), so that a catalogue of sparse ids never gets a huge table.
_DENSE_ENTRIES_PER_ITEM = 4
_DENSE_EXTRA_ENTRIES = 1 << 16


def _dense_table(item_ids: tuple) -> np.ndarray | None:
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


def _right_aligned(known: np.ndarray, ends: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """``(len(ends), width)`` int64: row r holds the last ``min(lengths[r], width)`` items of
    ``known[: ends[r]]``, right-aligned, 0 before them (``lengths[r]`` <= the items that history has)."""
    columns = np.arange(width - 1, -1, -1)  # distance from the row's end
    source = ends[:, None] - 1 - columns  # index into known of each cell
    window = np.take(known, source, mode="clip") if len(known) else np.zeros(source.shape, dtype=np.int64)
    window[columns >= lengths[:, None]] = 0
    return window


def _unknown_error(unknown_items: tuple) -> UnknownItemError:
    shown = ", ".join(repr(i) for i in unknown_items[:5]) + (", ..." if len(unknown_items) > 5 else "")
    return UnknownItemError(
        f"{len(unknown_items)} item id(s) unknown to the model: {shown}. Remove them, or use "
        "unknown='ignore' to drop them.",
        unknown_items,
    )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_item_id(item: Any) -> ItemId:
    if type(item) is int or isinstance(item, str):
        return str(item) if type(item) is not str and isinstance(item, str) else item
    if isinstance(item, np.integer):
        return int(item)
    raise TypeError(f"item ids must be ints or strings, got {type(item).__name__}: {_short(item)}.")


def _check_policy(policy: str) -> None:
    if policy not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {list(UNKNOWN_POLICIES)}, got {policy!r}.")


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)


def _check_histories(histories: Any) -> list:
    if isinstance(histories, (str, bytes, dict)) or not isinstance(histories, Iterable):
        raise TypeError(f"histories must be a list of histories, got {type(histories).__name__}: {_short(histories)}.")
    if isinstance(histories, np.ndarray) and histories.ndim != 2 and histories.dtype != object:
        raise TypeError(f"histories as a numpy array must be 2-D or of dtype object, got shape {histories.shape}.")
    return list(histories)
