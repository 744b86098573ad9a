"""The :class:`Recommender`: next-item recommendations, user embeddings and intents from an s4rec artifact.

One ONNX Runtime session per recommender, shared by every call and every thread (``InferenceSession.run`` is
thread-safe and the recommender holds no other mutable state). Histories are the user's own item ids, oldest
first; they are mapped to item indices (:class:`~s4rec.vocabulary.ItemVocabulary`), cut to the most recent
``max_len`` and left-padded (:mod:`s4rec.windows`). Batches are sorted by length and each bucket is trimmed to
its longest history, which is exact because the graph's positions are right-aligned. (The module is longer
than the others because it is one noun with its verbs: recommend, batch, embed, intents, ANN retrieval share
the session, the vocabulary and the window code.)

The graph ranks without the items it is told to exclude (input ``exclude``) and returns exactly the ``k``
asked for (input ``k``): seen and excluded items are removed inside the graph, before its top-k, so no
candidates beyond ``k`` are ranked, copied or filtered here. For the common case (exclude the history seen
within the window, nothing else) the history window itself is passed as ``exclude``.

Artifacts are opened and checked by :mod:`s4rec.loading` (sessions: :mod:`s4rec.session`), results are
:mod:`s4rec.results` types.

Format 3 artifacts (large catalogues) add an encoder-only graph, used for ``embed`` and ``intents`` (no score
product over every item) and, with ``retrieval="ann"``, for the user vectors whose candidates
:mod:`s4rec.ann` finds in the approximate index; and batches of exact scoring are cut so that one ONNX Runtime
call's score matrix stays within :data:`SCORE_CELLS` cells.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
)
from .errors import ArtifactError, S4RecError, UnknownItemError
from .item_table import ItemTable
from .loading import open_artifact
from .results import RankedBatch, Recommendations, Scores, recommendation_lists
from .rules import RuleRanking, _check_positive_int, _per_history
from .selection import (
    EMPTY,
    Restriction,
    difference,
    first_k,
    ranked_prefixes,
    restrict,
    sorted_unique,
    top,
    with_rows,
)
from .session import make_session
from .vocabulary import ItemId, ItemVocabulary, check_unknown_policy
from .windows import exclude_input, history_window, right_aligned

_NOTHING: frozenset = frozenset()  # no item to exclude
# Score-matrix cells (users x items) per ONNX Runtime call of exact batch scoring: 2^26 floats (256 MB), so that
# a call's matrix stays bounded (a 256-user call at 10^6 items would hold 1 GB, per thread): 64 users a call at
# 10^6 items, no effect up to 262,143 items (batch_size 256). Not smaller: each call streams the whole table,
# so users per call divide the table's memory traffic; measured at 10^6 items, 2 threads, float32: 81, 143,
# 178, 238 users/s at 4, 16, 32, 64 users a call (the int8 table: 118-129 users/s whatever the size).
SCORE_CELLS = 1 << 26
# per_intent: the graph ranks PER_INTENT_FETCH * k + PER_INTENT_EXTRA items (at most top_k) to choose from; when
# they hold fewer than k that keep to per_intent, the item table ranks deeper. On Beauty (S4Rec, 128 intents,
# k = 10, 3,000 test histories) 30 items sufficed for 97.4% of the users at per_intent=2 (93.3% at 1, 99.0% at
# 3), 20 for 95.4%; ranking 30 instead of 10 costs the graph ~5% (benchmarks/app_features.py).
PER_INTENT_FETCH = 2
PER_INTENT_EXTRA = 10
# Cells of one call's `exclude` input under exclude_seen: every row is as wide as the bucket's longest whole
# history, so one history of 2 million items among 255 short ones made a 4 GB input (14 GB peak RSS for one
# 4 MB line in s4rec-score). A bucket beyond this is cut into parts of similar history lengths, each within it
# (a history alone may exceed it: then it costs its own size). 2^22 int64: 32 MB, never reached by histories of
# up to 16,384 items in buckets of 256.
EXCLUDE_CELLS = 1 << 22


class Recommender(RuleRanking):
    """Scores histories with an s4rec artifact. Build it with :meth:`Recommender.load`."""

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: ArtifactMetadata,
        path: Path,
        unknown: str = "ignore",
        threads: int = 1,
        encoder: ort.InferenceSession | None = None,
        ann: Any = None,
        items: ItemTable | S4RecError | None = None,
        version: str = "",
    ):
        check_unknown_policy(unknown)
        # The item vectors and intents (s4rec.item_table), or why they cannot be read (raised by the calls that
        # need them, so that an artifact that loaded before still loads)
        self._items = items
        self.version = version or metadata.version  # the artifact's short version id
        self.restriction: Restriction | None = None  # the catalogue of a view (restricted_to / without)
        self.session = session
        self.threads = threads  # batch methods run up to this many buckets at once
        self.metadata = metadata
        self.path = Path(path)
        self.unknown = unknown
        self.max_len = metadata.max_len
        self.top_k = metadata.top_k
        self.encoder = encoder  # format 3: the encoder-only graph (history -> user_embedding [, intents])
        self.ann = ann  # retrieval="ann": an s4rec.ann.AnnIndex
        self.retrieval = "exact" if ann is None else "ann"
        # users per exact-scoring call at most, so that the (users, items) score matrix stays bounded
        self.max_users_per_call = max(1, SCORE_CELLS // (metadata.num_items + 1))
        self.vocabulary = vocabulary = ItemVocabulary(metadata.item_ids)
        # Bound once: recommend's Python (~10 us of its ~140 us) gets no extra lookup per call from the
        # vocabulary being an object of its own.
        self._map_history = vocabulary.map_history
        self._exclusion_indices = vocabulary.exclusion_indices
        self._ids = vocabulary.ids  # item index -> the user's own id
        self._ids_array = vocabulary.ids_array
        self._rank_outputs = [TOP_SCORES, TOP_ITEMS]
        self._diverse_outputs = [USER_EMBEDDING, TOP_SCORES, TOP_ITEMS]
        self._user_output = [USER_EMBEDDING]
        self._k_inputs = [np.array(i, dtype=np.int64) for i in range(self.top_k + 1)]  # the scalar input k

    def __repr__(self) -> str:
        m = self.metadata
        view = ""
        if self.restriction is not None:
            size = self.restriction.size
            view = f", restricted to {size:,} items" if size is not None else ""
            view += f", without {len(self.restriction.denied):,} items" if len(self.restriction.denied) else ""
        return (
            f"Recommender({str(self.path)!r}, version={self.version!r}, variant={m.variant!r}, items={m.num_items}, "
            f"intents={m.num_intents}, max_len={m.max_len}, top_k={m.top_k}, retrieval={self.retrieval!r}{view})"
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
        retrieval: str = "exact",
        verify: str = "fast",
        ef_search: int | None = None,
    ) -> Recommender:
        """Load and validate an artifact directory (or a single ``.onnx``/``.ort`` file).

        ``threads``: cores the recommender may use. Every ONNX Runtime call runs on one thread (fastest for
        single requests on small machines); the batch methods run up to ``threads`` buckets at once, so use
        the number of cores (or 0, all of them) for batch scoring. ``variant``: fp32, int8, fp16 or
        mobile (ignored for a single file). ``unknown``: default policy for unknown item ids, ``"ignore"``
        (drop them, reported in ``Recommendations.unknown_items``) or ``"error"`` (raise
        :class:`UnknownItemError`). Raises :class:`ArtifactError` (or a subclass) for anything it cannot use.

        ``retrieval``: ``"exact"`` (every item scored) or ``"ann"`` (format 3 artifacts exported with ``--ann``,
        the ``[ann]`` extra: candidates from the approximate index, re-ranked exactly; :mod:`s4rec.ann`),
        ``ef_search`` its search breadth, the candidates re-ranked exactly (None: the artifact's). ``verify``:
        ``"fast"`` checks every file's size and the SHA-256 of all but a format 3 artifact's large tables;
        ``"full"`` hashes those too.
        """
        parts = open_artifact(path, threads, variant, unknown, optimization, retrieval, verify, ef_search)
        try:
            return cls(
                parts.session, parts.metadata, parts.model_path, unknown, parts.threads, encoder=parts.encoder,
                ann=parts.ann, items=parts.items, version=parts.version,
            )  # fmt: skip
        except ValueError as e:  # the vocabulary of a format 3 artifact: duplicated ids
            raise ArtifactError(f"{parts.model_path}: invalid item vocabulary: {e}. Re-export the artifact.") from None

    # The one place where sessions are built (s4rec.session); the exporter builds its read-back sessions here too.
    make_session = staticmethod(make_session)

    # ---------------------------------------------------------------- recommendations

    def recommend(
        self,
        history: Sequence[ItemId],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
        candidates: Iterable[ItemId] | None = None,
        per_intent: int | None = None,
    ) -> Recommendations:
        """The ``k`` best next items for one history (the user's own item ids, oldest first).

        Items of the history are left out with ``exclude_seen``, and so are the ids in ``exclude``. The
        result may be shorter than ``k`` only when the exclusions remove more than ``top_k - k`` of the
        artifact's ``top_k`` candidates. An empty history (or one with no known item) gets the most popular
        items (``fallback`` is True).

        ``candidates``: rank only these ids (an allow-list: duplicates count once, unknown ids are ignored and
        reported in ``unknown_candidates``, an empty collection gives an empty list), exactly, with the
        exclusions still applied; the list is shorter than ``k`` when fewer remain. ``per_intent``: at most this
        many items of one intent in the list (each item's intent is stored in the artifact): the best items
        that keep to it, in the model's order. A view (:meth:`restricted_to`, :meth:`without`) applies its
        catalogue to every call.
        """
        k = self._check_k(k)
        policy = self.unknown if unknown is None else unknown
        indices, unknown_items = self._map_history(history, policy)
        skip = self._exclusion_indices(exclude) if type(exclude) is not tuple or exclude else _NOTHING
        if candidates is not None or per_intent is not None or self.restriction is not None:
            return self._recommend_selected(
                indices, unknown_items, k, exclude_seen, skip, candidates, per_intent, policy
            )
        if not indices:
            return self._popular(k, skip, unknown_items)
        if self.ann is not None:
            return self._recommend_ann(indices, k, exclude_seen, skip, unknown_items)
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
        candidates: Iterable[ItemId] | None = None,
        candidates_per_history: Sequence[Iterable[ItemId] | None] | None = None,
        per_intent: int | None = None,
    ) -> list[Recommendations]:
        """:meth:`recommend` for many histories at once, in input order; ``exclude`` and ``candidates`` apply to
        all of them, ``candidates_per_history`` (one collection of ids, or None, per history) to each its own.

        Histories are sorted by length and run in buckets of ``batch_size``, each trimmed to its longest
        history, so short histories do not pay for padding to ``max_len``.
        """
        ranked = self._rank_batch(
            histories, k, exclude_seen, exclude, unknown, batch_size, True, candidates, candidates_per_history,
            per_intent,
        )  # fmt: skip
        return ranked.recommendations()

    def rank_batch(
        self,
        histories: Iterable[Sequence[ItemId]],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
        batch_size: int = 256,
        candidates: Iterable[ItemId] | None = None,
        candidates_per_history: Sequence[Iterable[ItemId] | None] | None = None,
        per_intent: int | None = None,
    ) -> RankedBatch:
        """:meth:`recommend_batch` with the results left as arrays: a :class:`~s4rec.results.RankedBatch` of
        scores and item indices (what ``s4rec-score`` formats without building a list per user), in input
        order; :meth:`RankedBatch.recommendations() <s4rec.results.RankedBatch.recommendations>` gives what
        :meth:`recommend_batch` returns."""
        return self._rank_batch(
            histories, k, exclude_seen, exclude, unknown, batch_size, False, candidates, candidates_per_history,
            per_intent,
        )  # fmt: skip

    def _rank_batch(
        self,
        histories: Iterable[Sequence[ItemId]],
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[ItemId] = (),
        unknown: str | None = None,
        batch_size: int = 256,
        convert: bool = False,
        candidates: Iterable[ItemId] | None = None,
        candidates_per_history: Sequence[Iterable[ItemId] | None] | None = None,
        per_intent: int | None = None,
    ) -> RankedBatch:
        """:meth:`rank_batch`.

        ``convert``: also turn each bucket into :class:`Recommendations` as soon as it is ranked, in the thread
        that ranked it, so that with several threads this Python work overlaps the other buckets' ONNX Runtime
        calls (which release the GIL) instead of following them all.
        """
        k = self._check_k(k)
        batch_size = _check_positive_int(batch_size, "batch_size")
        policy = self.unknown if unknown is None else unknown
        restriction = self.restriction
        selected = candidates is not None or candidates_per_history is not None or per_intent is not None
        if selected or (restriction is not None and restriction.allowed is not None):
            return self._rank_batch_selected(
                histories, k, exclude_seen, exclude, policy, batch_size, candidates, candidates_per_history, per_intent
            )
        known, counts, unknown_of = self.vocabulary.map_histories(histories, policy)
        skip = sorted(self._exclusion_indices(exclude))
        if restriction is not None and len(restriction.denied):  # a view without some items: excluded for all
            skip = np.union1d(skip, restriction.denied).tolist()
        n = len(counts)
        ends = np.cumsum(counts)
        lengths = np.minimum(counts, self.max_len)
        order = np.argsort(lengths, kind="stable")
        first = int(np.searchsorted(lengths[order], 1))  # histories with no known item come first
        all_scores = np.zeros((n, k), dtype=np.float32)
        all_items = np.zeros((n, k), dtype=np.int64)
        k_input, ids = self._k_inputs[k], self._ids_array
        converted = [None] * n if convert else None

        def rank(bucket: np.ndarray) -> None:
            for chunk in exclusion_parts(bucket, counts, len(skip)) if exclude_seen else (bucket,):
                chunk_ends, chunk_lengths = ends[chunk], lengths[chunk]
                window = right_aligned(known, chunk_ends, chunk_lengths, int(chunk_lengths.max()))
                banned = exclude_input(window, known, chunk_ends, counts[chunk], skip, exclude_seen)
                feed = {INPUT: window, EXCLUDE: banned, K_INPUT: k_input}
                scores, items = self.session.run(self._rank_outputs, feed)
                all_scores[chunk], all_items[chunk] = scores, items  # rows of different chunks never overlap
                if converted is not None:
                    for u, recommendations in zip(chunk.tolist(), recommendation_lists(ids, scores, items)):
                        converted[u] = recommendations

        if self.ann is not None:
            rank = self._ann_ranker(known, ends, counts, lengths, skip, exclude_seen, k, all_scores, all_items)
            converted = None
        else:
            batch_size = min(batch_size, self.max_users_per_call)
        list(self._map(rank, [order[start : start + batch_size] for start in range(first, n, batch_size)]))
        popular = self._popular(k, set(skip), ()) if first else Recommendations()
        return RankedBatch(ids, all_scores, all_items, lengths == 0, popular, unknown_of, converted)

    # ---------------------------------------------------------------- candidates, views, intent-diverse lists

    def restricted_to(self, items: Iterable[ItemId], unknown: str | None = None) -> Recommender:
        """A view of this recommender that only ever returns ``items`` (e.g. what is in stock today): every
        call of the view (``recommend``, the batch forms, ``similar_items``) ranks within them, as with
        ``candidates``, and its popular-items fallback keeps to them. It shares the session, the tables and
        the vocabulary (nothing is copied), is immutable and thread-safe, and is made in time proportional to
        ``items``. Views narrow further: ``rec.restricted_to(a).restricted_to(b)`` returns items of both,
        ``.without(c)`` leaves out ``c`` too. Unknown ids are ignored (``view.restriction.unknown_items``; with
        ``unknown="error"`` they raise :class:`UnknownItemError`). ``score`` is not restricted: it scores the
        items it is given."""
        allowed, unknown_items = self.vocabulary.item_set(items, self._policy(unknown), "items")
        return self._view(restrict(self.restriction, allowed, EMPTY, unknown_items))

    def without(self, items: Iterable[ItemId], unknown: str | None = None) -> Recommender:
        """A view of this recommender that never returns ``items`` (e.g. what is out of stock), as if every call
        passed them in ``exclude``; otherwise as :meth:`restricted_to`."""
        denied, unknown_items = self.vocabulary.item_set(items, self._policy(unknown), "items")
        return self._view(restrict(self.restriction, None, denied, unknown_items))

    def _view(self, restriction: Restriction) -> Recommender:
        view = copy.copy(self)  # shares the sessions, the metadata, the vocabulary and the item table
        if isinstance(self._items, ItemTable) and self.ann is None:
            restriction = with_rows(restriction, self._items.vectors)  # a small allowed set: its rows, once
        view.restriction = restriction
        return view

    def _rank_view_rows(
        self, user: np.ndarray, k: int, banned: np.ndarray, per_intent: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of a view's allowed items (its gathered rows, :func:`s4rec.selection.with_rows`) less
        ``banned``."""
        allowed, rows = self.restriction.allowed, self.restriction.rows
        scores = rows @ user
        if len(banned) and len(allowed):
            position = np.minimum(np.searchsorted(allowed, banned), len(allowed) - 1)
            scores[position[allowed[position] == banned]] = -np.inf
        if per_intent is None:
            return top(scores, allowed, k)
        return first_k(ranked_prefixes(scores, allowed, self._fetch(k)), k, self._items.intents, per_intent)

    def score(self, history: Sequence[ItemId], items: Iterable[ItemId], unknown: str | None = None) -> Scores:
        """The model's scores of ``items`` for ``history``, in the order of ``items`` (the re-ranking call: sort
        by them, or blend them with your own): a :class:`~s4rec.results.Scores` list of floats, the same
        numbers ``recommend`` gives those items. Unknown ids score NaN and are listed in ``unknown_items``
        (``unknown="error"``: :class:`UnknownItemError`); duplicates score alike. A history with no known item
        gives NaN everywhere (``fallback``). Neither the history's items nor a view's restriction are left out:
        every item given is scored."""
        policy = self._policy(unknown)
        indices, unknown_history = self._map_history(history, policy)
        wanted, unknown_items = self.vocabulary.item_indices(items, policy, "items")
        if not indices:
            return Scores([math.nan] * len(wanted), unknown_items, unknown_history, fallback=True)
        table = self._item_table()
        user = self._user_vector(history_window(indices, self.max_len))
        return Scores(_item_scores(table, user, wanted).tolist(), unknown_items, unknown_history)

    def score_batch(
        self,
        histories: Iterable[Sequence[ItemId]],
        items: Sequence[Iterable[ItemId]],
        unknown: str | None = None,
        batch_size: int = 256,
    ) -> list[Scores]:
        """:meth:`score` for many histories at once: ``items`` holds one collection of ids per history."""
        policy = self._policy(unknown)
        histories = list(histories) if not isinstance(histories, list) else histories
        items = _per_history(items, len(histories), "items")
        known, counts, unknown_of = self.vocabulary.map_histories(histories, policy)
        wanted = [self.vocabulary.item_indices(row, policy, "items") for row in items]
        users = self._user_vectors(known, counts, batch_size)
        table = self._item_table() if counts.any() else None
        results = []
        for u, (indices, unknown_items) in enumerate(wanted):
            history_unknown = unknown_of.get(u, ())
            if not counts[u]:
                results.append(Scores([math.nan] * len(indices), unknown_items, history_unknown, fallback=True))
            else:
                results.append(Scores(_item_scores(table, users[u], indices).tolist(), unknown_items, history_unknown))
        return results

    def item_vectors(self, items: Iterable[ItemId] | None = None, unknown: str | None = None) -> np.ndarray:
        """The model's item vectors (rows of its item table, float32, read-only): ``(N, d)`` in item index order
        when ``items`` is None (row ``i`` is the item ``vocabulary.item_ids[i]``), else ``(len(items), d)`` in
        the order of ``items`` (an unknown id: a row of NaN; ``unknown="error"``: :class:`UnknownItemError`).
        Format 2 reads them from the model file itself, format 3 maps ``item_table.npy``: no second copy."""
        vectors = self._item_table().vectors
        if items is None:
            return vectors[1:]
        indices, _ = self.vocabulary.item_indices(items, self._policy(unknown), "items")
        out = np.array(vectors[indices], dtype=np.float32)
        out[indices == 0] = np.nan
        return out

    def similar_items(
        self,
        items: ItemId | Iterable[ItemId],
        k: int = 10,
        exclude: Iterable[ItemId] = (),
        candidates: Iterable[ItemId] | None = None,
        unknown: str | None = None,
    ) -> Recommendations:
        """The ``k`` items most similar to an item (or to several: the mean of their unit vectors), from the model's
        item vectors: ``[(item_id, similarity), ...]`` best first, the query items, ``exclude`` and anything a
        view leaves out left out, within ``candidates`` when given. Similarity is the cosine of the item vectors
        (in -1..1; chosen over the dot product on Beauty validation, docs/sdk.md "Similar items"), exact, or
        with ``retrieval="ann"`` the index's inner-product candidates re-ranked by it. An unknown query item raises
        :class:`UnknownItemError` when no query item is known (else it is ignored and reported in
        ``unknown_items``, or raises with ``unknown="error"``)."""
        k = self._check_k(k)
        policy = self._policy(unknown)
        query = [items] if isinstance(items, (int, str, np.integer)) and not isinstance(items, bool) else items
        indices, unknown_items = self.vocabulary.item_set(query, policy, "items")
        if not len(indices):
            shown = ", ".join(map(repr, list(unknown_items)[:5])) or "none given"
            raise UnknownItemError(
                f"similar_items: no item of the query is known to the model ({shown}). Pass item ids of the "
                "artifact's catalogue.",
                unknown_items,
            )
        table = self._item_table()
        allowed, unknown_candidates = self._allowed(candidates, policy)
        banned = sorted_unique(np.fromiter(self._exclusion_indices(exclude), dtype=np.int64))
        banned = np.union1d(banned, indices)
        if self.restriction is not None and len(self.restriction.denied):
            banned = np.union1d(banned, self.restriction.denied)
        if allowed is not None:
            allowed = difference(allowed, banned)
        unit = np.asarray(table.vectors[indices], dtype=np.float32) / table.norms()[indices, None]
        query = unit.mean(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)  # the direction the query items share
        scores, found = self._rank_vector(table, query, k, allowed, banned, None, cosine=True)
        pairs = zip(self._ids_array[found].tolist(), scores.tolist())
        return Recommendations(pairs, unknown_items, False, unknown_candidates)

    def _fetch(self, k: int) -> int:
        """Items ranked first for an intent-diverse list of ``k``: ``PER_INTENT_FETCH * k + PER_INTENT_EXTRA``."""
        return min(self.top_k, PER_INTENT_FETCH * k + PER_INTENT_EXTRA)

    def _policy(self, unknown: str | None) -> str:
        policy = self.unknown if unknown is None else unknown
        check_unknown_policy(policy)
        return policy

    def _item_table(self) -> ItemTable:
        """The item vectors, or the error that says why this artifact's cannot be read."""
        table = self._items
        if isinstance(table, ItemTable):
            return table
        if isinstance(table, S4RecError):
            raise type(table)(str(table), flags=table.flags)
        raise ArtifactError(f"{self.path}: this recommender has no item vectors. Load it with Recommender.load.")

    def _user_vector(self, window: np.ndarray) -> np.ndarray:
        """One window's user vector ``(d,)`` (the encoder graph, or the full graph ranking as little as it can)."""
        return self._run_encoder(USER_EMBEDDING, window)[0]

    def _user_vectors(self, known: np.ndarray, counts: np.ndarray, batch_size: int) -> np.ndarray:
        """``(n, d)`` user vectors of mapped histories, in length buckets (rows of empty histories: zeros)."""
        batch_size = _check_positive_int(batch_size, "batch_size")
        users = np.zeros((len(counts), self.metadata.embedding_dim), dtype=np.float32)
        ends = np.cumsum(counts)
        lengths = np.minimum(counts, self.max_len)
        order = np.argsort(lengths, kind="stable")
        first = int(np.searchsorted(lengths[order], 1))

        def run(chunk: np.ndarray) -> None:
            chunk_lengths = lengths[chunk]
            window = right_aligned(known, ends[chunk], chunk_lengths, int(chunk_lengths[-1]))
            users[chunk] = self._run_encoder(USER_EMBEDDING, window)

        chunks = [order[start : start + batch_size] for start in range(first, len(counts), batch_size)]
        list(self._map(run, chunks))
        return users

    # ---------------------------------------------------------------- embeddings and intents

    def embed(self, history: Sequence[ItemId], unknown: str | None = None) -> np.ndarray:
        """The user vector z_u (float32, ``(embedding_dim,)``). An empty history gives the model's
        no-history vector (the encoder run on one padding position)."""
        indices, _ = self._map_history(history, self.unknown if unknown is None else unknown)
        window = history_window(indices, self.max_len)
        return self._run_encoder(USER_EMBEDDING, window)[0]

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
        indices, _ = self._map_history(history, self.unknown if unknown is None else unknown)
        window = history_window(indices, self.max_len)
        probabilities = self._run_encoder(INTENT_PROBABILITIES, window)[0]
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
        return [self._ids[int(i)] for i in self.metadata.intent_top_items[int(intent)][:k]]

    # ---------------------------------------------------------------- helpers

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}: {k!r}.")
        if not 1 <= k <= self.top_k:
            raise ValueError(
                f"k must be in 1..{self.top_k} (the artifact's top_k), got {k}. "
                f"Ask for fewer items, or re-export with a larger top_k."
            )
        return int(k)

    def _popular(self, k: int, skip: set[int], unknown_items: tuple) -> Recommendations:
        ids = self._ids
        popular = self.metadata.popular_items
        if isinstance(popular, np.ndarray):  # format 3: the first k + len(skip) suffice
            popular = popular[: k + len(skip)].tolist()
        chosen = [i for i in popular if i not in skip][:k]
        return Recommendations([(ids[i], math.nan) for i in chosen], unknown_items, fallback=True)

    def _feed_nothing_ranked(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs for the embedding and intent outputs: rank as little as the graph allows (k = 1)."""
        return {INPUT: window, EXCLUDE: np.zeros((len(window), 1), dtype=np.int64), K_INPUT: self._k_inputs[1]}

    def _run_encoder(self, output: str, window: np.ndarray) -> np.ndarray:
        """``output`` (user_embedding or intent_probabilities) for ``window``: from the encoder-only graph of a
        format 3 artifact, else from the full graph ranking as little as it can."""
        if self.encoder is not None:
            return self.encoder.run([output], {INPUT: window})[0]
        return self.session.run([output], self._feed_nothing_ranked(window))[0]

    # ---------------------------------------------------------------- approximate retrieval (format 3)

    def _recommend_ann(
        self, indices: list[int], k: int, exclude_seen: bool, skip: Iterable[int], unknown_items: tuple
    ) -> Recommendations:
        window = np.array([indices[-self.max_len :]], dtype=np.int64)
        user = self.encoder.run([USER_EMBEDDING], {INPUT: window})[0]
        banned = np.unique(np.fromiter((*indices, *skip) if exclude_seen else skip, dtype=np.int64))
        scores, items = self.ann.search(user, k, [banned])
        kept = int(np.isfinite(scores[0]).sum())
        ids = self._ids
        return Recommendations(
            zip([ids[i] for i in items[0, :kept].tolist()], scores[0, :kept].tolist()), unknown_items
        )

    def _ann_ranker(self, known, ends, counts, lengths, skip, exclude_seen, k, all_scores, all_items):
        """A bucket ranker for :meth:`_rank_batch` with ``retrieval="ann"``: user vectors from the encoder, then
        the index (one knn_query per bucket)."""
        skip_array = np.asarray(skip, dtype=np.int64)

        def rank(chunk: np.ndarray) -> None:
            chunk_ends, chunk_lengths = ends[chunk], lengths[chunk]
            window = right_aligned(known, chunk_ends, chunk_lengths, int(chunk_lengths[-1]))
            users = self.encoder.run([USER_EMBEDDING], {INPUT: window})[0]
            banned = [
                np.unique(np.concatenate([known[e - c : e], skip_array])) if exclude_seen else skip_array
                for e, c in zip(chunk_ends.tolist(), counts[chunk].tolist())
            ]
            all_scores[chunk], all_items[chunk] = self.ann.search(users, k, banned)

        return rank

    def user_vectors(
        self, histories: Iterable[Sequence[ItemId]], exclude_seen: bool = True, unknown: str | None = None
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """For :func:`s4rec.recall.recall_at_k`: the user vectors of the histories with a known item, the item
        indices each excludes (its history under ``exclude_seen``), and those histories' positions."""
        histories = list(histories)
        known, counts, _ = self.vocabulary.map_histories(histories, self.unknown if unknown is None else unknown)
        ends = np.cumsum(counts)
        keep = np.flatnonzero(counts > 0)
        banned = [
            np.unique(known[e - c : e]) if exclude_seen else np.zeros(0, np.int64)
            for e, c in zip(ends[keep].tolist(), counts[keep].tolist())
        ]
        users = self.embed_batch([histories[i] for i in keep.tolist()], unknown=unknown)
        return users, banned, keep

    def _run_bucketed(self, histories, output: str, unknown: str | None, batch_size: int) -> np.ndarray:
        batch_size = _check_positive_int(batch_size, "batch_size")
        known, counts, _ = self.vocabulary.map_histories(histories, self.unknown if unknown is None else unknown)
        ends = np.cumsum(counts)
        lengths = np.minimum(counts, self.max_len)
        order = np.argsort(np.maximum(lengths, 1), kind="stable")
        width = self.metadata.num_intents if output == INTENT_PROBABILITIES else self.metadata.embedding_dim
        out = np.empty((len(counts), width), dtype=np.float32)

        def run(chunk: np.ndarray) -> None:
            chunk_lengths = lengths[chunk]
            window = right_aligned(known, ends[chunk], chunk_lengths, max(1, int(chunk_lengths[-1])))
            out[chunk] = self._run_encoder(output, window)

        list(self._map(run, [order[start : start + batch_size] for start in range(0, len(counts), batch_size)]))
        return out

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


def _item_scores(table: ItemTable, user: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Scores of item indices in their order, NaN for 0 (an unknown id)."""
    scores = table.scores(user, indices)  # float32, as the graph's
    scores[indices == 0] = math.nan
    return scores


def exclusion_parts(bucket: np.ndarray, counts: np.ndarray, extra: int) -> list[np.ndarray]:
    """``bucket`` (row indices), or, when its ``exclude`` input would hold more than :data:`EXCLUDE_CELLS` cells
    (rows x (the longest history's ``counts`` + ``extra`` excluded ids)), its rows by history length in parts
    that each stay within it, a row alone when it must."""
    widths = counts[bucket] + extra
    if len(bucket) * int(widths.max()) <= EXCLUDE_CELLS:
        return [bucket]
    order = np.argsort(widths, kind="stable")
    ordered, widths = bucket[order], widths[order].tolist()
    parts, start = [], 0
    for end, width in enumerate(widths):
        if end > start and (end - start + 1) * width > EXCLUDE_CELLS:
            parts.append(ordered[start:end])
            start = end
    parts.append(ordered[start:])
    return parts
