"""Sidecar files of a format-3 artifact (docs/ARTIFACT.md): the large lists and tables next to the model files.

A catalogue of 10^6 items does not fit the model's JSON metadata (parsing, validating and checksumming a JSON
list of 10^6 ids costs seconds and ~100 MB), so format 3 stores them as files in the artifact directory, each
described by an entry of the metadata's ``sidecars`` table: ``{"file", "sha256", "bytes", "dtype", "shape"}``
(plus ``"encoding"`` for the item ids). Encodings:

* ``.npy`` (numpy's format, version 1.0, little-endian, C order, never pickled: read with
  ``allow_pickle=False``, artifacts are untrusted files) for integer ids, indices and float tables;
* item ids that are strings: ``items.utf8`` (the UTF-8 bytes of every id, end to end) and
  ``item_id_offsets`` (``.npy`` int64, N + 1 offsets: id i is ``blob[offsets[i]:offsets[i + 1]]``);
* item ids of mixed types (ints and strings): ``items.json``, one compact JSON list.

Tables the graphs read as ONNX external data (``item_table.npy``) have a header padded to
:data:`TABLE_HEADER_BYTES`, so that the data starts on a page boundary: ONNX Runtime then maps the file
into memory instead of copying it, and numpy maps the same file (``mmap_mode="r"``).

Every entry is checked on load: a missing file, a size, dtype or shape other than recorded is an
:class:`~s4rec.errors.ArtifactError`, a SHA-256 other than recorded a :class:`~s4rec.errors.ChecksumError`
(the tables, hundreds of MB, are hashed only on ``verify="full"``: hashing 256 MB takes ~0.5-1 s here).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ChecksumError
from .untrusted import artifact_file, read_json

TABLE_HEADER_BYTES = 4096  # .npy header of an external-data table: one page, so the data is page-aligned
HASHED_ALWAYS_BYTES = 64 << 20  # sidecars up to this size are hashed on every load; larger ones with verify="full"
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path, **fields: Any) -> dict:
    """The sidecar entry of an existing file: its name, SHA-256 and size, plus ``fields``."""
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size, **fields}


def npy_header(array: np.ndarray, header_bytes: int | None = None) -> bytes:
    """The .npy (version 1.0) header of ``array``, padded with spaces to ``header_bytes`` (a multiple of 64)."""
    descr = np.lib.format.dtype_to_descr(array.dtype)
    text = repr({"descr": descr, "fortran_order": False, "shape": tuple(array.shape)})
    total = header_bytes or -(-(len(_NPY_MAGIC) + 2 + len(text) + 1) // 64) * 64
    padding = total - len(_NPY_MAGIC) - 2 - len(text) - 1
    if padding < 0 or total % 64:
        raise ValueError(f"header_bytes {header_bytes} too small or not a multiple of 64 for {text}")
    return _NPY_MAGIC + (total - len(_NPY_MAGIC) - 2).to_bytes(2, "little") + (text + " " * padding + "\n").encode()


def write_npy(path: Path, array: np.ndarray, header_bytes: int | None = None, **fields: Any) -> dict:
    """Write ``array`` (little-endian, C order) as a .npy file; returns its sidecar entry."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">" or array.dtype.kind not in "iuf":
        raise ValueError(f"sidecar arrays are little-endian ints or floats, got {array.dtype}")
    with open(path, "wb") as f:
        f.write(npy_header(array, header_bytes))
        f.write(memoryview(array.reshape(-1)).cast("B"))
    return file_entry(path, dtype=array.dtype.name, shape=list(array.shape), **fields)


def write_item_ids(directory: Path, item_ids: list | tuple) -> dict[str, dict]:
    """The item ids as sidecar files in ``directory``: ``{"item_ids": entry[, "item_id_offsets": entry]}``."""
    types = set(map(type, item_ids))
    if types <= {int}:
        values = np.array(item_ids, dtype=np.int64)  # OverflowError beyond int64: JSON below
        return {"item_ids": write_npy(directory / "items.npy", values, encoding="npy")}
    if types <= {str}:
        encoded = [i.encode("utf-8") for i in item_ids]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = directory / "items.utf8"
        blob.write_bytes(b"".join(encoded))
        return {
            "item_ids": file_entry(blob, encoding="utf-8", shape=[len(encoded)]),
            "item_id_offsets": write_npy(directory / "items.offsets.npy", offsets),
        }
    path = directory / "items.json"
    path.write_text(json.dumps(list(item_ids), separators=(",", ":")), encoding="utf-8")
    return {"item_ids": file_entry(path, encoding="json", shape=[len(item_ids)])}


class Sidecars:
    """The ``sidecars`` table of a model file's metadata, read from ``directory`` with every check."""

    def __init__(self, directory: Path, entries: dict[str, dict], model_path: Path, verify: str = "fast") -> None:
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ArtifactError(f"{model_path}: invalid s4rec metadata: sidecars must be a table. Re-export it.")
        self.directory, self.entries, self.model_path, self.verify = Path(directory), entries, model_path, verify

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def path(self, name: str) -> Path:
        """The checked file of sidecar ``name``: present, of the recorded size and (when hashed) checksum."""
        entry = self.entries.get(name)
        if entry is None:
            raise ArtifactError(
                f"{self.model_path}: the metadata lists no {name!r} sidecar. Re-export the artifact with this "
                "release's s4rec-export."
            )
        path = artifact_file(self.directory, entry.get("file"), f"{self.model_path}: sidecar {name!r}")
        if not path.is_file():
            raise ArtifactError(
                f"{path}: sidecar file {name!r} of {self.model_path.name} is missing. Copy the whole artifact "
                "directory (every file listed in its s4rec.json), or re-export it."
            )
        if not isinstance(entry.get("sha256"), str) or type(entry.get("bytes")) is not int:
            raise ArtifactError(
                f"{self.model_path}: sidecar {name!r} records no sha256 and bytes of its file. Re-export the artifact."
            )
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ArtifactError(
                f"{path}: {size:,} bytes, the metadata of {self.model_path.name} records {entry.get('bytes')!r}. "
                "The file is truncated or was replaced; restore it or re-export the artifact."
            )
        if size <= HASHED_ALWAYS_BYTES or self.verify == "full":
            actual = file_sha256(path)
            if actual != entry.get("sha256"):
                raise ChecksumError(
                    f"{path}: SHA-256 {actual[:12]}... does not match the {str(entry.get('sha256'))[:12]}... "
                    f"recorded in {self.model_path.name}. The file was changed after export; restore it or "
                    "re-export the artifact."
                )
        return path

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        """Sidecar ``name`` as a read-only array of the recorded dtype and shape (memory-mapped with ``mmap``)."""
        path = self.path(name)
        entry = self.entries[name]
        try:
            # Mapped first, also when it is then read into memory: mapping checks the header's shape against the
            # file's size before anything is allocated (np.load would allocate a header's 10^10 items first).
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ArtifactError(f"{path}: not a readable .npy file ({e}). Re-export the artifact.") from None
        if array.dtype.name != entry.get("dtype") or list(array.shape) != entry.get("shape"):
            raise ArtifactError(
                f"{path}: {array.dtype.name}{list(array.shape)}, the metadata records "
                f"{entry.get('dtype')}{entry.get('shape')}. Re-export the artifact."
            )
        if not mmap:
            array = np.array(array)
            array.setflags(write=False)
        return array

    def item_ids(self, num_items: int) -> np.ndarray | tuple:
        """The item ids: an int64 array, or a tuple of str (or of ints and strs) of length ``num_items``."""
        entry = self.entries.get("item_ids", {})
        encoding = entry.get("encoding")
        if encoding == "npy":
            ids = self.array("item_ids")
            if ids.dtype != np.int64 or ids.ndim != 1:
                raise ArtifactError(f"{self.path('item_ids')}: item ids must be int64 (N,), got {ids.dtype}{ids.shape}")
        elif encoding == "utf-8":
            blob = self.path("item_ids").read_bytes()
            offsets = self.array("item_id_offsets")
            if offsets.ndim != 1 or len(offsets) != num_items + 1 or offsets[0] != 0 or offsets[-1] != len(blob):
                raise ArtifactError(f"{self.path('item_id_offsets')}: offsets do not fit the id blob. Re-export.")
            if (np.diff(offsets) < 0).any():
                raise ArtifactError(f"{self.path('item_id_offsets')}: offsets must not decrease. Re-export.")
            bounds = offsets.tolist()
            try:
                ids = tuple(blob[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:]))
            except UnicodeDecodeError as e:
                raise ArtifactError(f"{self.path('item_ids')}: not UTF-8 ({e}). Re-export the artifact.") from None
        elif encoding == "json":
            path = self.path("item_ids")
            parsed = read_json(path, "item ids", max_bytes=path.stat().st_size)  # the size recorded and checked
            if not isinstance(parsed, list) or any(type(i) not in (int, str) for i in parsed):
                raise ArtifactError(f"{path}: item ids must be a list of ints and strings. Re-export.")
            ids = tuple(parsed)
        else:
            raise ArtifactError(
                f"{self.model_path}: item_ids sidecar encoding {encoding!r} is not one this SDK reads (npy, utf-8, "
                "json). Install the s4rec release that matches the exporter, or re-export."
            )
        if len(ids) != num_items:
            raise ArtifactError(
                f"{self.path('item_ids')}: {len(ids):,} item ids for num_items {num_items:,}. Re-export the artifact."
            )
        return ids
