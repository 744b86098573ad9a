"""Streaming readers of users' histories for offline batch scoring.

Three input formats, each read lazily so that memory stays bounded whatever the file size:

* ``jsonl``: one JSON object per line, ``{"user": ..., "history": [item, ...]}``, items oldest first;
* ``text``: the benchmark format, ``user item item ...`` per line, items oldest first;
* ``log``: a CSV/TSV interaction log with a header row and a user, an item and a timestamp column, in any
  order. It is grouped by user and ordered by time with an external merge sort: at most ``sort_buffer``
  events are held in memory, the rest is spilled to sorted temporary runs and merged. Users come out in
  sorted id order (integer ids first, then string ids); ties in time keep file order.

Every reader yields :class:`Record` for a good record and :class:`BadRecord` (with its line number) for a
malformed one, so that the caller decides whether to skip it or stop. Ids that look like integers are
integers (``5`` in a text or CSV file is the int ``5``), exactly as ``s4rec-train`` reads them, so that they
match the item ids stored in the artifact. Plain and ``.gz`` files are accepted.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter, methodcaller
from pathlib import Path

from .errors import S4RecError

FORMATS = ("jsonl", "text", "log")
DEFAULT_SORT_BUFFER = 250_000  # log events held in memory before a sorted run is spilled (~50 MB)
_SPILL_BLOCK = 2048  # events per pickled block in a run: the merge holds one block per open run
_MERGE_FAN_IN = 64  # runs merged at once; more runs are merged in passes


class InputError(S4RecError, ValueError):
    """An input file that cannot be read at all (missing, wrong format, no header), with what to do."""


@dataclass(slots=True)
class Record:
    """One user's history in the user's own item ids, oldest first, and its line (a log's: its earliest event's)."""

    user: object
    history: list
    line: int


@dataclass(slots=True)
class BadRecord:
    """A malformed record: its line number and what is wrong with it."""

    line: int
    reason: str


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


def parse_id(token: str):
    """An id token from a text or CSV file: an int if it reads as one, else the string."""
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


_JSONL_BLOCK = 512  # lines parsed and checked together by read_jsonl
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
        block = list(islice(lines, _JSONL_BLOCK))
        if not block:
            return
        records = _jsonl_block(block, line_no + 1, scan)
        yield from _read_jsonl_lines(block, line_no + 1) if records is None else records
        line_no += len(block)


def _jsonl_block(block: list[str], first_line: int, scan) -> list[Record] | None:
    """The records of a block of lines when every line is one well-formed record, else None."""
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


def _read_jsonl_lines(lines: Iterable[str], first_line: int = 1) -> Iterator[Record | BadRecord]:
    """:func:`read_jsonl` line by line."""
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


@dataclass
class LogColumns:
    """Column names of an interaction log and its separator (None: tab for .tsv, else guessed from the header)."""

    user: str = "user"
    item: str = "item"
    time: str = "timestamp"
    sep: str | None = None


def _log_events(lines: io.TextIOBase, columns: LogColumns, tsv: bool) -> Iterator[tuple | BadRecord]:
    """Events ``(kind, user, timestamp, line, item)`` of a log, kind 0 for int users and 1 for str users so
    that plain tuple comparison sorts them; malformed rows as :class:`BadRecord`."""
    header_line = lines.readline()
    if not header_line.strip():
        raise InputError("the log is empty. Expected a header row naming the user, item and time columns.")
    sep = columns.sep or ("\t" if tsv else max([",", "\t", ";"], key=header_line.count))
    header = [h.strip() for h in next(csv.reader([header_line], delimiter=sep))]
    missing = [c for c in (columns.user, columns.item, columns.time) if c not in header]
    if missing:
        raise InputError(
            f"line 1: missing column(s) {missing}; the header has {header}. "
            "Name the columns with --user-col/--item-col/--time-col."
        )
    u, i, t = header.index(columns.user), header.index(columns.item), header.index(columns.time)
    width = max(u, i, t) + 1
    reader = csv.reader(lines, delimiter=sep)
    line_no = 1
    for row in reader:
        line_no, end = line_no + 1, reader.line_num + 1  # +1: the header was read before the reader
        if not row or all(not c.strip() for c in row):
            line_no = end
            continue
        if len(row) < width:
            yield BadRecord(line_no, f"{len(row)} field(s), expected at least {width} (columns {header})")
        else:
            user, item, stamp = row[u].strip(), row[i].strip(), row[t].strip()
            try:
                timestamp = float(stamp)
            except ValueError:
                timestamp = math.nan
            if not user or not item:
                yield BadRecord(line_no, f"empty {columns.user if not user else columns.item!r} field")
            elif math.isnan(timestamp):
                yield BadRecord(line_no, f"timestamp {stamp!r} in column {columns.time!r} is not a number")
            else:
                user = parse_id(user)
                yield (int(isinstance(user, str)), user, timestamp, line_no, parse_id(item))
        line_no = end


def _spill(events: list[tuple], directory: str) -> str:
    fd, path = tempfile.mkstemp(prefix="s4rec-sort-", suffix=".run", dir=directory)
    with os.fdopen(fd, "wb") as f:
        for start in range(0, len(events), _SPILL_BLOCK):
            pickle.dump(events[start : start + _SPILL_BLOCK], f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _read_run(path: str) -> Iterator[tuple]:
    with open(path, "rb") as f:
        while True:
            try:
                block = pickle.load(f)
            except EOFError:
                return
            yield from block


def _merge_runs(runs: list[str], directory: str) -> Iterator[tuple]:
    """Merge sorted runs, in passes of at most _MERGE_FAN_IN open files; deletes the runs as it goes."""
    runs = list(runs)
    try:
        while len(runs) > _MERGE_FAN_IN:
            group, runs = runs[:_MERGE_FAN_IN], runs[_MERGE_FAN_IN:]
            merged: list[tuple] = []  # one block at a time, never the whole merged run
            fd, path = tempfile.mkstemp(prefix="s4rec-sort-", suffix=".run", dir=directory)
            with os.fdopen(fd, "wb") as f:
                for event in heapq.merge(*[_read_run(r) for r in group]):
                    merged.append(event)
                    if len(merged) == _SPILL_BLOCK:
                        pickle.dump(merged, f, protocol=pickle.HIGHEST_PROTOCOL)
                        merged = []
                if merged:
                    pickle.dump(merged, f, protocol=pickle.HIGHEST_PROTOCOL)
            for r in group:
                os.unlink(r)
            runs.append(path)
        yield from heapq.merge(*[_read_run(r) for r in runs])
    finally:
        for r in runs:
            if os.path.exists(r):
                os.unlink(r)


def read_log(
    lines: io.TextIOBase,
    columns: LogColumns | None = None,
    tsv: bool = False,
    sort_buffer: int = DEFAULT_SORT_BUFFER,
    temp_dir: str | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    on_read: Callable[[], None] | None = None,
    on_sorted: Callable[[int], None] | None = None,
) -> Iterator[Record]:
    """Group a log by user and order each user's items by time, holding at most ``sort_buffer`` events.

    Malformed rows are passed to ``on_bad`` while the log is read (before any user is yielded), since the
    whole log must be read before the first user is complete. ``on_read()`` is called every 16,384 events
    read and ``on_sorted(events)`` once the log is read (for progress).
    """
    if sort_buffer < 1:
        raise InputError(f"sort buffer must be >= 1 event, got {sort_buffer}. Pass a positive --sort-buffer.")
    columns = columns or LogColumns()
    with tempfile.TemporaryDirectory(prefix="s4rec-sort-", dir=temp_dir) as directory:
        buffer: list[tuple] = []
        runs: list[str] = []
        total = 0
        for event in _log_events(lines, columns, tsv):
            if isinstance(event, BadRecord):
                if on_bad is not None:
                    on_bad(event)
                continue
            buffer.append(event)
            total += 1
            if on_read is not None and total % 16384 == 0:
                on_read()
            if len(buffer) >= sort_buffer:
                buffer.sort()
                runs.append(_spill(buffer, directory))
                buffer = []
        buffer.sort()
        if on_sorted is not None:
            on_sorted(total)
        if runs:
            if buffer:
                runs.append(_spill(buffer, directory))
            buffer = []
            events = _merge_runs(runs, directory)
        else:
            events = iter(buffer)
        current, history, first_line = None, [], 0
        for kind, user, _, line_no, item in events:
            if (kind, user) != current:
                if current is not None:
                    yield Record(current[1], history, first_line)
                current, history, first_line = (kind, user), [], line_no
            history.append(item)
        if current is not None:
            yield Record(current[1], history, first_line)
