"""``export_checkpoint``: checkpoint -> verified artifact directory (docs/ARTIFACT.md), written atomically.

Steps: load the checkpoint safely, build the inference graph, export it with the dynamo exporter, attach the
metadata, then verify (onnx.checker full check, stored-once size check, parity with torch on edge and random
histories). Variants are made from the verified fp32 export by the steps of :data:`VARIANT_STEPS`, one row
per variant: how it is made, checked, size-limited and compared with fp32 (or with torch). Finally every file
is read back through the SDK (``s4rec.Recommender.load``) exactly as a user would. Only then does the
temporary directory get its final name; a failure or an interrupt leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

from s4rec import Recommender
from s4rec.artifact import METADATA_KEY, VARIANT_FILES, ArtifactMetadata, metadata_props, write_manifest
from s4rec.files import published_directory, recover_interrupted
from s4rec_train.checkpoint import IntentTable, intent_table, load_checkpoint, model_from_checkpoint
from s4rec_train.model import SASRec

from .errors import ExportError, OutputExistsError, ValidationError
from .inference import InferenceGraph
from .metadata import artifact_metadata, variant_metadata
from .onnx_graph import save_with_metadata, to_onnx
from .variants import REQUIRED_OPERATORS_FILE, quantize_int8, to_fp16_weights, to_ort_format
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
GRAPH_BYTES = 64 * 1024  # nodes, names and shape constants: ~20 KB for a 2-block encoder
# From this many items on, s4rec-export writes format 3 (lists and tables in sidecar files) unless told. Measured
# at 10^5 items (grown Beauty table, fresh process, busy 2-core machine, two runs): format 2 loaded in 1.45 / 0.58 s
# to 136 MB RSS, format 3 in 0.58 / 0.26 s (fp32, 120 MB) and 0.53 / 0.24 s (int8, 79 MB); below that format 2 loads
# well under a second and stays one self-describing file (docs/ARTIFACT.md).
LARGE_CATALOGUE_ITEMS = 100_000


@dataclass
class ExportReport:
    """What an export wrote and measured."""

    output: Path
    parameters: int  # what the artifact stores: the encoder's parameters plus the intent-centroid table
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    centroid_parameters: int = 0  # of which the intent-centroid table (K x d; 0 without intents)
    parity: ParityReport | None = None
    agreement: dict[str, dict] = field(default_factory=dict)  # variant -> ranking agreement with fp32
    seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds
    metadata: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary ``s4rec-export`` prints: sizes, parity, agreement with fp32, seconds per step."""
        fp32 = self.sizes.get(VARIANT_FILES["fp32"], 0)
        encoder = self.parameters - self.centroid_parameters
        parts = (
            f": encoder {encoder:,} + intent centroids {self.centroid_parameters:,}" if self.centroid_parameters else ""
        )
        out = [f"wrote {self.output} ({self.parameters:,} parameters{parts}; {4 * self.parameters:,} bytes as float32)"]
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


def _weights_limit(bytes_per_element: int, stored: int, metadata: ArtifactMetadata) -> int:
    """A file size limit: ``bytes_per_element`` x ``stored`` tensor elements + 5% + the metadata + 64 KiB of graph."""
    metadata_bytes = len(metadata_props(metadata)[METADATA_KEY].encode())
    return int(bytes_per_element * stored * 1.05) + metadata_bytes + GRAPH_BYTES


@dataclass(frozen=True)
class VariantStep:
    """One row of :data:`VARIANT_STEPS`: how a variant is made from the verified fp32 export, checked, size-limited
    and compared. Its file is ``s4rec.artifact.VARIANT_FILES[variant]``."""

    variant: str
    progress: str  # the log line
    make: Callable[[Fp32Export, Path], onnx.ModelProto | None]  # (fp32, the variant's path) -> its model
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


def _int8(fp32: Fp32Export, path: Path) -> onnx.ModelProto:
    # The quantizer needs the item table as a MatMul weight to quantize it once for lookup and
    # scoring: export the column-layout graph, verify it like fp32, quantize it, drop it.
    graph = fp32.graph
    columns = _inference_graph(
        fp32.encoder, graph.top_k, fp32.intents, table_layout="columns", block_size=graph.block_size
    )
    source = path.parent / ".int8-source.onnx"
    save_with_metadata(to_onnx(columns), fp32.metadata, source)
    check_parity(columns, Recommender.make_session(source), "int8 source (ONNX Runtime vs torch)", atol=fp32.atol)
    quantize_int8(source, path)
    source.unlink()
    return onnx.load(str(path))


def _fp16(fp32: Fp32Export, path: Path) -> onnx.ModelProto:
    return to_fp16_weights(fp32.model)


def _mobile(fp32: Fp32Export, path: Path) -> None:
    to_ort_format(fp32.path, path.parent)  # model.ort and its operator config


VARIANT_STEPS = (
    VariantStep(
        variant="int8",
        progress="int8 dynamic quantization",
        make=_int8,
        conversion="int8 quantization",
        size_limit=lambda fp32: _weights_limit(4, fp32.stored, fp32.metadata),
        size_basis="the fp32 limit",
        min_overlap=0.8,
    ),
    VariantStep(
        variant="fp16",
        progress="fp16 weights",
        make=_fp16,
        conversion="fp16 conversion",
        size_limit=lambda fp32: _weights_limit(2, fp32.stored, fp32.metadata),
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
    large_format: bool | None = None,
    ann: bool = False,
    ann_threads: int = 0,
    ann_m: int = 32,
    ann_ef_construction: int = 200,
) -> ExportReport:
    """Export ``checkpoint`` (an s4rec-train ``model.pt``) to the artifact directory ``output``.

    ``top_k``: the most items the graph may return per user (capped at the number of items);
    ``quantize="int8"``, ``fp16`` and ``mobile`` add variants. ``block_size``: the graph's ranking blocks
    (None: chosen from the catalogue size, 0: one TopK over all items; see ``InferenceGraph``).
    ``large_format``: write format 3 (the item ids, popular items, intent top items and the item table in
    sidecar files, an encoder-only graph; ``quantize="int8"`` then adds the per-row int8 scoring table);
    None: from :data:`LARGE_CATALOGUE_ITEMS` items on. ``ann``: also build the approximate-retrieval index
    (format 3 only, needs hnswlib: the ``[ann]`` extra), on ``ann_threads`` threads (0: all cores), with
    ``ann_m`` links per node and build breadth ``ann_ef_construction`` (s4rec.ann).
    Raises :class:`~s4rec_export.errors.ExportError` subclasses (and ``CheckpointError`` for an unusable
    checkpoint); nothing is written unless every check passes.
    """
    started = time.perf_counter()
    checkpoint, output = Path(checkpoint), Path(output)
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize must be 'int8' or None, got {quantize!r}.")
    restored = recover_interrupted(output)
    if restored is not None:
        log(f"{output}: put back the artifact an interrupted forced export had left in {restored.parent}")
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: already exists. Choose another path, or pass --force to replace it.")
    if not isinstance(top_k, int) or top_k < 1:
        raise ExportError(f"top_k must be an int >= 1, got {top_k!r}.")
    ckpt = load_checkpoint(checkpoint)
    encoder = model_from_checkpoint(ckpt)
    intents = intent_table(ckpt, checkpoint)
    num_items = encoder.config.num_items
    if top_k > num_items:
        log(f"top_k {top_k} > {num_items} items: using top_k {num_items}")
        top_k = num_items
    if block_size is not None and (not isinstance(block_size, int) or block_size < 0):
        raise ExportError(f"block_size must be an int >= 0 or None, got {block_size!r}.")
    try:
        graph = _inference_graph(encoder, top_k, intents, block_size=block_size)
    except ValueError as e:
        raise ExportError(f"{e}. Pass a smaller block size (0: no blocks) or a smaller top_k.") from None
    large = num_items >= LARGE_CATALOGUE_ITEMS if large_format is None else bool(large_format)
    if large and (fp16 or mobile):
        raise ExportError("the large format (format 3) has fp32 and int8 variants only: drop --fp16 / --mobile.")
    if ann and not large:
        raise ExportError("ann needs the large format (format 3): pass --large-format with --ann.")
    wanted = {"int8": quantize == "int8", "fp16": fp16, "mobile": mobile}
    steps = [step for step in VARIANT_STEPS if wanted[step.variant]]
    centroids = 0 if graph.intent_centroids is None else graph.intent_centroids.numel()
    report = ExportReport(output=output, parameters=graph.num_parameters(), centroid_parameters=centroids)
    report.seconds["load"] = time.perf_counter() - started
    if large:
        from .large_export import export_large

        return export_large(
            ckpt, checkpoint, output, graph, encoder, intents, report, quantize == "int8", ann, ann_threads, atol,
            log, started, ann_m=ann_m, ann_ef_construction=ann_ef_construction,
        )  # fmt: skip

    threads = torch.get_num_threads()
    # Every torch kernel here is tiny (the parity reference runs a few dozen histories): one thread avoids
    # OpenMP spin-waiting, which made the reference 50x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    try:
        with published_directory(output) as work:
            step_started = time.perf_counter()
            log("exporting the graph (torch.onnx.export, dynamo)")
            model = to_onnx(graph)
            report.seconds["export"] = time.perf_counter() - step_started

            step_started = time.perf_counter()
            metadata = artifact_metadata(ckpt, checkpoint, graph, model)
            path = work / VARIANT_FILES["fp32"]
            save_with_metadata(model, metadata, path)
            check_model(path, "fp32")
            stored = graph.stored_elements()
            check_stored_once(model, stored, "fp32 export")
            limit = _weights_limit(4, stored, metadata)
            basis = "4 bytes x parameters + 5% + metadata + 64 KiB of graph"
            report.sizes[path.name] = size = check_file_size(path, limit, "fp32", basis)
            session = Recommender.make_session(path)
            log("verifying fp32 against torch")
            report.parity = check_parity(graph, session, "fp32 (ONNX Runtime vs torch)", atol=atol)
            fp32 = Fp32Export(encoder, intents, graph, model, path, metadata, session, stored, size, atol)
            report.seconds["verify"] = time.perf_counter() - step_started

            for step in steps:
                step_started = time.perf_counter()
                _run_variant(step, fp32, work, report, log)
                report.seconds[step.variant] = time.perf_counter() - step_started

            write_manifest(work, {"fp32": {}, **{step.variant: dict(step.manifest) for step in steps}})
            for variant in ["fp32", *(step.variant for step in steps)]:  # read back every file as a user would
                try:
                    recommender = Recommender.load(work, variant=variant)
                    recommender.recommend([fp32.metadata.item_ids[0]], k=min(10, top_k))
                except Exception as e:
                    raise ValidationError(f"{variant}: the SDK cannot use the written file: {e}") from None
            report.metadata = fp32.metadata.to_dict()
    finally:
        torch.set_num_threads(threads)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _inference_graph(encoder: SASRec, top_k: int, intents: IntentTable | None, **options) -> InferenceGraph:
    if intents is None:
        return InferenceGraph(encoder, top_k, **options)
    return InferenceGraph(encoder, top_k, intents.centroids, intents.temperature, intents.normalized, **options)


def _run_variant(
    step: VariantStep, fp32: Fp32Export, work: Path, report: ExportReport, log: Callable[[str], None]
) -> None:
    """Make one variant (:class:`VariantStep`), check it and compare it; sizes and agreement go into ``report``."""
    log(step.progress)
    path = work / VARIANT_FILES[step.variant]
    model = step.make(fp32, path)
    if step.conversion is not None:  # an ONNX model: stored once, saved with its own metadata, checked
        check_stored_once(model, fp32.stored, step.conversion)
        save_with_metadata(model, variant_metadata(fp32.metadata, step.variant, model), path)
        check_model(path, step.variant)
    report.sizes[path.name] = check_file_size(path, step.size_limit(fp32), step.variant, step.size_basis)
    for name in step.extra_files:
        report.sizes[name] = (work / name).stat().st_size
    session = Recommender.make_session(path)
    if step.parity is not None:
        check_parity(fp32.graph, session, step.parity, atol=fp32.atol)
    graph = fp32.graph
    agreement = ranking_agreement(fp32.session, session, graph.config.num_items, graph.max_len, graph.top_k)
    report.agreement[step.variant] = agreement
    if step.min_overlap is not None:
        check_agreement(agreement, step.min_overlap, step.variant)
