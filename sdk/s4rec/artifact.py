"""Reading and validating an s4rec artifact (docs/ARTIFACT.md): the manifest, the model file, its metadata.

An artifact is a directory with a manifest ``s4rec.json`` and one file per variant, or a single ``.onnx``
(or ``.ort``) file, which carries all its metadata in ``metadata_props``. Everything here is plain Python and
numpy-free; :mod:`s4rec.recommender` builds the ONNX Runtime session. The exporter writes artifacts with
:func:`metadata_props` and :func:`write_manifest`, so this module is the one home of the format: its
reader (:func:`parse_metadata`, :func:`read_manifest`, :func:`check_signature`) next to its writer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ArtifactError, ArtifactVersionError, ChecksumError

FORMAT = "s4rec-onnx"  # metadata_props["s4rec.format"] of every model file
FORMAT_VERSION = 2  # the model-file format this SDK reads and s4rec-export writes (2: inputs exclude and k)
MANIFEST_NAME = "s4rec.json"
MANIFEST_FORMAT = "s4rec-artifact"
MANIFEST_FORMAT_VERSION = 1
METADATA_KEY = "s4rec.metadata"

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


def items_checksum(item_ids: list | tuple) -> str:
    """SHA-256 of the item vocabulary as compact JSON (the ``item_ids_sha256`` metadata entry)."""
    return hashlib.sha256(json.dumps(list(item_ids), separators=(",", ":")).encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    item_ids: tuple  # item_ids[i - 1] is the user's own id of item index i
    item_ids_sha256: str
    popular_items: tuple[int, ...]  # item indices by descending popularity (empty-history fallback)
    intent_top_items: tuple[tuple[int, ...], ...] = ()  # per intent, the top_k item indices closest to it
    intent_temperature: float | None = None
    intent_normalized: bool = True
    source_checkpoint_sha256: str = ""
    checkpoint_metrics: dict = field(default_factory=dict, hash=False, compare=False)
    created_at: str = ""
    inputs: tuple[str, ...] = INPUTS
    ranking_block_size: int = 0  # informational: the graph ranks blocks of this many items (0: all at once)
    outputs: tuple[str, ...] = REQUIRED_OUTPUTS

    def __post_init__(self) -> None:
        problems = []
        if self.format_version != FORMAT_VERSION:
            problems.append(f"format_version {self.format_version!r} (this SDK reads {FORMAT_VERSION})")
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
        n = self.num_items
        if any(not 1 <= i <= n for i in self.popular_items):
            problems.append(f"popular_items outside 1..{n}")
        if self.num_intents and len(self.intent_top_items) != self.num_intents:
            problems.append(f"{len(self.intent_top_items)} intent_top_items lists for {self.num_intents} intents")
        if any(not 1 <= i <= n for row in self.intent_top_items for i in row):
            problems.append(f"intent_top_items outside 1..{n}")
        if self.num_intents and not (isinstance(self.intent_temperature, (int, float)) and self.intent_temperature > 0):
            problems.append(f"intent_temperature {self.intent_temperature!r} (expected > 0 with intents)")
        if any(i not in self.inputs for i in INPUTS) or any(o not in self.outputs for o in REQUIRED_OUTPUTS):
            problems.append(f"inputs {list(self.inputs)} / outputs {list(self.outputs)} lack the required names")
        if self.num_intents and INTENT_PROBABILITIES not in self.outputs:
            problems.append(f"{self.num_intents} intents but no {INTENT_PROBABILITIES} output")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ArtifactMetadata:
        """Build from the JSON object; unknown keys (additions by newer exporters) are ignored."""
        known = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name in _REQUIRED and f.name not in values]
        if missing:
            raise ValueError(f"missing metadata keys {missing}")
        v = {k: values[k] for k in known if k in values}
        for name in ("item_ids", "popular_items", "inputs", "outputs"):
            if name in v:
                v[name] = tuple(v[name])
        if "intent_top_items" in v:
            v["intent_top_items"] = tuple(tuple(row) for row in v["intent_top_items"])
        return cls(**v)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "intent_top_items":
                value = [list(row) for row in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_REQUIRED = {
    "format_version", "package_version", "variant", "opset", "ir_version", "max_len", "padding_index",
    "embedding_dim", "num_items", "num_intents", "top_k", "item_ids", "item_ids_sha256", "popular_items",
}  # fmt: skip


def read_manifest(directory: Path) -> dict:
    """Read and check ``s4rec.json`` of an artifact directory."""
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{directory}: no {MANIFEST_NAME} in this directory, so it is not an s4rec artifact. "
            "Pass the directory written by `s4rec-export model.pt -o DIR`, or a single .onnx file."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({e}). Re-export the artifact.") from None
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
    return manifest


def resolve_model_file(path: str | Path, variant: str = "fp32") -> tuple[Path, str | None]:
    """The model file of ``variant`` for an artifact directory or a single file, and its recorded SHA-256.

    A single file inside an artifact directory is checked against that directory's manifest when the
    manifest lists it; a lone file has no recorded checksum (its metadata is still validated).
    """
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
        model_path = path / entry["file"]
        if not model_path.is_file():
            raise ArtifactError(f"{model_path}: listed in {MANIFEST_NAME} but missing. Re-export the artifact.")
        return model_path, entry.get("sha256")
    if not path.exists():
        raise ArtifactError(f"{path}: no such artifact. Create one with `s4rec-export model.pt -o {path}`.")
    if path.suffix not in (".onnx", ".ort"):
        raise ArtifactError(f"{path}: expected an artifact directory, a .onnx or a .ort file.")
    manifest_path = path.parent / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = read_manifest(path.parent)
        for entry in manifest["variants"].values():
            if entry.get("file") == path.name:
                return path, entry.get("sha256")
    return path, None


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
        "s4rec.format_version": str(FORMAT_VERSION),
        METADATA_KEY: json.dumps(metadata.to_dict(), separators=(",", ":")),
    }


def write_manifest(directory: Path, variants: dict[str, dict]) -> dict:
    """Write ``s4rec.json`` for the model files in ``directory``: ``variants`` maps a variant to its entry's
    extra fields (``{}`` for none); each entry gets the file name, its SHA-256 and its size. Returns it."""
    directory = Path(directory)
    entries = {}
    for variant, extra in variants.items():
        path = directory / VARIANT_FILES[variant]
        entries[variant] = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size, **extra}
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_FORMAT_VERSION, "variants": entries}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def parse_metadata(custom: dict[str, str], model_path: Path) -> ArtifactMetadata:
    """Validate the ``metadata_props`` of a model file into :class:`ArtifactMetadata`."""
    fmt = custom.get("s4rec.format")
    if fmt != FORMAT:
        raise ArtifactError(
            f"{model_path}: not an s4rec model (metadata s4rec.format is {fmt!r}, expected {FORMAT!r}). "
            "Export the model with s4rec-export."
        )
    version = custom.get("s4rec.format_version")
    if version in [str(v) for v in range(1, FORMAT_VERSION)]:
        raise ArtifactVersionError(
            f"{model_path}: model format version {version}, written by an older s4rec-export; this SDK reads "
            f"version {FORMAT_VERSION} (whose graph takes the inputs {list(INPUTS)}). Re-export the artifact from "
            "its checkpoint with this release's s4rec-export (the checkpoint needs no change)."
        )
    if version != str(FORMAT_VERSION):
        raise ArtifactVersionError(
            f"{model_path}: model format version {version!r}, this SDK reads {FORMAT_VERSION}. "
            "Install the s4rec release that matches the exporter (pip install -U s4rec), or re-export."
        )
    try:
        values = json.loads(custom[METADATA_KEY])
        return ArtifactMetadata.from_dict(values)
    except ChecksumError as e:
        raise ChecksumError(f"{model_path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{model_path}: invalid s4rec metadata: {e}. Re-export the artifact.") from None


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
