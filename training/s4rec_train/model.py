"""The SASRec encoder that S4Rec trains and every other part of s4rec serves.

A few small modules over tensors, shaped by :class:`ModelConfig` (defined in the torch-free
:mod:`s4rec_train.config`, re-exported here). The encoder maps left-padded item-index histories
``(b, t)`` to hidden states ``(b, t, d)``; the output at position ``t`` predicts item ``t + 1`` by a dot product
with the (tied) item table. The user representation used by S4Rec's auxiliary losses and at serving time is
the output at the last position.

Masking is NaN-proof: every position may attend to itself, so a query whose keys are all padding still has
one key, and padded item embeddings are zero. Position ids are right-aligned (the last item always gets
position ``max_len - 1``), so a history trimmed of its left padding gives exactly the same outputs as the padded
one; export and the SDK rely on that to score short histories cheaply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s4rec.windows import PADDING_INDEX

from .config import ModelConfig

__all__ = ["ModelConfig", "SASRec"]


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads = config.heads
        self.query = nn.Linear(config.dim, config.dim)
        self.key = nn.Linear(config.dim, config.dim)
        self.value = nn.Linear(config.dim, config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.dropout = config.dropout

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        # queries (b, q, d), keys (b, t, d), allowed (b, 1, q, t) bool
        b, q, d = queries.shape
        t = keys.shape[1]
        h = self.heads
        query = self.query(queries).view(b, q, h, d // h).transpose(1, 2)  # (b, h, q, d/h)
        key = self.key(keys).view(b, t, h, d // h).transpose(1, 2)  # (b, h, t, d/h)
        value = self.value(keys).view(b, t, h, d // h).transpose(1, 2)
        dropout = self.dropout if self.training else 0.0
        mixed = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout)
        return self.out(mixed.transpose(1, 2).reshape(b, q, d))


class Block(nn.Module):
    """Post-LayerNorm transformer block: ``h = LN(h + Drop(MHA(h)))``, ``h = LN(h + Drop(FFN(h)))``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.norm1 = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(
            nn.Linear(config.dim, 4 * config.dim), nn.GELU(), nn.Linear(4 * config.dim, config.dim)
        )
        self.norm2 = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        # h (b, t, d); with last_only the block computes only the last position: (b, 1, d)
        queries = h[:, -1:] if last_only else h
        if last_only:
            allowed = allowed[:, :, -1:]
        h = self.norm1(queries + self.drop(self.attention(queries, h, allowed)))
        return self.norm2(h + self.drop(self.ffn(h)))


class SASRec(nn.Module):
    """SASRec encoder: item + position embeddings, ``layers`` post-LN blocks, tied item table for scores."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.num_items + 1, config.dim, padding_idx=PADDING_INDEX)
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        self.input_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.input_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def item_table(self) -> torch.Tensor:
        """(N + 1, d); row 0 is the padding row and is never scored."""
        return self.item_embedding.weight

    def forward(self, history: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Encode left-padded item indices ``(b, t)``, ``1 <= t <= max_len``.

        Returns hidden states ``(b, t, d)``, or ``(b, d)`` for the last position with ``last_only``
        (the last block then computes only that position).
        """
        if history.dim() != 2:
            raise ValueError(f"history must be (batch, length), got shape {tuple(history.shape)}")
        b, t = history.shape
        if not 1 <= t <= self.config.max_len:
            raise ValueError(f"history length must be in 1..{self.config.max_len}, got {t}")
        real = history != PADDING_INDEX  # (b, t)
        # Right-aligned positions: the most recent item is always at max_len - 1.
        positions = torch.arange(self.config.max_len - t, self.config.max_len, device=history.device)
        h = self.item_embedding(history) * real.unsqueeze(-1) + self.position_embedding(positions)
        h = self.input_drop(self.input_norm(h))  # (b, t, d)
        causal = torch.ones(t, t, dtype=torch.bool, device=history.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=history.device)
        allowed = (causal & real[:, None, :]) | eye  # (b, t, t): see earlier real items, and itself
        allowed = allowed.unsqueeze(1)  # (b, 1, t, t), broadcast over heads
        for i, block in enumerate(self.blocks):
            h = block(h, allowed, last_only=last_only and i == len(self.blocks) - 1)
        if last_only:
            return h[:, -1]  # (b, d)
        return h

    def user_embedding(self, history: torch.Tensor) -> torch.Tensor:
        """z_u: the output at the last position, (b, d)."""
        return self.forward(history, last_only=True)

    def scores(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of items 1..N for user vectors (b, d) -> (b, N); column j is item index j + 1."""
        return user @ self.item_table[1:].T

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
