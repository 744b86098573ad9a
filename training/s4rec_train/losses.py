"""Every term of S4Rec's loss (METHOD.md eq. 14), each a function of tensors the training step already has.

* :func:`next_item_loss`: L_SR, full-softmax cross-entropy (or one sampled negative) of the next item at the
  non-padded positions only, so that no (batch, length, items) logits tensor is ever built;
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
import torch.nn.functional as F

if TYPE_CHECKING:
    from .batching import Batch
    from .config import ObjectiveConfig
    from .model import SASRec


def next_item_loss(
    model: SASRec, hidden: torch.Tensor, batch: Batch, kind: str = "softmax", generator=None
) -> torch.Tensor:
    """L_SR: cross-entropy of the next item at the non-padded positions only.

    ``hidden`` (b, t, d) the encoder's output for ``batch.history``. ``kind`` ``softmax`` scores every item
    (full-catalogue cross-entropy); ``bce`` one positive against one uniformly sampled negative (the paper's
    SASRec), drawn from ``generator`` (torch's default generator when None).
    """
    d = hidden.shape[-1]
    h = hidden.reshape(-1, d).index_select(0, batch.positions)  # (m, d)
    target = batch.target.reshape(-1).index_select(0, batch.positions)  # (m,) in 1..N
    table = model.item_table
    if kind == "softmax":
        logits = h @ table[1:].T  # (m, N), never (b, t, N)
        return F.cross_entropy(logits.float(), target - 1)
    negative = torch.randint(1, table.shape[0], target.shape, device=target.device, generator=generator)
    pos = (h * table[target]).sum(-1).float()
    neg = (h * table[negative]).sum(-1).float()
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
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Equal-partition soft assignments q (b, K) from similarities (b, K) (SwAV's Sinkhorn-Knopp).

    Alternately normalises columns (each prototype gets b/K of the mass) and rows; ends on rows, so every
    row sums to exactly 1 and columns sum to b/K up to the iterations' precision.
    """
    b, k = scores.shape
    logits = scores.float() / epsilon
    q = torch.exp(logits - logits.max())  # (b, K); shifting by a constant does not change the result
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(0, keepdim=True) / k  # columns sum to 1/K
        q = q / q.sum(1, keepdim=True) / b  # rows sum to 1/b
    return q * b


def contrastive_loss(
    views: torch.Tensor, centroids: torch.Tensor, intent: torch.Tensor, temperature: float
) -> torch.Tensor:
    """L_SCL (eq. 10): NT-Xent between two views with the other prototypes as extra negatives.

    ``views`` (2b, d) normalised, rows i and i + b are the same user; ``intent`` (b,) is h(u).
    """
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


def distill_loss(views: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_CKD (eqs. 11-12): KL(softmax(mu_h / tau3) || softmax(z / tau3)) over the d dims, summed over views.

    ``views`` (2b, d) normalised; ``teacher`` (b, d) the assigned prototypes, detached here.
    """
    b = teacher.shape[0]
    target = F.log_softmax(teacher.detach() / temperature, -1).repeat(2, 1)  # (2b, d)
    student = F.log_softmax(views / temperature, -1)
    kl = F.kl_div(student, target, log_target=True, reduction="sum")
    return kl / b  # per user, view 1 + view 2


def cluster_loss(
    views: torch.Tensor, original: torch.Tensor | None, centroids: torch.Tensor, config: ObjectiveConfig
) -> torch.Tensor:
    """L_Clust (eq. 4): cross-entropy of Sinkhorn targets q against soft assignments p of both views."""
    b = views.shape[0] // 2
    log_p = F.log_softmax(views @ centroids.T / config.cluster_temperature, -1)  # (2b, K)
    eps, iters = config.sinkhorn_epsilon, config.sinkhorn_iterations
    if config.cluster_target == "original":
        q = sinkhorn(original @ centroids.T, eps, iters).repeat(2, 1)  # (2b, K)
    else:
        q = sinkhorn(views @ centroids.T, eps, iters).roll(b, 0)  # view 1's q supervises view 2's p and back
    return -(q * log_p).sum(-1).mean() * 2  # per user, view 1 + view 2
