"""``export_checkpoint`` for large catalogues: format 3 (docs/ARTIFACT.md), written atomically and verified.

The same gates as format 2 (onnx.checker, stored-once and size checks, parity with torch, int8 agreement with
fp32, read-back through the SDK), on a different layout: the item table and the three large lists in sidecar
files, an encoder-only graph (checked against the full graph's outputs), the int8 variant scoring a per-row
int8 copy of the table (:mod:`s4rec_export.large`), and optionally the approximate-retrieval index.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

from s4rec import Recommender
from s4rec.ann import build_index
from s4rec.artifact import (
    ANN_SIDECAR,
    ENCODER_FORMAT,
    ENCODER_SIDECAR,
    INTENT_PROBABILITIES,
    USER_EMBEDDING,
    VARIANT_FILES,
    ArtifactMetadata,
    write_manifest,
)
from s4rec.files import published_directory
from s4rec.sidecars import TABLE_HEADER_BYTES, file_entry, write_item_ids, write_npy
from s4rec_train.checkpoint import IntentTable, item_ids
from s4rec_train.model import SASRec

from .errors import ExportError, ParityError, ValidationError
from .inference import InferenceGraph
from .large import ENCODER_FILE, encoder_only, externalize_table, int8_scoring
from .metadata import artifact_metadata, popular_items
from .onnx_graph import save_with_metadata, to_onnx
from .verify import (
    check_agreement,
    check_file_size,
    check_model,
    check_parity,
    check_stored_once,
    feeds,
    parity_cases,
    ranking_agreement,
)

PREPACK_TABLE_BYTES = 64 << 20  # float32 tables up to this size are pre-packed by ONNX Runtime (see below)
INT8_MIN_OVERLAP = 0.9  # top-10 overlap with fp32 below which the int8 table is refused (measured ~0.99)
ANN_FILE = "items.hnsw"


def export_large(
    ckpt: dict,
    checkpoint_path: Path,
    output: Path,
    graph: InferenceGraph,
    encoder: SASRec,
    intents: IntentTable | None,
    report,
    int8: bool,
    ann: bool,
    ann_threads: int,
    atol: float,
    log: Callable[[str], None],
    started: float,
    ann_m: int = 32,
    ann_ef_construction: int = 200,
):
    from .exporter import _weights_limit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see export_checkpoint
    try:
        with published_directory(output) as work:
            step = time.perf_counter()
            log("exporting the graph (torch.onnx.export, dynamo)")
            model = to_onnx(graph)
            report.seconds["export"] = time.perf_counter() - step

            step = time.perf_counter()
            table = graph.encoder.item_table.detach().numpy()  # (W, d): rows 0..N, then the zero rows
            sidecars = {"item_table": externalize_table(model, table, work)}
            ids = item_ids(ckpt)
            sidecars.update(write_item_ids(work, ids))
            popular = popular_items(ckpt, graph)
            sidecars["popular_items"] = write_npy(work / "popular.npy", popular)
            top = np.array(graph.intent_top_items(), dtype=np.int64).reshape(graph.num_intents, graph.top_k)
            if graph.num_intents:
                sidecars["intent_top_items"] = write_npy(work / "intent_top_items.npy", top)
            encoder_path = work / ENCODER_FILE
            encoder_model = encoder_only(model, graph.num_intents > 0)
            for key, value in (("s4rec.format", ENCODER_FORMAT), ("s4rec.format_version", "3")):
                encoder_model.metadata_props.add(key=key, value=value)
            encoder_model.producer_name = "s4rec-export"
            onnx.save_model(encoder_model, str(encoder_path), save_as_external_data=False)
            check_model(encoder_path, "encoder")
            sidecars[ENCODER_SIDECAR] = file_entry(encoder_path)
            lists = {
                "item_ids": np.array(ids, dtype=np.int64) if all(type(i) is int for i in ids) else tuple(ids),
                "popular_items": popular,
                "intent_top_items": top,
            }
            metadata = artifact_metadata(ckpt, checkpoint_path, graph, model, sidecars=sidecars, lists=lists)
            path = work / VARIANT_FILES["fp32"]
            save_with_metadata(model, metadata, path)
            check_model(path, "fp32")
            stored = graph.stored_elements()
            check_stored_once(model, stored, "fp32 export")
            table_elements = table.size
            limit = _weights_limit(4, stored - table_elements, metadata)
            basis = "4 bytes x (parameters and constants but the item table) + 5% + metadata + 64 KiB of graph"
            check_file_size(path, limit, "fp32", basis)
            table_limit = 4 * table_elements + TABLE_HEADER_BYTES
            check_file_size(work / "item_table.npy", table_limit, "fp32", "4 bytes x the table + its .npy header")
            report.sizes[path.name] = path.stat().st_size
            session = Recommender.make_session(path)
            log("verifying fp32 against torch")
            report.parity = check_parity(graph, session, "fp32 (ONNX Runtime vs torch)", atol=atol)
            check_encoder(graph, session, Recommender.make_session(encoder_path))
            report.seconds["verify"] = time.perf_counter() - step

            # ONNX Runtime pre-packs the score product's weight: a packed copy of the table. For a table that fits the
            # cache that pays (without it MLAS packs it on every call: 10^5 items, 25.6 MB, 11.4 ms a user instead of
            # 3.3); for a larger one the product is bound by memory traffic either way (10^6 items: 36.6 vs 37.2 ms)
            # and pre-packing only costs the load (2.5 s instead of 0.01 s here) and a second 256 MB in RSS.
            prepack = table.nbytes <= PREPACK_TABLE_BYTES
            variants: dict[str, dict] = {"fp32": {} if prepack else {"prepacking": False}}
            int8_metadata = None
            if int8:
                step = time.perf_counter()
                log("int8 item table (per-row scales, MatMulNBits)")
                int8_model, entries = int8_scoring(model, table, work)
                int8_path = work / VARIANT_FILES["int8"]
                int8_metadata = _int8_metadata(metadata, entries, int8_model)
                save_with_metadata(int8_model, int8_metadata, int8_path)
                check_model(int8_path, "int8")
                quantized = sum(
                    int(np.prod(t.dims)) for t in int8_model.graph.initializer if t.name.startswith("item_table.")
                )
                check_stored_once(int8_model, stored + quantized, "int8 table")
                report.sizes[int8_path.name] = int8_path.stat().st_size
                session8 = Recommender.make_session(int8_path)
                n, max_len, top_k = graph.config.num_items, graph.max_len, graph.top_k
                agreement = ranking_agreement(session, session8, n, max_len, top_k)
                report.agreement["int8"] = agreement
                check_agreement(agreement, INT8_MIN_OVERLAP, "int8")
                variants["int8"] = {}
                report.seconds["int8"] = time.perf_counter() - step

            if ann:
                step = time.perf_counter()
                log("building the ANN index (hnswlib)")
                fields = build_index(
                    table, work / ANN_FILE, graph.config.num_items, ann_m, ann_ef_construction, threads=ann_threads
                )
                sidecars = {**sidecars, ANN_SIDECAR: file_entry(work / ANN_FILE, **fields)}
                metadata = dataclasses.replace(metadata, sidecars=sidecars)
                save_with_metadata(model, metadata, path)
                if int8_metadata is not None:
                    int8_metadata = dataclasses.replace(
                        int8_metadata, sidecars={**int8_metadata.sidecars, **{ANN_SIDECAR: sidecars[ANN_SIDECAR]}}
                    )
                    save_with_metadata(int8_model, int8_metadata, work / VARIANT_FILES["int8"])
                report.seconds["ann"] = time.perf_counter() - step

            files = dict(sidecars, **(int8_metadata.sidecars if int8_metadata is not None else {}))
            for entry in files.values():
                report.sizes[entry["file"]] = entry["bytes"]
            write_manifest(work, variants, files=files)
            first = metadata.item_ids[0]
            first = int(first) if isinstance(first, np.integer) else first
            for variant in variants:  # read back every file as a user would
                for retrieval in ("exact", "ann") if ann else ("exact",):
                    try:
                        recommender = Recommender.load(work, variant=variant, retrieval=retrieval, verify="full")
                        recommender.recommend([first], k=min(10, graph.top_k))
                    except Exception as e:
                        raise ValidationError(
                            f"{variant} ({retrieval}): the SDK cannot use the written files: {e}"
                        ) from None
            report.metadata = metadata.to_dict()
    finally:
        torch.set_num_threads(threads)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _int8_metadata(metadata: ArtifactMetadata, entries: dict, model: onnx.ModelProto) -> ArtifactMetadata:
    from .metadata import variant_metadata

    values = variant_metadata(metadata, "int8", model)
    return dataclasses.replace(values, table_precision="int8", sidecars={**metadata.sidecars, **entries})


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


__all__ = ["export_large", "ExportError"]
