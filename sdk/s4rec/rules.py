"""What :class:`~s4rec.recommender.Recommender` ranks under an app's rules: an allow-list (``candidates``), a
view's catalogue (``restricted_to`` / ``without``) and intent-diverse lists (``per_intent``), one history or many.

These paths rank from the item table (:mod:`s4rec.item_table`): the user vector from the encoder graph, then the
rows of the allowed items (few) or every row with the rest masked (many; :func:`s4rec.selection.use_rows`), and
for ``per_intent`` a greedy pass that keeps at most n items of one intent (:mod:`s4rec.selection`). The plain
whole-catalogue ranking stays in the graph (:mod:`s4rec.recommender`). A mixin: the methods use the recommender's
vocabulary, tables, session and view.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .artifact import EXCLUDE, INPUT, K_INPUT, TOP_ITEMS, TOP_SCORES, USER_EMBEDDING
from .errors import ArtifactVersionError, S4RecError
from .item_table import ItemTable
from .results import RankedBatch, Recommendations
from .selection import (
    EMPTY,
    complement,
    difference,
    diverse_positions,
    diverse_top,
    first_k,
    intersection,
    members,
    ranked_prefixes,
    top,
    use_rows,
    without_members,
)
from .windows import history_window

EMPTY_EXCLUDE = np.zeros(1, dtype=np.int64)  # the graph's exclude input when nothing is excluded: the padding index


class RuleRanking:
    """:class:`~s4rec.recommender.Recommender`'s ranking with candidates, a view's catalogue or ``per_intent``."""

    def _recommend_selected(
        self, indices: list[int], unknown_items: tuple, k: int, exclude_seen: bool, skip, candidates, per_intent,
        policy: str,
    ) -> Recommendations:  # fmt: skip
        """:meth:`recommend` with candidates, a view's catalogue or ``per_intent``."""
        per_intent = self._check_per_intent(per_intent)
        if candidates is None and self.restriction is None and self.ann is None and indices:
            return self._recommend_diverse(indices, unknown_items, k, exclude_seen, skip, per_intent)
        if candidates is not None and self.restriction is None and per_intent is None and self.ann is None and indices:
            return self._recommend_candidates(indices, unknown_items, k, exclude_seen, skip, candidates, policy)
        if candidates is None and indices and self.restriction is not None and self.restriction.rows is not None:
            banned = self._banned(indices if exclude_seen else (), skip)
            user = self._user_vector(history_window(indices, self.max_len))
            scores, found = self._rank_view_rows(user, k, banned, per_intent)
            return Recommendations(zip(self._ids_array[found].tolist(), scores.tolist()), unknown_items)
        allowed, unknown_candidates = self._allowed(candidates, policy)
        banned = self._banned(indices if exclude_seen else (), skip)
        if allowed is not None:
            allowed = difference(allowed, banned)
        if not indices:
            return self._popular_selected(k, allowed, banned, per_intent, unknown_items, unknown_candidates)
        if allowed is not None and not len(allowed):
            return Recommendations([], unknown_items, False, unknown_candidates)
        window = history_window(indices, self.max_len)
        scores, found = self._select(window, k, allowed, banned, per_intent)
        pairs = zip(self._ids_array[found].tolist(), scores.tolist())
        return Recommendations(pairs, unknown_items, False, unknown_candidates)

    def _recommend_candidates(
        self, indices: list[int], unknown_items: tuple, k: int, exclude_seen: bool, skip, candidates, policy: str
    ) -> Recommendations:
        """``candidates`` alone (exact retrieval, no view), the common case, kept lean: it competes with the
        unrestricted call (docs/sdk.md, "Business rules"). The user vector comes first: the encoder graph run
        straight after the history's mapping took ~58 us on Beauty, after the candidates' mapping ~71 us (the
        caches it finds)."""
        window = np.array([indices[-self.max_len :]], dtype=np.int64)
        table = self._item_table()
        if self.encoder is None:  # no encoder graph (an older artifact): the full graph, or the mask for many
            allowed, unknown_candidates = self.vocabulary.item_set(candidates, policy)
            allowed = difference(allowed, self._banned(indices if exclude_seen else (), skip))
            if not len(allowed):
                return Recommendations([], unknown_items, False, unknown_candidates)
            scores, found = self._select(window, k, allowed, EMPTY, None)
        else:
            user = self.encoder.run(self._user_output, {INPUT: window})[0][0]
            allowed, unknown_candidates = self.vocabulary.item_set(candidates, policy)
            banned = set(indices).union(skip) if exclude_seen else skip
            if len(allowed) and use_rows(len(allowed), self.metadata.num_items):
                # the best k + |banned| rows, the banned ones dropped after (a set lookup on a handful of items:
                # cheaper than removing them from the candidates first)
                scores, found = top(table.vectors[allowed] @ user, allowed, k + len(banned))
                ids, chosen = self._ids, scores.tolist()
                pairs = [(ids[i], chosen[p]) for p, i in enumerate(found.tolist()) if i not in banned][:k]
                return Recommendations(pairs, unknown_items, False, unknown_candidates)
            allowed = difference(allowed, np.sort(np.fromiter(banned, dtype=np.int64, count=len(banned))))
            if not len(allowed):
                return Recommendations([], unknown_items, False, unknown_candidates)
            scores, found = self._select(window, k, allowed, EMPTY, None)
        pairs = zip(self._ids_array[found].tolist(), scores.tolist())
        return Recommendations(pairs, unknown_items, False, unknown_candidates)

    def _recommend_diverse(
        self, indices: list[int], unknown_items: tuple, k: int, exclude_seen: bool, skip, per_intent: int
    ) -> Recommendations:
        """``per_intent`` alone: the graph ranks the first :meth:`_fetch` items as :meth:`recommend` ranks k
        (seen and excluded items removed inside it), the list keeps at most ``per_intent`` of one intent; when
        those run short of k, the item table ranks the rest. (This path is kept lean: the measured cost of the
        whole call is 1.2x the unrestricted one at most, docs/sdk.md.)"""
        window = np.array([indices[-self.max_len :]], dtype=np.int64)
        if exclude_seen:
            banned = window if len(indices) <= self.max_len and not skip else np.array([[*indices, *skip]])
        else:
            banned = np.array([[0, *skip]], dtype=np.int64)
        fetch = self._fetch(k)
        feed = {INPUT: window, EXCLUDE: banned, K_INPUT: self._k_inputs[fetch]}
        user, scores, items = self.session.run(self._diverse_outputs, feed)
        table = self._items  # checked by _check_per_intent
        kept = diverse_positions(table.intents[items[0]], per_intent, k)
        if len(kept) < k and scores[0, -1] != -math.inf:  # short of k, and the graph had more to rank
            excluded = self._banned(indices if exclude_seen else (), skip)
            best_scores, best = self._rank_vector(table, user[0], k, None, excluded, per_intent, first=4 * fetch)
            pairs = zip(self._ids_array[best].tolist(), best_scores.tolist())
            return Recommendations(pairs, unknown_items)
        ids, chosen, found = self._ids, scores[0].tolist(), items[0].tolist()
        return Recommendations([(ids[found[p]], chosen[p]) for p in kept if chosen[p] != -math.inf], unknown_items)

    def _select(
        self, window: np.ndarray, k: int, allowed: np.ndarray | None, banned: np.ndarray, per_intent: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` items for one window among ``allowed`` (None: all) less ``banned``: rows (few
        candidates), the ANN index, or the graph with everything else excluded (many)."""
        n = self.metadata.num_items
        if allowed is not None and use_rows(len(allowed), n) or self.ann is not None:
            return self._rank_vector(self._item_table(), self._user_vector(window), k, allowed, banned, per_intent)
        excluded = banned if allowed is None else complement(allowed, n)
        fetch = k if per_intent is None else self._fetch(k)
        feed = {INPUT: window, EXCLUDE: (excluded if len(excluded) else EMPTY_EXCLUDE)[None, :]}
        feed[K_INPUT] = self._k_inputs[fetch]
        user, scores, items = self.session.run([USER_EMBEDDING, TOP_SCORES, TOP_ITEMS], feed)
        kept = int(np.isfinite(scores[0]).sum())
        scores, items = scores[0, :kept], items[0, :kept]
        if per_intent is None:
            return scores, items
        table = self._item_table()
        best_scores, best, complete = diverse_top([(scores, items)], table.intents, per_intent, k)
        if complete or kept < fetch:  # k found, or everything there is was ranked
            return best_scores, best
        pool = allowed if allowed is not None else difference(np.arange(1, n + 1, dtype=np.int64), banned)
        return self._rank_vector(table, user[0], k, pool, EMPTY, per_intent, first=4 * fetch)

    def _rank_vector(
        self,
        table: ItemTable,
        vector: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        banned: np.ndarray,
        per_intent: int | None,
        first: int | None = None,
        cosine: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` items for a user (or query item) vector from the item table: the rows of ``allowed``
        when given and few, else the ANN index (``retrieval="ann"``) or every row. ``allowed`` holds no
        ``banned`` item. ``cosine``: rank by the cosine with ``vector`` (a unit vector) instead of the dot
        product."""
        n = table.num_items
        norms = table.norms() if cosine else None
        if allowed is None or not use_rows(len(allowed), n, self.ann is not None):
            if self.ann is not None:
                fetch = k if per_intent is None else self._fetch(k)
                prefixes = self.ann.ranked(vector, fetch, banned, allowed, norms)
                return first_k(prefixes, k, table.intents, per_intent)
            if allowed is None:
                scores = np.asarray(table.vectors[1:] @ vector)  # (N,): items 1..N
                if cosine:
                    scores /= norms[1:]
                scores[banned - 1] = -np.inf
                allowed = np.arange(1, n + 1, dtype=np.int64)
                prefixes = ranked_prefixes(scores, allowed, first or (k if per_intent is None else self._fetch(k)))
                return first_k(prefixes, k, table.intents, per_intent)
        scores = table.scores(vector, allowed)
        if cosine:
            scores /= norms[allowed]
        if per_intent is None:
            return top(scores, allowed, k)
        prefixes = ranked_prefixes(scores, allowed, first or self._fetch(k))
        return first_k(prefixes, k, table.intents, per_intent)

    def _rank_batch_selected(
        self, histories, k: int, exclude_seen: bool, exclude, policy: str, batch_size: int, candidates,
        candidates_per_history, per_intent,
    ) -> RankedBatch:  # fmt: skip
        """:meth:`rank_batch` with candidates, a view's catalogue or ``per_intent``: user vectors in buckets
        (the encoder graph), then each history's items ranked from the item table as :meth:`recommend` ranks
        them (rows of its candidates, or every row)."""
        per_intent = self._check_per_intent(per_intent)
        histories = list(histories) if not isinstance(histories, list) else histories
        if candidates is None and candidates_per_history is None and self.ann is None:
            if self.restriction is None or self.restriction.allowed is None:
                return self._rank_batch_diverse(histories, k, exclude_seen, exclude, policy, batch_size, per_intent)
        known, counts, unknown_of = self.vocabulary.map_histories(histories, policy)
        n = len(counts)
        per_history = None if candidates_per_history is None else _per_history(candidates_per_history, n, "candidates")
        shared, shared_unknown = self._allowed(candidates, policy)
        # a view's gathered rows serve the histories that add no candidates of their own
        own_rows = candidates is None and self.restriction is not None and self.restriction.rows is not None
        skip = self._exclusion_indices(exclude)
        users = self._user_vectors(known, counts, batch_size)
        table = self._item_table() if counts.any() else None
        ends = np.cumsum(counts)
        all_scores = np.full((n, k), -np.inf, dtype=np.float32)
        all_items = np.zeros((n, k), dtype=np.int64)
        popular_of, unknown_candidates_of = {}, {}
        for u in range(n):
            allowed, unknown_candidates = shared, shared_unknown
            if per_history is not None and per_history[u] is not None:
                own, unknown_candidates = self.vocabulary.item_set(per_history[u], policy)
                unknown_candidates = shared_unknown + unknown_candidates
                allowed = intersection(allowed, own)
            if unknown_candidates:
                unknown_candidates_of[u] = unknown_candidates
            seen = known[ends[u] - counts[u] : ends[u]] if exclude_seen else ()
            banned = self._banned(seen, skip)
            if allowed is not None:
                allowed = difference(allowed, banned)
            if not counts[u]:
                popular_of[u] = self._popular_selected(k, allowed, banned, per_intent, (), ())
                continue
            if allowed is not None and not len(allowed):
                continue
            if allowed is not None and own_rows and (per_history is None or per_history[u] is None):
                scores, found = self._rank_view_rows(users[u], k, banned, per_intent)
            else:
                scores, found = self._rank_vector(table, users[u], k, allowed, banned, per_intent)
            all_scores[u, : len(scores)], all_items[u, : len(found)] = scores, found
        fallback = counts == 0
        return RankedBatch(
            self._ids_array, all_scores, all_items, fallback, Recommendations(), unknown_of, None, popular_of,
            unknown_candidates_of,
        )  # fmt: skip

    def _rank_batch_diverse(
        self, histories: list, k: int, exclude_seen: bool, exclude, policy: str, batch_size: int, per_intent: int
    ) -> RankedBatch:
        """``per_intent`` alone in a batch: the graph ranks :meth:`_fetch` items per history in buckets (as the
        plain batch ranks k), each list keeps at most ``per_intent`` of one intent; the few that run short of k
        rank deeper from the item table, as :meth:`recommend` does."""
        fetch = self._fetch(k)
        ranked = self._rank_batch(histories, fetch, exclude_seen, exclude, policy, batch_size)
        n = len(ranked)
        intents = self._items.intents
        all_scores = np.full((n, k), -np.inf, dtype=np.float32)
        all_items = np.zeros((n, k), dtype=np.int64)
        popular_of = {}
        skip = self._exclusion_indices(exclude)
        for u in range(n):
            if ranked.fallback[u]:
                popular_of[u] = self._popular_selected(k, None, self._banned((), skip), per_intent, (), ())
                continue
            scores, items = ranked.scores[u], ranked.items[u]
            kept = diverse_positions(intents[items[np.isfinite(scores)]], per_intent, k)
            if len(kept) < k and np.isfinite(scores[-1]):  # short of k, and the graph had more to rank
                indices, _ = self.vocabulary.map_history(histories[u], policy)
                user = self._user_vector(history_window(indices, self.max_len))
                banned = self._banned(indices if exclude_seen else (), skip)
                found_scores, found = self._rank_vector(self._items, user, k, None, banned, per_intent, 4 * fetch)
            else:
                found_scores, found = scores[kept], items[kept]
            all_scores[u, : len(found)], all_items[u, : len(found)] = found_scores, found
        return RankedBatch(
            self._ids_array, all_scores, all_items, ranked.fallback, Recommendations(), ranked.unknown_of, None,
            popular_of,
        )  # fmt: skip

    def _allowed(self, candidates, policy: str) -> tuple[np.ndarray | None, tuple]:
        """The item indices a call may return, ``candidates`` within the view's catalogue (None: every item),
        and the unknown candidate ids."""
        allowed, unknown_candidates = (None, ()) if candidates is None else self.vocabulary.item_set(candidates, policy)
        if self.restriction is not None:
            allowed = intersection(self.restriction.allowed, allowed)
        return allowed, unknown_candidates

    def _banned(self, seen, skip) -> np.ndarray:
        """The item indices a call must not return: ``seen``, ``skip`` and what the view leaves out (sorted;
        duplicates are harmless to the binary searches that read it)."""
        banned = np.sort(np.fromiter((*seen, *skip), dtype=np.int64)) if len(seen) or skip else EMPTY
        if self.restriction is not None and len(self.restriction.denied):
            banned = np.union1d(banned, self.restriction.denied)
        return banned

    def _popular_selected(
        self, k: int, allowed: np.ndarray | None, banned: np.ndarray, per_intent: int | None, unknown_items: tuple,
        unknown_candidates: tuple,
    ) -> Recommendations:  # fmt: skip
        """The popular-items fallback within ``allowed`` (None: every item) less ``banned``: the most popular
        allowed items first, then the other allowed items in catalogue (item index) order; at most
        ``per_intent`` of one intent."""
        popular = np.asarray(self.metadata.popular_items, dtype=np.int64)
        if allowed is None:
            chosen = without_members(popular, banned)
        else:
            chosen = popular[members(popular, allowed)]
            if len(chosen) < k + (0 if per_intent is None else len(allowed)):
                chosen = np.concatenate([chosen, difference(allowed, np.sort(chosen))])
        if per_intent is not None:
            chosen = chosen[diverse_positions(self._item_table().intents[chosen], per_intent, k)]
        ids = self._ids_array[chosen[:k]].tolist()
        return Recommendations([(i, math.nan) for i in ids], unknown_items, True, unknown_candidates)

    def _check_per_intent(self, per_intent) -> int | None:
        if per_intent is None:
            return None
        per_intent = _check_positive_int(per_intent, "per_intent")
        if not self.metadata.num_intents:
            raise S4RecError(
                f"{self.path}: this model has no intents (it was exported from a checkpoint without intent "
                "centroids), so per_intent cannot apply. Export an S4Rec checkpoint trained with intents, or drop "
                "per_intent."
            )
        if self._item_table().intents is None:
            raise ArtifactVersionError(
                f"{self.path}: this artifact was exported before each item's intent was stored in it, which "
                "per_intent needs. Re-export it from its checkpoint with this release's s4rec-export (the checkpoint "
                "needs no change)."
            )
        return per_intent


def _per_history(values: Any, n: int, name: str) -> list:
    """``values`` as a list of one entry per history (``TypeError`` / ``ValueError`` naming ``name`` else)."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, (list, tuple)):
        kind = type(values).__name__
        raise TypeError(f"{name} must be a list with one collection of item ids per history, got {kind}.")
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} histories: give one per history (or None).")
    return list(values)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)
