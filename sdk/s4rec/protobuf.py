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

:func:`initializer` and :func:`tensor_array` read one initializer the same way: the item table
(``encoder.item_table``) of a format 2 model file, which candidate scoring, ``score`` and ``similar_items``
need and which a second copy in the artifact would double (ONNX Runtime gives no access to initializers).
That walk is two levels deep (model -> graph -> initializer), decodes nothing but the tensor names and the few
scalar fields of a tensor, and maps the tensor's ``raw_data`` bytes where they lie in the file.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    for field, a, b, value in _all_fields(data, start, end, name):
        if value is None:
            yield field, a, b


def _all_fields(data: memoryview, start: int, end: int, name: str):
    """``(field number, start, end, value)`` of each field of the message in ``data[start:end]``: ``value`` is
    the integer of a varint field, None for a length-delimited one (its bytes are ``data[start:end]``);
    fixed-width fields are skipped."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos, end, name)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(data, pos, end, name)
            yield tag >> 3, pos, pos, value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos, end, name)
            if pos + length > end:
                raise _broken(name, pos)
            yield tag >> 3, pos, pos + length, None
            pos += length
        else:  # 3 and 4 (groups) are not used by ONNX; 6 and 7 do not exist
            raise _broken(name, pos)
        if pos > end:
            raise _broken(name, pos)


def _varint(data: memoryview, pos: int, end: int, name: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _broken(name, pos)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


# --- one initializer ------------------------------------------------------------------------------------------

# TensorProto fields: dims = 1, data_type = 2, name = 8, raw_data = 9, data_location = 14
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_LOCATION = 1, 2, 8, 9, 14
_EXTERNAL = 1  # TensorProto.EXTERNAL
_MAX_DIMS = 8  # a tensor with more dims than this is not one the SDK reads


@dataclass(frozen=True)
class TensorLocation:
    """Where one initializer's data lies in a model file: its ``raw_data`` bytes ``[offset, offset + length)``."""

    name: str
    data_type: int  # TensorProto.DataType (1 = float32)
    dims: tuple[int, ...]
    offset: int  # of raw_data in the file; -1 when the tensor has no raw_data (external or typed fields)
    length: int
    external: bool  # data_location EXTERNAL: the values are in another file


def initializer(path: str | Path, name: str) -> TensorLocation | None:
    """The initializer ``name`` of the ONNX model file ``path`` (the first of that name), or None when the graph
    has none. Raises :class:`~s4rec.errors.ArtifactError` for bytes that are not a protobuf message."""
    path = Path(path)
    wanted = name.encode("utf-8")
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise _broken(str(path), 0)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            view = memoryview(data)
            try:
                for field, start, end in _fields(view, 0, size, str(path)):
                    if field != 7:  # ModelProto.graph
                        continue
                    for inner, a, b in _fields(view, start, end, str(path)):
                        if inner == 5:  # GraphProto.initializer
                            found = _tensor(view, a, b, str(path), wanted)
                            if found is not None:
                                return found
                return None
            finally:
                view.release()


def tensor_array(path: str | Path, location: TensorLocation, dtype: str = "<f4") -> np.ndarray:
    """The tensor's values, memory-mapped read-only from the file (``dtype`` little-endian, as ONNX stores
    ``raw_data``), shaped by its dims. Raises :class:`ArtifactError` when the bytes do not hold exactly
    ``prod(dims)`` values."""
    count = int(np.prod(location.dims)) if location.dims else 1
    itemsize = np.dtype(dtype).itemsize
    if location.offset < 0 or location.length != count * itemsize:
        raise ArtifactError(
            f"{path}: initializer {location.name!r} holds {location.length:,} bytes of raw data for dims "
            f"{list(location.dims)} ({count * itemsize:,} expected). Re-export the artifact."
        )
    return np.memmap(path, dtype=dtype, mode="r", offset=location.offset, shape=location.dims)


def _tensor(data: memoryview, start: int, end: int, name: str, wanted: bytes) -> TensorLocation | None:
    """The TensorProto in ``data[start:end]`` when its name is ``wanted``, else None (its other fields are only
    skipped over)."""
    dims: list[int] = []
    data_type, raw, location, found = 0, (-1, 0), 0, None
    for field, a, b, value in _all_fields(data, start, end, name):
        if field == _TENSOR_NAME and value is None:
            found = bytes(data[a:b])
            if found != wanted:
                return None
        elif field == _TENSOR_DIMS:
            dims.extend(_packed_varints(data, a, b, name) if value is None else [value])
            if len(dims) > _MAX_DIMS:
                raise _broken(name, a)
        elif field == _TENSOR_TYPE and value is not None:
            data_type = value
        elif field == _TENSOR_RAW and value is None:
            raw = (a, b - a)
        elif field == _TENSOR_LOCATION and value is not None:
            location = value
    if found != wanted:
        return None
    if any(d >= 1 << 40 for d in dims):  # negative dims come as 10-byte varints: huge
        raise _broken(name, start)
    return TensorLocation(wanted.decode("utf-8"), data_type, tuple(dims), raw[0], raw[1], location == _EXTERNAL)


def _packed_varints(data: memoryview, start: int, end: int, name: str) -> list[int]:
    values, pos = [], start
    while pos < end:
        value, pos = _varint(data, pos, end, name)
        values.append(value)
        if len(values) > _MAX_DIMS:
            raise _broken(name, pos)
    return values


def _broken(name: str, offset: int) -> ArtifactError:
    return ArtifactError(
        f"{name}: not an ONNX model (its bytes are not a valid protobuf message at offset {offset}). Re-export "
        "the artifact, or copy the file again."
    )
