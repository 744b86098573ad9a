"""Full-ranking evaluation (docs/s4rec.md, "Evaluation protocol").

Every item of the catalogue is ranked for every user (the padding index never is); items already in the
user's history are excluded (score -inf). With r the 0-based rank of the target,
HR@k = mean[r < k], NDCG@k = mean[(r < k) / log2(r + 2)] and MRR@k = mean[(r < k) / (r + 1)]; catalogue
coverage@k is the share of the catalogue's items that are in at least one user's top k. Figures are reported
overall and for head users (the 20% with the longest training histories) and tail users (the rest).

:func:`evaluate_split` ranks a split's validation or test users; :func:`evaluate_targets` ranks any
:class:`~s4rec_train.splits.Targets` (a time split's period, a newer log's users), where a target the model does
not know counts as a miss.

:func:`intent_usage` describes an S4Rec model's intents instead: how many are used and how head users spread
over them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from s4rec.windows import PADDING_INDEX, right_aligned

if TYPE_CHECKING:
    from .objectives import S4RecHeads

KS = (5, 10, 20)
TOP = max(KS)  # the top items kept per user for catalogue coverage
UNKNOWN_RANK = 2**62  # the rank of a target the model does not know: beyond every k


def exclude_history(scores: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Set the scores of items in ``history`` (b, t) to -inf in ``scores`` (b, N + 1); also the padding column."""
    scores = scores.scatter(1, history, float("-inf"))
    scores[:, PADDING_INDEX] = float("-inf")
    return scores


def padded_rows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(len(starts), longest)`` int64: row r holds ``items[starts[r]:ends[r]]``, then 0 (the padding index)."""
    lengths = ends - starts
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    columns = np.arange(width)
    source = starts[:, None] + columns
    out = np.take(items, source, mode="clip") if len(items) else np.zeros(source.shape, dtype=np.int64)
    out[columns >= lengths[:, None]] = PADDING_INDEX
    return out.astype(np.int64, copy=False)


# Rows of one evaluation block are capped so that its (rows, N + 1) float32 score matrix stays under 256 MB:
# 1024 users (the default eval_batch_size) up to 65k items, 67 users at 10^6 items.
SCORE_BLOCK = 2**26


def block_rows(batch_size: int, num_items: int) -> int:
    """Users per evaluation block: ``batch_size``, fewer where the catalogue makes the score block too big."""
    return max(1, min(batch_size, SCORE_BLOCK // (num_items + 1)))


@torch.no_grad()
def _rank_blocks(
    model, window, lengths, target, batch_size, exclude_seen, seen, shard, reduce, top: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The ranking loop of :func:`rank_targets` and :func:`rank_split` over a ``window(rows)`` function.

    Users are sorted by window length, so that each block is trimmed to its own longest window: the encoder
    then reads ~9 positions per Beauty user instead of ~50. Each user's rank does not depend on the other
    users of its block. With ``shard`` ``(rank, world)`` this process ranks every world-th block and
    ``reduce`` (a sum over processes) puts the ranks together, so every process ends with all of them.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    target = torch.as_tensor(target)
    table = model.item_table  # (N + 1, d)
    order = np.argsort(lengths, kind="stable")
    ranks = torch.zeros(len(order), dtype=torch.int64)
    top_items = torch.zeros((len(order), min(TOP, table.shape[0] - 1)) if top else (0, 0), dtype=torch.int64)
    rank, world = shard
    size = block_rows(batch_size, table.shape[0] - 1)
    try:
        for block, start in enumerate(range(0, len(order), size)):
            if block % world != rank:
                continue
            rows = order[start : start + size]
            h = torch.as_tensor(window(rows)).to(device, non_blocking=True)
            y = target[torch.from_numpy(rows)].to(device, non_blocking=True)
            scores = model.user_embedding(h).float() @ table.float().T  # (b, N + 1)
            if exclude_seen and seen is not None:
                items, starts, ends = seen
                excluded = torch.from_numpy(padded_rows(items, starts[rows], ends[rows])).to(device)
                scores = exclude_history(scores, excluded)
            elif exclude_seen:
                scores = exclude_history(scores, h)
            else:
                scores[:, PADDING_INDEX] = float("-inf")
            target_score = scores.gather(1, y[:, None])  # (b, 1)
            ranks[torch.from_numpy(rows)] = (scores > target_score).sum(1).cpu()
            if top:  # excluded items (score -inf) fill a short list's end as the padding index, never counted
                values, best = scores.topk(top_items.shape[1], dim=1)
                top_items[torch.from_numpy(rows)] = best.masked_fill(values == float("-inf"), PADDING_INDEX).cpu()
    finally:
        model.train(was_training)
    if world > 1:
        ranks = reduce(ranks)
        top_items = reduce(top_items) if top else top_items
    return (ranks.numpy(), top_items.numpy()) if top else ranks.numpy()


def rank_targets(
    model: torch.nn.Module,
    history: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    batch_size: int = 1024,
    exclude_seen: bool = True,
    seen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """0-based rank of each user's target among all items, history excluded. Runs on the model's device.

    ``history`` is the left-padded window the model reads; ``seen`` ``(items, starts, ends)`` the items to
    exclude for each user (:meth:`Split.seen`: the whole history, also beyond the window). Without ``seen``
    the window's items are excluded. :func:`rank_split` does the same from a split's flat arrays.
    """
    history = torch.as_tensor(history)
    lengths = (history != PADDING_INDEX).sum(1).numpy()
    window = lambda rows: trim_padding(history[torch.from_numpy(rows)])  # noqa: E731
    return _rank_blocks(model, window, lengths, target, batch_size, exclude_seen, seen, (0, 1), None)


def rank_split(
    model: torch.nn.Module, split, which: str, batch_size: int = 1024, shard=(0, 1), reduce=None, top: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`rank_targets` of a split's ``valid`` or ``test`` part, each block's windows cut from the flat
    arrays (no padded (users x max_len) array), the whole history excluded (``top``: see :func:`_rank_blocks`)."""
    ends, lengths = split.ends(which)
    target = split.valid_target if which == "valid" else split.test_target

    def window(rows: np.ndarray) -> np.ndarray:
        return right_aligned(split.items, ends[rows], lengths[rows], max(1, int(lengths[rows].max())))

    seen = split.seen(which)
    return _rank_blocks(model, window, lengths, target, batch_size, True, seen, shard, reduce, top)


def rank_pairs(
    model: torch.nn.Module, targets, batch_size: int = 1024, shard=(0, 1), reduce=None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and top items of :class:`~s4rec_train.splits.Targets`; an unknown target (0) gets
    :data:`UNKNOWN_RANK`, a miss at every k."""
    max_len = model.config.max_len
    lengths = np.minimum(targets.ends - targets.starts, max_len)

    def window(rows: np.ndarray) -> np.ndarray:
        width = max(1, int(lengths[rows].max()))
        return right_aligned(targets.items, targets.ends[rows], lengths[rows], width)

    seen = (targets.items, targets.starts, targets.ends)
    ranks, top = _rank_blocks(model, window, lengths, targets.target, batch_size, True, seen, shard, reduce, True)
    ranks[targets.target == PADDING_INDEX] = UNKNOWN_RANK
    return ranks, top


def trim_padding(history: torch.Tensor) -> torch.Tensor:
    """Drop columns that are padding for every row (exact: positions are right-aligned)."""
    real = (history != PADDING_INDEX).any(0)
    if not bool(real.any()):
        return history[:, -1:]
    first = int(real.int().argmax())
    return history[:, first:]


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """HR@k, NDCG@k and MRR@k from 0-based ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return {f"{name}@{k}": float("nan") for name in ("HR", "NDCG", "MRR") for k in ks}
    out = {}
    for k in ks:
        out[f"HR@{k}"] = float((ranks < k).mean())
    for k in ks:
        out[f"NDCG@{k}"] = float(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    for k in ks:
        out[f"MRR@{k}"] = float(np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def coverage(top_items: np.ndarray, num_items: int, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Coverage@k: the share of the ``num_items`` items in at least one row's first k of ``top_items``."""
    out = {}
    for k in ks:
        items = np.unique(top_items[:, :k])
        out[f"Coverage@{k}"] = float((items != PADDING_INDEX).sum() / num_items) if len(top_items) else float("nan")
    return out


def grouped_metrics(
    ranks: np.ndarray, is_head: np.ndarray, top_items: np.ndarray | None = None, num_items: int | None = None
) -> dict[str, dict[str, float]]:
    """Metrics overall, for head users and for tail users (with ``top_items``, catalogue coverage too)."""
    out = {}
    for group, rows in (("overall", slice(None)), ("head", is_head), ("tail", ~is_head)):
        out[group] = metrics_from_ranks(ranks[rows])
        if top_items is not None:
            out[group].update(coverage(top_items[rows], num_items))
    out["users"] = {"overall": int(len(ranks)), "head": int(is_head.sum()), "tail": int((~is_head).sum())}
    return out


def evaluate_split(
    model: torch.nn.Module, split, which: str = "test", batch_size: int = 1024, shard=(0, 1), reduce=None
) -> dict:
    """Grouped metrics on the ``valid`` or ``test`` part of a :class:`~s4rec_train.data.Split` (under DDP:
    each process ranks its share of the users, ``reduce`` gathers the ranks; see :func:`rank_split`). A time
    split ranks the users with a target in that period (:meth:`~s4rec_train.splits.TimeSplit.targets`)."""
    if which not in ("valid", "test"):
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
    if hasattr(split, "targets"):
        return evaluate_targets(model, split.targets(which), batch_size, shard, reduce)
    ranks, top = rank_split(model, split, which, batch_size, shard, reduce, top=True)
    return grouped_metrics(ranks, split.is_head, top, split.num_items)


def evaluate_targets(model: torch.nn.Module, targets, batch_size: int = 1024, shard=(0, 1), reduce=None) -> dict:
    """Grouped metrics of :class:`~s4rec_train.splits.Targets`, with how many targets and history items the
    model did not know (``unknown``; unknown targets are counted as misses)."""
    ranks, top = rank_pairs(model, targets, batch_size, shard, reduce)
    out = grouped_metrics(ranks, targets.is_head, top, model.item_table.shape[0] - 1)
    out["unknown"] = {"targets": targets.unknown_targets, "history_items": targets.unknown_history_items}
    return out


TABLE_COLUMNS = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS] + ["MRR@20", "Coverage@20"]


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table: one row per (split, group), one column per metric (``-`` where a checkpoint written
    before MRR and coverage lacks them)."""
    labels = [name.replace("Coverage", "Cov") for name in TABLE_COLUMNS]
    lines = [f"{'':14s}" + "".join(f"{n:>9s}" for n in labels) + f"{'users':>8s}"]
    for split_name, grouped in results.items():
        for group in ("overall", "head", "tail"):
            row = grouped[group]
            users = grouped.get("users", {}).get(group, "")
            cells = "".join(f"{row[n]:9.4f}" if n in row else f"{'-':>9s}" for n in TABLE_COLUMNS)
            lines.append(f"{split_name + ' ' + group:14s}" + cells + f"{users:>8}")
    return "\n".join(lines)


@torch.no_grad()
def intent_usage(
    encoder: torch.nn.Module, heads: S4RecHeads, split, batch_size: int = 1024, shard=(0, 1), reduce=None
) -> dict:
    """Which intents the users' (un-augmented) validation histories are assigned to, and how head users spread
    over them.

    Returns the number of prototypes assigned to at least one user, the largest intent's share of users, and
    the head share (fraction of head users) across used intents: min, max and standard deviation, next to
    the overall head share. A share spread near 0 means intents are not organised by history length. Under
    DDP each process assigns every world-th block of users and ``reduce`` sums the assignments.
    """
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    ends, lengths = split.ends("valid")
    intent = torch.zeros(split.num_users, dtype=torch.int64)
    rank, world = shard
    try:
        for block, start in enumerate(range(0, split.num_users, batch_size)):
            if block % world != rank:
                continue
            rows = np.arange(start, min(start + batch_size, split.num_users))
            width = max(1, int(lengths[rows].max()))
            h = torch.from_numpy(right_aligned(split.items, ends[rows], lengths[rows], width)).to(device)
            intent[start : start + len(rows)] = heads.assign(encoder.user_embedding(h)).cpu()
    finally:
        encoder.train(was_training)
    if world > 1:
        intent = reduce(intent)
    is_head = split.is_head
    k = heads.prototypes.shape[0]
    head = torch.as_tensor(is_head, dtype=torch.float64)
    users = torch.bincount(intent, minlength=k).double()
    heads_per = torch.bincount(intent, weights=head, minlength=k)
    used = users > 0
    share = heads_per[used] / users[used]
    return {
        "num_intents": k,
        "intents_used": int(used.sum()),
        "largest_intent_share": float(users.max() / users.sum()),
        "head_share_overall": float(head.mean()),
        "head_share_min": float(share.min()),
        "head_share_max": float(share.max()),
        "head_share_std": float(share.std(unbiased=False)),
        # Weighted by intent size, so tiny intents with 1-2 users do not dominate the spread.
        "head_share_std_weighted": float(((users[used] * (share - head.mean()) ** 2).sum() / users[used].sum()).sqrt()),
    }
