"""The one place where an ONNX Runtime session is built: CPU provider, threads, optimisation level, the
optimizers left out, and ONNX Runtime's load errors translated into :class:`~s4rec.errors.ArtifactError`.
A model file's external data must lie inside its directory (:func:`s4rec.untrusted.artifact_file`), checked
before ONNX Runtime opens it (ONNX Runtime checks it itself only from 1.24 on).

The recommender, the exporter (which reads back what it wrote) and the benchmarks all build their sessions
here, so that what is measured is what users run.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnxruntime as ort

from .errors import ArtifactError, ArtifactVersionError
from .protobuf import external_data_locations
from .untrusted import artifact_file

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ONNX Runtime's SkipLayerNormalization kernel (the fusion of a residual Add and a LayerNormalization) took
# ~7x the time of the LayerNormalization it replaces on 64-wide rows (x86, onnxruntime 1.32): without the
# fusion, recommend_batch on Beauty ran 1.09x faster, single requests the same.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def make_session(
    model: str | Path | bytes, threads: int = 1, optimization: str = "all", prepacking: bool = True
) -> ort.InferenceSession:
    """An ONNX Runtime session for ``model`` (a file or the model's bytes) on the CPU, ``threads`` intra-op
    threads (0: ONNX Runtime's default), optimisation level ``optimization`` (a key of
    :data:`OPTIMIZATION_LEVELS`).

    ``prepacking=False`` turns off ONNX Runtime's pre-packing of constant Gemm/MatMul weights: a format 3
    artifact's float32 item table is external data that ONNX Runtime maps from its file, and pre-packing would
    copy it into a packed buffer (measured at 10^6 items: load 0.67 s and 548 MB peak RSS with it, 0.01 s and
    313 MB without, the same speed; docs/ARTIFACT.md). The int8 table's MatMulNBits needs it (600 ms a call
    without).

    Raises :class:`~s4rec.errors.ArtifactVersionError` when the installed onnxruntime cannot run the model's
    IR version or opset, :class:`~s4rec.errors.ArtifactError` for any other model it cannot load.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = ONNX Runtime's default), got {threads!r}.")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {list(OPTIMIZATION_LEVELS)}, got {optimization!r}.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    options.log_severity_level = 3  # errors only; ONNX Runtime's warnings are not the user's business
    if not prepacking:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if not isinstance(model, bytes) and Path(model).suffix != ".ort":  # ORT format keeps no external data
        model = Path(model)
        try:
            locations = external_data_locations(model)
        except OSError:  # missing or unreadable: ONNX Runtime's message below says so
            locations = []
        for location in locations:
            artifact_file(model.parent, location, f"{model}: external data of the graph")
    source = model if isinstance(model, bytes) else str(model)
    try:
        providers = ["CPUExecutionProvider"]
        return ort.InferenceSession(source, options, providers, disabled_optimizers=DISABLED_OPTIMIZERS)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise _load_error(model, e) from None


def _load_error(model: str | Path | bytes, error: Exception) -> ArtifactError:
    """ONNX Runtime's load error as the SDK's: the first line of its text, the reason picked out of it."""
    name = "<bytes>" if isinstance(model, bytes) else model
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = re.search(r"(Unsupported .*|Opset .*|.*not supported.*)", text)
    text = reason.group(1) if reason else text
    if any(word in text.lower() for word in ("ir version", "opset", "domain_version", "not supported")):
        return ArtifactVersionError(
            f"{name}: onnxruntime {ort.__version__} cannot run this model ({text}). "
            "Upgrade it (pip install -U onnxruntime) or re-export with an older opset."
        )
    return ArtifactError(f"{name}: ONNX Runtime cannot load the model ({text}). Re-export it.")
