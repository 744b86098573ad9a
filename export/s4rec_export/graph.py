"""The inference graph that is exported: a lean copy of the encoder, top-k scoring, intent probabilities.

:class:`InferenceEncoder` computes exactly what ``SASRec.forward(history, last_only=True)`` computes, with the
same weights rearranged for inference: query, key and value projections fused into one matrix with the
attention scale folded in, the attention mask built once as an additive mask for all blocks, the padding row
of the item table zeroed (so no per-item mask multiply), and only the last position computed in the last block.
That halves the node count of the graph (ONNX Runtime pays roughly a microsecond per node on a single-user
call). The parity gate compares the exported graph with the untouched ``SASRec``, never with this copy.

The item table is stored once. ``rows`` layout (N + 1, d): a Gather for the lookup and a Gemm with transB for
the scores (fp32, fp16, mobile). ``columns`` layout (d, N + 1): a Gather on axis 1 and a plain MatMul, the
form int8 dynamic quantization needs to quantize the table once for both uses (it quantizes MatMul weights
and Gather tables, not Gemm weights, and a Gemm would keep a float copy next to the int8 one).
"""

from __future__ import annotations

import logging
import math
import warnings

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from s4rec.artifact import INPUTS, INTENT_PROBABILITIES, REQUIRED_OUTPUTS
from s4rec_train.model import PADDING_INDEX, SASRec

OPSET = 20  # supported by onnxruntime >= 1.17 (the SDK's lower bound)
IR_VERSION = 9  # onnxruntime 1.17 reads IR <= 9; the exporter writes 10 though it uses nothing newer


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False)


class InferenceBlock(nn.Module):
    """One post-LN block with fused QKV weights ``(d, 3d)`` (query part pre-scaled by 1/sqrt(head size))."""

    def __init__(self, block, heads: int, eps: float):
        super().__init__()
        attention = block.attention
        dim = attention.query.weight.shape[0]
        self.heads, self.head_dim, self.eps = heads, dim // heads, eps
        scale = 1.0 / math.sqrt(self.head_dim)
        weight = torch.cat([attention.query.weight * scale, attention.key.weight, attention.value.weight])  # (3d, d)
        bias = torch.cat([attention.query.bias * scale, attention.key.bias, attention.value.bias])
        self.qkv_weight, self.qkv_bias = _frozen(weight.T), _frozen(bias)  # (d, 3d), (3d,)
        self.out_weight, self.out_bias = _frozen(attention.out.weight.T), _frozen(attention.out.bias)
        self.norm1_weight, self.norm1_bias = _frozen(block.norm1.weight), _frozen(block.norm1.bias)
        self.ffn_in_weight, self.ffn_in_bias = _frozen(block.ffn[0].weight.T), _frozen(block.ffn[0].bias)
        self.ffn_out_weight, self.ffn_out_bias = _frozen(block.ffn[2].weight.T), _frozen(block.ffn[2].bias)
        self.norm2_weight, self.norm2_bias = _frozen(block.norm2.weight), _frozen(block.norm2.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, last_only: bool) -> torch.Tensor:
        # h (b, t, d); mask (b, 1, t, t) additive (0 or -inf), or (b, 1, 1, t) with last_only
        b, t, d = h.shape
        qkv = (h @ self.qkv_weight + self.qkv_bias).view(b, t, 3 * self.heads, self.head_dim).transpose(1, 2)
        query, key, value = qkv.split(self.heads, dim=1)  # each (b, heads, t, head_dim)
        residual = h
        if last_only:
            query, residual = query[:, :, -1:], h[:, -1:]  # (b, heads, 1, head_dim), (b, 1, d)
        weights = torch.softmax(query @ key.transpose(-1, -2) + mask, dim=-1)  # (b, heads, q, t)
        mixed = (weights @ value).transpose(1, 2).reshape(b, -1, d)  # (b, q, d)
        h = F.layer_norm(
            residual + (mixed @ self.out_weight + self.out_bias), (d,), self.norm1_weight, self.norm1_bias, self.eps
        )
        ffn = F.gelu(h @ self.ffn_in_weight + self.ffn_in_bias) @ self.ffn_out_weight + self.ffn_out_bias
        return F.layer_norm(h + ffn, (d,), self.norm2_weight, self.norm2_bias, self.eps)


class InferenceEncoder(nn.Module):
    """``SASRec.forward(history, last_only=True)`` for inference: ``(b, t)`` item indices -> ``(b, d)``."""

    def __init__(self, encoder: SASRec, table_layout: str = "rows"):
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
        self.item_table = _frozen(table if table_layout == "rows" else table.T)  # (N + 1, d) or (d, N + 1)
        self.position_table = _frozen(encoder.position_embedding.weight)  # (max_len, d)
        self.norm_weight, self.norm_bias = _frozen(encoder.input_norm.weight), _frozen(encoder.input_norm.bias)
        self.blocks = nn.ModuleList(InferenceBlock(b, config.heads, config.layer_norm_eps) for b in encoder.blocks)

    def lookup(self, history: torch.Tensor) -> torch.Tensor:
        """Item embeddings ``(b, t, d)``."""
        if self.table_layout == "rows":
            return F.embedding(history, self.item_table)
        b, t = history.shape
        return torch.index_select(self.item_table, 1, history.reshape(-1)).T.reshape(b, t, self.dim)

    def scores(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of every index 0..N for user vectors ``(b, d)`` -> ``(b, N + 1)``."""
        if self.table_layout == "rows":
            return F.linear(user, self.item_table)
        return user @ self.item_table

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        b, t = history.shape
        real = history != PADDING_INDEX  # (b, t)
        h = self.lookup(history) + self.position_table[self.max_len - t :]  # right-aligned positions
        h = F.layer_norm(h, (self.dim,), self.norm_weight, self.norm_bias, self.eps)
        position = torch.arange(t, device=history.device)
        causal = position[None, :] <= position[:, None]  # (t, t): key <= query
        itself = position[None, :] == position[:, None]
        allowed = (causal & real[:, None, :]) | itself  # (b, t, t): earlier real items, and itself (as SASRec)
        zero = torch.zeros((), dtype=h.dtype)
        mask = torch.where(allowed, zero, zero - float("inf")).unsqueeze(1)  # (b, 1, t, t) additive
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            h = block(h, mask[:, :, -1:] if i == last else mask, last_only=i == last)
        return h[:, -1]  # (b, d)


class InferenceGraph(nn.Module):
    """``history (b, t), exclude (b, e), k ()`` -> user_embedding (b, d), top_scores (b, k), top_items (b, k)
    [, intent_probabilities (b, K)].

    Scores are dot products with items 1..N, descending, without the items in ``exclude``; the padding index
    is never returned (``-inf`` entries, only when fewer than ``k`` items remain, are excluded ones).
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
    ):
        super().__init__()
        num_items = encoder.config.num_items
        if not 1 <= top_k <= num_items:
            raise ValueError(f"top_k must be in 1..{num_items} (the number of items), got {top_k}")
        self.config = encoder.config
        self.encoder = InferenceEncoder(encoder.eval(), table_layout)
        object.__setattr__(self, "original", encoder)  # not a submodule: used by reference(), never exported
        self.top_k = top_k
        self.max_len = encoder.config.max_len
        self.intent_temperature = float(intent_temperature)
        self.intent_normalized = intent_normalized
        if intent_centroids is not None:
            centroids = intent_centroids.detach().float()
            if intent_normalized:
                centroids = F.normalize(centroids, dim=-1)  # idempotent on L2-normalised centroids
            self.intent_centroids = centroids  # (K, d), for reference() and the metadata
            self.register_buffer("intent_centroids_t", centroids.T.contiguous())  # (d, K)
        else:
            self.intent_centroids = self.intent_centroids_t = None
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

    def _intents(self, user: torch.Tensor) -> torch.Tensor:
        query = F.normalize(user, dim=-1) if self.intent_normalized else user
        return torch.softmax(query @ self.intent_centroids.T / self.intent_temperature, dim=-1)  # (b, K)

    def forward(self, history: torch.Tensor, exclude: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # history (b, t) and exclude (b, e) item indices; k () int64, 1 <= k <= num_items
        user = self.encoder(history)  # (b, d)
        scores = self.encoder.scores(user)  # (b, N + 1)
        # Excluded items (and the padding index 0, always) get -inf before ranking, so the graph returns the
        # k best remaining items and the caller asks for exactly the k it needs. ONNX Runtime scatters in
        # place: no copy of the (b, N + 1) matrix, unlike slicing the padding column off.
        banned = F.pad(exclude, (1, 0))  # (b, 1 + e), column 0 = the padding index
        scores = scores.scatter(1, banned, float("-inf"))
        count = k.item()
        torch._check(count >= 1)
        torch._check(count <= self.config.num_items)
        top_scores, top_items = torch.topk(scores, count, dim=1)  # (b, k), descending
        outputs = (user, top_scores, top_items)
        if self.intent_centroids is not None:
            query = F.normalize(user, dim=-1) if self.intent_normalized else user
            outputs = (*outputs, torch.softmax(query @ self.intent_centroids_t / self.intent_temperature, dim=-1))
        return outputs

    @torch.no_grad()
    def reference(self, history: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs computed by the untouched SASRec (plus ``full_scores`` (b, N + 1) for tie checks)."""
        user = self.original(history, last_only=True)  # (b, d)
        full = user @ self.original.item_table.T  # (b, N + 1)
        ranked = full.clone()
        ranked[:, PADDING_INDEX] = float("-inf")
        top = torch.topk(ranked, self.top_k, dim=1)
        out = {"user_embedding": user, "top_scores": top.values, "top_items": top.indices, "full_scores": full}
        if self.intent_centroids is not None:
            out[INTENT_PROBABILITIES] = self._intents(user)
        return out

    @torch.no_grad()
    def intent_top_items(self) -> list[list[int]]:
        """Per intent, the ``top_k`` item indices with the largest dot product with its centroid."""
        if self.intent_centroids is None:
            return []
        closeness = self.intent_centroids @ self.original.item_table[1:].T  # (K, N)
        return (torch.topk(closeness, self.top_k, dim=1).indices + 1).tolist()


def to_onnx(graph: InferenceGraph) -> onnx.ModelProto:
    """Export with the dynamo exporter: dynamic batch, length (1..max_len) and exclusions; one self-contained
    model."""
    graph.eval()  # the module actually exported: dropout off
    max_len = graph.max_len
    example = torch.zeros((2, max_len), dtype=torch.int64)
    example[:, -1] = 1
    exclude = torch.ones((2, 3), dtype=torch.int64)
    k = torch.tensor(min(2, graph.config.num_items), dtype=torch.int64)
    batch = torch.export.Dim("batch", min=1)
    axes = {0: batch}
    if max_len > 1:
        axes[1] = torch.export.Dim("length", min=1, max=max_len)
    dynamic_shapes = {"history": axes, "exclude": {0: batch, 1: torch.export.Dim("excluded", min=1)}, "k": None}
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": irrelevant to this model
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's FutureWarnings are not the user's business
            program = torch.onnx.export(
                graph,
                (example, exclude, k),
                dynamo=True,
                input_names=list(INPUTS),
                output_names=graph.output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=OPSET,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    model = program.model_proto
    strip_debug_info(model)
    model.ir_version = min(model.ir_version, IR_VERSION)
    return model


def strip_debug_info(model: onnx.ModelProto) -> None:
    """Drop per-node stack traces and doc strings (about 2 KB per node, pure weight for a served file)."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    model.graph.doc_string = ""
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        del value.metadata_props[:]
        value.doc_string = ""
    del model.metadata_props[:]
