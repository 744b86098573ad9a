"""The inference graph that is exported: encoder (last position only), top-k scoring, intent probabilities.

The item table is stored once, transposed to ``(d, N + 1)``: the embedding lookup gathers its columns and the
scoring is a plain ``z @ table``. With the usual ``(N + 1, d)`` layout the scoring MatMul needs a transposed
copy, and graph optimisers or int8 quantization (which quantizes MatMul weights and Gather tables separately)
then store the largest table twice.
"""

from __future__ import annotations

import copy
import logging
import warnings

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from s4rec.artifact import INPUT, INTENT_PROBABILITIES, REQUIRED_OUTPUTS
from s4rec_train.model import SASRec

OPSET = 20  # supported by onnxruntime >= 1.17 (the SDK's lower bound)
IR_VERSION = 9  # onnxruntime 1.17 reads IR <= 9; the exporter writes 10 though it uses nothing newer


class TransposedItemEmbedding(nn.Module):
    """``nn.Embedding`` over a ``(d, N + 1)`` table: ``(b, t)`` indices -> ``(b, t, d)``."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight_t = nn.Parameter(weight.detach().T.contiguous(), requires_grad=False)  # (d, N + 1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        b, t = history.shape
        columns = torch.index_select(self.weight_t, 1, history.reshape(-1))  # (d, b * t)
        return columns.T.reshape(b, t, self.weight_t.shape[0])


class InferenceGraph(nn.Module):
    """``history (b, t)`` -> user_embedding (b, d), top_scores (b, k), top_items (b, k) [, intents (b, K)].

    Wraps a copy of the encoder (the original is left as it is) and computes only the last position in the
    last block. Scores are dot products with items 1..N; the padding index is never returned.
    """

    def __init__(
        self,
        encoder: SASRec,
        top_k: int,
        intent_centroids: torch.Tensor | None = None,
        intent_temperature: float = 1.0,
        intent_normalized: bool = True,
    ):
        super().__init__()
        num_items = encoder.config.num_items
        if not 1 <= top_k <= num_items:
            raise ValueError(f"top_k must be in 1..{num_items} (the number of items), got {top_k}")
        encoder = copy.deepcopy(encoder)
        encoder.item_embedding = TransposedItemEmbedding(encoder.item_embedding.weight)
        self.encoder = encoder
        self.top_k = top_k
        self.max_len = encoder.config.max_len
        self.intent_temperature = float(intent_temperature)
        self.intent_normalized = intent_normalized
        if intent_centroids is not None:
            centroids = intent_centroids.detach().float()
            if intent_normalized:
                centroids = F.normalize(centroids, dim=-1)  # idempotent on L2-normalised centroids
            self.register_buffer("intent_centroids_t", centroids.T.contiguous())  # (d, K)
        else:
            self.intent_centroids_t = None
        self.eval()

    @property
    def output_names(self) -> list[str]:
        return list(REQUIRED_OUTPUTS) + ([INTENT_PROBABILITIES] if self.intent_centroids_t is not None else [])

    @property
    def num_intents(self) -> int:
        return 0 if self.intent_centroids_t is None else int(self.intent_centroids_t.shape[1])

    def full_scores(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of every index 0..N for user vectors (b, d) -> (b, N + 1); column 0 is padding."""
        return user @ self.encoder.item_embedding.weight_t

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, ...]:
        user = self.encoder(history, last_only=True)  # (b, d)
        scores = self.full_scores(user)[:, 1:]  # (b, N): the padding column is never a candidate
        top_scores, top = torch.topk(scores, self.top_k, dim=1)  # (b, k), descending
        outputs = (user, top_scores, top + 1)
        if self.intent_centroids_t is not None:
            query = F.normalize(user, dim=-1) if self.intent_normalized else user
            logits = query @ self.intent_centroids_t / self.intent_temperature  # (b, K)
            outputs = (*outputs, torch.softmax(logits, dim=-1))
        return outputs

    def num_parameters(self) -> int:
        """Parameters the artifact must store: the encoder's plus the centroid table."""
        count = sum(p.numel() for p in self.encoder.parameters())
        return count + (0 if self.intent_centroids_t is None else self.intent_centroids_t.numel())


def to_onnx(graph: InferenceGraph) -> onnx.ModelProto:
    """Export with the dynamo exporter: dynamic batch and length (1..max_len), one self-contained model."""
    graph.eval()  # the module actually exported: dropout off
    max_len = graph.max_len
    example = torch.zeros((2, max_len), dtype=torch.int64)
    example[:, -1] = 1
    batch = torch.export.Dim("batch", min=1)
    axes = {0: batch}
    if max_len > 1:
        axes[1] = torch.export.Dim("length", min=1, max=max_len)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": irrelevant to this model
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's FutureWarnings are not the user's business
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=graph.output_names,
                dynamic_shapes={"history": axes},
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
