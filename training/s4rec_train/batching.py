"""Training batches: which users go together (:func:`batch_order`) and how a batch reaches the device.

Batches are cut on the host from the split's pre-padded arrays, trimmed to the longest history in the batch
(exact, because positions are right-aligned), pinned and moved with non-blocking copies. Each batch carries
the flat indices of its positions that have a target, so that the next-item loss is computed there only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import BATCHING
from .data import Split

__all__ = ["BATCHING", "Batch", "batch_order", "input_lengths", "iterate_batches"]


@dataclass
class Batch:
    users: torch.Tensor  # (b,) user rows in the split
    history: torch.Tensor  # (b, t) left-padded inputs, trimmed to the longest in the batch
    target: torch.Tensor  # (b, t) next items, 0 where there is nothing to predict
    positions: torch.Tensor  # (m,) flat indices into (b * t) of the positions with a target


def batch_order(
    input_length: np.ndarray, batch_size: int, rng: np.random.Generator, batching: str = "tokens"
) -> list[np.ndarray]:
    """Users of each batch for one epoch, shuffled.

    * ``random``: random batches of ``batch_size`` users. Almost every such batch holds one long history, so
      it is padded to nearly ``max_len`` although most users have ~9 items.
    * ``users``: users are shuffled, cut into pools of 32 batches and sorted by length inside each pool, then
      cut into batches of ``batch_size`` users whose order is shuffled again. Short windows, but a batch of
      256 two-item users weighs as much in a step as a batch of 256 fifty-item users, which measurably slowed
      learning of the next-item loss on Beauty (docs/s4rec.md, benchmarks/RESULTS.md).
    * ``tokens`` (default): as ``users``, but each pool is cut into batches holding about as many training
      positions as a random batch (``batch_size`` x the mean positions per user): short-history batches hold
      more users, long-history batches fewer. Steps average over as many next-item predictions as random
      batches do (the loss curve follows the random one) while the window shrinks to the batch's longest
      history.
    """
    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    order = rng.permutation(len(input_length))
    order = order[input_length[order] > 0]  # users whose training part has one item teach nothing
    if batching == "random":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    budget = batch_size * float(input_length[order].mean())
    pool = 32 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(input_length[chunk], kind="stable")]
        if batching == "users":
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
            continue
        # cut where the running count of positions crosses a multiple of the budget
        cut = np.floor(np.cumsum(input_length[chunk]) / budget).astype(np.int64)
        bounds = np.flatnonzero(np.diff(cut)) + 1
        batches.extend(b for b in np.split(chunk, bounds) if len(b))
    return [batches[i] for i in rng.permutation(len(batches))]


def input_lengths(split: Split) -> np.ndarray:
    """Training positions per user (the training part minus its first item, capped at max_len)."""
    return np.minimum(np.maximum(split.train_length - 1, 0), split.max_len)


def iterate_batches(split: Split, user_batches: list[np.ndarray], device: torch.device):
    """Training batches for the given users, cut and indexed on the host, moved with pinned non-blocking copies."""
    input_length = input_lengths(split)
    pin = device.type == "cuda"
    for users in user_batches:
        users = np.sort(users)
        t = int(input_length[users].max())
        history = split.train_input[users, -t:]
        target = split.train_target[users, -t:]
        positions = np.flatnonzero(target.reshape(-1))
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (users, history, target, positions)]
        if pin:
            tensors = [x.pin_memory() for x in tensors]
        yield Batch(*(x.to(device, non_blocking=True) for x in tensors))
