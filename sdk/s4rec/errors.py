"""The SDK's exceptions: one small hierarchy under :class:`S4RecError`.

Messages follow ``what is wrong: the values. what to do.`` and name the file when there is one.
Bad arguments (wrong types, ``k <= 0``) raise the built-in ``TypeError`` / ``ValueError`` instead.
"""

from __future__ import annotations


class S4RecError(Exception):
    """Base class of every error the s4rec SDK raises on purpose."""


class ArtifactError(S4RecError):
    """An artifact that is missing, incomplete or malformed."""


class ArtifactVersionError(ArtifactError):
    """An artifact written for another format version, opset or runtime than the installed ones."""


class ChecksumError(ArtifactError):
    """A file or the item vocabulary does not match the checksum recorded at export."""


class UnknownItemError(S4RecError, ValueError):
    """A history holds item ids the model does not know, and ``unknown="error"`` was asked for."""

    def __init__(self, message: str, items: tuple = ()):
        super().__init__(message)
        self.items = items
