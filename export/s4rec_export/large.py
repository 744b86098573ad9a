"""Format 3 (large catalogues) graph surgery: the item table as external data in a sidecar ``.npy``, the
encoder-only graph, and the int8 scoring table (per-row scales, ``MatMulNBits``).

* :func:`externalize_table`: the item table initializer (N + 1 + extra, d) is written to ``item_table.npy``
  (header padded to one page, :data:`s4rec.sidecars.TABLE_HEADER_BYTES`) and the model refers to it as ONNX
  external data at that offset. ONNX Runtime then maps the file instead of parsing a 256 MB protobuf and
  copying it (measured at 10^6 items: load 0.01 s instead of 1.7-2.5 s), and the model files of every variant
  and the encoder share one copy on disk and in the page cache.
* :func:`encoder_only`: ``history -> user_embedding [, intent_probabilities]``, the full graph without the score
  product, the exclusions and the ranking (ONNX Runtime runs every node of a graph whatever outputs are fetched,
  so embeddings, intents and approximate retrieval would otherwise pay the product over every item).
* :func:`int8_scoring`: the score ``Gemm`` replaced by ``MatMulNBits`` (com.microsoft, bits 8, one block per row:
  per-row scales; accuracy level 4, int8 arithmetic) over an int8 copy of the table: 4x less memory traffic
  per user than float32, which is what bounds single-user scoring at 10^6 items. The lookup keeps the float32
  table (only the history's rows are read), so the user vectors are the float32 model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from s4rec.artifact import INPUT, INTENT_PROBABILITIES, USER_EMBEDDING
from s4rec.sidecars import TABLE_HEADER_BYTES, write_npy

ITEM_TABLE_FILE = "item_table.npy"
INT8_TABLE_FILE = "item_table.int8.npy"  # (W, 1, blob) uint8, MatMulNBits' layout (zero point 128)
INT8_SCALES_FILE = "item_table.scales.npy"  # (W,) float32, one scale per row
ENCODER_FILE = "encoder.onnx"
MICROSOFT_DOMAIN = "com.microsoft"


def table_initializer(model: onnx.ModelProto, width: int, dim: int) -> onnx.TensorProto:
    """The item table initializer: the one float tensor of shape (width, dim) read by a Gather and a Gemm."""
    found = [t for t in model.graph.initializer if list(t.dims) == [width, dim] and t.data_type == TensorProto.FLOAT]
    if len(found) != 1:
        raise ValueError(f"expected one ({width}, {dim}) float item table initializer, found {len(found)}")
    return found[0]


def externalize_table(model: onnx.ModelProto, table: np.ndarray, directory: Path) -> dict:
    """Write ``table`` to ``directory / item_table.npy`` and point the model's table initializer at it (external
    data, page-aligned offset); returns the sidecar entry."""
    tensor = table_initializer(model, *table.shape)
    entry = write_npy(directory / ITEM_TABLE_FILE, table.astype(np.float32), header_bytes=TABLE_HEADER_BYTES)
    refer_to_external(tensor, ITEM_TABLE_FILE, TABLE_HEADER_BYTES, table.astype(np.float32).nbytes)
    entry["onnx_offset"] = TABLE_HEADER_BYTES
    return entry


def refer_to_external(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)


def encoder_only(model: onnx.ModelProto, with_intents: bool) -> onnx.ModelProto:
    """A copy of ``model`` with the outputs ``user_embedding`` (and ``intent_probabilities``) only, the input
    ``history`` only, and every node and initializer they do not need removed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    wanted = [USER_EMBEDDING] + ([INTENT_PROBABILITIES] if with_intents else [])
    outputs = [o for o in g.output if o.name in wanted]
    del g.output[:]
    g.output.extend(outputs)
    needed = set(wanted)
    kept = []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    del g.node[:]
    g.node.extend(kept)
    initializers = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(initializers)
    inputs = [i for i in g.input if i.name == INPUT]
    del g.input[:]
    g.input.extend(inputs)
    value_info = [v for v in g.value_info if v.name in needed]
    del g.value_info[:]
    g.value_info.extend(value_info)
    del out.metadata_props[:]
    return out


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-row symmetric int8: ``(q (W, 1, block) uint8 with zero point 128, scales (W,) float32, block)``; the
    row ``table[i] ~ (q[i] - 128) * scales[i]``. The block is the next power of two >= d (>= 16, MatMulNBits'
    constraint), zero-padded: one block, so one scale, per row."""
    width, dim = table.shape
    block = max(16, 1 << (dim - 1).bit_length())
    scales = np.abs(table).max(axis=1) / 127.0
    scales[scales == 0] = 1.0  # zero rows (padding, the extra rows) stay zero
    q = np.full((width, 1, block), 128, dtype=np.uint8)
    q[:, 0, :dim] = (np.clip(np.rint(table / scales[:, None]), -127, 127) + 128).astype(np.uint8)
    return q, scales.astype(np.float32), block


def int8_scoring(model: onnx.ModelProto, table: np.ndarray, directory: Path) -> tuple[onnx.ModelProto, dict]:
    """A copy of ``model`` (whose table is already external) scoring with ``MatMulNBits`` over the per-row int8
    table (written to two ``.npy`` sidecars, external data); returns it and the two sidecar entries."""
    width, dim = table.shape
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    name = table_initializer(out, width, dim).name
    scoring = [n for n in g.node if n.op_type == "Gemm" and len(n.input) > 1 and n.input[1] == name]
    if len(scoring) != 1:
        raise ValueError(f"expected one Gemm scoring against {name}, found {len(scoring)}")
    gemm = scoring[0]
    q, scales, block = quantize_rows(table)
    entries = {
        "item_table_int8": write_npy(directory / INT8_TABLE_FILE, q, header_bytes=TABLE_HEADER_BYTES),
        "item_table_scales": write_npy(directory / INT8_SCALES_FILE, scales, header_bytes=TABLE_HEADER_BYTES),
    }
    for tensor_name, array, file in (
        ("item_table.int8", q, INT8_TABLE_FILE),
        ("item_table.scales", scales, INT8_SCALES_FILE),
    ):  # noqa: E501
        tensor = numpy_helper.from_array(array, tensor_name)
        refer_to_external(tensor, file, TABLE_HEADER_BYTES, array.nbytes)
        g.initializer.append(tensor)
    bias = gemm.input[2] if len(gemm.input) > 2 else ""
    node = helper.make_node(
        "MatMulNBits",
        [gemm.input[0], "item_table.int8", "item_table.scales", "", "", bias],
        list(gemm.output),
        name="scores.MatMulNBits",
        domain=MICROSOFT_DOMAIN,
        K=dim,
        N=width,
        bits=8,
        block_size=block,
        accuracy_level=4,
    )
    position = list(g.node).index(gemm)
    g.node.remove(gemm)
    g.node.insert(position, node)
    if not any(o.domain == MICROSOFT_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(MICROSOFT_DOMAIN, 1))
    return out, entries
