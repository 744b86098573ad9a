"""S4Rec's objectives (docs/s4rec.md): the modules they train and how their terms combine (the paper's eq. 14).

The encoder stays the plain :class:`~s4rec_train.model.SASRec`; what S4Rec adds lives in :class:`S4RecHeads`
(K trainable intent prototypes and a head/tail classifier), saved under its own checkpoint key so that export
still freezes the encoder alone. :func:`s4rec_losses` computes every enabled auxiliary term (the terms
themselves are :mod:`s4rec_train.losses`) from user vectors the training step already has; a term whose
weight is 0 is skipped entirely. :func:`weighted_total` weighs them; :class:`ObjectiveConfig` (from the
torch-free :mod:`s4rec_train.config`) holds the weights, temperatures and augmentation ratios.

All user vectors and prototypes are L2-normalised before use (as SwAV does), so every temperature acts on
cosine similarities in [-1, 1] and the stored centroid table is directly usable by the SDK:
``intent = argmax_k normalize(z) . centroid_k``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .augment import two_views
from .buckets import encode
from .config import ObjectiveConfig
from .losses import cluster_loss, contrastive_loss, dann_coefficient, distill_loss, reverse_gradient, sinkhorn

if TYPE_CHECKING:
    from .distributed import BatchGroup

__all__ = [
    "ObjectiveConfig",
    "S4RecHeads",
    "active_config",
    "s4rec_losses",
    "side_vector",
    "warmup_factor",
    "weighted_total",
]


class S4RecHeads(nn.Module):
    """What S4Rec trains besides the encoder: K intent prototypes and a linear head/tail classifier."""

    def __init__(self, dim: int, num_intents: int, generator: torch.Generator | None = None, unit: bool = False):
        super().__init__()
        # Initialised from a dedicated generator so that adding the heads leaves the encoder's random stream
        # (weights, dropout) as it is. ``unit`` (ObjectiveConfig.unit_prototypes): rows on the unit sphere from
        # the start, as SwAV; kept there by :meth:`renormalize_` after every optimiser step.
        prototypes = torch.randn(num_intents, dim, generator=generator)
        self.prototypes = nn.Parameter(F.normalize(prototypes, dim=-1) if unit else prototypes)
        self.adversary = nn.Linear(dim, 2)
        with torch.no_grad():
            self.adversary.weight.normal_(0.0, 0.02, generator=generator)
            self.adversary.bias.zero_()

    def centroids(self) -> torch.Tensor:
        """The L2-normalised prototypes (K, d): the checkpoint's ``intent_centroids``."""
        return F.normalize(self.prototypes.float(), dim=-1)

    @torch.no_grad()
    def renormalize_(self) -> None:
        """Put the prototypes back on the unit sphere (SwAV, after each optimiser step)."""
        self.prototypes.copy_(F.normalize(self.prototypes.float(), dim=-1).to(self.prototypes.dtype))

    def assign(self, user: torch.Tensor) -> torch.Tensor:
        """Intent of each user vector (b, d): argmax of the cosine to the prototypes (= argmax of p)."""
        return (F.normalize(user.float(), dim=-1) @ self.centroids().T).argmax(-1)


def side_vector(hidden: torch.Tensor, history: torch.Tensor, kind: str = "last") -> torch.Tensor:
    """The user vector S4Rec's auxiliary terms read (ObjectiveConfig.side_vector), (b, d), from the encoder's
    output ``hidden`` (b, t, d) for the left-padded ``history`` (b, t): the last position, or the mean over the
    real (non-padding) positions."""
    if kind == "last":
        return hidden[:, -1]
    real = (history != 0).unsqueeze(-1).to(hidden.dtype)  # (b, t, 1); masked view items are padding too
    return (hidden * real).sum(1) / real.sum(1).clamp(min=1)


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
    group: BatchGroup | None = None,
) -> dict[str, torch.Tensor]:
    """The enabled auxiliary terms, unweighted, as a dict ``{name: scalar}``.

    ``history`` (b, t) the un-augmented training inputs, ``original`` (b, d) their user vector from the
    next-item pass (:func:`side_vector` of its output), ``is_head`` (b,) head/tail labels, ``progress`` in
    [0, 1] the fraction of training done (for the DANN ramp). ``group`` (DDP): this process's share of the
    global batch, over which the Sinkhorn targets and the contrastive negatives are taken
    (:mod:`s4rec_train.distributed`).
    """
    losses: dict[str, torch.Tensor] = {}
    user = F.normalize(original.float(), dim=-1)  # (b, d)
    if config.needs_prototypes:
        centroids = heads.centroids()  # (K, d)
        eps, iters = config.sinkhorn_epsilon, config.sinkhorn_iterations
        with torch.no_grad():
            similarity = user @ centroids.T  # (b, K), of the un-augmented history
            q = sinkhorn(similarity, eps, iters, group) if config.intent_from == "q" or (
                config.cluster_weight > 0 and config.cluster_target == "original") else None  # fmt: skip
            intent = (q if config.intent_from == "q" else similarity).argmax(-1)  # h(u), (b,)
        views = two_views(
            history, popularity_cdf, encoder.config.max_len, generator=generator,
            mask_ratio=config.mask_ratio, crop_ratio=config.crop_ratio,
            reorder_ratio=config.reorder_ratio, insert_ratio=config.insert_ratio,
        )  # fmt: skip
        with autocast if autocast is not None else contextlib.nullcontext():
            if config.side_vector == "last":
                z = encode(encoder, views, last_only=True)
            else:
                z = side_vector(encode(encoder, views), views, config.side_vector)
        z = F.normalize(z.float(), dim=-1)  # (2b, d)
        if config.cluster_weight > 0:
            losses["cluster"] = cluster_loss(z, user.detach(), centroids, config, group, target=q)
        if config.contrastive_weight > 0:
            losses["contrastive"] = contrastive_loss(z, centroids, intent, config.contrastive_temperature, group)
        if config.distill_weight > 0:
            teacher = centroids[intent]
            losses["distill"] = distill_loss(z, teacher.detach() if config.detach_teacher else teacher,
                                             config.distill_temperature)  # fmt: skip
    if config.adversary_weight > 0:
        coefficient = dann_coefficient(progress) if config.adversary_ramp else 1.0
        logits = heads.adversary(reverse_gradient(user, coefficient))  # bounded input: |user| = 1
        losses["adversary"] = F.cross_entropy(logits, is_head.long())
    return losses


def warmup_factor(progress: float, warmup: float, cooldown: float = 0.0) -> float:
    """Scale of alpha, beta1, beta2 at ``progress`` (fraction of training done): linear 0 -> 1 over ``warmup``,
    then, with a ``cooldown`` (> warmup), linear 1 -> 0 from ``warmup`` to ``cooldown`` and 0 after it."""
    rise = 1.0 if warmup <= 0 else min(1.0, progress / warmup)
    if cooldown <= 0:
        return rise
    return min(rise, max(0.0, (cooldown - progress) / (cooldown - warmup)))


def active_config(config: ObjectiveConfig, progress: float) -> ObjectiveConfig:
    """The terms to compute at ``progress``: after a cool-down has ended, alpha, beta1 and beta2 are 0, so their
    terms (and the two augmented views they need) are skipped rather than computed and multiplied by 0."""
    if config.cooldown and progress >= config.cooldown:
        return dataclasses.replace(config, cluster_weight=0.0, contrastive_weight=0.0, distill_weight=0.0)
    return config


def weighted_total(
    losses: dict[str, torch.Tensor], config: ObjectiveConfig, progress: float = 1.0
) -> torch.Tensor | None:
    """Sum of the enabled terms times their weights (alpha, beta1, beta2 scaled by the warm-up and cool-down)."""
    ramp = warmup_factor(progress, config.warmup, config.cooldown)
    weights = {
        "cluster": config.cluster_weight * ramp,
        "contrastive": config.contrastive_weight * ramp,
        "distill": config.distill_weight * ramp,
        "adversary": config.adversary_weight,
    }
    terms = [weights[name] * value for name, value in losses.items()]
    return sum(terms) if terms else None
