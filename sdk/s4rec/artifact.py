"""Reading and validating an s4rec artifact (docs/ARTIFACT.md): the manifest, the model file, its metadata.

An artifact is a directory with a manifest ``s4rec.json`` and one file per variant, or a single ``.onnx``
(or ``.ort``) file, which carries all its metadata in ``metadata_props``. Format 3 (large catalogues) keeps the
item ids, popular items, intent top items, the item table and the encoder-only graph in sidecar files next to
the model files, checksummed in its metadata (:mod:`s4rec.sidecars`). Everything here is plain Python and
numpy (format 3's lists are arrays), without ONNX Runtime: :mod:`s4rec.session` builds the session, and
:func:`check_signature` only reads the names and types of one it is given. The exporter writes artifacts with
:func:`metadata_props` and :func:`write_manifest`, so this module is the one home of the format: its
reader (:func:`parse_metadata`, :func:`read_manifest`, :func:`check_signature`) next to its writer. (That is why it
is longer than one job usually needs; the load-time probe of a graph against its metadata is
:mod:`s4rec.graph_check`.)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ArtifactVersionError, ChecksumError
from .files import interrupted_backup
from .sidecars import Sidecars, file_sha256
from .untrusted import MAX_MANIFEST_BYTES, artifact_file, check_sizes, parse_json, plain_file_name, read_json

FORMAT = "s4rec-onnx"  # metadata_props["s4rec.format"] of every model file
FORMAT_VERSION = 3  # the newest model-file format this SDK reads (3: large catalogues, lists in sidecar files)
SMALL_FORMAT_VERSION = 2  # self-describing single files, what s4rec-export writes for small catalogues
READ_FORMAT_VERSIONS = (2, 3)
LARGE_LISTS = ("item_ids", "popular_items", "intent_top_items", "item_intents")  # in sidecar files in format 3
ENCODER_SIDECAR = "encoder"  # format 3: the encoder-only graph (history -> user_embedding [, intents])
ITEM_TABLE_SIDECAR = "item_table"  # format 3: the float32 item table (N + 1 + extra, d), ONNX external data
ANN_SIDECAR = "ann_index"  # format 3, optional: the approximate-retrieval index (s4rec.ann)
ITEM_INTENTS_SIDECAR = "item_intents"  # format 3, with intents: int32 (N,), each item's intent
ITEM_TABLE_INITIALIZER = "encoder.item_table"  # format 2: the float32 item table inside the model file
VERSION_DIGITS = 12  # hex digits of an artifact's version id
MANIFEST_NAME = "s4rec.json"
MANIFEST_FORMAT = "s4rec-artifact"
MANIFEST_FORMAT_VERSION = 1
METADATA_KEY = "s4rec.metadata"
ENCODER_FORMAT = "s4rec-onnx-encoder"  # metadata_props["s4rec.format"] of a format 3 encoder-only graph

INPUT = "history"  # int64 (batch, length), left-padded item indices
EXCLUDE = "exclude"  # int64 (batch, e), item indices never returned (0 = none: padding is never returned)
K_INPUT = "k"  # int64 scalar, items returned per user, 1..top_k
INPUTS = (INPUT, EXCLUDE, K_INPUT)
USER_EMBEDDING = "user_embedding"  # float32 (batch, dim)
TOP_SCORES = "top_scores"  # float32 (batch, k), descending; -inf only for excluded items beyond the last
TOP_ITEMS = "top_items"  # int64 (batch, k), item indices 1..N
INTENT_PROBABILITIES = "intent_probabilities"  # float32 (batch, num_intents), only with intents
REQUIRED_OUTPUTS = (USER_EMBEDDING, TOP_SCORES, TOP_ITEMS)

VARIANT_FILES = {
    "fp32": "model.onnx",
    "int8": "model.int8.onnx",
    "fp16": "model.fp16.onnx",
    "mobile": "model.ort",
}


def artifact_version(source_checkpoint_sha256: str, export_sha256: str) -> str:
    """The artifact's short version id: the first :data:`VERSION_DIGITS` hex digits of the SHA-256 of
    ``"{checkpoint SHA-256}:{export SHA-256}"`` (UTF-8). The exporter passes the SHA-256 of the fp32 graph as
    exported, before its metadata is attached (so every variant of one export has the same version, and the
    same checkpoint exported the same way gets the same one); for artifacts written before versions existed the
    SDK passes the SHA-256 of the fp32 model file (:func:`legacy_version`)."""
    return hashlib.sha256(f"{source_checkpoint_sha256}:{export_sha256}".encode()).hexdigest()[:VERSION_DIGITS]


def items_checksum(item_ids: list | tuple) -> str:
    """SHA-256 of the item vocabulary as compact JSON (the ``item_ids_sha256`` metadata entry)."""
    return hashlib.sha256(json.dumps(list(item_ids), separators=(",", ":")).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ArtifactMetadata:
    """What a model file says about itself (``s4rec.metadata``), validated on construction."""

    format_version: int
    package_version: str
    variant: str  # fp32 | int8 | fp16
    opset: int
    ir_version: int
    max_len: int  # longest history the graph takes; longer ones keep their most recent max_len items
    padding_index: int  # always 0
    embedding_dim: int
    num_items: int  # N; item indices are 1..N
    num_intents: int  # K; 0 when the model has no intent centroids
    top_k: int  # the most items recommend(k) may ask for (the graph returns k per user, its input)
    # The three lists: tuples in format 2 (from the JSON); in format 3 read from sidecar files, item_ids an
    # int64 array (or a tuple of str), popular_items (P,) and intent_top_items (K, top_k) int64 arrays. Not
    # compared: the checksums identify them.
    item_ids: tuple | np.ndarray = field(compare=False)  # item_ids[i - 1] is the user's own id of item index i
    item_ids_sha256: str = ""  # format 2: SHA-256 of the JSON list; format 3: in the sidecars table
    popular_items: tuple[int, ...] | np.ndarray = field(default=(), compare=False)  # by descending popularity
    intent_top_items: tuple[tuple[int, ...], ...] | np.ndarray = field(default=(), compare=False)  # per intent
    intent_temperature: float | None = None
    intent_normalized: bool = True
    source_checkpoint_sha256: str = ""
    checkpoint_metrics: dict = field(default_factory=dict, hash=False, compare=False)
    created_at: str = ""
    inputs: tuple[str, ...] = INPUTS
    ranking_block_size: int = 0  # informational: the graph ranks blocks of this many items (0: all at once)
    outputs: tuple[str, ...] = REQUIRED_OUTPUTS
    # format 3: sidecar name -> {"file", "sha256", "bytes", ...} (s4rec.sidecars); {} in format 2
    sidecars: dict = field(default_factory=dict, hash=False)
    table_precision: str = "float32"  # how the scored item table is stored: float32 | int8 (per-row scales)
    # Each item's intent (item_intents[i - 1]: the intent of item index i, 0..K-1): a tuple in format 2 (the JSON),
    # an int32 (N,) array in format 3 (sidecar item_intents.npy); empty without intents and in artifacts exported
    # before it existed (per_intent then raises ArtifactVersionError).
    item_intents: tuple[int, ...] | np.ndarray = field(default=(), compare=False)
    version: str = ""  # the artifact's short version id (artifact_version); "" in artifacts exported before it

    @property
    def large(self) -> bool:
        """Format 3: the lists and tables are sidecar files."""
        return self.format_version == 3

    def __post_init__(self) -> None:
        problems = []
        if self.format_version not in READ_FORMAT_VERSIONS:
            problems.append(f"format_version {self.format_version!r} (this SDK reads {list(READ_FORMAT_VERSIONS)})")
        if self.format_version == 3:
            self._check_large(problems)
            if problems:
                raise ValueError("; ".join(problems))
            return
        self._check_scalars(problems)
        if len(self.item_ids) != self.num_items:
            problems.append(f"{len(self.item_ids)} item_ids for num_items {self.num_items}")
        if len(set(self.item_ids)) != len(self.item_ids):
            problems.append("item_ids has duplicates")
        if any(type(i) not in (int, str) for i in self.item_ids):
            problems.append("item_ids must be ints or strings")
        if not problems and items_checksum(self.item_ids) != self.item_ids_sha256:
            raise ChecksumError(
                f"item vocabulary checksum mismatch: recorded {self.item_ids_sha256[:12]}..., computed "
                f"{items_checksum(self.item_ids)[:12]}.... The item ids were altered; re-export the artifact."
            )
        self._check_item_intents(problems)
        n = self.num_items
        if isinstance(n, int):
            if any(not 1 <= i <= n for i in self.popular_items):
                problems.append(f"popular_items outside 1..{n}")
            if self.num_intents and len(self.intent_top_items) != self.num_intents:
                problems.append(f"{len(self.intent_top_items)} intent_top_items lists for {self.num_intents} intents")
            if any(not 1 <= i <= n for row in self.intent_top_items for i in row):
                problems.append(f"intent_top_items outside 1..{n}")
        if problems:
            raise ValueError("; ".join(problems))

    def _check_scalars(self, problems: list[str]) -> None:
        if self.variant not in ("fp32", "int8", "fp16"):
            problems.append(f"variant {self.variant!r} (expected fp32, int8 or fp16)")
        if self.padding_index != 0:
            problems.append(f"padding_index {self.padding_index!r} (expected 0)")
        for name in ("max_len", "embedding_dim", "num_items", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} {value!r} (expected an int >= 1)")
        if not isinstance(self.num_intents, int) or self.num_intents < 0:
            problems.append(f"num_intents {self.num_intents!r} (expected an int >= 0)")
        if isinstance(self.top_k, int) and isinstance(self.num_items, int) and self.top_k > self.num_items:
            problems.append(f"top_k {self.top_k} > num_items {self.num_items}")
        if self.num_intents and not (isinstance(self.intent_temperature, (int, float)) and self.intent_temperature > 0):
            problems.append(f"intent_temperature {self.intent_temperature!r} (expected > 0 with intents)")
        if any(i not in self.inputs for i in INPUTS) or any(o not in self.outputs for o in REQUIRED_OUTPUTS):
            problems.append(f"inputs {list(self.inputs)} / outputs {list(self.outputs)} lack the required names")
        if self.num_intents and INTENT_PROBABILITIES not in self.outputs:
            problems.append(f"{self.num_intents} intents but no {INTENT_PROBABILITIES} output")
        if self.table_precision not in ("float32", "int8"):
            problems.append(f"table_precision {self.table_precision!r} (expected float32 or int8)")
        if not isinstance(self.version, str) or (self.version and not _VERSION.fullmatch(self.version)):
            problems.append(f"version {self.version!r} (expected {VERSION_DIGITS} lowercase hex digits)")

    def _check_item_intents(self, problems: list[str]) -> None:
        """``item_intents``: none, or one intent 0..K-1 per item."""
        intents = self.item_intents
        if not len(intents):
            return
        if not self.num_intents:
            problems.append("item_intents without intents (num_intents 0)")
            return
        if len(intents) != self.num_items:
            problems.append(f"{len(intents)} item_intents for num_items {self.num_items}")
            return
        if isinstance(intents, np.ndarray):
            ok = intents.ndim == 1 and intents.dtype.kind in "iu"
            ok = ok and 0 <= intents.min() and intents.max() < self.num_intents
        else:
            ok = all(type(i) is int and 0 <= i < self.num_intents for i in intents)
        if not ok:
            problems.append(f"item_intents must be intents in 0..{self.num_intents - 1}")

    def _check_large(self, problems: list[str]) -> None:
        """Format 3: the scalars as in format 2, the lists as arrays (the vocabulary checks the ids' uniqueness)."""
        self._check_scalars(problems)
        if problems:
            return
        n = self.num_items
        if len(self.item_ids) != n:
            problems.append(f"{len(self.item_ids)} item_ids for num_items {n}")
        for name in ("item_table", "encoder"):
            if name not in self.sidecars:
                problems.append(f"no {name!r} in sidecars")
        popular = np.asarray(self.popular_items)
        if popular.ndim != 1 or popular.dtype.kind not in "iu" or (len(popular) and not indices_within(popular, n)):
            problems.append(f"popular_items must be item indices in 1..{n}")
        top = np.asarray(self.intent_top_items)
        if self.num_intents:
            if top.ndim != 2 or top.shape[0] != self.num_intents or top.dtype.kind not in "iu":
                problems.append(f"intent_top_items must be ({self.num_intents}, top_k) item indices, got {top.shape}")
            elif not indices_within(top, n):
                problems.append(f"intent_top_items outside 1..{n}")
        self._check_item_intents(problems)

    @classmethod
    def from_dict(cls, values: dict[str, Any], lists: dict[str, Any] | None = None) -> ArtifactMetadata:
        """Build from the JSON object; unknown keys (additions by newer exporters) are ignored. Format 3 takes
        the three lists (``item_ids``, ``popular_items``, ``intent_top_items``) from ``lists`` (read from the
        sidecar files) rather than from the JSON."""
        known = {f.name for f in fields(cls)}
        large = values.get("format_version") == 3
        required = _REQUIRED_LARGE if large else _REQUIRED
        missing = [name for name in sorted(required) if name not in values]
        if missing:
            raise ValueError(f"missing metadata keys {missing}")
        v = {k: values[k] for k in known if k in values}
        if large:
            for name in LARGE_LISTS:
                v.pop(name, None)
            v.update(lists or {})
            if "item_ids" not in v:
                raise ValueError("format 3 metadata needs the item_ids sidecar")
        for name in ("inputs", "outputs", *(() if large else ("item_ids", "popular_items", "item_intents"))):
            if name in v:
                v[name] = tuple(v[name])
        if "intent_top_items" in v and not large:
            v["intent_top_items"] = tuple(tuple(row) for row in v["intent_top_items"])
        return cls(**v)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``s4rec.metadata`` (format 3: without the lists, which are sidecar files)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if self.large and f.name in LARGE_LISTS:
                continue
            if f.name == "intent_top_items":
                value = [list(row) for row in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def lists(self) -> dict[str, Any]:
        """The three lists as given (for :meth:`from_dict` of a copy of format 3 metadata)."""
        return {name: getattr(self, name) for name in LARGE_LISTS}


def indices_within(indices: np.ndarray, n: int) -> bool:
    """Every index is an item index 1..n."""
    return bool(indices.min() >= 1 and indices.max() <= n) if indices.size else True


_REQUIRED = {
    "format_version", "package_version", "variant", "opset", "ir_version", "max_len", "padding_index",
    "embedding_dim", "num_items", "num_intents", "top_k", "item_ids", "item_ids_sha256", "popular_items",
}  # fmt: skip
_REQUIRED_LARGE = (_REQUIRED - set(LARGE_LISTS) - {"item_ids_sha256"}) | {"sidecars"}


def read_manifest(directory: Path) -> dict:
    """Read and check ``s4rec.json`` of an artifact directory."""
    manifest_path = artifact_file(directory, MANIFEST_NAME, f"{directory}: the manifest")
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{directory}: no {MANIFEST_NAME} in this directory, so it is not an s4rec artifact. "
            "Pass the directory written by `s4rec-export model.pt -o DIR`, or a single .onnx file."
        )
    manifest = read_json(manifest_path, "manifest", MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"{manifest_path}: not an s4rec manifest (no format={MANIFEST_FORMAT!r}).")
    version = manifest.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        raise ArtifactVersionError(
            f"{manifest_path}: manifest format version {version!r}, this SDK reads "
            f"{MANIFEST_FORMAT_VERSION}. Install the s4rec release that matches the exporter, or re-export."
        )
    if not isinstance(manifest.get("variants"), dict):
        raise ArtifactError(f"{manifest_path}: manifest has no 'variants' table. Re-export the artifact.")
    tables = [("variants", manifest["variants"])]
    if "files" in manifest:
        tables.append(("files", manifest["files"]))
    for table, entries in tables:
        if not isinstance(entries, dict):
            raise ArtifactError(f"{manifest_path}: manifest {table!r} must be an object. Re-export the artifact.")
        for name, entry in entries.items():
            check_file_entry(entry, f"{manifest_path}: {table}.{name}")
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(rf"[0-9a-f]{{{VERSION_DIGITS}}}")


def check_file_entry(entry, where: str) -> None:
    """A manifest or sidecar entry names a file inside the artifact directory and records its SHA-256 (and,
    when present, its size): anything else is refused before a path is built from it."""
    if not isinstance(entry, dict):
        kind = type(entry).__name__
        raise ArtifactError(f"{where} must be an object with 'file' and 'sha256', got {kind}. Re-export the artifact.")
    file = entry.get("file")
    if not isinstance(file, str):
        raise ArtifactError(f"{where} has no 'file' name (got {file!r}). Re-export the artifact.")
    if not plain_file_name(file):
        raise ArtifactError(
            f"{where}: 'file' {file!r} is not a file name inside the artifact directory (paths, absolute or "
            "with '..', are refused). Re-export the artifact."
        )
    sha256 = entry.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ArtifactError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {sha256!r}. Re-export.")
    size = entry.get("bytes")
    if size is not None and (type(size) is not int or size < 0):
        raise ArtifactError(f"{where}: 'bytes' must be an integer >= 0, got {size!r}. Re-export the artifact.")


def model_entry(path: str | Path, variant: str = "fp32") -> tuple[Path, dict]:
    """The model file of ``variant`` for an artifact directory or a single file, and its manifest entry
    (``{}`` for a lone file): its ``sha256`` and, for format 3, ``prepacking`` (false: build the session with
    ONNX Runtime's weight pre-packing off, which would copy a large item table).

    A single file inside an artifact directory is checked against that directory's manifest when the
    manifest lists it; a lone file has no recorded checksum (its metadata is still validated)."""
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        entry = manifest["variants"].get(variant)
        if entry is None:
            available = sorted(manifest["variants"])
            raise ArtifactError(
                f"{path}: no {variant!r} variant in this artifact (it has {available}). Load one of those "
                "(variant=...), or re-export with the s4rec-export option that writes it (e.g. --quantize int8).",
                flags={"variant=...": "--variant"},
            )
        model_path = artifact_file(path, entry["file"], f"{path / MANIFEST_NAME}: variants.{variant}")
        if not model_path.is_file():
            raise ArtifactError(f"{model_path}: listed in {MANIFEST_NAME} but missing. Re-export the artifact.")
        size = model_path.stat().st_size
        if entry.get("bytes") is not None and size != entry["bytes"]:
            raise ChecksumError(
                f"{model_path}: {size:,} bytes, {MANIFEST_NAME} records {entry['bytes']:,}. The file was truncated "
                "or replaced after export; re-export the artifact or restore the file."
            )
        return model_path, entry
    if not path.exists():
        backup = interrupted_backup(path)
        if backup is not None:
            raise ArtifactError(
                f"{path}: no such artifact: an interrupted forced s4rec-export left the previous one in {backup}. "
                f"Run s4rec-export -o {path} again (it puts the previous one back first), or move it back: "
                f"mv {backup} {path}"
            )
        raise ArtifactError(f"{path}: no such artifact. Create one with `s4rec-export model.pt -o {path}`.")
    if path.suffix not in (".onnx", ".ort"):
        raise ArtifactError(f"{path}: expected an artifact directory, a .onnx or a .ort file.")
    manifest_path = path.parent / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = read_manifest(path.parent)
        for entry in manifest["variants"].values():
            if entry.get("file") == path.name:
                return path, entry
    return path, {}


def legacy_version(model_path: Path, listed: bool, metadata: ArtifactMetadata) -> str:
    """The version of an artifact exported before versions were written: :func:`artifact_version` of its
    checkpoint's SHA-256 and its fp32 model file's (the manifest's entry when the loaded file is ``listed`` in
    its directory's manifest, so that every variant gets the same version; else the loaded file's own)."""
    export_sha256 = None
    if listed:
        export_sha256 = read_manifest(model_path.parent)["variants"].get("fp32", {}).get("sha256")
    if export_sha256 is None:
        export_sha256 = file_sha256(model_path)
    return artifact_version(metadata.source_checkpoint_sha256, export_sha256)


def manifest_files(model_path: Path, listed: bool) -> dict[str, dict]:
    """The manifest's ``files`` table of the loaded model's directory (``{}`` for a file no manifest lists)."""
    if not listed:
        return {}
    return read_manifest(model_path.parent).get("files", {})


def verify_checksum(model_path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = file_sha256(model_path)
    if actual != expected:
        raise ChecksumError(
            f"{model_path}: SHA-256 {actual[:12]}... does not match the manifest's {expected[:12]}.... "
            "The file was changed or truncated after export; re-export the artifact or restore the file."
        )


def metadata_props(metadata: ArtifactMetadata) -> dict[str, str]:
    """The ``metadata_props`` entries of a model file: what :func:`parse_metadata` reads back."""
    return {
        "s4rec.format": FORMAT,
        "s4rec.format_version": str(metadata.format_version),
        METADATA_KEY: json.dumps(metadata.to_dict(), separators=(",", ":")),
    }


def write_manifest(directory: Path, variants: dict[str, dict], files: dict[str, dict] | None = None) -> dict:
    """Write ``s4rec.json`` for the model files in ``directory``: ``variants`` maps a variant to its entry's
    extra fields (``{}`` for none); each entry gets the file name, its SHA-256 and its size. ``files``: the
    format-3 sidecar entries (name -> entry), listed so that the directory says what belongs to it. Returns it."""
    directory = Path(directory)
    entries = {}
    for variant, extra in variants.items():
        path = directory / VARIANT_FILES[variant]
        entries[variant] = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size, **extra}
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_FORMAT_VERSION, "variants": entries}
    if files:
        manifest["files"] = files
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def parse_metadata(custom: dict[str, str], model_path: Path, verify: str = "fast") -> ArtifactMetadata:
    """Validate the ``metadata_props`` of a model file into :class:`ArtifactMetadata`; format 3 reads its lists
    from the sidecar files next to ``model_path`` (``verify="full"`` also hashes the large tables)."""
    fmt = custom.get("s4rec.format")
    if fmt == ENCODER_FORMAT:
        raise ArtifactError(
            f"{model_path}: this is the encoder-only graph of a format 3 artifact, not a model to load on its own. "
            f"Load the artifact directory {model_path.parent} (or its model.onnx)."
        )
    if fmt != FORMAT:
        raise ArtifactError(
            f"{model_path}: not an s4rec model (metadata s4rec.format is {fmt!r}, expected {FORMAT!r}). "
            "Export the model with s4rec-export."
        )
    version = custom.get("s4rec.format_version")
    readable = " and ".join(map(str, READ_FORMAT_VERSIONS))
    if version in [str(v) for v in range(1, min(READ_FORMAT_VERSIONS))]:
        raise ArtifactVersionError(
            f"{model_path}: model format version {version}, written by an older s4rec-export; this SDK reads "
            f"versions {readable} (whose graphs take the inputs {list(INPUTS)}). Re-export the artifact from "
            "its checkpoint with this release's s4rec-export (the checkpoint needs no change)."
        )
    if version not in [str(v) for v in READ_FORMAT_VERSIONS]:
        raise ArtifactVersionError(
            f"{model_path}: model format version {version!r} is newer than this SDK, which reads versions "
            f"{readable}. Upgrade the SDK to the release of the exporter that wrote it "
            "(reinstall s4rec from an up-to-date checkout), "
            "or re-export the checkpoint with the s4rec-export that matches this SDK."
        )
    try:
        values = parse_json(custom[METADATA_KEY], str(model_path), METADATA_KEY)
        if not isinstance(values, dict) or str(values.get("format_version")) != version:
            found = values.get("format_version") if isinstance(values, dict) else None
            raise ValueError(f"s4rec.format_version {version!r} but the metadata's format_version is {found!r}")
        check_sizes(values, model_path, model_path.stat().st_size)  # before anything is allocated from them
        lists = None
        if values.get("format_version") == 3:
            lists = read_lists(Sidecars(model_path.parent, values.get("sidecars"), model_path, verify), values)
        return ArtifactMetadata.from_dict(values, lists)
    except ChecksumError as e:
        raise ChecksumError(e if str(e).startswith(str(model_path.parent)) else f"{model_path}: {e}") from None
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArtifactError(f"{model_path}: invalid s4rec metadata: {e}. Re-export the artifact.") from None


def read_lists(sidecars: Sidecars, values: dict) -> dict[str, Any]:
    """The large lists of a format 3 model from its sidecar files (each checked, :class:`Sidecars`)."""
    num_items = values["num_items"]
    if not isinstance(num_items, int):
        raise ValueError(f"num_items {num_items!r} (expected an int >= 1)")
    lists: dict[str, Any] = {"item_ids": sidecars.item_ids(num_items), "popular_items": sidecars.array("popular_items")}
    if values.get("num_intents"):
        lists["intent_top_items"] = sidecars.array("intent_top_items")
    else:
        lists["intent_top_items"] = np.zeros((0, 0), dtype=np.int64)
    # each item's intent: artifacts exported before it existed have none
    if ITEM_INTENTS_SIDECAR in sidecars:
        lists["item_intents"] = sidecars.array(ITEM_INTENTS_SIDECAR)
    else:
        lists["item_intents"] = np.zeros(0, dtype=np.int32)
    return lists


def check_signature(session, metadata: ArtifactMetadata, model_path: Path) -> None:
    """The graph (an ONNX Runtime session) must have the public inputs and outputs the metadata promises."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    problems = []
    for name, rank, what in ((INPUT, 2, "[batch, length]"), (EXCLUDE, 2, "[batch, excluded]"), (K_INPUT, 0, "[]")):
        if name not in inputs:
            problems.append(f"no input {name!r} (inputs: {sorted(inputs)})")
        elif inputs[name].type != "tensor(int64)" or len(inputs[name].shape) != rank:
            problems.append(f"input {name!r} is {inputs[name].type} {inputs[name].shape}, expected int64 {what}")
    missing = [o for o in REQUIRED_OUTPUTS if o not in outputs]
    if metadata.num_intents and INTENT_PROBABILITIES not in outputs:
        missing.append(INTENT_PROBABILITIES)
    if missing:
        problems.append(f"missing outputs {missing} (outputs: {sorted(outputs)})")
    if problems:
        raise ArtifactError(
            f"{model_path}: the graph does not match the s4rec contract: {'; '.join(problems)}. Re-export it."
        )


def check_encoder_signature(session, metadata: ArtifactMetadata, encoder_path: Path) -> None:
    """A format 3 encoder-only graph must take ``history`` and give ``user_embedding`` (and the intents)."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    wanted = [USER_EMBEDDING] + ([INTENT_PROBABILITIES] if metadata.num_intents else [])
    problems = []
    if list(inputs) != [INPUT] or inputs[INPUT].type != "tensor(int64)" or len(inputs[INPUT].shape) != 2:
        problems.append(f"inputs {sorted(inputs)} (expected {INPUT!r} int64 [batch, length] alone)")
    if any(o not in outputs for o in wanted):
        problems.append(f"outputs {sorted(outputs)} (expected {wanted})")
    if problems:
        raise ArtifactError(
            f"{encoder_path}: the encoder graph does not match the s4rec contract: {'; '.join(problems)}. Re-export."
        )
