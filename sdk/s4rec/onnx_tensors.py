"""One initializer of an ONNX model file, found and memory-mapped without the onnx package.

The SDK needs the item table (item vectors) for candidate scoring, ``score`` and ``similar_items``. A format 3
artifact keeps it in ``item_table.npy``; a format 2 model file holds it as the graph's initializer
``encoder.item_table`` (``raw_data``, float32, ``(N + 1 + extra, d)``), and carrying it a second time in
another file would double the artifact. ONNX Runtime gives no access to initializers, and the SDK may not
import onnx, so :func:`initializer` walks the protobuf wire format
(https://protobuf.dev/programming-guides/encoding/) of ``ModelProto.graph.initializer`` far enough to find
that tensor's name, type, shape and where its ``raw_data`` bytes lie in the file; :func:`tensor_array` maps
them with numpy (no copy; the page cache holds the file once for ONNX Runtime and numpy).

Artifacts are untrusted files: the walk is two levels deep (model -> graph -> tensor) with no recursion, every
length is checked against the enclosing message before it is used, nothing is decoded but the tensor names
and the few scalar fields of a tensor, and the file is read through a read-only ``mmap`` (memory bounded by
the file, which the manifest's size and SHA-256 already vouch for). The JavaScript SDK reads model bytes the
same way (``js/src/protobuf.js``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArtifactError

# Field numbers (onnx.proto3): ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto.dims = 1,
# .data_type = 2, .name = 8, .raw_data = 9, .external_data = 13, .data_location = 14.
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_LOCATION = 1, 2, 8, 9, 14
_FLOAT = 1  # TensorProto.FLOAT
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
    """The initializer ``name`` of the ONNX model file ``path`` (the first of that name), or None when the
    graph has none. Raises :class:`~s4rec.errors.ArtifactError` for bytes that are not a protobuf message."""
    path = Path(path)
    wanted = name.encode("utf-8")
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise _broken(path, 0)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            view = memoryview(data)
            try:
                for field, start, end in _fields(view, 0, size, path):
                    if field != _MODEL_GRAPH:
                        continue
                    for inner, a, b in _fields(view, start, end, path):
                        if inner == _GRAPH_INITIALIZER:
                            found = _tensor(view, a, b, path, wanted)
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


def _tensor(data: memoryview, start: int, end: int, path: Path, wanted: bytes) -> TensorLocation | None:
    """The TensorProto in ``data[start:end]`` when its name is ``wanted``, else None (its other fields are only
    skipped over)."""
    dims: list[int] = []
    data_type, raw, location, name = 0, (-1, 0), 0, None
    for field, a, b, value in _all_fields(data, start, end, path):
        if field == _TENSOR_NAME:
            name = bytes(data[a:b])
            if name != wanted:
                return None
        elif field == _TENSOR_DIMS:
            dims.extend(_packed_varints(data, a, b, path) if value is None else [value])
            if len(dims) > _MAX_DIMS:
                raise _broken(path, a)
        elif field == _TENSOR_TYPE and value is not None:
            data_type = value
        elif field == _TENSOR_RAW and value is None:
            raw = (a, b - a)
        elif field == _TENSOR_LOCATION and value is not None:
            location = value
    if name != wanted:
        return None
    if any(d < 0 or d >= 1 << 40 for d in dims):
        raise _broken(path, start)
    return TensorLocation(wanted.decode("utf-8"), data_type, tuple(dims), raw[0], raw[1], location == _EXTERNAL)


def _fields(data: memoryview, start: int, end: int, path: Path):
    """``(field number, start, end)`` of each length-delimited field of the message ``data[start:end]``."""
    for field, a, b, value in _all_fields(data, start, end, path):
        if value is None:
            yield field, a, b


def _all_fields(data: memoryview, start: int, end: int, path: Path):
    """``(field number, start, end, value)`` of each field of the message ``data[start:end]``: ``value`` is the
    integer of a varint field, None for a length-delimited one (its bytes are ``data[start:end]``); fixed-width
    fields are skipped."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos, end, path)
        wire, field = tag & 7, tag >> 3
        if wire == 0:
            value, pos = _varint(data, pos, end, path)
            yield field, pos, pos, value
        elif wire == 2:
            length, pos = _varint(data, pos, end, path)
            if length > end - pos:
                raise _broken(path, pos)
            yield field, pos, pos + length, None
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _broken(path, pos)
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise _broken(path, pos)


def _varint(data: memoryview, pos: int, end: int, path: Path) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _broken(path, pos)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _packed_varints(data: memoryview, start: int, end: int, path: Path) -> list[int]:
    values, pos = [], start
    while pos < end:
        value, pos = _varint(data, pos, end, path)
        values.append(value)
        if len(values) > _MAX_DIMS:
            raise _broken(path, pos)
    return values


def _broken(path: Path, offset: int) -> ArtifactError:
    return ArtifactError(
        f"{path}: not an ONNX model (its bytes are not a valid protobuf message at offset {offset}). Re-export "
        "the artifact, or copy the file again."
    )
