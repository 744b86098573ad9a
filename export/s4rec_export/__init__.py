"""s4rec_export: freeze an s4rec checkpoint into a verified ONNX artifact (docs/ARTIFACT.md, docs/export.md).

Importing this package does not import torch or onnx; :func:`export_checkpoint` does.
"""

from .errors import (
    ExportError,
    OutputExistsError,
    ParityError,
    SizeError,
    ValidationError,
    VariantError,
)


def export_checkpoint(*args, **kwargs):
    """See :func:`s4rec_export.exporter.export_checkpoint`."""
    from .exporter import export_checkpoint as _export

    return _export(*args, **kwargs)


__all__ = [
    "ExportError",
    "OutputExistsError",
    "ParityError",
    "SizeError",
    "ValidationError",
    "VariantError",
    "export_checkpoint",
]
