"""The ONNX side of the export: :class:`~s4rec_export.inference.InferenceGraph` through the dynamo exporter,
then graph surgery with ``onnx.helper``: the intent probabilities, the ranking with ``k`` as a graph input,
stack traces stripped, the IR version lowered for older ONNX Runtime releases; and
:func:`save_with_metadata`, which writes every ``.onnx`` file of an artifact.

Ranking: with a block size B > 0 the score matrix is cut into blocks of B items (the table has up to B - 1
zero rows, scored -inf), the k blocks with the largest maxima are kept and the top k is taken over their
k * B scores. Exact: every one of the k best items lies in one of those blocks (a block holding one has a
maximum at least its score, and only blocks holding an item at least as good can rank above it). ONNX
Runtime's TopK compares every element with its heap, a ReduceMax runs vectorised: on Beauty (12,102 columns,
k = 10) scoring and ranking a batch of 256 users takes ~0.77x the time of one TopK over all items, and a
single user the same. B = 0: one TopK over all items.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from s4rec import __version__ as package_version
from s4rec.artifact import (
    EXCLUDE,
    INPUT,
    INTENT_PROBABILITIES,
    K_INPUT,
    REQUIRED_OUTPUTS,
    TOP_ITEMS,
    TOP_SCORES,
    USER_EMBEDDING,
    ArtifactMetadata,
    metadata_props,
)

from .inference import InferenceGraph

OPSET = 20  # supported by onnxruntime >= 1.17 (the SDK's lower bound)
IR_VERSION = 9  # onnxruntime 1.17 reads IR <= 9; the exporter writes 10 though it uses nothing newer
SCORES = "scores"  # the torch graph's masked score matrix, consumed by the ranking nodes to_onnx appends


def to_onnx(graph: InferenceGraph) -> onnx.ModelProto:
    """Export with the dynamo exporter (dynamic batch, length 1..max_len and exclusions), then append the
    ranking with the graph input ``k``; one self-contained model."""
    graph.eval()  # the module actually exported: dropout off
    max_len = graph.max_len
    example = torch.zeros((2, max_len), dtype=torch.int64)
    example[:, -1] = 1
    exclude = torch.ones((2, 3), dtype=torch.int64)
    batch = torch.export.Dim("batch", min=1)
    axes = {0: batch}
    if max_len > 1:
        axes[1] = torch.export.Dim("length", min=1, max=max_len)
    dynamic_shapes = {"history": axes, "exclude": {0: batch, 1: torch.export.Dim("excluded", min=1)}}
    torch_outputs = [USER_EMBEDDING, SCORES]
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": irrelevant to this model
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's FutureWarnings are not the user's business
            program = torch.onnx.export(
                graph,
                (example, exclude),
                dynamo=True,
                input_names=[INPUT, EXCLUDE],
                output_names=torch_outputs,
                dynamic_shapes=dynamic_shapes,
                opset_version=OPSET,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    model = program.model_proto
    if graph.num_intents:
        append_intents(model, graph.intent_centroids, graph.intent_temperature, graph.intent_normalized)
    append_ranking(model, graph.block_size, graph.top_k)
    guard_history_length(model, max_len)
    strip_debug_info(model)
    model.ir_version = min(model.ir_version, IR_VERSION)
    return model


def append_intents(model: onnx.ModelProto, centroids: torch.Tensor, temperature: float, normalized: bool) -> None:
    """Add the output ``intent_probabilities`` (b, K) = softmax(normalise(user) @ centroids^T / temperature)
    (without normalising when ``normalized`` is false). Written as ONNX nodes because one LpNormalization
    does what F.normalize exports as four (ReduceL2, Clip, Expand, Div): ONNX Runtime runs every node of the
    graph on every call, whatever outputs are fetched, so these are paid by each recommendation too.
    LpNormalization maps a zero vector to zero, as F.normalize does (a vector shorter than F.normalize's
    eps, 1e-12, becomes a unit vector rather than ``user / 1e-12``)."""
    g = model.graph
    batch = g.input[0].type.tensor_type.shape.dim[0].dim_param or "batch"
    table = centroids.detach().float().T.contiguous().numpy()  # (d, K)
    g.initializer.append(numpy_helper.from_array(table, "intent_centroids_t"))
    g.initializer.append(numpy_helper.from_array(np.array(temperature, dtype=np.float32), "intents.temperature"))

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        g.node.append(helper.make_node(op, inputs, [output], name=f"intents.{op}", **attributes))
        return output

    query = node("LpNormalization", [USER_EMBEDDING], "intents.query", axis=-1, p=2) if normalized else USER_EMBEDDING
    similarity = node("MatMul", [query, "intent_centroids_t"], "intents.similarity")
    logits = node("Div", [similarity, "intents.temperature"], "intents.logits")
    node("Softmax", [logits], INTENT_PROBABILITIES, axis=-1)
    g.output.append(helper.make_tensor_value_info(INTENT_PROBABILITIES, TensorProto.FLOAT, [batch, len(table[0])]))


def append_ranking(model: onnx.ModelProto, block_size: int, top_k: int) -> None:
    """Replace the output ``scores`` (b, width) by ``top_scores``, ``top_items`` (b, k), with ``k`` a scalar
    int64 input clamped to 1..``top_k`` (so that k = 0, a negative k or one beyond top_k ranks 1 or top_k
    items instead of failing deep inside TopK). Written as ONNX nodes because torch.topk needs a Python int;
    the blocked ranking (``block_size`` > 0) is explained in the module docstring."""
    g = model.graph
    batch = g.input[0].type.tensor_type.shape.dim[0].dim_param or "batch"
    g.input.append(helper.make_tensor_value_info(K_INPUT, TensorProto.INT64, []))

    def const(name: str, values) -> str:
        g.initializer.append(helper.make_tensor(f"ranking.{name}", TensorProto.INT64, [len(values)], values))
        return f"ranking.{name}"

    def node(op: str, inputs: list[str], output: str | list[str], **attributes) -> None:
        outputs = [
            o if o in (TOP_SCORES, TOP_ITEMS) else f"ranking.{o}"
            for o in ([output] if isinstance(output, str) else output)
        ]
        g.node.append(helper.make_node(op, inputs, outputs, name=f"ranking.{op}.{len(g.node)}", **attributes))

    g.initializer.append(helper.make_tensor("ranking.k_min", TensorProto.INT64, [], [1]))
    g.initializer.append(helper.make_tensor("ranking.k_max", TensorProto.INT64, [], [top_k]))
    node("Clip", [K_INPUT, "ranking.k_min", "ranking.k_max"], "k_clipped")
    node("Reshape", ["ranking.k_clipped", const("one", [1])], "k")  # TopK takes k as a 1-D tensor
    if not block_size:
        node("TopK", [SCORES, "ranking.k"], [TOP_SCORES, TOP_ITEMS], axis=1)
    else:
        width = next(o for o in g.output if o.name == SCORES).type.tensor_type.shape.dim[1].dim_value
        node("Reshape", [SCORES, const("blocks_shape", [0, width // block_size, block_size])], "blocks")
        node("ReduceMax", ["ranking.blocks", const("last_axis", [2])], "block_max", keepdims=0)  # (b, blocks)
        node("TopK", ["ranking.block_max", "ranking.k"], ["_", "block"], axis=1)  # (b, k): the best blocks
        node("Unsqueeze", ["ranking.block", "ranking.last_axis"], "block_index")  # (b, k, 1)
        node("GatherND", ["ranking.blocks", "ranking.block_index"], "candidates", batch_dims=1)  # (b, k, B)
        node("Reshape", ["ranking.candidates", const("flat", [0, -1])], "candidate_scores")  # (b, k * B)
        node("TopK", ["ranking.candidate_scores", "ranking.k"], [TOP_SCORES, "position"], axis=1)
        # the item index of every candidate, block * B + (0..B-1), then those at the chosen positions
        node("Mul", ["ranking.block_index", const("block_size", [block_size])], "first_item")  # (b, k, 1)
        node("Add", ["ranking.first_item", const("offsets", list(range(block_size)))], "candidate_items")
        node("Reshape", ["ranking.candidate_items", "ranking.flat"], "candidate_items_flat")  # (b, k * B)
        node("GatherElements", ["ranking.candidate_items_flat", "ranking.position"], TOP_ITEMS, axis=1)
    for name, kind in ((TOP_SCORES, TensorProto.FLOAT), (TOP_ITEMS, TensorProto.INT64)):
        g.output.append(helper.make_tensor_value_info(name, kind, [batch, "k"]))
    order = {name: i for i, name in enumerate(REQUIRED_OUTPUTS + (INTENT_PROBABILITIES,))}
    outputs = sorted((o for o in g.output if o.name != SCORES), key=lambda o: order[o.name])
    del g.output[:]
    g.output.extend(outputs)


def guard_history_length(model: onnx.ModelProto, max_len: int) -> None:
    """Keep the most recent ``max_len`` columns of ``history`` (one Slice node in front of the graph), so that an
    over-long window scores as its last ``max_len`` items instead of failing on the position table. torch.export
    drops such a slice as a no-op (its dynamic length is declared <= max_len), hence ONNX surgery."""
    g = model.graph
    sliced = f"{INPUT}.window"
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == INPUT:
                node.input[i] = sliced
    for name, value in (("starts", -max_len), ("ends", 2**63 - 1), ("axes", 1)):
        g.initializer.append(helper.make_tensor(f"{INPUT}.window.{name}", TensorProto.INT64, [1], [value]))
    names = [INPUT, *(f"{INPUT}.window.{n}" for n in ("starts", "ends", "axes"))]
    g.node.insert(0, helper.make_node("Slice", names, [sliced], name="history.window.Slice"))


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


def save_with_metadata(model: onnx.ModelProto, metadata: ArtifactMetadata, path: Path) -> None:
    """Attach the metadata (docs/ARTIFACT.md) and write one self-contained file."""
    del model.metadata_props[:]
    for key, value in metadata_props(metadata).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "s4rec-export"
    model.producer_version = package_version
    onnx.save_model(model, str(path), save_as_external_data=False)
