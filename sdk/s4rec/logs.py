"""CSV/TSV interaction logs: the one reader of their header and rows (training and scoring use it), and the
external sort that groups a log of any size by user for scoring.

A log has a header row naming a user, an item and a timestamp column, in any order; the separator is a tab
for ``.tsv`` and otherwise whichever of comma, tab and semicolon the header uses most (:func:`log_header`, which
``s4rec-train``'s columnar reader uses too, so both read the same files with the same messages). :func:`log_events`
yields one event per good row and a :class:`~s4rec.records.BadRecord` (with its line number) per malformed
one; :func:`read_log` groups the events by user and orders each user's items by time with an external merge
sort: at most ``sort_buffer`` events are held in memory, the rest is spilled to sorted temporary runs and
merged. Users come out in sorted id order (integer ids first, then string ids); ties in time keep file
order.
"""

from __future__ import annotations

import csv
import heapq
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .errors import InputError
from .records import BadRecord, OverlongLine, Record, parse_id, undecodable

DEFAULT_SORT_BUFFER = 250_000  # log events held in memory before a sorted run is spilled (~50 MB)
# Tuning of the external sort (read when it runs): events per pickled block in a run (the merge holds one
# block per open run), and runs merged at once (more are merged in passes).
SPILL_BLOCK = 2048
MERGE_FAN_IN = 64
# The command-line flags that name a log's columns (an InputError about them names these on the command line).
COLUMN_FLAGS = {"log_columns": "--user-col/--item-col/--time-col"}


@dataclass
class LogColumns:
    """Column names of an interaction log and its separator (None: tab for .tsv, else guessed from the header)."""

    user: str = "user"
    item: str = "item"
    time: str = "timestamp"
    sep: str | None = None


def log_header(
    header_line: str, columns: LogColumns | None = None, tsv: bool = False
) -> tuple[str, list[str], tuple[int, int, int]]:
    """``(separator, column names, (user, item, time) positions)`` of a log's header row: the one place that
    decides the separator and checks the columns (``s4rec-score`` reads logs with :func:`log_events`,
    ``s4rec-train`` with a columnar engine; both start here, so they agree on both and on the messages).

    Raises :class:`~s4rec.errors.InputError` for an empty log or a header without the named columns.
    """
    columns = columns or LogColumns()
    if type(header_line) is OverlongLine:
        raise InputError(f"line 1 (the header): {header_line.reason}.")
    bad_bytes = undecodable(header_line)
    if bad_bytes:
        raise InputError(f"line 1 (the header): {bad_bytes}.")
    if not header_line.strip():
        raise InputError("the log is empty. Expected a header row naming the user, item and time columns.")
    sep = columns.sep or ("\t" if tsv else max([",", "\t", ";"], key=header_line.count))
    header = [h.strip() for h in next(csv.reader([header_line], delimiter=sep))]
    return sep, header, column_positions(header, columns)


def column_positions(
    names: list[str], columns: LogColumns, where: str = "line 1", has: str = "the header has"
) -> tuple[int, int, int]:
    """Positions of the user, item and time columns among ``names`` (the first of each name); an
    :class:`~s4rec.errors.InputError` naming what is missing otherwise (``where``: a header line, or a file
    whose columns come from a schema)."""
    missing = [c for c in (columns.user, columns.item, columns.time) if c not in names]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {missing}; {has} {names}. Name the columns with log_columns.",
            flags=COLUMN_FLAGS,
        )
    return names.index(columns.user), names.index(columns.item), names.index(columns.time)


def log_events(
    lines: Iterable[str], columns: LogColumns | None = None, tsv: bool = False
) -> Iterator[tuple | BadRecord]:
    """Events ``(line, user, item, timestamp)`` of a log read line by line (header first), malformed rows as
    :class:`~s4rec.records.BadRecord`. Ids read as ints where they look like ints (:func:`parse_id`).

    Raises :class:`~s4rec.errors.InputError` for an empty log or a header without the named columns.
    """
    columns = columns or LogColumns()
    overlong = getattr(lines, "overlong", {})  # s4rec.records.BoundedLines: lines cut at its bound
    lines = iter(lines)
    sep, header, (u, i, t) = log_header(next(lines, ""), columns, tsv)
    width = max(u, i, t) + 1
    reader = csv.reader(lines, delimiter=sep)
    line_no = 1
    for row in reader:
        line_no, end = line_no + 1, reader.line_num + 1  # +1: the header was read before the reader
        if not row or all(not c.strip() for c in row):
            if line_no in overlong:
                yield BadRecord(line_no, overlong[line_no])
            line_no = end
            continue
        if len(row) < width:
            user = row[u].strip() if u < len(row) else ""
            reason = f"{len(row)} field(s), expected at least {width} (columns {header})"
            yield BadRecord(line_no, reason, parse_id(user) if user else None)
        else:
            user, item, stamp = row[u].strip(), row[i].strip(), row[t].strip()
            if not (user + item + stamp).isascii():
                fields = ((columns.user, user), (columns.item, item), (columns.time, stamp))
                bad = [(name, undecodable(value)) for name, value in fields if undecodable(value)]
                if bad:
                    name, problem = bad[0]
                    yield BadRecord(line_no, f"column {name!r}: {problem}")
                    line_no = end
                    continue
            try:
                timestamp = float(stamp)
            except ValueError:
                timestamp = math.nan
            if not user or not item:
                reason = f"empty {columns.user if not user else columns.item!r} field"
                yield BadRecord(line_no, reason, parse_id(user) if user else None)
            elif math.isnan(timestamp):
                reason = (
                    f"timestamp {stamp!r} in column {columns.time!r} is not a number (use numbers, e.g. Unix seconds)"
                )
                yield BadRecord(line_no, reason, parse_id(user))
            else:
                yield (line_no, parse_id(user), parse_id(item), timestamp)
        line_no = end


def _spill(events: list[tuple], directory: str) -> str:
    fd, path = tempfile.mkstemp(prefix="s4rec-sort-", suffix=".run", dir=directory)
    with os.fdopen(fd, "wb") as f:
        for start in range(0, len(events), SPILL_BLOCK):
            pickle.dump(events[start : start + SPILL_BLOCK], f, protocol=pickle.HIGHEST_PROTOCOL)
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
    """Merge sorted runs, in passes of at most MERGE_FAN_IN open files; deletes the runs as it goes."""
    runs = list(runs)
    try:
        while len(runs) > MERGE_FAN_IN:
            group, runs = runs[:MERGE_FAN_IN], runs[MERGE_FAN_IN:]
            merged: list[tuple] = []  # one block at a time, never the whole merged run
            fd, path = tempfile.mkstemp(prefix="s4rec-sort-", suffix=".run", dir=directory)
            with os.fdopen(fd, "wb") as f:
                for event in heapq.merge(*[_read_run(r) for r in group]):
                    merged.append(event)
                    if len(merged) == SPILL_BLOCK:
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


@dataclass
class LogSummary:
    """What :func:`read_log` found, filled in as it reads: good events, and the users named by malformed rows
    only (they get no output: no valid row is left to score)."""

    events: int = 0
    users_without_valid_rows: int = 0


def read_log(
    lines: Iterable[str],
    columns: LogColumns | None = None,
    tsv: bool = False,
    sort_buffer: int = DEFAULT_SORT_BUFFER,
    temp_dir: str | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    on_read: Callable[[], None] | None = None,
    on_sorted: Callable[[int], None] | None = None,
    summary: LogSummary | None = None,
) -> Iterator[Record]:
    """Group a log by user and order each user's items by time, holding at most ``sort_buffer`` events.

    Malformed rows are passed to ``on_bad`` while the log is read (before any user is yielded), since the
    whole log must be read before the first user is complete. ``on_read()`` is called every 16,384 events
    read and ``on_sorted(events)`` once the log is read (for progress). ``summary``, when given, is filled in
    (its user count once the last user has been yielded).
    """
    if sort_buffer < 1:
        raise InputError(
            f"sort_buffer must be >= 1 event, got {sort_buffer}. Pass a positive sort_buffer.",
            flags={"a positive sort_buffer": "a positive --sort-buffer"},
        )
    columns = columns or LogColumns()
    with tempfile.TemporaryDirectory(prefix="s4rec-sort-", dir=temp_dir) as directory:
        buffer: list[tuple] = []
        runs: list[str] = []
        total = 0
        bad_users: set = set()  # users named by malformed rows; those seen with a good row are removed below
        for event in log_events(lines, columns, tsv):
            if type(event) is BadRecord:
                if event.user is not None:
                    bad_users.add(event.user)
                if on_bad is not None:
                    on_bad(event)
                continue
            line_no, user, item, timestamp = event
            buffer.append((int(isinstance(user, str)), user, timestamp, line_no, item))  # plain tuples sort
            total += 1
            if on_read is not None and total % 16384 == 0:
                on_read()
            if len(buffer) >= sort_buffer:
                buffer.sort()
                runs.append(_spill(buffer, directory))
                buffer = []
        buffer.sort()
        if summary is not None:
            summary.events = total
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
                bad_users.discard(user)
            history.append(item)
        if current is not None:
            yield Record(current[1], history, first_line)
        if summary is not None:
            summary.users_without_valid_rows = len(bad_users)
