"""The torch inference modules that are exported: a lean copy of the encoder, the scores, intent probabilities.

:class:`InferenceEncoder` computes exactly what ``SASRec.forward(history, last_only=True)`` computes, with the
same weights rearranged for inference: query, key and value projections fused into one matrix with the
attention scale folded in, the attention mask built once as an additive mask for all blocks, the padding row
of the item table zeroed (so no per-item mask multiply), only the last position computed in the last block,
and tokens kept as the rows of a 2-D matrix so that each projection is one Gemm with its bias. That halves the
node count of the graph (ONNX Runtime pays ~0.7 us per node on a single-user call; 81 nodes after its
optimisations). The parity gate compares the exported graph with the untouched ``SASRec``, never with this copy
(:meth:`InferenceGraph.reference` computes the untouched model's outputs).

The item table is stored once. ``rows`` layout (N + 1, d): a Gather for the lookup and a Gemm with transB for
the scores (fp32, fp16, mobile). ``columns`` layout (d, N + 1): a Gather on axis 1 and a plain MatMul, the
form int8 dynamic quantization needs to quantize the table once for both uses (it quantizes MatMul weights
and Gather tables, not Gemm weights, and a Gemm would keep a float copy next to the int8 one).

:mod:`s4rec_export.onnx_graph` exports :class:`InferenceGraph` and appends the ranking and intent nodes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from s4rec.artifact import INTENT_PROBABILITIES, REQUIRED_OUTPUTS, TOP_ITEMS, TOP_SCORES, USER_EMBEDDING
from s4rec.windows import PADDING_INDEX
from s4rec_train.checkpoint import IntentTable
from s4rec_train.model import Block, SASRec

BLOCK_SIZES = (64, 32, 16, 8)  # ranking block sizes tried, largest first
# Additive attention bias of a padding key: finite, so that a query with only padding keys gets finite
# weights; so negative that its softmax weight next to a real key is exactly 0 (fp32 exp() is 0 below about
# -104, and attention logits differ by far less than 9,000); and within float16's range for the fp16 variant.
KEY_PADDING_BIAS = -1e4


def ranking_block_size(num_items: int, top_k: int) -> int:
    """The largest block size that leaves at least ``top_k`` blocks and 64 of them to choose from, else 0
    (one TopK over all items: small catalogues gain nothing from blocks)."""
    for size in BLOCK_SIZES:
        blocks = -(-(num_items + 2) // size)
        if blocks >= max(top_k, 64):
            return size
    return 0


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False)


class InferenceBlock(nn.Module):
    """One post-LN block with fused QKV weights ``(d, 3d)`` (query part pre-scaled by 1/sqrt(head size)).

    ``last_only``: the block computes the last position only (the last block): its query comes from the last
    position alone (``q_weight`` (d, d)) and its keys and values from all of them (``kv_weight`` (d, 2d)).
    """

    def __init__(self, block: Block, heads: int, eps: float, last_only: bool = False):
        super().__init__()
        attention = block.attention
        dim = attention.query.weight.shape[0]
        self.heads, self.head_dim, self.eps, self.last_only = heads, dim // heads, eps, last_only
        scale = 1.0 / math.sqrt(self.head_dim)
        weight = torch.cat([attention.query.weight * scale, attention.key.weight, attention.value.weight])  # (3d, d)
        bias = torch.cat([attention.query.bias * scale, attention.key.bias, attention.value.bias])
        if last_only:
            self.q_weight, self.q_bias = _frozen(weight[:dim].T), _frozen(bias[:dim])  # (d, d), (d,)
            self.kv_weight, self.kv_bias = _frozen(weight[dim:].T), _frozen(bias[dim:])  # (d, 2d), (2d,)
        else:
            self.qkv_weight, self.qkv_bias = _frozen(weight.T), _frozen(bias)  # (d, 3d), (3d,)
        self.out_weight, self.out_bias = _frozen(attention.out.weight.T), _frozen(attention.out.bias)
        self.norm1_weight, self.norm1_bias = _frozen(block.norm1.weight), _frozen(block.norm1.bias)
        self.ffn_in_weight, self.ffn_in_bias = _frozen(block.ffn[0].weight.T), _frozen(block.ffn[0].bias)
        self.ffn_out_weight, self.ffn_out_bias = _frozen(block.ffn[2].weight.T), _frozen(block.ffn[2].bias)
        self.norm2_weight, self.norm2_bias = _frozen(block.norm2.weight), _frozen(block.norm2.bias)

    def forward(self, h: torch.Tensor, batch: int, mask: torch.Tensor) -> torch.Tensor:
        # h (b * t, d): tokens as rows, so that every projection is one Gemm with its bias (MatMul + Add on
        # a 3-D tensor is two nodes); mask (b, 1, t, t) additive (0, KEY_PADDING_BIAS or -inf), or the key mask
        # (b, 1, 1, t) with last_only.
        # Returns (b * t, d), or (b, d) with last_only.
        d, heads, head_dim = h.shape[1], self.heads, self.head_dim
        if self.last_only:
            residual = h.view(batch, -1, d)[:, -1]  # (b, d)
            query = torch.addmm(self.q_bias, residual, self.q_weight).view(-1, heads, 1, head_dim)  # (b, heads, 1, hd)
            kv = torch.addmm(self.kv_bias, h, self.kv_weight).view(batch, -1, 2 * heads, head_dim).transpose(1, 2)
            key, value = kv.split(heads, dim=1)  # each (b, heads, t, head_dim)
        else:
            residual = h
            qkv = torch.addmm(self.qkv_bias, h, self.qkv_weight)  # (b * t, 3d)
            qkv = qkv.view(batch, -1, 3 * heads, head_dim).transpose(1, 2)
            query, key, value = qkv.split(heads, dim=1)  # each (b, heads, t, head_dim)
        weights = torch.softmax(query @ key.transpose(-1, -2) + mask, dim=-1)  # (b, heads, q, t)
        mixed = weights @ value  # (b, heads, q, head_dim)
        # (b * q, d): heads side by side; with one query (b, heads, 1, head_dim) is already in that order
        mixed = mixed.reshape(-1, d) if self.last_only else mixed.transpose(1, 2).reshape(-1, d)
        attended = residual + torch.addmm(self.out_bias, mixed, self.out_weight)
        h = F.layer_norm(attended, (d,), self.norm1_weight, self.norm1_bias, self.eps)
        inner = F.gelu(torch.addmm(self.ffn_in_bias, h, self.ffn_in_weight))
        ffn = torch.addmm(self.ffn_out_bias, inner, self.ffn_out_weight)
        return F.layer_norm(h + ffn, (d,), self.norm2_weight, self.norm2_bias, self.eps)


class InferenceEncoder(nn.Module):
    """``SASRec.forward(history, last_only=True)`` for inference: ``(b, t)`` item indices -> ``(b, d)``."""

    def __init__(self, encoder: SASRec, table_layout: str = "rows", extra_rows: int = 0):
        super().__init__()
        if table_layout not in ("rows", "columns"):
            raise ValueError(f"table_layout must be rows or columns, got {table_layout!r}")
        config = encoder.config
        self.max_len, self.dim, self.eps, self.table_layout = (
            config.max_len,
            config.dim,
            config.layer_norm_eps,
            table_layout,
        )
        table = encoder.item_embedding.weight.detach().clone()
        table[PADDING_INDEX] = 0.0  # SASRec multiplies padded embeddings by 0; a zero row does the same
        if extra_rows < 1:
            raise ValueError(f"extra_rows must be >= 1 (row N + 1 is the out-of-range row), got {extra_rows}")
        # extra_rows >= 1 zero rows: row N + 1 is where out-of-range indices are clamped to (treated as
        # padding), and the rest make the score matrix a whole number of ranking blocks; all are scored -inf
        self.num_items = config.num_items
        table = torch.cat([table, table.new_zeros((extra_rows, table.shape[1]))])
        self.item_table = _frozen(table if table_layout == "rows" else table.T)  # (N + 1 + extra, d) or transposed
        self.position_table = _frozen(encoder.position_embedding.weight)  # (max_len, d)
        self.norm_weight, self.norm_bias = _frozen(encoder.input_norm.weight), _frozen(encoder.input_norm.bias)
        last = len(encoder.blocks) - 1
        eps = config.layer_norm_eps
        self.blocks = nn.ModuleList(
            InferenceBlock(b, config.heads, eps, last_only=i == last) for i, b in enumerate(encoder.blocks)
        )
        # The attention mask from constants sliced to the history's length t (positions are right-aligned):
        # a key after the query is -inf (causal_bias, (L, L)), and a padding key is KEY_PADDING_BIAS, except
        # the last position's (key_padding_bias, (L,)). Real queries give padding keys a weight of exactly 0,
        # as SASRec; a padding query sees only padding keys, all at the same finite bias, so its row stays
        # finite (its output is never seen by a real query); and in an all-padding history the last position
        # sees only itself, as in SASRec, so it gives SASRec's no-history vector. 7 nodes in all.
        never = torch.full((config.max_len, config.max_len), float("-inf"))
        self.register_buffer("causal_bias", torch.triu(never, diagonal=1))  # (L, L): -inf above the diagonal
        key_padding = torch.full((config.max_len,), KEY_PADDING_BIAS)
        key_padding[-1] = 0.0
        self.register_buffer("key_padding_bias", key_padding)  # (L,)
        # Scores of the padding index and the extra rows are -inf through the bias of the score product
        bias = torch.zeros(table.shape[0])
        bias[PADDING_INDEX] = float("-inf")
        bias[table.shape[0] - extra_rows :] = float("-inf")
        self.register_buffer("score_bias", bias)

    def lookup(self, history: torch.Tensor) -> torch.Tensor:
        """Item embeddings ``(b, t, d)``."""
        if self.table_layout == "rows":
            return F.embedding(history, self.item_table)
        b, t = history.shape
        return torch.index_select(self.item_table, 1, history.reshape(-1)).T.reshape(b, t, self.dim)

    def scores(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of every index 0..N (and the extra rows) for user vectors ``(b, d)`` -> ``(b, N + 1 + extra)``,
        -inf for the padding index and the extra rows."""
        if self.table_layout == "rows":
            return F.linear(user, self.item_table, self.score_bias)
        return user @ self.item_table + self.score_bias

    def guard(self, indices: torch.Tensor) -> torch.Tensor:
        """Item indices clamped to 0..N + 1 (one Clip node): a negative index becomes padding, one beyond N the
        zero row N + 1, which :meth:`forward` treats as padding and whose score is -inf. In-range indices
        are unchanged, so the parity gate sees the same outputs."""
        return indices.clamp(PADDING_INDEX, self.num_items + 1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        b, t = history.shape
        first = self.max_len - t
        history = self.guard(history)
        h = self.lookup(history) + self.position_table[first:]  # right-aligned positions
        h = F.layer_norm(h, (self.dim,), self.norm_weight, self.norm_bias, self.eps)
        zero = torch.zeros((), dtype=h.dtype)
        # padding: index 0 or the clamped out-of-range N + 1 (both zero rows); Mod + Equal, one node more than
        # history == 0
        is_padding = torch.remainder(history, self.num_items + 1) == PADDING_INDEX
        padding = torch.where(is_padding, self.key_padding_bias[first:], zero)  # (b, t), per key
        key_mask = padding[:, None, None, :]  # (b, 1, 1, t): the last query's mask (it sees every earlier key)
        mask = self.causal_bias[first:, first:] + key_mask  # (b, 1, t, t) additive
        h = h.reshape(b * t, self.dim)  # tokens as rows (see InferenceBlock)
        for block in self.blocks:
            h = block(h, b, key_mask if block.last_only else mask)
        return h  # (b, d): the last block computes the last position only


class InferenceGraph(nn.Module):
    """``history (b, t), exclude (b, e), k ()`` -> user_embedding (b, d), top_scores (b, k), top_items (b, k)
    [, intent_probabilities (b, K)], once exported by :func:`~s4rec_export.onnx_graph.to_onnx`.

    Scores are dot products with items 1..N, descending, without the items in ``exclude``; the padding index
    is never returned (``-inf`` entries, only when fewer than ``k`` items remain, are excluded ones).

    ``block_size`` B > 0 (None: :func:`ranking_block_size`): the table gets up to B - 1 zero rows, scored
    -inf, so that the score matrix is a whole number of blocks of B items, which
    :func:`~s4rec_export.onnx_graph.append_ranking` ranks block by block (:mod:`s4rec_export.onnx_graph` says
    why that is exact and faster). B = 0: one TopK over all items.
    :meth:`reference` computes the same outputs with the untouched ``SASRec`` for the parity gate.
    """

    def __init__(
        self,
        encoder: SASRec,
        top_k: int,
        intent_centroids: torch.Tensor | None = None,
        intent_temperature: float = 1.0,
        intent_normalized: bool = True,
        table_layout: str = "rows",
        block_size: int | None = None,
    ):
        super().__init__()
        num_items = encoder.config.num_items
        if not 1 <= top_k <= num_items:
            raise ValueError(f"top_k must be in 1..{num_items} (the number of items), got {top_k}")
        self.config = encoder.config
        self.block_size = ranking_block_size(num_items, top_k) if block_size is None else block_size
        if self.block_size and -(-(num_items + 2) // self.block_size) < top_k:
            raise ValueError(f"block_size {self.block_size}: fewer blocks than top_k {top_k} over {num_items} items")
        # at least one row beyond N: the out-of-range row N + 1 (InferenceEncoder.guard)
        width = num_items + 2 if not self.block_size else -(-(num_items + 2) // self.block_size) * self.block_size
        self.extra_rows = width - (num_items + 1)
        self.encoder = InferenceEncoder(encoder.eval(), table_layout, self.extra_rows)
        object.__setattr__(self, "original", encoder)  # not a submodule: used by reference(), never exported
        self.top_k = top_k
        self.max_len = encoder.config.max_len
        self.intent_temperature = float(intent_temperature)
        self.intent_normalized = intent_normalized
        if intent_centroids is not None:
            centroids = intent_centroids.detach().float()
            if intent_normalized:
                centroids = F.normalize(centroids, dim=-1)  # idempotent on L2-normalised centroids
            self.intent_centroids = centroids  # (K, d), for reference(), the metadata and onnx_graph.append_intents()
        else:
            self.intent_centroids = None
        self.eval()

    @property
    def output_names(self) -> list[str]:
        return list(REQUIRED_OUTPUTS) + ([INTENT_PROBABILITIES] if self.intent_centroids is not None else [])

    @property
    def num_intents(self) -> int:
        return 0 if self.intent_centroids is None else int(self.intent_centroids.shape[0])

    def num_parameters(self) -> int:
        """Parameters the artifact must store: the encoder's plus the centroid table."""
        return self.original.num_parameters() + (0 if self.intent_centroids is None else self.intent_centroids.numel())

    def stored_elements(self) -> int:
        """Tensor elements the artifact stores by design: the parameters plus the table's zero block padding."""
        encoder = self.encoder
        constants = encoder.score_bias.numel() + encoder.causal_bias.numel() + encoder.key_padding_bias.numel()
        return self.num_parameters() + self.extra_rows * self.config.dim + constants

    def _intents(self, user: torch.Tensor) -> torch.Tensor:
        query = F.normalize(user, dim=-1) if self.intent_normalized else user
        return torch.softmax(query @ self.intent_centroids.T / self.intent_temperature, dim=-1)  # (b, K)

    def forward(self, history: torch.Tensor, exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``history (b, t)``, ``exclude (b, e)`` -> user (b, d), scores (b, width).

        ``scores`` has -inf for the excluded items, the padding index and the extra rows; ``onnx_graph.to_onnx``
        appends the intent probabilities and the ranking (top k, with ``k`` a graph input) to the exported graph.
        """
        user = self.encoder(history)  # (b, d)
        scores = self.encoder.scores(user)  # (b, width), -inf for the padding index and the extra rows
        # ONNX Runtime scatters in place: no copy of the (b, width) matrix, unlike slicing columns off. Out-of-range
        # indices are clamped to 0..N + 1 (scored -inf anyway), so they exclude nothing instead of failing.
        return user, scores.scatter(1, self.encoder.guard(exclude), float("-inf"))

    @torch.no_grad()
    def reference(self, history: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs computed by the untouched SASRec (plus ``full_scores`` (b, N + 1) for tie checks)."""
        user = self.original(history, last_only=True)  # (b, d)
        full = user @ self.original.item_table.T  # (b, N + 1)
        ranked = full.clone()
        ranked[:, PADDING_INDEX] = float("-inf")
        top = torch.topk(ranked, self.top_k, dim=1)
        out = {USER_EMBEDDING: user, TOP_SCORES: top.values, TOP_ITEMS: top.indices, "full_scores": full}
        if self.intent_centroids is not None:
            out[INTENT_PROBABILITIES] = self._intents(user)
        return out

    @torch.no_grad()
    def intent_top_items(self) -> list[list[int]]:
        """Per intent, the ``top_k`` item indices with the largest dot product with its centroid."""
        if self.intent_centroids is None:
            return []
        closeness = self.original.scores(self.intent_centroids)  # (K, N): items 1..N
        return (torch.topk(closeness, self.top_k, dim=1).indices + 1).tolist()

    @torch.no_grad()
    def item_intents(self) -> torch.Tensor:
        """The intent of every item 1..N, ``(N,)`` int32: the centroid its vector is closest to, measured as a
        user vector's intent probabilities measure it (cosine with ``intent_normalized``, else the dot product),
        so an item's intent is the one a history of that taste would be given; ties go to the lowest intent.
        Empty (0,) without intents."""
        if self.intent_centroids is None:
            return torch.zeros(0, dtype=torch.int32)
        items = self.original.item_table[1:].detach().float()  # (N, d)
        if self.intent_normalized:
            items = F.normalize(items, dim=-1)
        intents = torch.empty(items.shape[0], dtype=torch.int32)
        for start in range(0, items.shape[0], 1 << 16):  # bounded (slice, K) similarity matrix
            block = items[start : start + (1 << 16)] @ self.intent_centroids.T
            intents[start : start + len(block)] = block.argmax(dim=1).to(torch.int32)
        return intents


def inference_graph(encoder: SASRec, top_k: int, intents: IntentTable | None, **options) -> InferenceGraph:
    """The :class:`InferenceGraph` of ``encoder`` with the checkpoint's intents (None: a model without intents);
    ``options``: ``table_layout``, ``block_size``."""
    if intents is None:
        return InferenceGraph(encoder, top_k, **options)
    return InferenceGraph(encoder, top_k, intents.centroids, intents.temperature, intents.normalized, **options)
