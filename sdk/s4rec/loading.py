"""Opening an artifact: the checks and the ONNX Runtime sessions a :class:`~s4rec.Recommender` is built from.

``open_artifact`` resolves the manifest entry of the chosen variant, verifies its checksum, builds the session,
parses and bounds the metadata, checks the graph's signature against it and probes it
(:mod:`s4rec.graph_check`); for format 3 it opens the sidecars (:mod:`s4rec.sidecars`: the encoder-only graph,
the item table and, with ``retrieval="ann"``, the index), for format 2 the encoder-only graph of the fp32
weights and the item table read from the graph. What it cannot use raises :class:`~s4rec.errors.ArtifactError`
(or a subclass) naming the file; the item table's errors are kept and raised by the calls that need it, so an
artifact that loaded before still loads. Kept apart from :mod:`s4rec.recommender`, which only ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .artifact import (
    ANN_SIDECAR,
    ENCODER_SIDECAR,
    ITEM_TABLE_SIDECAR,
    ArtifactMetadata,
    check_encoder_signature,
    check_signature,
    legacy_version,
    manifest_files,
    model_entry,
    parse_metadata,
    verify_checksum,
)
from .errors import ArtifactError, S4RecError
from .graph_check import check_encoder_agrees, check_graph_agrees, check_top_k
from .item_table import ItemTable, check_table_agrees, format2_vectors, format3_vectors, item_intents
from .session import make_session
from .sidecars import Sidecars
from .vocabulary import check_unknown_policy

RETRIEVALS = ("exact", "ann")
VERIFY_MODES = ("fast", "full")


@dataclass(frozen=True)
class OpenedArtifact:
    """What :func:`open_artifact` checked and built: the parts of a :class:`~s4rec.Recommender`."""

    session: ort.InferenceSession
    metadata: ArtifactMetadata
    model_path: Path
    threads: int  # cores the batch methods may use (0 resolved to all of them)
    encoder: ort.InferenceSession | None  # the encoder-only graph, where the artifact has one for this variant
    ann: Any  # retrieval="ann": an s4rec.ann.AnnIndex
    items: ItemTable | S4RecError  # the item vectors and intents, or why they cannot be read
    version: str


def open_artifact(
    path: str | Path,
    threads: int = 1,
    variant: str = "fp32",
    unknown: str = "ignore",
    optimization: str = "all",
    retrieval: str = "exact",
    verify: str = "fast",
    ef_search: int | None = None,
) -> OpenedArtifact:
    """Open and check an artifact directory (or a single ``.onnx``/``.ort`` file); the arguments are
    :meth:`s4rec.Recommender.load`'s."""
    check_unknown_policy(unknown)
    if retrieval not in RETRIEVALS:
        raise ValueError(f"retrieval must be one of {list(RETRIEVALS)}, got {retrieval!r}.")
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {list(VERIFY_MODES)}, got {verify!r}.")
    model_path, entry = model_entry(path, variant)
    verify_checksum(model_path, entry.get("sha256"))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}.")
    threads = threads or os.cpu_count() or 1
    # ANN never runs the full graph: without pre-packing its session only reads the metadata (and maps
    # the table) instead of packing a copy of the scored table
    prepacking = entry.get("prepacking", True) is not False and retrieval == "exact"
    session = make_session(model_path, 1, optimization, prepacking=prepacking)
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, model_path, verify)
    check_signature(session, metadata, model_path)
    encoder: ort.InferenceSession | None = None
    ann = None
    listed = bool(entry)  # the loaded file is one of its directory's manifest's variants
    if metadata.large:
        sidecars = Sidecars(model_path.parent, metadata.sidecars, model_path, verify)
        encoder_path = sidecars.path(ENCODER_SIDECAR)
        sidecars.path(ITEM_TABLE_SIDECAR)  # present, of its recorded size (and hash with verify="full")
        encoder = make_session(encoder_path, 1, optimization)
        check_encoder_signature(encoder, metadata, encoder_path)
        # The probe on the encoder: the full graph would read the whole mapped table (ANN never needs it).
        check_graph_agrees(encoder, metadata, encoder_path, encoder=True)
        if retrieval == "exact":
            check_top_k(session, metadata, model_path)
        else:
            ann = _load_ann(sidecars, metadata, ef_search)
        items: ItemTable | S4RecError = ItemTable(format3_vectors(sidecars, metadata), item_intents(metadata))
    elif retrieval == "ann":
        raise ArtifactError(
            f"{model_path}: retrieval='ann' needs a format 3 artifact with an ANN index; this one is format "
            f"{metadata.format_version} ({metadata.num_items:,} items, exact scoring is fast at this size). "
            "Use retrieval='exact', or re-export with --large-format --ann.",
            flags={"retrieval='exact'": "--retrieval exact"},
        )
    else:
        check_graph_agrees(session, metadata, model_path)
        encoder = _small_encoder(model_path, listed, metadata, session, optimization, verify)
        items = _small_item_table(model_path, metadata, session)
    version = metadata.version or legacy_version(model_path, listed, metadata)
    return OpenedArtifact(session, metadata, model_path, threads, encoder, ann, items, version)


def _small_encoder(
    model_path: Path, listed: bool, metadata: ArtifactMetadata, session, optimization: str, verify: str
) -> ort.InferenceSession | None:
    """Format 2's encoder-only graph (``encoder.onnx`` in the manifest's ``files``; its tensors are read from
    ``model.onnx``), for the fp32 weights only (the fp32 and mobile variants: int8 and fp16 compute other user
    vectors); None for artifacts exported before it, lone files and the other variants (the full graph then
    gives the user vectors, ranking as little as it can)."""
    entry = manifest_files(model_path, listed).get(ENCODER_SIDECAR)
    if entry is None or metadata.variant != "fp32":
        return None
    encoder_path = Sidecars(model_path.parent, {ENCODER_SIDECAR: entry}, model_path, verify).path(ENCODER_SIDECAR)
    encoder = make_session(encoder_path, 1, optimization)
    check_encoder_signature(encoder, metadata, encoder_path)
    check_encoder_agrees(session, encoder, metadata, encoder_path)
    return encoder


def _small_item_table(model_path: Path, metadata: ArtifactMetadata, session) -> ItemTable | S4RecError:
    """Format 2's item vectors (:mod:`s4rec.item_table`), checked against the graph when they are its own table;
    an error, raised later by the calls that need them, when they cannot be read."""
    try:
        vectors = format2_vectors(model_path, metadata)
        if metadata.variant == "fp32" and model_path.suffix == ".onnx":
            check_table_agrees(vectors, session.run, model_path)
    except S4RecError as e:
        return e
    return ItemTable(vectors, item_intents(metadata))


def _load_ann(sidecars: Sidecars, metadata: ArtifactMetadata, ef_search: int | None):
    from .ann import AnnIndex

    if ANN_SIDECAR not in sidecars:
        raise ArtifactError(
            f"{sidecars.model_path}: retrieval='ann' needs an ANN index, and this artifact has none. "
            "Re-export it with s4rec-export --ann (pip install '/path/to/s4rec[ann]'), or use retrieval='exact'.",
            flags={"retrieval='exact'": "--retrieval exact"},
        )
    index_path = sidecars.path(ANN_SIDECAR)
    table = sidecars.array(ITEM_TABLE_SIDECAR, mmap=True)[: metadata.num_items + 1]
    return AnnIndex.load(index_path, sidecars.entries[ANN_SIDECAR], table, metadata.num_items, ef_search)
