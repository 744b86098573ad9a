"""Training batches: what one epoch trains on (:class:`Sequences`), which sequences go together
(:func:`batch_order`), and how a batch is cut, split between processes and moved to the device.

A training sequence is a user's training part (the default: inputs s_1..s_{n-1}, targets s_2..s_n at every
position) or, with ``prefix_split``, one prefix of it (inputs s_1..s_{j-1}, the most recent ``max_len`` of
them, target s_j at the last position only; :func:`prefix_sequences`). Either way it is a window of the
split's flat item array, given by where it ends and how long it is; each batch's windows are cut from that
array on the host (:func:`s4rec.windows.right_aligned`, trimmed to the longest window of the batch: exact,
because positions are right-aligned), pinned and moved with non-blocking copies. Each batch carries the flat
indices of its positions that have a target, so that the next-item loss is computed there only.

Under DistributedDataParallel every process computes the same global batches (same seed) and keeps every
``world``-th sequence of each (:func:`iterate_batches` with ``shard``), with the weights that make the
all-reduced gradient that of the global batch's mean loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from s4rec.windows import right_aligned

from .config import BATCHING
from .data import Split

__all__ = [
    "BATCHING", "Batch", "Sequences", "batch_order", "input_lengths", "iterate_batches", "merge_small_batches",
    "prefix_sequences", "resolve_batching", "target_items", "user_sequences",
]  # fmt: skip


@dataclass
class Batch:
    users: torch.Tensor  # (b,) the user row of each sequence (its head/tail label)
    history: torch.Tensor  # (b, t) left-padded inputs, trimmed to the longest in the batch
    target: torch.Tensor  # (b, t) next items, 0 where there is nothing to predict; (b, 1) with last_only
    positions: torch.Tensor  # (m,) flat indices into target's (b * t) of the positions with a target
    last_only: bool = False  # prefix split: the only target is at the last position
    # Under DDP (1.0 otherwise): world size x this process's share of the global batch's positions (for the
    # next-item loss) and sequences (S4Rec's per-sequence terms), so that DDP's mean of the processes'
    # gradients is the gradient of the global batch's mean loss.
    loss_weight: float = 1.0
    sequence_weight: float = 1.0
    shard_sizes: tuple[int, ...] | None = None  # sequences of each process in this global batch (DDP)
    in_batch: torch.Tensor | None = None  # target items of the global batch: the sampled loss's in-batch negatives


@dataclass(frozen=True)
class Sequences:
    """The training sequences of one epoch: sequence k reads ``split.items[end[k] - length[k]:end[k]]``."""

    user: np.ndarray  # (S,) user row of each sequence
    end: np.ndarray  # (S,) int64
    length: np.ndarray  # (S,) int64 input positions, at most max_len (0: nothing to learn)
    last_only: bool  # targets at the last position only (prefixes) or at every position (users)

    def __len__(self) -> int:
        return len(self.end)

    @property
    def positions(self) -> np.ndarray:
        """Training positions (next-item predictions) of each sequence."""
        return np.minimum(self.length, 1) if self.last_only else self.length


def user_sequences(split: Split) -> Sequences:
    """One sequence per user: its training part, a target at every position."""
    end, length = split.ends("train_input")
    return Sequences(np.arange(split.num_users), end, length, last_only=False)


def prefix_sequences(split: Split) -> Sequences:
    """One sequence per prefix of each user's training part (sub-sequence splitting, as in the SASRec-CE
    baselines of BSARec, ICSRec and DuoRec): a user with n training items gives n - 1 sequences, the j-th
    reading items 1..j (the most recent ``max_len`` of them) and predicting item j + 1."""
    count = np.maximum(split.train_length - 1, 0)
    user = np.repeat(np.arange(split.num_users), count)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    j = np.arange(int(count.sum())) - np.repeat(first, count) + 1  # 1..n-1 within each user
    end = split.offsets[:-1][user] + j
    return Sequences(user, end, np.minimum(j, split.max_len), last_only=True)


def batch_order(
    input_length: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    batching: str = "tokens",
    positions: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Sequences of each batch for one epoch, shuffled.

    * ``random``: random batches of ``batch_size`` sequences. Almost every such batch holds one long history,
      so it is padded to nearly ``max_len`` although most users have ~9 items.
    * ``users``: sequences are shuffled, cut into pools of 32 batches and sorted by length inside each pool,
      then cut into batches of ``batch_size`` whose order is shuffled again. Short windows, but a batch of
      256 two-item users weighs as much in a step as a batch of 256 fifty-item users, which measurably slowed
      learning of the next-item loss on Beauty (docs/s4rec.md, benchmarks/RESULTS.md).
    * ``tokens`` (default): as ``users``, but each pool is cut into batches holding about as many training
      positions as a random batch (``batch_size`` x the mean positions per sequence): short-history batches
      hold more users, long-history batches fewer. Steps average over as many next-item predictions as random
      batches do (the loss curve follows the random one) while the window shrinks to the batch's longest
      history.

    ``positions`` (default: ``input_length``) are the training positions of each sequence: a prefix has one,
    so with prefixes ``tokens`` batches hold ``batch_size`` prefixes, as ``users`` batches do.
    """
    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    positions = input_length if positions is None else positions
    order = rng.permutation(len(input_length))
    order = order[input_length[order] > 0]  # users whose training part has one item teach nothing
    if batching == "random":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    budget = batch_size * float(positions[order].mean())
    pool = 32 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(input_length[chunk], kind="stable")]
        if batching == "users":
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
            continue
        # cut where the running count of positions crosses a multiple of the budget
        cut = np.floor(np.cumsum(positions[chunk]) / budget).astype(np.int64)
        bounds = np.flatnonzero(np.diff(cut)) + 1
        batches.extend(b for b in np.split(chunk, bounds) if len(b))
    return [batches[i] for i in rng.permutation(len(batches))]


def resolve_batching(batching: str, objectives) -> str:
    """The batching a run uses (``TrainConfig.batching`` with ``auto`` resolved) for its ``ObjectiveConfig``.

    S4Rec's batch-level terms need batches of randomly drawn users: the Sinkhorn targets split each batch equally
    over K prototypes (a batch of fewer users than K, as length-sorted batches of long histories are, blurs them),
    and the head/tail adversary needs both groups in a batch. Length-sorted batches (``tokens``, ``users``) hold
    only head or only tail users: on Beauty 81 of 89 ``tokens`` batches (92.5% of users), where the adversary's
    loss stays at ln 2. So ``auto`` picks ``random`` when those terms are on (``tokens`` otherwise: faster on CPU
    and measured best for the backbone), and the sorted modes are refused for them, saying why.
    """
    batch_terms = objectives.cluster_weight > 0 or objectives.adversary_weight > 0 or (
        objectives.needs_prototypes and objectives.intent_from == "q")  # fmt: skip
    if batching == "auto":
        return "random" if batch_terms else "tokens"
    if batch_terms and batching != "random":
        raise ValueError(
            f"batching {batching!r} groups users of similar history length, so a batch holds only head or only tail "
            "users (the head/tail adversary cannot learn) and long-history batches hold fewer users than the "
            "intents (Sinkhorn's equal partition blurs): S4Rec's clustering and adversary need random batches. "
            "Use --batching random (or auto), or turn those terms off (--cluster-weight 0 --adversary-weight 0)."
        )
    return batching


def merge_small_batches(batches: list[np.ndarray], world: int) -> list[np.ndarray]:
    """Batches with fewer sequences than processes joined to the batch before (after, for the first), so
    that every process has at least one sequence of every global batch. `tokens` batching makes such batches
    only from a lone long history at a pool's end."""
    out: list[np.ndarray] = []
    for batch in batches:
        if out and (len(batch) < world or len(out[-1]) < world):
            out[-1] = np.concatenate([out[-1], batch])
        else:
            out.append(batch)
    return out


def input_lengths(split: Split) -> np.ndarray:
    """Training positions per user (the training part minus its first item, capped at max_len)."""
    return np.minimum(np.maximum(split.train_length - 1, 0), split.max_len)


def target_items(split: Split, sequences: Sequences, rows: np.ndarray | None = None) -> np.ndarray:
    """The target items of every training position of the sequences ``rows`` (all by default), flat: a
    global batch's in-batch negatives, or all of them for the sampling distribution."""
    rows = np.arange(len(sequences)) if rows is None else rows
    if sequences.last_only:
        return split.items[sequences.end[rows]]
    length = sequences.length[rows]
    first = np.concatenate([[0], np.cumsum(length)[:-1]])
    source = np.repeat(sequences.end[rows] - length + 1 - first, length) + np.arange(int(length.sum()))
    return split.items[source]


def iterate_batches(
    split: Split,
    user_batches: list[np.ndarray],
    device: torch.device,
    sequences: Sequences | None = None,
    shard: tuple[int, int] = (0, 1),
    in_batch: tuple[int, np.random.Generator] | None = None,
):
    """Training batches of the given sequences (users by default), cut and indexed on the host, moved with
    pinned non-blocking copies.

    ``shard`` ``(rank, world)``: this process's part of each global batch (every world-th sequence).
    ``in_batch`` ``(cap, rng)``: attach the global batch's target items (at most ``cap``, a random subset
    drawn from ``rng`` beyond that; every process draws the same) as ``Batch.in_batch``.
    """
    sequences = sequences if sequences is not None else user_sequences(split)
    rank, world = shard
    pin = device.type == "cuda"
    positions_of = sequences.positions
    for rows in user_batches:
        rows = np.sort(rows)
        mine = rows[rank::world] if world > 1 else rows
        length = sequences.length[mine]
        t = int(length.max())
        history = right_aligned(split.items, sequences.end[mine], length, t)
        if sequences.last_only:  # one target per sequence, at its last position: (b, 1)
            target = split.items[sequences.end[mine]].astype(np.int64)[:, None]
        else:
            target = right_aligned(split.items, sequences.end[mine] + 1, length, t)
        positions = np.flatnonzero(target.reshape(-1))
        users = sequences.user[mine]
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (users, history, target, positions)]
        extra = {}
        if in_batch is not None:
            cap, rng = in_batch
            items = target_items(split, sequences, rows).astype(np.int64)
            if len(items) > cap:
                items = items[rng.choice(len(items), cap, replace=False)]
            extra["in_batch"] = torch.from_numpy(items)
        if pin:
            tensors = [x.pin_memory() for x in tensors]
            extra = {k: v.pin_memory() for k, v in extra.items()}
        moved = [x.to(device, non_blocking=True) for x in tensors]
        extra = {k: v.to(device, non_blocking=True) for k, v in extra.items()}
        if world > 1:
            total = float(positions_of[rows].sum())
            extra.update(
                loss_weight=world * float(positions_of[mine].sum()) / total,
                sequence_weight=world * len(mine) / len(rows),
                shard_sizes=tuple(len(rows[r::world]) for r in range(world)),
            )
        yield Batch(*moved, last_only=sequences.last_only, **extra)
