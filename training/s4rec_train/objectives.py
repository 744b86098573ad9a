"""S4Rec's auxiliary objectives (METHOD.md sections 4-8) and the small modules they train.

The encoder stays the plain :class:`~s4rec_train.model.SASRec`; what S4Rec adds lives in :class:`S4RecHeads`
(K trainable intent prototypes and a head/tail classifier), saved under its own checkpoint key so that export
still freezes the encoder alone. :func:`s4rec_losses` computes every enabled term of eq. 14 from user vectors
the training step already has; a term whose weight is 0 is skipped entirely.

All user vectors and prototypes are L2-normalised before use (as SwAV does), so every temperature acts on
cosine similarities in [-1, 1] and the stored centroid table is directly usable by the SDK:
``intent = argmax_k normalize(z) . centroid_k``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .augment import two_views

# Experiments removed after they measured no better (benchmarks/RESULTS.md section 6; the code last existed at
# commit e21a317), with the value that meant "off". Checkpoints trained before still list them in
# ``training.objectives``, so :meth:`ObjectiveConfig.from_dict` accepts them there at that value.
REMOVED_OPTIONS = {"adversary_queue": 0, "adversary_batch": 0}


@dataclass
class ObjectiveConfig:
    """Weights, temperatures and augmentation ratios of S4Rec's auxiliary losses (eq. 14).

    A weight of 0 turns its term off and skips its computation; all four at 0 is the plain backbone.
    """

    cluster_weight: float = 0.01  # alpha of L_Clust; the paper's best value on Beauty
    contrastive_weight: float = 0.1  # beta1 of L_SCL; the paper's best value on Beauty
    distill_weight: float = 0.1  # beta2 of L_CKD; the paper's best value on Beauty
    adversary_weight: float = 1.0  # lambda of L_Adv; the paper's value, made safe by the DANN ramp below
    num_intents: int = 128  # K prototypes; the paper's best on Beauty (32-128 are within 2% HR@5)
    cluster_temperature: float = 0.1  # tau1 of the soft assignment p; SwAV's value
    sinkhorn_epsilon: float = 0.05  # entropy regularisation of the Sinkhorn targets; SwAV's value
    sinkhorn_iterations: int = 3  # SwAV's value; enough for a usable equal partition
    # tau2 from the paper's grid {0.1, 1.0}: 0.1 by validation (Beauty, 8 epochs, valid NDCG@20 0.0556 vs 0.0495;
    # at 1.0 the loss stays near log(negatives) and barely trains), benchmarks/RESULTS.md section 4
    contrastive_temperature: float = 0.1
    # tau3 from the paper's grid {0.1, 1.0}: 0.1 by validation (6 epochs, 0.0439 vs 0.0418 with 1.0)
    distill_temperature: float = 0.1
    # Which view feeds the Sinkhorn targets: "original" = q of the un-augmented history supervises p of both
    # views (that history's vector is free: the next-item pass already computes it); "swapped" = SwAV's
    # swapped prediction between the two views. Level on Beauty validation after 5 epochs (NDCG@20 0.0297
    # vs 0.0296, docs/s4rec.md); "original" kept as the reading closer to the paper's h(u).
    cluster_target: str = "original"
    # DANN: the reversal coefficient ramps 2 / (1 + exp(-10 p)) - 1 from 0 to 1 over training; a constant 1
    # from the first step stalls the next-item loss (METHOD.md section 7).
    adversary_ramp: bool = True
    # Fraction of training over which alpha, beta1 and beta2 rise linearly from 0 to their values (0 = the
    # paper: full weights from the first step). The auxiliary terms slow the next-item loss early on; 0.3 by
    # validation (Beauty, 8 epochs, valid NDCG@20 0.0585 vs 0.0556 without), benchmarks/RESULTS.md section 4.
    warmup: float = 0.3
    mask_ratio: float = 0.3  # gamma of the mask operator (Appendix A default)
    crop_ratio: float = 0.6  # eta of the crop operator (Appendix A default)
    reorder_ratio: float = 0.2  # beta of the reorder operator (Appendix A default)
    insert_ratio: float = 0.2  # fraction of inserted popular items (Appendix A default)

    def __post_init__(self) -> None:
        for name in ("cluster_weight", "contrastive_weight", "distill_weight", "adversary_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}. Use 0 to turn the term off.")
        for name in (
            "cluster_temperature",
            "sinkhorn_epsilon",
            "contrastive_temperature",
            "distill_temperature",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("mask_ratio", "crop_ratio", "reorder_ratio", "insert_ratio", "warmup"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.num_intents < 2:
            raise ValueError(f"num_intents must be >= 2, got {self.num_intents}.")
        if self.sinkhorn_iterations < 1:
            raise ValueError(f"sinkhorn_iterations must be >= 1, got {self.sinkhorn_iterations}.")
        if self.cluster_target not in ("original", "swapped"):
            raise ValueError(f"cluster_target must be 'original' or 'swapped', got {self.cluster_target!r}.")

    @classmethod
    def backbone(cls) -> ObjectiveConfig:
        """Every auxiliary weight 0: the plain next-item backbone."""
        return cls(cluster_weight=0.0, contrastive_weight=0.0, distill_weight=0.0, adversary_weight=0.0)

    @property
    def enabled(self) -> bool:
        return self.needs_prototypes or self.adversary_weight > 0

    @property
    def needs_prototypes(self) -> bool:
        # The intent negatives of L_SCL and the teacher of L_CKD are prototypes too.
        return self.cluster_weight > 0 or self.contrastive_weight > 0 or self.distill_weight > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ObjectiveConfig:
        """The config of ``values`` (e.g. a checkpoint's ``training.objectives``); options removed since are
        accepted at their "off" value, which is what this code does."""
        values = dict(values)
        for name, off in REMOVED_OPTIONS.items():
            if name in values and (value := values.pop(name)) != off:
                raise ValueError(
                    f"objective config {name}={value!r}: this option was removed (measured no better, "
                    f"benchmarks/RESULTS.md section 6; the code last existed at commit e21a317). "
                    f"Drop it or set it to {off!r}."
                )
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown objective config keys {sorted(unknown)}; this s4rec knows {sorted(known)}")
        return cls(**values)


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


class S4RecHeads(nn.Module):
    """What S4Rec trains besides the encoder: K intent prototypes and a linear head/tail classifier."""

    def __init__(self, dim: int, num_intents: int, generator: torch.Generator | None = None):
        super().__init__()
        # Initialised from a dedicated generator so that adding the heads leaves the encoder's random stream
        # (weights, dropout) as it is.
        self.prototypes = nn.Parameter(torch.randn(num_intents, dim, generator=generator))
        self.adversary = nn.Linear(dim, 2)
        with torch.no_grad():
            self.adversary.weight.normal_(0.0, 0.02, generator=generator)
            self.adversary.bias.zero_()

    def centroids(self) -> torch.Tensor:
        """The L2-normalised prototypes (K, d): the checkpoint's ``intent_centroids``."""
        return F.normalize(self.prototypes.float(), dim=-1)

    def assign(self, user: torch.Tensor) -> torch.Tensor:
        """Intent of each user vector (b, d): argmax of the cosine to the prototypes (= argmax of p)."""
        return (F.normalize(user.float(), dim=-1) @ self.centroids().T).argmax(-1)


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


def s4rec_losses(
    encoder: nn.Module,
    heads: S4RecHeads,
    history: torch.Tensor,
    original: torch.Tensor,
    is_head: torch.Tensor,
    popularity_cdf: torch.Tensor,
    config: ObjectiveConfig,
    progress: float,
    autocast=None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The enabled auxiliary terms, unweighted, as a dict ``{name: scalar}``.

    ``history`` (b, t) the un-augmented training inputs, ``original`` (b, d) their encoder output at the last
    position (from the next-item pass), ``is_head`` (b,) head/tail labels, ``progress`` in [0, 1] the fraction
    of training done (for the DANN ramp).
    """
    losses: dict[str, torch.Tensor] = {}
    user = F.normalize(original.float(), dim=-1)  # (b, d)
    if config.needs_prototypes:
        centroids = heads.centroids()  # (K, d)
        with torch.no_grad():
            intent = (user @ centroids.T).argmax(-1)  # h(u) from the un-augmented history, (b,)
        views = two_views(
            history, popularity_cdf, encoder.config.max_len, generator=generator,
            mask_ratio=config.mask_ratio, crop_ratio=config.crop_ratio,
            reorder_ratio=config.reorder_ratio, insert_ratio=config.insert_ratio,
        )  # fmt: skip
        if autocast is not None:
            with autocast:
                z = encoder.user_embedding(views)
        else:
            z = encoder.user_embedding(views)
        z = F.normalize(z.float(), dim=-1)  # (2b, d)
        if config.cluster_weight > 0:
            losses["cluster"] = cluster_loss(z, user.detach(), centroids, config)
        if config.contrastive_weight > 0:
            losses["contrastive"] = contrastive_loss(z, centroids, intent, config.contrastive_temperature)
        if config.distill_weight > 0:
            losses["distill"] = distill_loss(z, centroids[intent], config.distill_temperature)
    if config.adversary_weight > 0:
        coefficient = dann_coefficient(progress) if config.adversary_ramp else 1.0
        logits = heads.adversary(reverse_gradient(user, coefficient))  # bounded input: |user| = 1
        losses["adversary"] = F.cross_entropy(logits, is_head.long())
    return losses


def warmup_factor(progress: float, warmup: float) -> float:
    """Scale of alpha, beta1, beta2 at ``progress`` (fraction of training done): linear 0 -> 1 over ``warmup``."""
    return 1.0 if warmup <= 0 else min(1.0, progress / warmup)


def weighted_total(
    losses: dict[str, torch.Tensor], config: ObjectiveConfig, progress: float = 1.0
) -> torch.Tensor | None:
    """Sum of the enabled terms times their weights (alpha, beta1, beta2 scaled by the warm-up)."""
    ramp = warmup_factor(progress, config.warmup)
    weights = {
        "cluster": config.cluster_weight * ramp,
        "contrastive": config.contrastive_weight * ramp,
        "distill": config.distill_weight * ramp,
        "adversary": config.adversary_weight,
    }
    terms = [weights[name] * value for name, value in losses.items()]
    return sum(terms) if terms else None


@torch.no_grad()
def intent_usage(encoder: nn.Module, heads: S4RecHeads, history, is_head, batch_size: int = 1024) -> dict:
    """Which intents the users' (un-augmented) histories are assigned to, and how head users spread over them.

    Returns the number of prototypes assigned to at least one user, the largest intent's share of users, and
    the head share (fraction of head users) across used intents: min, max and standard deviation, next to
    the overall head share. A share spread near 0 means intents are not organised by history length.
    """
    from .evaluation import trim_padding

    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    history = torch.as_tensor(history)
    intents = []
    try:
        for start in range(0, len(history), batch_size):
            h = trim_padding(history[start : start + batch_size].to(device))
            intents.append(heads.assign(encoder.user_embedding(h)).cpu())
    finally:
        encoder.train(was_training)
    intent = torch.cat(intents)
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
