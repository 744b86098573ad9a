"""The artifact formats and their variants, as data: what the one export pipeline (:mod:`s4rec_export.exporter`)
does for each (docs/ARTIFACT.md).

:data:`FORMATS` has one row per artifact format (:class:`ArtifactFormat`): the files written beside the model
files before their metadata is made (format 3: the item table, the three lists, the encoder-only graph and, with
``--ann``, the approximate-retrieval index; format 2: none), the check that runs after the fp32 parity check
(format 3: the encoder-only graph against the full one) and the variants the format can add, one
:class:`VariantStep` each: how the variant is made from the verified fp32 export (:class:`Fp32Export`), checked,
size-limited and compared with fp32. Every check of the pipeline runs for every format and variant; what
differs between them is in these rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from s4rec import Recommender
from s4rec.ann import build_index
from s4rec.artifact import (
    ANN_SIDECAR,
    ENCODER_FORMAT,
    ENCODER_SIDECAR,
    FORMAT_VERSION,
    INTENT_PROBABILITIES,
    ITEM_INTENTS_SIDECAR,
    SMALL_FORMAT_VERSION,
    USER_EMBEDDING,
    ArtifactMetadata,
)
from s4rec.protobuf import initializer
from s4rec.sidecars import TABLE_HEADER_BYTES, file_entry, write_item_ids, write_npy
from s4rec_train.checkpoint import IntentTable, item_ids
from s4rec_train.model import SASRec

from .errors import ParityError, ValidationError
from .inference import InferenceGraph, inference_graph
from .large import ENCODER_FILE, ITEM_TABLE_FILE, encoder_only, externalize_table, int8_scoring, refer_to_external
from .metadata import popular_items
from .onnx_graph import save_with_metadata, to_onnx
from .variants import REQUIRED_OPERATORS_FILE, quantize_int8, to_fp16_weights, to_ort_format
from .verify import GRAPH_BYTES, check_file_size, check_model, check_parity, feeds, parity_cases, weights_limit

PREPACK_TABLE_BYTES = 64 << 20  # float32 tables up to this size are pre-packed by ONNX Runtime (see _large_files)
ANN_FILE = "items.faiss"


@dataclass(frozen=True)
class AnnOptions:
    """How to build the approximate-retrieval index (format 3, ``--ann``; :func:`s4rec.ann.build_index`)."""

    threads: int = 0  # 0: all cores
    lists: int | None = None  # k-means lists (None: s4rec.ann.default_lists, 4 sqrt(N))


@dataclass(frozen=True)
class SidecarFiles:
    """What a format wrote beside the model files before their metadata is made (format 3, docs/ARTIFACT.md)."""

    entries: dict[str, dict] | None = None  # the metadata's sidecars table, name -> entry (None: format 2)
    lists: dict | None = None  # format 3: the item ids, popular items and intent top items as written
    table_elements: int = 0  # elements of the item table kept in a sidecar file rather than in the model files
    prepacking: bool = True  # False: the manifest turns ONNX Runtime's weight pre-packing off (a large table)
    seconds: dict[str, float] = field(default_factory=dict)  # steps timed on their own (the ANN index)


@dataclass(frozen=True)
class Fp32Export:
    """The verified fp32 export: what every variant is made from and compared with."""

    encoder: SASRec  # the untouched model, for graphs in another table layout (int8)
    intents: IntentTable | None
    graph: InferenceGraph
    model: onnx.ModelProto  # as saved, metadata attached
    path: Path
    metadata: ArtifactMetadata
    session: ort.InferenceSession  # the fp32 file through ONNX Runtime: the variants' reference rankings
    stored: int  # tensor elements stored by design: the parameters plus the ranking blocks' zero rows
    size: int  # bytes of the fp32 file
    atol: float
    sidecars: SidecarFiles

    @property
    def in_file(self) -> int:
        """The tensor elements stored in the model file itself: all of them but a sidecar item table."""
        return self.stored - self.sidecars.table_elements


@dataclass(frozen=True)
class MadeVariant:
    """What a :class:`VariantStep` makes: the variant's model and the sidecar files it wrote for it."""

    model: onnx.ModelProto
    # name -> entry, added to the fp32 metadata's sidecars table in the variant's (format 3's int8 table); their
    # elements count as stored by design in the stored-once check
    sidecars: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantStep:
    """One variant a format can add: how it is made from the verified fp32 export, checked, size-limited and
    compared. Its file is ``s4rec.artifact.VARIANT_FILES[variant]``."""

    variant: str
    progress: str  # the log line
    make: Callable[[Fp32Export, Path], MadeVariant | None]  # (fp32, the variant's path) -> its model
    # Names the conversion in the stored-once check. The model make returns is checked for tables stored once,
    # saved with its own metadata and run through onnx.checker; None: make wrote a file that is not ONNX (ORT
    # format, whose metadata is the fp32 file's) and the parity gate checks it instead.
    conversion: str | None
    size_limit: Callable[[Fp32Export], int]
    size_basis: str  # how the limit is made, for the SizeError
    min_overlap: float | None = None  # top-10 overlap with fp32 below which the variant is refused
    parity: str | None = None  # or: the full parity gate with torch, under this name
    extra_files: tuple[str, ...] = ()  # also written by make: sizes in the report
    manifest: dict[str, str] = field(default_factory=dict)  # extra fields of the variant's manifest entry
    metadata: dict[str, str] = field(default_factory=dict)  # fields of its metadata other than fp32's (and variant)


@dataclass(frozen=True)
class ArtifactFormat:
    """One row of :data:`FORMATS`: what the export pipeline does differently for one artifact format."""

    version: int
    name: str  # for messages
    # (checkpoint, graph, exported model, directory, ANN options or None, log) -> the files written beside the
    # model files before their metadata is made; may point the model's initializers at them (external data)
    write_sidecars: Callable[[dict, InferenceGraph, onnx.ModelProto, Path, AnnOptions | None, Callable], SidecarFiles]
    fp32_size_basis: str  # how the fp32 file's limit is made, for the SizeError
    # After the fp32 parity check: the format's own graphs, made (format 2: the encoder-only graph, whose tensors
    # are read from model.onnx) and checked; returns the files it wrote (name -> entry, for the manifest)
    check_graphs: Callable[[Fp32Export], dict[str, dict]]
    variants: tuple[VariantStep, ...]  # the variants it can add, in the order they are made
    ann: bool = False  # can carry the approximate-retrieval index


# ------------------------------------------------------------------------------------------------ format 2


def _no_sidecars(checkpoint, graph, model, directory, ann, log) -> SidecarFiles:
    return SidecarFiles()


# Tensors of format 2's encoder-only graph from this size on are read from model.onnx rather than stored again
# (the item table and the weight matrices; the small constants stay in the graph)
SHARED_TENSOR_BYTES = 1024


def _small_encoder(fp32: Fp32Export) -> dict[str, dict]:
    """Format 2's ``encoder.onnx``: the fp32 graph pruned to ``history -> user_embedding [, intents]`` (as format 3's),
    whose item table and weights are ONNX external data in ``model.onnx`` itself (at the offsets of their raw
    bytes there, found with :mod:`s4rec.protobuf`): nothing is stored twice, and the SDK gets user vectors
    for candidate scoring, ``embed`` and ``intents`` without the score product over every item. Checked like
    format 3's against the full graph; returns its manifest entry."""
    directory = fp32.path.parent
    encoder_path = directory / ENCODER_FILE
    model = encoder_only(fp32.model, fp32.graph.num_intents > 0)
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) < SHARED_TENSOR_BYTES:
            continue
        location = initializer(fp32.path, tensor.name)
        if location is None or location.external or location.length != len(tensor.raw_data):
            raise ValidationError(f"encoder: tensor {tensor.name!r} not found as raw data in {fp32.path.name}")
        refer_to_external(tensor, fp32.path.name, location.offset, location.length)
    for key, value in (("s4rec.format", ENCODER_FORMAT), ("s4rec.format_version", str(SMALL_FORMAT_VERSION))):
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "s4rec-export"
    onnx.save_model(model, str(encoder_path), save_as_external_data=False)
    check_model(encoder_path, "encoder")
    check_file_size(encoder_path, 2 * GRAPH_BYTES, "encoder", "128 KiB: the graph, its weights are in model.onnx")
    check_encoder(fp32.graph, fp32.session, Recommender.make_session(encoder_path))
    return {ENCODER_SIDECAR: file_entry(encoder_path)}


def _int8(fp32: Fp32Export, path: Path) -> MadeVariant:
    # The quantizer needs the item table as a MatMul weight to quantize it once for lookup and
    # scoring: export the column-layout graph, verify it like fp32, quantize it, drop it.
    graph = fp32.graph
    columns = inference_graph(
        fp32.encoder, graph.top_k, fp32.intents, table_layout="columns", block_size=graph.block_size
    )
    source = path.parent / ".int8-source.onnx"
    save_with_metadata(to_onnx(columns), fp32.metadata, source)
    check_parity(columns, Recommender.make_session(source), "int8 source (ONNX Runtime vs torch)", atol=fp32.atol)
    quantize_int8(source, path)
    source.unlink()
    return MadeVariant(onnx.load(str(path)))


def _fp16(fp32: Fp32Export, path: Path) -> MadeVariant:
    return MadeVariant(to_fp16_weights(fp32.model))


def _mobile(fp32: Fp32Export, path: Path) -> None:
    to_ort_format(fp32.path, path.parent)  # model.ort and its operator config


SMALL_VARIANTS = (
    VariantStep(
        variant="int8",
        progress="int8 dynamic quantization",
        make=_int8,
        conversion="int8 quantization",
        size_limit=lambda fp32: weights_limit(4, fp32.in_file, fp32.metadata),
        size_basis="the fp32 limit",
        min_overlap=0.8,
    ),
    VariantStep(
        variant="fp16",
        progress="fp16 weights",
        make=_fp16,
        conversion="fp16 conversion",
        size_limit=lambda fp32: weights_limit(2, fp32.in_file, fp32.metadata),
        size_basis="2 bytes x parameters + 5% + metadata + graph",
        min_overlap=0.95,
    ),
    VariantStep(
        variant="mobile",
        progress="ORT format for ONNX Runtime Mobile",
        make=_mobile,
        conversion=None,
        size_limit=lambda fp32: int(fp32.size * 1.05) + GRAPH_BYTES,
        size_basis="the fp32 file + 5% + 64 KiB",
        parity="mobile (ORT format vs torch)",
        extra_files=(REQUIRED_OPERATORS_FILE,),
        manifest={"required_operators": REQUIRED_OPERATORS_FILE},
    ),
)


# ------------------------------------------------------------------------------------------------ format 3


def _large_files(
    checkpoint: dict,
    graph: InferenceGraph,
    model: onnx.ModelProto,
    directory: Path,
    ann: AnnOptions | None,
    log: Callable[[str], None],
) -> SidecarFiles:
    """Format 3's sidecar files: the item table (the model's initializer becomes external data in it), the item
    ids, popular items and intent top items, the encoder-only graph and, with ``ann``, the ANN index (s4rec.ann).
    The index is a sidecar the metadata lists, so it is built here, before the metadata: each model file is then
    written once, at the price of building it before the checks that follow (a failed check discards it)."""
    table = graph.encoder.item_table.detach().numpy()  # (W, d): rows 0..N, then the zero rows
    entries = {"item_table": externalize_table(model, table, directory)}
    table_limit = 4 * table.size + TABLE_HEADER_BYTES
    check_file_size(directory / ITEM_TABLE_FILE, table_limit, "fp32", "4 bytes x the table + its .npy header")
    ids = item_ids(checkpoint)
    entries.update(write_item_ids(directory, ids))
    popular = popular_items(checkpoint, graph)
    entries["popular_items"] = write_npy(directory / "popular.npy", popular)
    top = np.array(graph.intent_top_items(), dtype=np.int64).reshape(graph.num_intents, graph.top_k)
    item_intents = graph.item_intents().numpy()  # (N,) int32; (0,) without intents
    if graph.num_intents:
        entries["intent_top_items"] = write_npy(directory / "intent_top_items.npy", top)
        entries[ITEM_INTENTS_SIDECAR] = write_npy(directory / "item_intents.npy", item_intents)
    encoder_path = directory / ENCODER_FILE
    encoder_model = encoder_only(model, graph.num_intents > 0)
    for key, value in (("s4rec.format", ENCODER_FORMAT), ("s4rec.format_version", str(FORMAT_VERSION))):
        encoder_model.metadata_props.add(key=key, value=value)
    encoder_model.producer_name = "s4rec-export"
    onnx.save_model(encoder_model, str(encoder_path), save_as_external_data=False)
    check_model(encoder_path, "encoder")
    entries[ENCODER_SIDECAR] = file_entry(encoder_path)
    seconds = {}
    if ann is not None:
        started = time.perf_counter()
        log("building the ANN index (faiss IVF-PQ4 fast-scan)")
        num_items = graph.config.num_items
        built = build_index(table, directory / ANN_FILE, num_items, ann.lists, threads=ann.threads)
        entries[ANN_SIDECAR] = file_entry(directory / ANN_FILE, **built)
        seconds["ann"] = time.perf_counter() - started
    lists = {
        "item_ids": np.array(ids, dtype=np.int64) if all(type(i) is int for i in ids) else tuple(ids),
        "popular_items": popular,
        "intent_top_items": top,
        "item_intents": item_intents,
    }
    # ONNX Runtime pre-packs the score product's weight: a packed copy of the table. For a table that fits the
    # cache that pays (without it MLAS packs it on every call: 10^5 items, 25.6 MB, 11.4 ms a user instead of
    # 3.3); for a larger one the product is bound by memory traffic either way (10^6 items: 36.6 vs 37.2 ms)
    # and pre-packing only costs the load (2.5 s instead of 0.01 s here) and a second 256 MB in RSS.
    prepacking = table.nbytes <= PREPACK_TABLE_BYTES
    return SidecarFiles(entries, lists, table.size, prepacking, seconds)


def check_encoder(graph: InferenceGraph, full, encoder, atol: float = 1e-6) -> None:
    """The encoder-only graph must give the full graph's user vectors (and intents) on every parity case."""
    names = [USER_EMBEDDING] + ([INTENT_PROBABILITIES] if graph.num_intents else [])
    lines = []
    for case, window in parity_cases(graph.config.num_items, graph.max_len):
        want = full.run(names, feeds(window, 1))
        got = encoder.run(names, {"history": window})
        for name, a, b in zip(names, got, want, strict=True):
            diff = float(np.abs(a - b).max())
            if diff > atol:
                lines.append(f"{name}: encoder graph differs from the full graph by {diff:.1e} ({case})")
    if lines:
        raise ParityError("encoder-only graph", lines)


def _check_encoder(fp32: Fp32Export) -> dict[str, dict]:
    check_encoder(fp32.graph, fp32.session, Recommender.make_session(fp32.path.parent / ENCODER_FILE))
    return {}  # the encoder is one of the sidecars, already listed


def _int8_table(fp32: Fp32Export, path: Path) -> MadeVariant:
    table = fp32.graph.encoder.item_table.detach().numpy()
    model, entries = int8_scoring(fp32.model, table, path.parent)
    return MadeVariant(model, entries)


LARGE_VARIANTS = (
    VariantStep(
        variant="int8",
        progress="int8 item table (per-row scales, MatMulNBits)",
        make=_int8_table,
        conversion="int8 table",
        # the int8 tables are sidecars too: the file holds what fp32's does, plus one node and two entries
        size_limit=lambda fp32: weights_limit(4, fp32.in_file, fp32.metadata),
        size_basis="the fp32 limit",
        min_overlap=0.9,  # measured 0.993-0.997
        metadata={"table_precision": "int8"},
    ),
)


FORMATS = {
    SMALL_FORMAT_VERSION: ArtifactFormat(
        version=SMALL_FORMAT_VERSION,
        name="small format",
        write_sidecars=_no_sidecars,
        fp32_size_basis="4 bytes x parameters + 5% + metadata + 64 KiB of graph",
        check_graphs=_small_encoder,
        variants=SMALL_VARIANTS,
    ),
    FORMAT_VERSION: ArtifactFormat(
        version=FORMAT_VERSION,
        name="large format",
        write_sidecars=_large_files,
        fp32_size_basis="4 bytes x (parameters and constants but the item table) + 5% + metadata + 64 KiB of graph",
        check_graphs=_check_encoder,
        variants=LARGE_VARIANTS,
        ann=True,
    ),
}
