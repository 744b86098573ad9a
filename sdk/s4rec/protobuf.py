"""The files an ONNX model keeps its tensors in (external data), read from its bytes without the onnx package.

ONNX Runtime opens the ``location`` of every tensor stored as external data, relative to the model's
directory. From 1.24 on it refuses one that resolves outside that directory, but the SDK supports older
releases too, so :func:`external_data_locations` finds the locations first and :mod:`s4rec.session` checks
each (:func:`s4rec.untrusted.artifact_file`) before ONNX Runtime opens the model. The JavaScript SDK reads
them the same way (``js/src/protobuf.js``), to give them to ONNX Runtime.

The protobuf wire format (https://protobuf.dev/programming-guides/encoding/) is walked for the few
length-delimited fields that can hold a tensor, without recursion (an explicit stack, so that a deeply nested
file cannot exhaust Python's) and without copying the file (it is memory-mapped): every ``TensorProto`` of
the graph, of its subgraphs (``If``/``Loop`` bodies) and of its functions, as initializer, sparse initializer
or node attribute.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from .errors import ArtifactError

# Message -> {field number: message type of that field}, for the fields that lead to a TensorProto.
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION, _ENTRY = range(8)
_FIELDS = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION},  # ModelProto.graph, .functions
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # GraphProto.node, .initializer, .sparse_initializer
    _FUNCTION: {7: _NODE},  # FunctionProto.node
    _NODE: {5: _ATTRIBUTE},  # NodeProto.attribute
    # AttributeProto.t, .g, .tensors, .graphs, .sparse_tensor, .sparse_tensors
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # SparseTensorProto.values, .indices
    _TENSOR: {13: _ENTRY},  # TensorProto.external_data (StringStringEntryProto: key 1, value 2)
}


def external_data_locations(path: str | Path) -> list[str]:
    """The ``location`` of every tensor the ONNX model file ``path`` stores as external data, each once.
    Raises :class:`~s4rec.errors.ArtifactError` for bytes that are not a protobuf message."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _locations(memoryview(data), str(path))


def _locations(data: memoryview, name: str) -> list[str]:
    locations: dict[str, None] = {}
    stack = [(_MODEL, 0, len(data))]
    try:
        while stack:
            kind, start, end = stack.pop()
            if kind == _ENTRY:
                key, value = _entry(data, start, end, name)
                if key == "location":
                    locations[value] = None
                continue
            wanted = _FIELDS[kind]
            inside = [(wanted[field], a, b) for field, a, b in _fields(data, start, end, name) if field in wanted]
            stack.extend(inside)
    finally:
        data.release()
    return list(locations)


def _entry(data: memoryview, start: int, end: int, name: str) -> tuple[str, str]:
    key = value = ""
    for field, from_, to in _fields(data, start, end, name):
        text = bytes(data[from_:to]).decode("utf-8", "replace")
        if field == 1:
            key = text
        elif field == 2:
            value = text
    return key, value


def _fields(data: memoryview, start: int, end: int, name: str):
    """``(field number, start, end)`` of each length-delimited field of the message in ``data[start:end]``;
    fields of the other wire types are skipped."""
    pos = start

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise _broken(name, pos)
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while pos < end:
        tag = varint()
        wire = tag & 7
        if wire == 0:
            varint()
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length = varint()
            if pos + length > end:
                raise _broken(name, pos)
            yield tag >> 3, pos, pos + length
            pos += length
        else:  # 3 and 4 (groups) are not used by ONNX; 6 and 7 do not exist
            raise _broken(name, pos)
        if pos > end:
            raise _broken(name, pos)


def _broken(name: str, offset: int) -> ArtifactError:
    return ArtifactError(
        f"{name}: not an ONNX model (its bytes are not a valid protobuf message at offset {offset}). Re-export "
        "the artifact, or copy the file again."
    )
