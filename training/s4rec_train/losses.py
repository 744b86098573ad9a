"""Every term of S4Rec's loss (the paper's eq. 14, as docs/s4rec.md describes it), each a function of tensors the
training step already has.

* :func:`next_item_loss`: L_SR, full-softmax cross-entropy (or sampled softmax for large catalogues,
  :mod:`s4rec_train.sampled`, or one sampled negative) of the next item at the non-padded positions only, so
  that no (batch, length, items) logits tensor is ever built;
* :func:`cluster_loss`: L_Clust, Sinkhorn equal-partition targets (:func:`sinkhorn`) against soft assignments;
* :func:`contrastive_loss`: L_SCL, NT-Xent between two views with the other intents as extra negatives;
* :func:`distill_loss`: L_CKD, cluster-level self-distillation from the assigned prototype;
* the head/tail adversary's gradient reversal (:func:`reverse_gradient`) and its DANN ramp.

Which terms run, with which weights, is :mod:`s4rec_train.objectives`. Nothing here reads a value back to
the host, so a CUDA step never waits (tests/test_objectives.py checks it on the meta device).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .sampled import sampled_softmax_loss

if TYPE_CHECKING:
    from .batching import Batch
    from .config import ObjectiveConfig
    from .distributed import BatchGroup
    from .model import SASRec
    from .sampled import NegativeSampler


def next_item_loss(
    model: SASRec,
    hidden: torch.Tensor,
    batch: Batch,
    kind: str = "softmax",
    generator=None,
    sampler: NegativeSampler | None = None,
    low_precision: bool = False,
) -> torch.Tensor:
    """L_SR: cross-entropy of the next item at the non-padded positions only.

    ``hidden`` (b, t, d) the encoder's output for ``batch.history``. ``kind`` ``softmax`` scores every item
    (full-catalogue cross-entropy); ``sampled`` the target against ``sampler``'s shared negatives with the
    logQ correction (:func:`s4rec_train.sampled.sampled_softmax_loss`); ``bce`` one positive against one
    uniformly sampled negative (the paper's SASRec), drawn from ``generator`` (torch's default generator when
    None). ``low_precision`` (bf16 training) computes and keeps the logits block in bf16: half the memory of
    the (m, N) block of a large catalogue.
    """
    d = hidden.shape[-1]
    h = hidden.reshape(-1, d).index_select(0, batch.positions)  # (m, d)
    target = batch.target.reshape(-1).index_select(0, batch.positions)  # (m,) in 1..N
    table = model.item_table
    if kind == "softmax":
        if low_precision:
            logits = h.to(torch.bfloat16) @ table[1:].to(torch.bfloat16).T  # (m, N) in bf16
            return F.cross_entropy(logits, target - 1).float()
        logits = h @ table[1:].T  # (m, N), never (b, t, N)
        return F.cross_entropy(logits.float(), target - 1)
    sparse = model.item_embedding.sparse  # TrainConfig.sparse_items: only the rows used get gradient
    if kind == "sampled":
        return sampled_softmax_loss(h, target, table, sampler, batch.in_batch, low_precision, sparse)
    negative = torch.randint(1, table.shape[0], target.shape, device=target.device, generator=generator)
    rows = (lambda ids: F.embedding(ids, table, sparse=True)) if sparse else table.__getitem__
    pos = (h * rows(target)).sum(-1).float()
    neg = (h * rows(negative)).sum(-1).float()
    return F.softplus(-pos).mean() + F.softplus(neg).mean()


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-coefficient`` backward (DANN)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """``x`` unchanged; what flows back through it is scaled by ``-coefficient`` (a gradient-reversal layer)."""
    return GradientReversal.apply(x, coefficient)


def dann_coefficient(progress: float) -> float:
    """2 / (1 + exp(-10 p)) - 1: 0 at the start of training, ~1 from p = 0.5 on."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


@torch.no_grad()
def sinkhorn(
    scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, group: BatchGroup | None = None
) -> torch.Tensor:
    """Equal-partition soft assignments q (b, K) from similarities (b, K) (SwAV's Sinkhorn-Knopp).

    Alternately normalises columns (each prototype gets b/K of the mass) and rows; ends on rows, so every
    row sums to exactly 1 and columns sum to b/K up to the iterations' precision. With ``group`` (DDP) the
    rows are this process's share of the global batch and the sums are all-reduced (SwAV's distributed
    Sinkhorn), so the partition is that of the global batch.
    """
    b, k = scores.shape
    logits = scores.float() / epsilon
    shift = logits.max()  # shifting by a constant does not change the result (the same one on every process)
    if group is not None:
        b = group.total * (b // group.sizes[group.rank])  # global rows (2 per sequence for the swapped views)
        group.all_reduce(shift, dist.ReduceOp.MAX)
    q = torch.exp(logits - shift)  # (b, K)
    total = q.sum()
    if group is not None:
        group.all_reduce(total)
    q = q / total
    for _ in range(iterations):
        columns = q.sum(0, keepdim=True)
        if group is not None:
            group.all_reduce(columns)
        q = q / columns / k  # columns sum to 1/K
        q = q / q.sum(1, keepdim=True) / b  # rows sum to 1/b
    return q * b


def contrastive_loss(
    views: torch.Tensor,
    centroids: torch.Tensor,
    intent: torch.Tensor,
    temperature: float,
    group: BatchGroup | None = None,
) -> torch.Tensor:
    """L_SCL (eq. 10): NT-Xent between two views with the other prototypes as extra negatives.

    ``views`` (2b, d) normalised, rows i and i + b are the same user; ``intent`` (b,) is h(u). With ``group``
    (DDP) the other users of every process are negatives too (gathered with their gradients).
    """
    if group is not None:
        return _gathered_contrastive_loss(views, centroids, intent, temperature, group)
    two_b = views.shape[0]
    b = two_b // 2
    similarity = views @ views.T / temperature  # (2b, 2b)
    eye = torch.eye(two_b, dtype=torch.bool, device=views.device)
    similarity = similarity.masked_fill(eye, float("-inf"))
    to_prototypes = views @ centroids.T / temperature  # (2b, K)
    own = intent.repeat(2)[:, None]  # (2b, 1)
    to_prototypes = to_prototypes.scatter(1, own, float("-inf"))  # h(u) is not a negative
    logits = torch.cat([similarity, to_prototypes], 1)
    positive = torch.arange(two_b, device=views.device).roll(b)  # i <-> i + b
    return F.cross_entropy(logits, positive)


def _gathered_contrastive_loss(views, centroids, intent, temperature, group: BatchGroup) -> torch.Tensor:
    """:func:`contrastive_loss` of this process's users against the global batch's 2B views."""
    b = views.shape[0] // 2
    first, second = group.gather(views[:b]), group.gather(views[b:])  # (B, d) each, in rank order
    everyone = torch.cat([first, second])  # (2B, d): the one-process layout of the global batch
    total = first.shape[0]
    mine = torch.arange(b, device=views.device) + group.offset
    itself = torch.cat([mine, mine + total])[:, None]  # (2b, 1) each view's own column
    similarity = (views @ everyone.T / temperature).scatter(1, itself, float("-inf"))  # (2b, 2B)
    to_prototypes = views @ centroids.T / temperature
    to_prototypes = to_prototypes.scatter(1, intent.repeat(2)[:, None], float("-inf"))
    positive = torch.cat([mine + total, mine])  # view 1 <-> view 2 of the same user
    return F.cross_entropy(torch.cat([similarity, to_prototypes], 1), positive)


def distill_loss(views: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_CKD (eqs. 11-12): KL(softmax(mu_h / tau3) || softmax(z / tau3)) over the d dims, summed over views.

    ``views`` (2b, d) normalised; ``teacher`` (b, d) the assigned prototypes (the caller detaches it or not:
    ObjectiveConfig.detach_teacher).
    """
    b = teacher.shape[0]
    target = F.log_softmax(teacher / temperature, -1).repeat(2, 1)  # (2b, d)
    student = F.log_softmax(views / temperature, -1)
    kl = F.kl_div(student, target, log_target=True, reduction="sum")
    return kl / b  # per user, view 1 + view 2


def cluster_loss(
    views: torch.Tensor,
    original: torch.Tensor | None,
    centroids: torch.Tensor,
    config: ObjectiveConfig,
    group: BatchGroup | None = None,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_Clust (eq. 4): cross-entropy of Sinkhorn targets q against soft assignments p of both views.

    ``cluster_target`` "original": q of the un-augmented histories' vectors ``original`` (b, d) supervises both
    views (``target``, when given, is that q already computed); "swapped": each view's q supervises the other.
    """
    b = views.shape[0] // 2
    log_p = F.log_softmax(views @ centroids.T / config.cluster_temperature, -1)  # (2b, K)
    eps, iters = config.sinkhorn_epsilon, config.sinkhorn_iterations
    if config.cluster_target == "original":
        q = target if target is not None else sinkhorn(original @ centroids.T, eps, iters, group)
        q = q.repeat(2, 1)  # (2b, K)
    else:  # view 1's q supervises view 2's p and back
        q = sinkhorn(views @ centroids.T, eps, iters, group).roll(b, 0)
    return -(q * log_p).sum(-1).mean() * 2  # per user, view 1 + view 2
