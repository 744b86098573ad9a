"""``export_checkpoint``: checkpoint -> verified artifact directory (docs/ARTIFACT.md), written atomically.

One pipeline for both artifact formats; what differs between them is a row of :data:`~s4rec_export.formats.FORMATS`.
Steps: load the checkpoint safely, build the inference graph, export it with the dynamo exporter, write the
format's sidecar files (format 3), attach the metadata, then verify (onnx.checker full check, stored-once and
file-size checks, parity with torch on edge and random histories, the format's own graph check). Variants are
made from the verified fp32 export by the format's :class:`~s4rec_export.formats.VariantStep` rows: how each is
made, checked, size-limited and compared with fp32 (or with torch). Finally every file is read back through the
SDK (``s4rec.Recommender.load``) exactly as a user would. Only then does the temporary directory get its final
name; a failure or an interrupt leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s4rec import Recommender
from s4rec.artifact import FORMAT_VERSION, SMALL_FORMAT_VERSION, VARIANT_FILES, write_manifest
from s4rec.files import published_directory, recover_interrupted
from s4rec_train.checkpoint import IntentTable, intent_table, load_checkpoint, model_from_checkpoint
from s4rec_train.model import SASRec

from .errors import ExportError, OutputExistsError, ValidationError
from .formats import FORMATS, AnnOptions, ArtifactFormat, Fp32Export, VariantStep
from .inference import InferenceGraph, inference_graph
from .metadata import artifact_metadata, variant_metadata
from .onnx_graph import save_with_metadata, to_onnx
from .verify import (
    ParityReport,
    check_agreement,
    check_file_size,
    check_model,
    check_parity,
    check_stored_once,
    ranking_agreement,
    weights_limit,
)

DEFAULT_TOP_K = 100
# From this many items on, s4rec-export writes format 3 (lists and tables in sidecar files) unless told. Measured
# at 10^5 items (grown Beauty table, fresh process, busy 2-core machine, two runs): format 2 loaded in 1.45 / 0.58 s
# to 136 MB RSS, format 3 in 0.58 / 0.26 s (fp32, 120 MB) and 0.53 / 0.24 s (int8, 79 MB); below that format 2 loads
# well under a second and stays one self-describing file (docs/ARTIFACT.md).
LARGE_CATALOGUE_ITEMS = 100_000
VARIANT_FLAGS = {"int8": "--quantize int8", "fp16": "--fp16", "mobile": "--mobile"}


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
class ExportPlan:
    """What :func:`export_checkpoint` has checked and built before anything is written."""

    artifact_format: ArtifactFormat  # the format's row of FORMATS
    steps: list[VariantStep]  # the variants asked for, in the order they are made
    checkpoint: dict
    checkpoint_path: Path
    encoder: SASRec
    intents: IntentTable | None
    graph: InferenceGraph
    ann: AnnOptions | None  # build the approximate-retrieval index (format 3)
    atol: float  # parity tolerance


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
    ann_lists: int | None = None,
) -> ExportReport:
    """Export ``checkpoint`` (an s4rec-train ``model.pt``) to the artifact directory ``output``.

    ``top_k``: the most items the graph may return per user (capped at the number of items);
    ``quantize="int8"``, ``fp16`` and ``mobile`` add variants. ``block_size``: the graph's ranking blocks
    (None: chosen from the catalogue size, 0: one TopK over all items; see ``InferenceGraph``).
    ``large_format``: write format 3 (the item ids, popular items, intent top items and the item table in
    sidecar files, an encoder-only graph; ``quantize="int8"`` then adds the per-row int8 scoring table);
    None: from :data:`LARGE_CATALOGUE_ITEMS` items on. ``ann``: also build the approximate-retrieval index
    (format 3 only, needs faiss: the ``[ann]`` extra), on ``ann_threads`` threads (0: all cores), with
    ``ann_lists`` k-means lists (None: 4 sqrt(N); s4rec.ann).
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
        graph = inference_graph(encoder, top_k, intents, block_size=block_size)
    except ValueError as e:
        raise ExportError(f"{e}. Pass a smaller block size (0: no blocks) or a smaller top_k.") from None
    large = num_items >= LARGE_CATALOGUE_ITEMS if large_format is None else bool(large_format)
    artifact_format = FORMATS[FORMAT_VERSION if large else SMALL_FORMAT_VERSION]
    wanted = {"int8": quantize == "int8", "fp16": fp16, "mobile": mobile}
    steps = [step for step in artifact_format.variants if wanted[step.variant]]
    unavailable = [v for v, asked in wanted.items() if asked and v not in {step.variant for step in steps}]
    if unavailable:
        offered = " and ".join(["fp32", *(step.variant for step in artifact_format.variants)])
        raise ExportError(
            f"the {artifact_format.name} (format {artifact_format.version}) has {offered} variants only: drop "
            f"{' / '.join(VARIANT_FLAGS[v] for v in unavailable)}."
        )
    if ann and not artifact_format.ann:
        raise ExportError(f"ann needs the large format (format {FORMAT_VERSION}): pass --large-format with --ann.")
    centroids = 0 if graph.intent_centroids is None else graph.intent_centroids.numel()
    report = ExportReport(output=output, parameters=graph.num_parameters(), centroid_parameters=centroids)
    report.seconds["load"] = time.perf_counter() - started
    ann_options = AnnOptions(ann_threads, ann_lists) if ann else None
    plan = ExportPlan(artifact_format, steps, ckpt, checkpoint, encoder, intents, graph, ann_options, atol)

    threads = torch.get_num_threads()
    # Every torch kernel here is tiny (the parity reference runs a few dozen histories): one thread avoids
    # OpenMP spin-waiting, which made the reference 50x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    try:
        with published_directory(output) as work:
            _write(plan, work, report, log)
    finally:
        torch.set_num_threads(threads)
    report.seconds["total"] = time.perf_counter() - started
    return report


def _write(plan: ExportPlan, work: Path, report: ExportReport, log: Callable[[str], None]) -> None:
    """The pipeline, writing into ``work``: every step runs for both formats, with the plan's format row."""
    artifact_format, graph, ann = plan.artifact_format, plan.graph, plan.ann
    step_started = time.perf_counter()
    log("exporting the graph (torch.onnx.export, dynamo)")
    model = to_onnx(graph)
    report.seconds["export"] = time.perf_counter() - step_started

    step_started = time.perf_counter()
    sidecars = artifact_format.write_sidecars(plan.checkpoint, graph, model, work, ann, log)
    metadata = artifact_metadata(
        plan.checkpoint, plan.checkpoint_path, graph, model, sidecars=sidecars.entries, lists=sidecars.lists
    )
    path = work / VARIANT_FILES["fp32"]
    save_with_metadata(model, metadata, path)
    check_model(path, "fp32")
    stored = graph.stored_elements()
    check_stored_once(model, stored, "fp32 export")
    limit = weights_limit(4, stored - sidecars.table_elements, metadata)
    report.sizes[path.name] = size = check_file_size(path, limit, "fp32", artifact_format.fp32_size_basis)
    session = Recommender.make_session(path)
    log("verifying fp32 against torch")
    report.parity = check_parity(graph, session, "fp32 (ONNX Runtime vs torch)", atol=plan.atol)
    fp32 = Fp32Export(
        plan.encoder, plan.intents, graph, model, path, metadata, session, stored, size, plan.atol, sidecars
    )
    graph_files = artifact_format.check_graphs(fp32)
    report.seconds["verify"] = time.perf_counter() - step_started - sum(sidecars.seconds.values())
    report.seconds.update(sidecars.seconds)

    # the manifest's list of files beside the model files: fp32's sidecars, format 2's encoder, the variants'
    files = {**(sidecars.entries or {}), **graph_files}
    for step in plan.steps:
        step_started = time.perf_counter()
        files.update(_run_variant(step, fp32, work, report, log))
        report.seconds[step.variant] = time.perf_counter() - step_started
    for entry in files.values():
        report.sizes[entry["file"]] = entry["bytes"]

    variants = {"fp32": {} if sidecars.prepacking else {"prepacking": False}}
    variants.update((step.variant, dict(step.manifest)) for step in plan.steps)
    write_manifest(work, variants, files=files)
    first = metadata.item_ids[0]
    first = int(first) if isinstance(first, np.integer) else first
    for variant in variants:  # read back every file as a user would
        for retrieval in ("exact", "ann") if ann is not None else ("exact",):
            try:
                recommender = Recommender.load(work, variant=variant, retrieval=retrieval, verify="full")
                recommender.recommend([first], k=min(10, graph.top_k))
            except Exception as e:
                raise ValidationError(f"{variant} ({retrieval}): the SDK cannot use the written files: {e}") from None
    report.metadata = metadata.to_dict()


def _run_variant(
    step: VariantStep, fp32: Fp32Export, work: Path, report: ExportReport, log: Callable[[str], None]
) -> dict[str, dict]:
    """Make one variant (:class:`VariantStep`), check it and compare it; sizes and agreement go into ``report``.
    Returns the sidecar files it added (name -> entry)."""
    log(step.progress)
    path = work / VARIANT_FILES[step.variant]
    made = step.make(fp32, path)
    added = {}
    if made is not None:  # an ONNX model: stored once, saved with its own metadata, checked
        added = made.sidecars
        own = sum(int(np.prod(entry["shape"])) for entry in added.values())  # its sidecar tables: stored by design
        check_stored_once(made.model, fp32.stored + own, step.conversion)
        metadata = variant_metadata(fp32.metadata, step.variant, made.model)
        if step.metadata or added:
            sidecars = {**metadata.sidecars, **added}
            metadata = dataclasses.replace(metadata, **step.metadata, sidecars=sidecars)
        save_with_metadata(made.model, metadata, path)
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
    return added
