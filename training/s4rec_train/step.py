"""One training step's loss as a module: the encoder, S4Rec's heads and every loss term of a batch.

Training calls it directly in one process and through ``DistributedDataParallel`` on several, which is why
it is a module: DDP all-reduces the gradients of the parameters its wrapped module owns, and here that is
everything trained (encoder and heads) in one forward. The arithmetic is the training loop's as it was
(:func:`s4rec_train.train.train` with one process gives the same numbers bit for bit); under DDP the batch's
weights (:class:`s4rec_train.batching.Batch`) make each process's loss its share of the global batch's mean.
"""

from __future__ import annotations

import torch
from torch import nn

from .batching import Batch
from .buckets import encode
from .config import ObjectiveConfig
from .distributed import BatchGroup
from .losses import next_item_loss
from .model import SASRec
from .objectives import S4RecHeads, active_config, s4rec_losses, side_vector, weighted_total
from .sampled import NegativeSampler


class TrainingStep(nn.Module):
    """``forward(batch, progress) -> (loss to optimise, next-item loss, {term: value})``, the last two
    detached (for the logs)."""

    def __init__(
        self,
        model: SASRec,
        heads: S4RecHeads | None,
        objectives: ObjectiveConfig,
        loss: str,
        autocast,
        sampler: NegativeSampler | None = None,
        popularity_cdf: torch.Tensor | None = None,
        is_head: torch.Tensor | None = None,
        augment_generator: torch.Generator | None = None,
        low_precision: bool = False,
        rank: int = 0,
    ):
        super().__init__()
        self.model, self.heads, self.objectives, self.loss = model, heads, objectives, loss
        self.autocast, self.sampler, self.low_precision, self.rank = autocast, sampler, low_precision, rank
        self.popularity_cdf, self.is_head, self.augment_generator = popularity_cdf, is_head, augment_generator

    def forward(self, batch: Batch, progress: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        mean_side = self.heads is not None and self.objectives.side_vector == "mean"
        with self.autocast:
            if batch.last_only and not mean_side:  # prefixes: only the last position has a target and is computed
                hidden = encode(self.model, batch.history, last_only=True)[:, None]  # (b, 1, d)
            else:
                hidden = encode(self.model, batch.history)  # (b, t, d); on CPU in groups of similar length
        full = hidden
        if batch.last_only and mean_side:  # the mean side vector needs every position; the loss the last one
            hidden = hidden[:, -1:]
        loss = next_item_loss(
            self.model, hidden, batch, self.loss, sampler=self.sampler, low_precision=self.low_precision
        )
        if batch.loss_weight != 1.0:
            loss = loss * batch.loss_weight
        if self.heads is None:
            return loss, loss.detach(), {}
        group = BatchGroup(self.rank, batch.shard_sizes) if batch.shard_sizes else None
        terms = s4rec_losses(
            self.model, self.heads, batch.history, side_vector(full, batch.history, self.objectives.side_vector),
            self.is_head[batch.users], self.popularity_cdf,
            active_config(self.objectives, progress), progress, self.autocast, self.augment_generator, group,
        )  # fmt: skip
        if batch.sequence_weight != 1.0:
            terms = {name: value * batch.sequence_weight for name, value in terms.items()}
        extra = weighted_total(terms, self.objectives, progress)  # None once a cool-down has turned every term off
        optimize = loss if extra is None else loss + extra
        return optimize, loss.detach(), {name: value.detach() for name, value in terms.items()}
