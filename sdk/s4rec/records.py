"""Streaming readers of users' histories for offline batch scoring.

Three input formats, each read lazily so that memory stays bounded whatever the file size:

* ``jsonl``: one JSON object per line, ``{"user": ..., "history": [item, ...]}``, items oldest first, and
  optionally ``"candidates": [item, ...]`` (rank only those for that user; null or absent: any item);
* ``text``: the benchmark format, ``user item item ...`` per line, items oldest first;
* ``log``: a CSV/TSV interaction log with a header row and a user, an item and a timestamp column, grouped
  by user with an external sort (:mod:`s4rec.logs`).

Every reader yields :class:`Record` for a good record and :class:`BadRecord` (with its line number) for a
malformed one, so that the caller decides whether to skip it or stop. Ids that look like integers are
integers (``5`` in a text or CSV file is the int ``5``), exactly as ``s4rec-train`` reads them, so that they
match the item ids stored in the artifact. Plain and ``.gz`` files are accepted.

Files from others may hold a line of hundreds of MB (one compressed record can inflate that far):
:class:`BoundedLines` reads no line further than a bound, and the readers report a longer one as a
:class:`BadRecord` like any other malformed record.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter, methodcaller
from pathlib import Path

from .errors import InputError

FORMATS = ("jsonl", "text", "log")
# Characters per line read at most (s4rec-score --max-line-length): a history of ~600,000 six-digit ids. Measured
# with benchmarks/hostile_inputs.py (micro artifact, 2,000 other users, 2-core machine at load 8-9): a record
# of 300 MB is stopped at 90 MB peak RSS in 3.0 s (76 MB without it; read whole, it took 5.5 GB and 65 s and
# ended in a MemoryError); a history just within the bound is scored at 214 MB in 1.8 s.
DEFAULT_MAX_LINE_LENGTH = 4 << 20
SCORE_INPUTS = "JSONL, benchmark-format text or a CSV/TSV log, plain or .gz"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class Record:
    """One user's history in the user's own item ids, oldest first, and its line (a log's: its earliest event's);
    ``candidates``: the items this user's list may hold (a JSONL record's ``"candidates"``), None for any."""

    user: object
    history: list
    line: int
    candidates: list | None = None


@dataclass(slots=True)
class BadRecord:
    """A malformed record: its line number and what is wrong with it (and, for a log row, its user when the
    row names one: a user whose every row is malformed gets no output, and the report counts them)."""

    line: int
    reason: str
    user: object = None


def detect_format(path: str | Path) -> str:
    """``.jsonl``/``.ndjson``/``.json`` -> jsonl, ``.csv``/``.tsv`` -> log, anything else -> text (``.gz`` ok)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if any(s in (".jsonl", ".ndjson", ".json") for s in suffixes):
        return "jsonl"
    if ".csv" in suffixes or ".tsv" in suffixes:
        return "log"
    return "text"


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from disk (compressed bytes for ``.gz``), for progress."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.bytes_read += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_input(path: str | Path, accepted: str = SCORE_INPUTS) -> tuple[io.TextIOBase, CountingReader]:
    """Open a text input (plain or ``.gz``) and return it with the byte counter of the file underneath.

    Checked before anything is parsed: a ``.gz`` name must hold gzip data (and gzip data needs a ``.gz``
    name), and the first 8 KB (decompressed) must hold no NUL byte (a binary file). A UTF-8 byte-order mark
    is dropped (it would otherwise become part of the first user id). Bytes that are not UTF-8 do not stop
    the reader: they are kept as lone surrogates (``surrogateescape``) so that each reader reports the line
    that holds them (:func:`undecodable`) and the rest of the file is still read. ``accepted`` names the
    inputs the caller reads, for the messages (``s4rec-train`` reads the same files through this).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file. Pass {accepted}.")
    if path.is_dir():
        raise InputError(f"{path}: is a directory. Pass a file of histories.")
    try:
        counter = CountingReader(open(path, "rb", buffering=0))
    except OSError as e:  # permissions, a FIFO's peer gone, ...: one line, not a traceback
        raise InputError(f"{path}: cannot be read ({e.strerror or e}). Check the file and its permissions.") from None
    binary = io.BufferedReader(counter, buffer_size=1 << 16)
    gzipped = binary.peek(2)[:2] == _GZIP_MAGIC
    try:
        if path.suffix.lower() == ".gz":
            if not gzipped:
                raise InputError(
                    f"{path}: not a gzip file (its name ends in .gz but it has no gzip header). Decompress it "
                    "properly, or rename it without .gz if it is plain text."
                )
            binary = gzip.GzipFile(fileobj=binary, mode="rb")
        elif gzipped:
            raise InputError(f"{path}: holds gzip-compressed data but its name does not end in .gz. Rename it to .gz.")
        head = _peek(binary, path)
    except BaseException:
        binary.close()
        raise
    if b"\x00" in head:
        binary.close()
        raise InputError(
            f"{path}: not a text file (it holds NUL bytes in its first {len(head):,} bytes). Pass {accepted}."
        )
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=""), counter


def _peek(binary, path: Path, size: int = 8192) -> bytes:
    """Up to ``size`` bytes from the start of the (decompressed) stream, without consuming them."""
    try:
        return binary.peek(size)[:size]
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise compressed_input_error(path, e) from None


def compressed_input_error(path: str | Path, error: BaseException) -> InputError:
    """The one-line error for a damaged or truncated gzip stream (``EOFError``, ``gzip.BadGzipFile``,
    ``zlib.error``), raised by whatever read the stream."""
    reason = str(error) or type(error).__name__
    return InputError(
        f"{path}: the gzip data is damaged or truncated ({reason}). Re-create or download the file again; "
        "`gzip -t FILE` checks it."
    )


def check_max_line_length(value: object) -> None:
    """``ValueError`` unless ``value`` is an int >= 1 (a line-length bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_line_length must be an int >= 1, got {value!r}.")


class OverlongLine(str):
    """What :class:`BoundedLines` yields for a line longer than its bound: an empty line (which every reader
    skips) whose ``reason`` the readers report as the line's :class:`BadRecord`."""

    reason: str


class BoundedLines:
    """The lines of the text stream ``text``, each read at most ``max_line_length`` characters (not counting
    its line break) into memory: a longer line is read on in pieces of that size, kept no further, and given
    as an :class:`OverlongLine`; ``overlong`` maps the number of every such line to its reason (the log reader,
    whose csv module sees only the empty line, looks it up there). Line numbers and line breaks (``\n``,
    ``\r\n``, ``\r``) are those of iterating ``text`` itself.
    """

    def __init__(self, text: io.TextIOBase, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        check_max_line_length(max_line_length)
        self.text, self.max_line_length = text, max_line_length
        self.overlong: dict[int, str] = {}

    def __iter__(self) -> Iterator[str]:
        readline, limit = self.text.readline, self.max_line_length + 1
        line_no, carry = 0, ""
        while True:
            chunk = carry or readline(limit)
            carry = ""
            if not chunk:
                return
            line_no += 1
            if chunk[-1] == "\n" or len(chunk) < limit:  # a whole line (or the last one) within the bound
                yield chunk
            elif chunk[-1] == "\r":  # max_line_length characters and "\r": the whole line, unless "\n" follows
                after = readline(limit)
                if after == "\n":
                    yield chunk + after
                else:
                    yield chunk
                    carry = after  # the next line's start
            else:
                carry = self._skip_rest(readline, limit)
                reason = (
                    f"a line of more than {self.max_line_length:,} characters (the max_line_length bound, "
                    "s4rec-score --max-line-length); it was read no further"
                )
                self.overlong[line_no] = reason
                line = OverlongLine()
                line.reason = reason
                yield line

    @staticmethod
    def _skip_rest(readline, limit: int) -> str:
        """Read to the end of the current line, a piece of ``limit`` characters at a time; returns what was read
        of the next line (only when a lone "\r" ended this one at a piece's end)."""
        while True:
            piece = readline(limit)
            if not piece or piece[-1] == "\n" or (piece[-1] == "\r" and len(piece) < limit):
                return ""
            if piece[-1] == "\r":
                after = readline(limit)
                return "" if after == "\n" else after


def undecodable(line: str) -> str | None:
    """What is wrong with a line holding bytes that are not UTF-8 (read with ``surrogateescape``), or None.

    Cheap for the usual line: ``str.isascii`` is one pass in C; only non-ASCII lines are encoded."""
    if line.isascii():
        return None
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as e:
        byte = ord(line[e.start]) - 0xDC00
        return f"not valid UTF-8 (byte 0x{byte:02x} at column {e.start + 1}); re-encode the file as UTF-8"
    return None


def parse_id(token: str) -> int | str:
    """An id token from a text or CSV file: an int if it reads as one, else the string (training and
    scoring read ids alike, so that ``5`` in a file matches the item id ``5`` stored in an artifact)."""
    try:
        return int(token)
    except ValueError:
        return token


_ID_TYPES = {int, str}  # exact types: a bool is not an item id
_DICT = {dict}
_LIST = {list}
_NONE = {type(None)}


def _valid_id(value) -> bool:
    return type(value) in _ID_TYPES and value != ""


def _valid_history(history: list) -> bool:
    """All items are ints or non-empty strings (the common case checked without a Python-level loop)."""
    types = set(map(type, history))
    return types <= _ID_TYPES and (str not in types or "" not in history)


JSONL_BLOCK = 512  # lines parsed and checked together by read_jsonl (read when it runs)
_JSON_WHITESPACE = " \t\n\r"


def read_jsonl(lines: Iterable[str]) -> Iterator[Record | BadRecord]:
    """``{"user": ..., "history": [...]}`` per line; blank lines are ignored.

    Lines are taken in blocks: a block of well-formed records is parsed and checked with a few calls for
    all of its lines; a block with anything unusual in it (a blank or malformed line, a wrong type) is read
    line by line, which reports each malformed record with its line number.
    """
    scan = json.JSONDecoder().scan_once  # json.loads's parser, without its per-call overhead
    lines = iter(lines)
    line_no = 0
    while True:
        block = list(islice(lines, JSONL_BLOCK))
        if not block:
            return
        clean = all(map(str.isascii, block)) or not any(map(undecodable, block))
        records = parse_jsonl_block(block, line_no + 1, scan) if clean else None
        yield from read_jsonl_lines(block, line_no + 1) if records is None else records
        line_no += len(block)


def parse_jsonl_block(block: list[str], first_line: int = 1, scan=None) -> list[Record] | None:
    """The records of a block of JSONL lines (the first is line ``first_line``) when every line is one
    well-formed record, else None (then :func:`read_jsonl_lines` reports what is wrong, line by line).

    ``scan``: ``json.JSONDecoder().scan_once``, made once by a caller that parses many blocks.
    """
    scan = scan or json.JSONDecoder().scan_once
    try:
        parsed = list(map(scan, block, repeat(0)))  # raises on a blank line, leading blanks or bad JSON
    except (StopIteration, ValueError):
        return None
    ends = list(map(len, map(methodcaller("rstrip", _JSON_WHITESPACE), block)))
    if list(map(itemgetter(1), parsed)) != ends:  # something after the value: json.loads's "extra data"
        return None
    objects = list(map(itemgetter(0), parsed))
    if not set(map(type, objects)) <= _DICT:
        return None
    try:
        users = list(map(itemgetter("user"), objects))
        histories = list(map(itemgetter("history"), objects))
    except KeyError:
        return None
    if not set(map(type, users)) <= _ID_TYPES or "" in users or not set(map(type, histories)) <= _LIST:
        return None
    types = set(map(type, chain.from_iterable(histories)))
    if not types <= _ID_TYPES or (str in types and "" in chain.from_iterable(histories)):
        return None
    candidates = list(map(methodcaller("get", "candidates"), objects))
    if set(map(type, candidates)) <= _NONE:
        return list(map(Record, users, histories, range(first_line, first_line + len(block))))
    if not all(c is None or (type(c) is list and _valid_history(c)) for c in candidates):
        return None
    return list(map(Record, users, histories, range(first_line, first_line + len(block)), candidates))


def read_jsonl_lines(lines: Iterable[str], first_line: int = 1) -> Iterator[Record | BadRecord]:
    """:func:`read_jsonl` line by line (slower; the reference its blocks give the same records as)."""
    for line_no, line in enumerate(lines, first_line):
        if not line.strip():
            if type(line) is OverlongLine:
                yield BadRecord(line_no, line.reason)
            continue
        bad_bytes = undecodable(line)
        if bad_bytes:
            yield BadRecord(line_no, bad_bytes)
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            yield BadRecord(line_no, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield BadRecord(line_no, f"expected a JSON object, got {type(obj).__name__}")
            continue
        user, history = obj.get("user"), obj.get("history")
        if not _valid_id(user):
            yield BadRecord(line_no, f'"user" must be an integer or a non-empty string, got {user!r}')
        elif not isinstance(history, list):
            yield BadRecord(line_no, f'"history" must be a list of item ids, got {history!r}')
        elif not _valid_history(history):
            bad = next(item for item in history if not _valid_id(item))
            yield BadRecord(line_no, f'"history" items must be integers or non-empty strings, got {bad!r}')
        else:
            candidates = obj.get("candidates")
            if candidates is not None and not isinstance(candidates, list):
                yield BadRecord(line_no, f'"candidates" must be a list of item ids (or null), got {candidates!r:.80}')
            elif candidates is not None and not _valid_history(candidates):
                bad = next(item for item in candidates if not _valid_id(item))
                yield BadRecord(line_no, f'"candidates" items must be integers or non-empty strings, got {bad!r}')
            else:
                yield Record(user, history, line_no, candidates)


def read_item_ids(path: str | Path) -> list:
    """The item ids of a file of one id per line (``s4rec-score --allow`` / ``--deny``; plain or ``.gz``), read as
    histories' ids are (:func:`parse_id`); blank lines are skipped. An id line that is not UTF-8, or holds
    whitespace inside the id, is an :class:`~s4rec.errors.InputError` naming its line."""
    lines, _ = open_input(path, "a file of item ids, one per line (plain or .gz)")
    ids = []
    with lines:
        for line_no, line in enumerate(lines, 1):
            token = line.strip()
            if not token:
                continue
            problem = undecodable(line) or (f"{len(token.split())} ids on one line" if len(token.split()) > 1 else None)
            if problem:
                raise InputError(f"{path}:{line_no}: {problem}. Write one item id per line.")
            ids.append(parse_id(token))
    return ids


def read_text(lines: Iterable[str]) -> Iterator[Record | BadRecord]:
    """``user item item ...`` per line (whitespace separated); a line with a user alone is an empty history."""
    for line_no, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            if type(line) is OverlongLine:
                yield BadRecord(line_no, line.reason)
            continue
        if not line.isascii():
            bad_bytes = undecodable(line)
            if bad_bytes:
                yield BadRecord(line_no, bad_bytes)
                continue
        try:
            ids = list(map(int, tokens))  # the usual case, all integer ids: one call for the line
        except ValueError:
            ids = [parse_id(t) for t in tokens]
        yield Record(ids[0], ids[1:], line_no)
