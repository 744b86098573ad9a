"""The SDK's exceptions: one small hierarchy under :class:`S4RecError`.

Messages follow ``what is wrong: the values. what to do.`` in the library's terms (argument names, not
command-line flags) and name the file when there is one; the commands add their flag hints. Bad arguments
(wrong types, ``k <= 0``) raise the built-in ``TypeError`` / ``ValueError`` instead.
"""

from __future__ import annotations


class S4RecError(Exception):
    """Base class of every error the s4rec SDK raises on purpose.

    ``str(error)`` speaks the library's terms (``on_error="skip"``); ``flags`` maps such phrases to the
    command-line flags that do the same (``--on-error skip``), which :meth:`for_command_line` puts in their
    place, so that a command's message names what its user can type.
    """

    def __init__(self, message: str, *, flags: dict[str, str] | None = None):
        super().__init__(message)
        self.flags = dict(flags or {})

    def for_command_line(self) -> str:
        message = str(self)
        for phrase, flag in self.flags.items():
            message = message.replace(phrase, flag)
        return message


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


class InputError(S4RecError, ValueError):
    """An input file that cannot be read at all (missing, wrong format, no header), with what to do."""


class ScoreError(S4RecError, ValueError):
    """Batch scoring stopped: a malformed record with ``on_error="fail"``, or an output that cannot be written."""


class OutputError(S4RecError, OSError):
    """An output that cannot be written: no space left on the device, a file-size limit, a quota."""
