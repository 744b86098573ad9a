"""Smaller or mobile variants of the fp32 model: int8 dynamic quantization, fp16 weights, ORT format.

The conversions alone: each takes an ONNX file or model and writes or returns its variant. The table of
variant steps of each artifact format (``formats.FORMATS``, :class:`~s4rec_export.formats.VariantStep`) says
which conversion makes which file, how it is checked (elements stored once, file size, onnx.checker) and
compared with fp32; the exporter's pipeline runs them and attaches the metadata.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from s4rec.artifact import VARIANT_FILES

from .errors import VariantError

REQUIRED_OPERATORS_FILE = "model.required_operators.config"  # the mobile variant's operator config
FP16_MIN_ELEMENTS = 16  # tiny tensors (LayerNorm eps-sized biases, shapes) stay float32: no gain, some risk


@contextlib.contextmanager
def _quiet():
    """Silence onnxruntime tools' prints and root-logger warnings during a conversion."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of MatMul weights *and* Gather tables (the item table included).

    Per-tensor scales, so the item table, read by both the lookup Gather and the scoring MatMul, is quantized
    once and shared (per-channel MatMul weights would need a second, differently quantized copy).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(
                str(source),
                str(target),
                op_types_to_quantize=["MatMul", "Gather"],
                per_channel=False,
                weight_type=QuantType.QInt8,
            )
    except Exception as e:
        raise VariantError(f"int8: onnxruntime.quantization failed on {source.name}: {e}") from None


def to_fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store float32 weights as float16 and cast them back to float32 when the session starts.

    Half the size; the arithmetic stays float32 (ONNX Runtime's CPU kernels are float32, and a float16
    LayerNorm with eps 1e-12 would underflow), so only the rounding of the weights changes the scores.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    casts, kept = [], []
    for tensor in model.graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < FP16_MIN_ELEMENTS:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        half = values.astype(np.float16)
        if not np.isfinite(half[np.isfinite(values)]).all():  # -inf (masks, excluded scores) stays -inf
            raise VariantError(
                f"fp16: weight {tensor.name} has values beyond the float16 range "
                f"(max abs {np.abs(values).max():.3g} > 65504). Use fp32 or int8 for this model."
            )
        stored = numpy_helper.from_array(half, f"{tensor.name}__fp16")
        kept.append(stored)
        casts.append(
            helper.make_node("Cast", [stored.name], [tensor.name], to=TensorProto.FLOAT, name=f"{tensor.name}__cast")
        )
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def to_ort_format(source: Path, directory: Path) -> tuple[Path, Path]:
    """ORT format for ONNX Runtime Mobile with onnxruntime's own converter, plus the reduced operator config.

    Returns ``(directory / "model.ort", directory / REQUIRED_OPERATORS_FILE)``; the config (with type
    reduction) is what a minimal ONNX Runtime build takes with ``--include_ops_by_config``.
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    scratch = directory / ".ort-work"
    scratch.mkdir()
    try:
        staged = scratch / "model.onnx"
        shutil.copyfile(source, staged)
        with _quiet():
            convert_onnx_models_to_ort(
                staged,
                output_dir=scratch / "out",
                optimization_styles=[OptimizationStyle.Fixed],
                enable_type_reduction=True,
            )
        produced = scratch / "out" / "model.ort"
        configs = sorted((scratch / "out").glob("*.config"))
        if not produced.is_file() or not configs:
            raise VariantError(f"mobile: the ORT converter wrote no model.ort / config for {source.name}")
        ort_path = directory / VARIANT_FILES["mobile"]
        config_path = directory / REQUIRED_OPERATORS_FILE
        shutil.move(produced, ort_path)
        shutil.move(configs[0], config_path)
        return ort_path, config_path
    except VariantError:
        raise
    except Exception as e:
        raise VariantError(f"mobile: ORT format conversion of {source.name} failed: {e}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
