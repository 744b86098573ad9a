"""The item vectors of a loaded artifact and each item's intent: what candidate scoring, ``score``,
``similar_items`` and intent-diverse lists read besides the graph.

Where the float32 table ``(N + 1, d)`` (row 0: padding, zero; row i: item index i) comes from (never a second
copy in the artifact):

* format 3: the ``item_table`` sidecar ``item_table.npy``, memory-mapped (the graph maps the same file);
* format 2: the fp32 model file's initializer ``encoder.item_table``, read at the offset of its raw bytes
  (:mod:`s4rec.protobuf`; artifacts exported before this release have it too) into an aligned array. The
  int8, fp16 and mobile variants read it from the directory's ``model.onnx`` (hashed against the manifest on
  load, ~2 ms per MB): their own tables are quantized, converted or in ORT format, and the float32 vectors are
  the model's.

:func:`check_table_agrees` ties the table to the graph at load: the table's scores of the graph's top items for a
probe history must be the graph's scores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .artifact import (
    EXCLUDE,
    INPUT,
    ITEM_TABLE_INITIALIZER,
    ITEM_TABLE_SIDECAR,
    K_INPUT,
    MANIFEST_NAME,
    TOP_ITEMS,
    TOP_SCORES,
    USER_EMBEDDING,
    VARIANT_FILES,
    ArtifactMetadata,
    read_manifest,
    verify_checksum,
)
from .errors import ArtifactError
from .protobuf import initializer, tensor_array
from .sidecars import Sidecars

_TOLERANCE = 1e-4  # table score vs the graph's (relative): float32 sums in another order


class ItemTable:
    """Item vectors ``vectors`` ((N + 1, d) float32, read-only, row 0 zero) and ``intents`` ((N + 1,) int32,
    ``intents[0] = -1``; None when the artifact has no item intents)."""

    __slots__ = ("vectors", "intents", "_norms", "_lock")

    def __init__(self, vectors: np.ndarray, intents: np.ndarray | None) -> None:
        vectors = np.asarray(vectors)  # a plain ndarray view of a memmap: numpy.memmap's indexing costs ~20 us
        vectors.setflags(write=False)
        self.vectors, self.intents = vectors, intents
        self._norms: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def num_items(self) -> int:
        return len(self.vectors) - 1

    def scores(self, user: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(items),)`` float32: the dot products of ``user`` (d,) with the rows ``items`` (item indices)."""
        return self.vectors[items] @ user

    def norms(self) -> np.ndarray:
        """``(N + 1,)`` float32 row norms (row 0: 1, so that nothing divides by zero), computed once on first use
        (a pass over the table: 12,101 items ~0.2 ms, 10^6 ~0.2 s)."""
        norms = self._norms
        if norms is None:
            with self._lock:
                if self._norms is None:
                    norms = np.empty(len(self.vectors), dtype=np.float32)
                    for start in range(0, len(self.vectors), 1 << 16):
                        block = np.asarray(self.vectors[start : start + (1 << 16)], dtype=np.float32)
                        norms[start : start + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
                    norms[norms == 0] = 1.0
                    self._norms = norms
                norms = self._norms
        return norms


def item_intents(metadata: ArtifactMetadata) -> np.ndarray | None:
    """``(N + 1,)`` int32 intents by item index (``[0] = -1``), or None without them."""
    if not len(metadata.item_intents):
        return None
    intents = np.empty(metadata.num_items + 1, dtype=np.int32)
    intents[0] = -1
    intents[1:] = metadata.item_intents
    intents.setflags(write=False)
    return intents


def format3_vectors(sidecars: Sidecars, metadata: ArtifactMetadata) -> np.ndarray:
    """The mapped ``item_table.npy`` rows 0..N."""
    table = sidecars.array(ITEM_TABLE_SIDECAR, mmap=True)
    if table.ndim != 2 or table.shape[0] < metadata.num_items + 1 or table.shape[1] != metadata.embedding_dim:
        raise ArtifactError(
            f"{sidecars.path(ITEM_TABLE_SIDECAR)}: item table of shape {table.shape}, expected at least "
            f"({metadata.num_items + 1}, {metadata.embedding_dim}). Re-export the artifact."
        )
    return table[: metadata.num_items + 1]


def format2_source(model_path: Path) -> tuple[Path, bool]:
    """The format 2 file holding the float32 table for the loaded ``model_path``, and whether it is another file
    than ``model_path`` (then not yet checksummed): ``model_path`` itself for an fp32 ``.onnx`` file, else the
    ``model.onnx`` of its artifact directory."""
    if model_path.suffix == ".onnx" and initializer_is_float(model_path):
        return model_path, False
    fp32 = model_path.parent / VARIANT_FILES["fp32"]
    if (model_path.parent / MANIFEST_NAME).is_file():
        entry = read_manifest(model_path.parent)["variants"].get("fp32")
        if entry is not None:
            return model_path.parent / entry["file"], True
    raise ArtifactError(
        f"{model_path}: item vectors need the float32 table of the artifact's model.onnx ({fp32} is not part of an "
        "artifact directory next to it). Load the artifact directory, or the fp32 model.onnx file."
    )


def initializer_is_float(path: Path) -> bool:
    location = initializer(path, ITEM_TABLE_INITIALIZER)
    return location is not None and location.data_type == 1 and not location.external


def format2_vectors(model_path: Path, metadata: ArtifactMetadata) -> np.ndarray:
    """The float32 item table rows 0..N of a format 2 artifact (:func:`format2_source`), memory-mapped."""
    source, other = format2_source(model_path)
    if not source.is_file():
        raise ArtifactError(f"{source}: missing; the item vectors are read from it. Copy the whole artifact directory.")
    if other:
        entry = read_manifest(source.parent)["variants"]["fp32"]
        if entry.get("bytes") is not None and source.stat().st_size != entry["bytes"]:
            raise ArtifactError(f"{source}: not of the size {MANIFEST_NAME} records. Re-export the artifact.")
        verify_checksum(source, entry.get("sha256"))
    location = initializer(source, ITEM_TABLE_INITIALIZER)
    width, dim = metadata.num_items + 1, metadata.embedding_dim
    if location is None or location.external or location.data_type != 1:
        raise ArtifactError(
            f"{source}: no float32 initializer {ITEM_TABLE_INITIALIZER!r} holding the item table. Re-export the "
            "artifact with s4rec-export."
        )
    if len(location.dims) != 2 or location.dims[0] < width or location.dims[1] != dim:
        raise ArtifactError(
            f"{source}: {ITEM_TABLE_INITIALIZER!r} has shape {list(location.dims)}, expected at least [{width}, "
            f"{dim}] (num_items + 1, embedding_dim). Re-export the artifact."
        )
    # A copy: the raw bytes lie at whatever offset the protobuf puts them (not a multiple of 4), and numpy's
    # BLAS refuses unaligned data (a product over Beauty's table took 120 us mapped, 40 us copied). Format 2
    # tables are at most ~25 MB (10^5 items), and the file was just read to hash it anyway.
    return np.array(tensor_array(source, location)[:width])


def check_table_agrees(vectors: np.ndarray, run: Callable[[list[str], dict], list], model_path: Path) -> None:
    """The table is the graph's (a format 2 fp32 file, which scores with this very table): for a probe history,
    the table's dot product of the graph's top item with the graph's user vector must be the graph's score."""
    num_items = len(vectors) - 1
    feed = {INPUT: np.array([[1, num_items]], np.int64), EXCLUDE: np.zeros((1, 1), np.int64)}
    feed[K_INPUT] = np.array(1, np.int64)
    user, scores, items = run([USER_EMBEDDING, TOP_SCORES, TOP_ITEMS], feed)
    mine = float(vectors[int(items[0, 0])] @ user[0])
    if abs(mine - float(scores[0, 0])) > _TOLERANCE * max(1.0, abs(mine)):
        raise ArtifactError(
            f"{model_path}: the item table read from the file scores {mine:.6g} where the graph scores "
            f"{float(scores[0, 0]):.6g}. The file is damaged; re-export the artifact."
        )
