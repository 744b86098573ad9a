"""Named export errors. Verification errors carry one line per failing output or check."""

from __future__ import annotations


class ExportError(Exception):
    """An export that cannot be done or did not pass its checks; nothing was written."""


class OutputExistsError(ExportError):
    """The output path exists and ``force`` was not given."""


class ValidationError(ExportError):
    """``onnx.checker`` (full check) or the artifact's own read-back refused the exported model."""


class SizeError(ExportError):
    """A model file is larger than its parameters explain: a table was duplicated by a conversion step."""


class ParityError(ExportError):
    """ONNX Runtime outputs differ from torch beyond the tolerance (one line per output and case)."""

    def __init__(self, what: str, lines: list[str]):
        self.lines = lines
        super().__init__(f"{what}: parity check failed:\n" + "\n".join(f"  {line}" for line in lines))


class VariantError(ExportError):
    """A variant (int8, fp16, mobile) could not be made, or disagrees with fp32 beyond its threshold."""
