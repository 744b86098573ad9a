"""Sampled softmax for large catalogues: the next item against a few thousand shared negatives instead of
every item, corrected for how the negatives were drawn (logQ).

Full-softmax cross-entropy builds an (m positions x N items) logits block each step (plus as much again for
its gradient); at 10^6 items and the ~2,300 positions of a Beauty-like batch that is 9 GB in float32. Here
each step draws one set of negatives for the whole batch (:class:`NegativeSampler`):

* ``uniform``: items drawn uniformly from 1..N;
* ``popularity``: items drawn in proportion to how often they are a training target;
* ``mixed``: half of each (Yang et al. 2020, "Mixed negative sampling");
* plus, optionally, the batch's own target items (in-batch negatives, at most ``cap``; under DDP those of
  the global batch, so every process scores the same candidates).

Every candidate's logit, the positive's included, is corrected by the log of its expected count among the
negatives, ``log E[c_j] = log(n_uniform / N + (n_popular + n_in_batch) * p_j)`` with p_j the item's share of
training targets (in-batch items are draws from that same distribution), as TensorFlow's
``sampled_softmax_loss`` (``subtract_log_q``) does; then the softmax over [positive, negatives] is, in
expectation, the full softmax. A negative equal to a position's own target is masked out of that position's
row (an "accidental hit": in-batch negatives always contain it). Draws come from a generator of their own,
seeded the same in every process. Nothing reads a value back to the host.

:data:`SAMPLED_ABOVE` is where ``--loss auto`` switches from the full softmax to this loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import SAMPLERS

# Catalogue size above which `--loss auto` trains with sampled softmax. Measured with
# benchmarks/softmax_threshold.py (this 2-core machine shared with other jobs, load 4.2-5.7, 1 torch thread; one
# step = encoder forward + loss + backward + Adam on a Beauty-like batch of 2,304 positions, d 64; sampled =
# 1,024 uniform + 1,024 in-batch negatives): full softmax vs sampled, seconds per step and peak RSS
#   10^4 items: 1.09 s, 0.70 GB (logits block 88 MB)  vs 0.34 s, 0.55 GB
#   3*10^4:     2.30 s, 1.24 GB (264 MB)               vs 0.29 s, 0.59 GB
#   10^5:       9.87 s, 3.18 GB (879 MB)               vs 0.40 s, 0.72 GB
#   10^6:       not run: the block alone is 8.8 GB, as much again for its gradient; sampled 2.57 s, 2.0 GB
#               (0.32 s, 1.3 GB with TrainConfig.sparse_items: the dense Adam over 64 M table entries dominates).
# Full softmax is the better loss (the measured default on Beauty and Toys, 12k items) and stays affordable
# while its block is under ~0.5 GB (50,000 items x 2,304 positions x 4 bytes = 0.44 GB; ML-20M's 27k items
# included); beyond that it grows linearly and costs >10x the sampled step on CPU (25x at 10^5).
SAMPLED_ABOVE = 50_000


def resolve_loss(kind: str, num_items: int) -> str:
    """The next-item loss a run trains with: ``auto`` is ``softmax`` up to :data:`SAMPLED_ABOVE` items."""
    if kind != "auto":
        return kind
    return "softmax" if num_items <= SAMPLED_ABOVE else "sampled"


class NegativeSampler:
    """Draws each step's shared negatives and knows every item's expected count among them."""

    def __init__(
        self,
        target_counts: np.ndarray,
        negatives: int,
        sampler: str = "uniform",
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ):
        """``target_counts`` (N + 1,): how often each item index is a training target (index 0 unused)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        counts = np.asarray(target_counts, dtype=np.int64)[1:]
        if counts.sum() <= 0:
            raise ValueError("target_counts must count at least one training target")
        self.num_items = len(counts)
        self.popular = {"uniform": 0, "popularity": negatives, "mixed": negatives // 2}[sampler]
        self.uniform = negatives - self.popular
        self.generator = generator
        self.device = torch.device(device)
        # Integer cumulative counts: exact draws even where float32 could not tell 10^9 apart from 10^9 + 1.
        self.cdf = torch.from_numpy(np.cumsum(counts)).to(self.device)
        self.total = int(counts.sum())
        self.share = torch.from_numpy(counts / counts.sum()).float().to(self.device)  # p_j, (N,)

    def draw(self) -> torch.Tensor:
        """This step's sampled negatives, item indices 1..N: (uniform + popular,)."""
        parts = []
        if self.uniform:
            shape = (self.uniform,)
            parts.append(torch.randint(1, self.num_items + 1, shape, device=self.device, generator=self.generator))
        if self.popular:
            u = torch.randint(0, self.total, (self.popular,), device=self.device, generator=self.generator)
            parts.append(torch.searchsorted(self.cdf, u, right=True) + 1)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def log_expected(self, items: torch.Tensor, in_batch: int = 0) -> torch.Tensor:
        """log of the expected count of each of ``items`` among the step's negatives (``in_batch``: how many
        in-batch items join them)."""
        share = self.share[items - 1]
        return torch.log(self.uniform / self.num_items + (self.popular + in_batch) * share)


def sampled_softmax_loss(
    h: torch.Tensor,
    target: torch.Tensor,
    table: torch.Tensor,
    sampler: NegativeSampler,
    in_batch: torch.Tensor | None = None,
    low_precision: bool = False,
    sparse: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of each position's target against the shared negatives, logQ-corrected.

    ``h`` (m, d) hidden states of the positions with a target, ``target`` (m,) their items, ``table``
    (N + 1, d) the item table, ``in_batch`` (k,) extra in-batch candidates. With ``low_precision`` the
    (m, C) scores are computed in bf16 (the rows of the table are cast for the product). ``sparse``: the
    table's gradient is sparse (its rows of the candidates and targets only; see ``TrainConfig.sparse_items``).
    """
    negatives = sampler.draw()
    if in_batch is not None and in_batch.numel():
        negatives = torch.cat([negatives, in_batch])
    extra = 0 if in_batch is None else in_batch.shape[0]
    candidates = F.embedding(negatives, table, sparse=sparse)  # (C, d); sparse: only these rows get gradient
    if low_precision:
        scores = (h.to(torch.bfloat16) @ candidates.to(torch.bfloat16).T).float()  # (m, C)
    else:
        scores = h @ candidates.T  # (m, C)
    scores = scores - sampler.log_expected(negatives, extra)
    scores = scores.masked_fill(negatives[None, :] == target[:, None], float("-inf"))  # accidental hits
    positive = (h * F.embedding(target, table, sparse=sparse)).sum(-1, keepdim=True).float()
    positive = positive - sampler.log_expected(target, extra)[:, None]
    logits = torch.cat([positive, scores.float()], 1)  # (m, 1 + C): the positive is class 0
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
