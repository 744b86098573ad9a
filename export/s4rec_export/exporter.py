"""``export_checkpoint``: checkpoint -> verified artifact directory (docs/ARTIFACT.md), written atomically.

Steps: load the checkpoint safely, build the inference graph, export it with the dynamo exporter, attach the
metadata, then verify (onnx.checker full check, stored-once size check, parity with torch on edge and random
histories). Variants are made from the verified fp32 file and each is size-checked and compared with fp32.
Finally every file is read back through the SDK (``s4rec.Recommender.load``) exactly as a user would. Only
then does the temporary directory get its final name; a failure or an interrupt leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from s4rec import Recommender
from s4rec import __version__ as package_version
from s4rec.artifact import (
    FORMAT_VERSION,
    INPUTS,
    VARIANT_FILES,
    ArtifactMetadata,
    file_sha256,
    items_checksum,
    metadata_props,
    write_manifest,
)
from s4rec.files import publish_directory, temporary_directory_beside
from s4rec_train.checkpoint import (
    checkpoint_metrics,
    intent_table,
    item_ids,
    item_popularity,
    load_checkpoint,
    model_from_checkpoint,
)

from .errors import ExportError, OutputExistsError, ValidationError
from .inference import InferenceGraph
from .onnx_graph import to_onnx
from .variants import quantize_int8, to_fp16_weights, to_ort_format
from .verify import (
    ParityReport,
    check_agreement,
    check_file_size,
    check_model,
    check_parity,
    check_stored_once,
    ranking_agreement,
)

DEFAULT_TOP_K = 100
POPULAR_ITEMS = 1000  # stored popularity ranking (at least top_k): the empty-history fallback
GRAPH_BYTES = 64 * 1024  # nodes, names and shape constants: ~20 KB for a 2-block encoder
MIN_OVERLAP = {"int8": 0.8, "fp16": 0.95}  # top-10 overlap with fp32 below which a variant is refused
MANIFEST_EXTRAS = {"mobile": {"required_operators": "model.required_operators.config"}}


@dataclass
class ExportReport:
    """What an export wrote and measured."""

    output: Path
    parameters: int
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    parity: ParityReport | None = None
    agreement: dict[str, dict] = field(default_factory=dict)  # variant -> ranking agreement with fp32
    seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds
    metadata: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        fp32 = self.sizes.get(VARIANT_FILES["fp32"], 0)
        out = [f"wrote {self.output} ({self.parameters:,} parameters, {4 * self.parameters:,} bytes as float32)"]
        for name, size in self.sizes.items():
            share = f", {size / fp32:.1%} of fp32" if fp32 and name != VARIANT_FILES["fp32"] else ""
            out.append(f"  {name:34s} {size:>12,} bytes ({size / (4 * self.parameters):.3f}x 4*params{share})")
        if self.parity:
            out.append(f"  parity (ORT vs torch): {self.parity.summary()}")
        for variant, agreement in self.agreement.items():
            out.append(
                f"  {variant} vs fp32: top-10 overlap {agreement['top10_overlap']:.3f}, top-1 agreement "
                f"{agreement['top1_agreement']:.3f}, max abs score diff {agreement['max_abs_score_diff']:.2e}"
            )
        out.append("  time: " + ", ".join(f"{step} {sec:.1f}s" for step, sec in self.seconds.items()))
        return out


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    top_k: int = DEFAULT_TOP_K,
    quantize: str | None = None,
    fp16: bool = False,
    mobile: bool = False,
    force: bool = False,
    atol: float = 1e-4,
    block_size: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> ExportReport:
    """Export ``checkpoint`` (an s4rec-train ``model.pt``) to the artifact directory ``output``.

    ``top_k``: the most items the graph may return per user (capped at the number of items);
    ``quantize="int8"``, ``fp16`` and ``mobile`` add variants. ``block_size``: the graph's ranking blocks
    (None: chosen from the catalogue size, 0: one TopK over all items; see ``InferenceGraph``).
    Raises :class:`~s4rec_export.errors.ExportError` subclasses (and ``CheckpointError`` for an unusable
    checkpoint); nothing is written unless every check passes.
    """
    started = time.perf_counter()
    checkpoint, output = Path(checkpoint), Path(output)
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize must be 'int8' or None, got {quantize!r}.")
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: already exists. Choose another path, or pass --force to replace it.")
    if not isinstance(top_k, int) or top_k < 1:
        raise ExportError(f"top_k must be an int >= 1, got {top_k!r}.")
    ckpt = load_checkpoint(checkpoint)
    encoder = model_from_checkpoint(ckpt)
    intents = intent_table(ckpt, checkpoint)
    centroids, temperature, normalized = (None, 1.0, True)
    if intents is not None:
        centroids, temperature, normalized = intents.centroids, intents.temperature, intents.normalized
    num_items = encoder.config.num_items
    if top_k > num_items:
        log(f"top_k {top_k} > {num_items} items: using top_k {num_items}")
        top_k = num_items
    if block_size is not None and (not isinstance(block_size, int) or block_size < 0):
        raise ExportError(f"block_size must be an int >= 0 or None, got {block_size!r}.")
    try:
        graph = InferenceGraph(encoder, top_k, centroids, temperature, normalized, block_size=block_size)
    except ValueError as e:
        raise ExportError(f"{e}. Pass a smaller block size (0: no blocks) or a smaller top_k.") from None
    parameters = graph.num_parameters()
    stored = graph.stored_elements()  # the parameters plus the item table's zero rows for ranking blocks
    report = ExportReport(output=output, parameters=parameters)
    report.seconds["load"] = time.perf_counter() - started

    work = temporary_directory_beside(output)
    threads = torch.get_num_threads()
    # Every torch kernel here is tiny (the parity reference runs a few dozen histories): one thread avoids
    # OpenMP spin-waiting, which made the reference 50x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    try:
        step = time.perf_counter()
        log("exporting the graph (torch.onnx.export, dynamo)")
        model = to_onnx(graph)
        report.seconds["export"] = time.perf_counter() - step

        step = time.perf_counter()
        metadata = _metadata(ckpt, checkpoint, graph, model)
        fp32_path = work / VARIANT_FILES["fp32"]
        _save(model, metadata, fp32_path)
        check_model(fp32_path, "fp32")
        check_stored_once(model, stored, "fp32 export")
        metadata_bytes = len(json.dumps(metadata.to_dict(), separators=(",", ":")).encode())
        fp32_limit = int(4 * stored * 1.05) + metadata_bytes + GRAPH_BYTES
        report.sizes[fp32_path.name] = check_file_size(
            fp32_path, fp32_limit, "fp32", "4 bytes x parameters + 5% + metadata + 64 KiB of graph"
        )
        reference = Recommender.make_session(fp32_path)
        log("verifying fp32 against torch")
        report.parity = check_parity(graph, reference, "fp32 (ONNX Runtime vs torch)", atol=atol)
        report.seconds["verify"] = time.perf_counter() - step

        variants = ["fp32"]
        if quantize == "int8":
            step = time.perf_counter()
            log("int8 dynamic quantization")
            path = work / VARIANT_FILES["int8"]
            # The quantizer needs the item table as a MatMul weight to quantize it once for lookup and
            # scoring: export the column-layout graph, verify it like fp32, quantize it, drop it.
            columns = InferenceGraph(
                encoder, top_k, centroids, temperature, normalized, table_layout="columns", block_size=graph.block_size
            )
            source = work / ".int8-source.onnx"
            _save(to_onnx(columns), metadata, source)
            check_parity(columns, Recommender.make_session(source), "int8 source (ONNX Runtime vs torch)", atol=atol)
            quantize_int8(source, path)
            source.unlink()
            quantized = onnx.load(str(path))
            check_stored_once(quantized, stored, "int8 quantization")
            _save(quantized, _variant_metadata(metadata, "int8", quantized), path)
            check_model(path, "int8")
            report.sizes[path.name] = check_file_size(path, fp32_limit, "int8", "the fp32 limit")
            _compare("int8", path, reference, graph, report)
            variants.append("int8")
            report.seconds["int8"] = time.perf_counter() - step
        if fp16:
            step = time.perf_counter()
            log("fp16 weights")
            path = work / VARIANT_FILES["fp16"]
            half = to_fp16_weights(model)
            check_stored_once(half, stored, "fp16 conversion")
            _save(half, _variant_metadata(metadata, "fp16", half), path)
            check_model(path, "fp16")
            limit = int(2 * stored * 1.05) + metadata_bytes + GRAPH_BYTES
            report.sizes[path.name] = check_file_size(
                path, limit, "fp16", "2 bytes x parameters + 5% + metadata + graph"
            )
            _compare("fp16", path, reference, graph, report)
            variants.append("fp16")
            report.seconds["fp16"] = time.perf_counter() - step
        if mobile:
            step = time.perf_counter()
            log("ORT format for ONNX Runtime Mobile")
            ort_path, config_path = to_ort_format(fp32_path, work)
            limit = int(report.sizes[fp32_path.name] * 1.05) + GRAPH_BYTES
            report.sizes[ort_path.name] = check_file_size(ort_path, limit, "mobile", "the fp32 file + 5% + 64 KiB")
            report.sizes[config_path.name] = config_path.stat().st_size
            session = Recommender.make_session(ort_path)
            check_parity(graph, session, "mobile (ORT format vs torch)", atol=atol)
            report.agreement["mobile"] = ranking_agreement(reference, session, num_items, graph.max_len, graph.top_k)
            variants.append("mobile")
            report.seconds["mobile"] = time.perf_counter() - step

        write_manifest(work, {v: dict(MANIFEST_EXTRAS.get(v, {})) for v in variants})
        for variant in variants:  # read back every file exactly as a user would
            try:
                recommender = Recommender.load(work, variant=variant)
                recommender.recommend([metadata.item_ids[0]], k=min(10, top_k))
            except Exception as e:
                raise ValidationError(f"{variant}: the SDK cannot use the written file: {e}") from None
        report.metadata = metadata.to_dict()
        publish_directory(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _metadata(ckpt: dict, path: Path, graph: InferenceGraph, model: onnx.ModelProto) -> ArtifactMetadata:
    config = graph.config
    ids = item_ids(ckpt)
    counts = item_popularity(ckpt)
    if counts is not None:
        # most interactions first; ties by index, so the order is reproducible
        popular = (np.argsort(-counts[1:], kind="stable") + 1)[: max(POPULAR_ITEMS, graph.top_k)]
    else:
        popular = np.arange(1, min(config.num_items, max(POPULAR_ITEMS, graph.top_k)) + 1)
    intent_top_items = graph.intent_top_items()
    return ArtifactMetadata(
        format_version=FORMAT_VERSION,
        package_version=package_version,
        variant="fp32",
        opset=_opset(model),
        ir_version=int(model.ir_version),
        max_len=config.max_len,
        padding_index=0,
        embedding_dim=config.dim,
        num_items=config.num_items,
        num_intents=graph.num_intents,
        top_k=graph.top_k,
        ranking_block_size=graph.block_size,
        item_ids=tuple(ids),
        item_ids_sha256=items_checksum(ids),
        popular_items=tuple(int(i) for i in popular),
        intent_top_items=tuple(tuple(row) for row in intent_top_items),
        intent_temperature=graph.intent_temperature if graph.num_intents else None,
        intent_normalized=graph.intent_normalized,
        source_checkpoint_sha256=file_sha256(path),
        checkpoint_metrics=checkpoint_metrics(ckpt),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        inputs=INPUTS,
        outputs=tuple(graph.output_names),
    )


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _variant_metadata(metadata: ArtifactMetadata, variant: str, model: onnx.ModelProto) -> ArtifactMetadata:
    values = metadata.to_dict()
    values.update(variant=variant, opset=_opset(model), ir_version=int(model.ir_version))
    return ArtifactMetadata.from_dict(values)


def _save(model: onnx.ModelProto, metadata: ArtifactMetadata, path: Path) -> None:
    """Attach the metadata (docs/ARTIFACT.md) and write one self-contained file."""
    del model.metadata_props[:]
    for key, value in metadata_props(metadata).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "s4rec-export"
    model.producer_version = package_version
    onnx.save_model(model, str(path), save_as_external_data=False)


def _compare(variant: str, path: Path, reference, graph: InferenceGraph, report: ExportReport) -> None:
    session = Recommender.make_session(path)
    agreement = ranking_agreement(reference, session, graph.config.num_items, graph.max_len, graph.top_k)
    report.agreement[variant] = agreement
    check_agreement(agreement, MIN_OVERLAP[variant], variant)
