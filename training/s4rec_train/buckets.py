"""The encoder over a batch of mixed-length histories, run on CPU in groups of similar length.

A batch of randomly drawn users is padded to its longest history: on Beauty (mean 8.9 items, window 50) a batch
of 512 random users is ~80% padding, and on CPU every padded position costs as much as a real one (the linear
layers dominate: 12 d^2 multiply-adds per position against 2 t d for attention). :func:`encode` sorts the rows by
the span of their history, cuts them into at most :data:`MAX_GROUPS` groups that minimise the padded positions,
runs the encoder on each group trimmed to its own longest span, and puts the outputs back in the batch's order.
Trimming left padding does not change a history's outputs (the encoder's positions are right-aligned,
:mod:`s4rec_train.model`), so only the dropout masks differ from the padded run: the training is the same in
distribution, and a batch's terms (the next-item loss, Sinkhorn, the contrastive negatives, the adversary)
still see all of its users together.

Measured on Beauty, random batches of 512 users, BCE, S4Rec with the mean side vector, 1 thread:
``benchmarks/train_throughput.py`` prints the current figures (``--batching random``).

On CUDA the padded batch runs as it is: padding costs little there, and finding the spans would read values
back to the host every step. Batches that are already of similar length (``tokens`` and ``users`` batching:
:func:`groups` finds less than :data:`MIN_SAVING` to save) also run as they are, bit for bit as before.
"""

from __future__ import annotations

import numpy as np
import torch

from s4rec.windows import PADDING_INDEX

MAX_GROUPS = 4  # more groups save little more on Beauty/Toys and cost a pass each
MIN_SAVING = 0.25  # run as one batch unless grouping removes at least this share of the positions


def spans(history: torch.Tensor) -> np.ndarray:
    """Per row, the number of columns from its first real item to the end (left padding excluded), (b,).

    A masked item inside a history (0) does not shorten its span."""
    real = (history != PADDING_INDEX).cpu().numpy()
    first = np.where(real.any(1), real.argmax(1), real.shape[1])
    return real.shape[1] - first


def groups(span: np.ndarray, max_groups: int = MAX_GROUPS) -> list[np.ndarray] | None:
    """Row indices of up to ``max_groups`` groups of similar span that minimise the padded positions, or None when
    that saves less than :data:`MIN_SAVING` of them (run the batch as it is)."""
    b = len(span)
    if b < 2 * max_groups:
        return None
    order = np.argsort(span, kind="stable")
    s = span[order]
    padded = b * int(s[-1])
    # Groups are runs of the sorted spans; a group of rows [i, j) costs (j - i) * s[j - 1] positions. Cut points
    # are the ends of runs of equal span (at most max_len of them), so this exact search is cheap.
    ends = np.flatnonzero(np.diff(s)) + 1
    ends = [*map(int, ends), b]
    layer = {0: (0, [])}  # rows covered -> (fewest positions, cuts) with exactly g groups
    best = (padded, [b])
    for _ in range(max_groups):
        layer_next: dict[int, tuple[int, list[int]]] = {}
        for start, (cost, cut_list) in layer.items():
            for end in ends:
                if end > start:
                    total = cost + (end - start) * int(s[end - 1])
                    if end not in layer_next or total < layer_next[end][0]:
                        layer_next[end] = (total, [*cut_list, end])
        layer = layer_next
        if b in layer and layer[b][0] < best[0]:
            best = layer[b]
    cost, cut_list = best
    if padded - cost < MIN_SAVING * padded:
        return None
    bounds = [0, *cut_list]
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def encode(model: torch.nn.Module, history: torch.Tensor, last_only: bool = False) -> torch.Tensor:
    """``model(history, last_only)`` for a left-padded batch (b, t): (b, t, d), or (b, d) with ``last_only``.

    On CPU, mixed-length batches run in groups (see the module docstring); the positions a group does not compute
    (left padding beyond its own span) hold zeros, which no loss reads: the next-item loss reads real positions,
    the side vectors the last or the real ones.
    """
    if history.device.type != "cpu":
        return model(history, last_only=last_only)
    span = spans(history)
    parts = groups(span)
    if parts is None:
        return model(history, last_only=last_only)
    b, t = history.shape
    outputs, rows = [], []
    for part in parts:
        index = torch.from_numpy(part)
        width = max(1, int(span[part].max()))
        outputs.append(model(history[index, t - width :], last_only=last_only))
        rows.append(index)
    index = torch.cat(rows)
    if last_only:
        out = outputs[0].new_empty((b, outputs[0].shape[-1]))
        return out.index_copy(0, index, torch.cat(outputs))
    d = outputs[0].shape[-1]
    padded = [torch.nn.functional.pad(o, (0, 0, t - o.shape[1], 0)) for o in outputs]  # right-align to t
    out = padded[0].new_empty((b, t, d))
    return out.index_copy(0, index, torch.cat(padded))
