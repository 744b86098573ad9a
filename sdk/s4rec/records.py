"""Streaming readers of users' histories for offline batch scoring.

Three input formats, each read lazily so that memory stays bounded whatever the file size:

* ``jsonl``: one JSON object per line, ``{"user": ..., "history": [item, ...]}``, items oldest first;
* ``text``: the benchmark format, ``user item item ...`` per line, items oldest first;
* ``log``: a CSV/TSV interaction log with a header row and a user, an item and a timestamp column, grouped
  by user with an external sort (:mod:`s4rec.logs`).

Every reader yields :class:`Record` for a good record and :class:`BadRecord` (with its line number) for a
malformed one, so that the caller decides whether to skip it or stop. Ids that look like integers are
integers (``5`` in a text or CSV file is the int ``5``), exactly as ``s4rec-train`` reads them, so that they
match the item ids stored in the artifact. Plain and ``.gz`` files are accepted.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter, methodcaller
from pathlib import Path

from .errors import InputError

FORMATS = ("jsonl", "text", "log")


@dataclass(slots=True)
class Record:
    """One user's history in the user's own item ids, oldest first, and its line (a log's: its earliest event's)."""

    user: object
    history: list
    line: int


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


def open_input(path: str | Path) -> tuple[io.TextIOBase, CountingReader]:
    """Open a text input (plain or ``.gz``) and return it with the byte counter of the file underneath."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file. Pass a JSONL, benchmark-format text or CSV/TSV file.")
    if path.is_dir():
        raise InputError(f"{path}: is a directory. Pass a file of histories.")
    counter = CountingReader(open(path, "rb", buffering=0))
    binary = io.BufferedReader(counter, buffer_size=1 << 16)
    if path.suffix.lower() == ".gz":
        binary = gzip.GzipFile(fileobj=binary, mode="rb")
    return io.TextIOWrapper(binary, encoding="utf-8", newline=""), counter


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
        records = parse_jsonl_block(block, line_no + 1, scan)
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
    return list(map(Record, users, histories, range(first_line, first_line + len(block))))


def read_jsonl_lines(lines: Iterable[str], first_line: int = 1) -> Iterator[Record | BadRecord]:
    """:func:`read_jsonl` line by line (slower; the reference its blocks give the same records as)."""
    for line_no, line in enumerate(lines, first_line):
        if not line.strip():
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
            yield Record(user, history, line_no)


def read_text(lines: Iterable[str]) -> Iterator[Record | BadRecord]:
    """``user item item ...`` per line (whitespace separated); a line with a user alone is an empty history."""
    for line_no, line in enumerate(lines, 1):
        tokens = line.split()
        if tokens:
            try:
                ids = list(map(int, tokens))  # the usual case, all integer ids: one call for the line
            except ValueError:
                ids = [parse_id(t) for t in tokens]
            yield Record(ids[0], ids[1:], line_no)
