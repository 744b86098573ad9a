"""Interaction logs (CSV/TSV, plain or ``.gz``, and Parquet) read with pyarrow into flat columns, then
k-core filtered, grouped by user and ordered by time on dense integer codes with numpy.

Why pyarrow: measured on this kind of machine (2 shared cores, load 4.4-7.6; ``benchmarks/columnar_engines.py``
on a synthetic log of 10^7 events, 10^6 users, 10^6 items: read, 5-core, order, number the items), pyarrow
took 14.4 s on Parquet and 24.7 s on CSV at 1.2 GB peak RSS, polars 57.6 s / 67.7 s at 1.0 / 0.95 GB and
DuckDB 86.4 s / 116.8 s at 1.4 GB, all three giving the same arrays. pyarrow is also the reference Parquet
reader and already a dependency of the ``[ray]`` extra. It reads and factorises (``dictionary_encode``);
the k-core, which the engines can only express as repeated joins or window counts, is a few ``bincount``
passes over the integer codes, and ``sort_indices`` (stable) orders each user's events by time.

The header is read by :func:`s4rec.logs.log_header`, as ``s4rec-score`` reads it: one place decides the
separator, checks the columns and words those errors. pyarrow then reads the rows strictly; a file it does
not read cleanly (a row with missing or extra fields, a timestamp that is not a plain number, an empty id)
is read again, exactly, by :func:`s4rec.logs.log_events` (Python's csv module, line by line, into compact
arrays): that pass either finds the first bad row and raises the message s4rec has always given (file, line,
what is wrong, what to do) or reads what pyarrow was too strict about.
"""

from __future__ import annotations

import gzip
import io
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from s4rec.errors import InputError
from s4rec.logs import LogColumns, column_positions, log_events, log_header
from s4rec.records import BadRecord, compressed_input_error, open_input

from .errors import DataError
from .ids import Ids, as_ids, factorize, number_items

PARQUET_SUFFIXES = (".parquet", ".pq")
TRAINING_INPUTS = "a benchmark-format text file or a CSV/TSV log (plain or .gz), or a Parquet log"


@dataclass
class Events:
    """A log's events in file order: each row's user and item as codes into ``user_ids`` / ``item_ids``."""

    user_code: np.ndarray  # int64 (events,), users numbered in order of first appearance
    user_ids: Ids
    item_code: np.ndarray  # int64 (events,)
    item_ids: Ids
    timestamp: np.ndarray  # float64 (events,)


@dataclass
class Grouped:
    """Users' histories as flat arrays: user u's items (indices 1..N, oldest first) are
    ``items[offsets[u]:offsets[u + 1]]``; ``item_ids[i - 1]`` is item index i's id."""

    user_ids: Ids
    item_ids: Ids
    items: np.ndarray  # int32
    offsets: np.ndarray  # int64 (users + 1,)
    dropped_users: int
    notes: list[str]
    read_users: int = 0  # before any filtering
    read_events: int = 0
    timestamps: np.ndarray | None = None  # float64 per event of ``items`` (logs only): the time split needs them


def open_text(path: Path) -> io.TextIOBase:
    """A text file (``.gz`` decompressed) read the way the csv module wants it, opened as ``s4rec-score`` opens
    it (:func:`s4rec.records.open_input`): its checks (gzip name and data agree, no NUL bytes), no byte-order
    mark, and bytes that are not UTF-8 kept so that the row holding them is named."""
    try:
        return open_input(path, TRAINING_INPUTS)[0]
    except InputError as e:  # its messages already name the file
        raise DataError(str(e)) from None


def read_log_events(path: Path, columns: LogColumns) -> Events:
    """The events of a CSV/TSV (plain or ``.gz``) or Parquet log; :class:`~s4rec_train.errors.DataError` for a
    file or row that cannot be used."""
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if any(s in PARQUET_SUFFIXES for s in suffixes):
            return _read_parquet(path, columns)
        tsv = ".tsv" in suffixes
        with open_text(path) as f:
            header_line = f.readline()
        sep, names, positions = log_header(header_line, columns, tsv)
        events = _read_csv_fast(path, sep, names, positions)
        return events if events is not None else _read_csv_exact(path, columns, tsv)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # damaged .gz data, past what open_input checked
        raise DataError(str(compressed_input_error(path, e))) from None
    except InputError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: {e}", flags=e.flags) from None


def _unique_names(names: list[str]) -> list[str]:
    """Column names pyarrow can select by: a repeated name keeps its first place (as ``list.index`` does)."""
    seen: set[str] = set()
    out = []
    for position, name in enumerate(names):
        out.append(name if name not in seen else f"\x00{position}")
        seen.add(name)
    return out


def _read_csv_fast(path: Path, sep: str, names: list[str], positions: tuple[int, int, int]) -> Events | None:
    """pyarrow's multi-threaded reader, strict; None when the file needs the exact reader."""
    names = _unique_names(names)
    user, item, time = (names[p] for p in positions)
    irregular = []

    def invalid(row) -> str:  # a row with too few or too many fields, or a line of blanks
        irregular.append(row)
        return "skip"

    id_type = pa.int64()  # plain integers are the common case and cheapest; strings if they are not
    while True:
        convert = pcsv.ConvertOptions(
            include_columns=[user, item, time], column_types={user: id_type, item: id_type, time: pa.float64()},
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
        )  # fmt: skip
        options = dict(
            read_options=pcsv.ReadOptions(skip_rows=1, column_names=names),
            parse_options=pcsv.ParseOptions(delimiter=sep, invalid_row_handler=invalid),
            convert_options=convert,
        )
        try:
            table = pcsv.read_csv(path, **options)
            break
        except (pa.ArrowInvalid, OSError) as e:  # OSError: damaged .gz data, which the exact reader words
            if id_type == pa.int64() and "to int64" in str(e):
                id_type, irregular = pa.string(), []
                continue
            return None
    if irregular:
        return None
    ids = []
    for name in (user, item):
        column = table[name]
        if column.type == pa.string():
            column = pc.utf8_trim_whitespace(column)  # as the csv reader's rows are stripped
            if pc.any(pc.equal(pc.binary_length(column), 0)).as_py():
                return None  # an empty id: a bad row, or a row of empty fields the exact reader skips
        ids.append(column)
    timestamp = table[time].to_numpy()
    if np.isnan(timestamp).any():
        return None
    del table
    (user_code, user_ids), (item_code, item_ids) = factorize(ids[0]), factorize(ids[1])
    return Events(user_code, user_ids, item_code, item_ids, timestamp.astype(np.float64, copy=False))


def _read_csv_exact(path: Path, columns: LogColumns, tsv: bool) -> Events:
    """The log read line by line by :func:`s4rec.logs.log_events` (the SDK's reader), into compact arrays;
    the first malformed row raises :class:`~s4rec_train.errors.DataError` with its line."""
    users: dict = {}
    items: dict = {}
    user_code, item_code, timestamp = array("q"), array("q"), array("d")
    with open_text(path) as f:
        for event in log_events(f, columns, tsv):
            if type(event) is BadRecord:
                fix = "" if "re-encode" in event.reason else " Fix the row or remove it."
                raise DataError(f"{path}:{event.line}: {event.reason}.{fix}")
            _, user, item, stamp = event
            user_code.append(users.setdefault(user, len(users)))
            item_code.append(items.setdefault(item, len(items)))
            timestamp.append(stamp)
    return Events(
        np.frombuffer(user_code, np.int64), as_ids(list(users)),
        np.frombuffer(item_code, np.int64), as_ids(list(items)), np.frombuffer(timestamp, np.float64),
    )  # fmt: skip


def _read_parquet(path: Path, columns: LogColumns) -> Events:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(
            f"{path}: not a readable Parquet file ({_one_line(e)}). Pass a Parquet, CSV or TSV log."
        ) from None
    positions = column_positions(schema.names, columns, where="schema", has="the file has")
    names = [schema.names[p] for p in positions]
    try:
        table = pq.read_table(path, columns=names)
    except (pa.ArrowException, OSError) as e:  # a damaged file whose footer still reads
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(e)}). Write the file again.") from None
    ids = []
    for name in names[:2]:
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        if column.type == pa.string():
            column = pc.utf8_trim_whitespace(column)
            bad = pc.or_kleene(pc.is_null(column), pc.equal(pc.binary_length(column), 0))
        elif pa.types.is_integer(column.type):
            column = column.cast(pa.int64())
            bad = pc.is_null(column)
        else:
            raise DataError(f"{path}: column {name!r} holds {column.type}; ids must be integers or strings.")
        _raise_at_first(path, bad, f"empty {name!r} field")
        ids.append(column)
    timestamp = _parquet_time(path, table[names[2]], names[2])
    del table
    (user_code, user_ids), (item_code, item_ids) = factorize(ids[0]), factorize(ids[1])
    return Events(user_code, user_ids, item_code, item_ids, timestamp)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__  # pyarrow's messages end in newlines


def _parquet_time(path: Path, column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Seconds, milliseconds, dates...: only the order matters, so any numeric or temporal type is kept as
    float64 of its own unit; strings must be numbers, as in a CSV log."""
    text = None
    if pa.types.is_temporal(column.type):
        column = column.cast(pa.int64())
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = column
        column = pc.utf8_trim_whitespace(column)
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"{path}: column {name!r} holds {column.type}; timestamps must be numbers or times.")
    if text is None:
        _raise_at_first(path, pc.is_null(column), f"empty {name!r} field")
        values = column.cast(pa.float64()).to_numpy()
    else:
        try:
            values = column.cast(pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            values = np.array([_as_float(v) for v in column.to_pylist()])
    bad = np.isnan(values)
    if bad.any():
        row = int(np.argmax(bad))
        shown = text[row].as_py() if text is not None else None
        raise DataError(
            f"{path}: row {row + 1}: timestamp {shown!r} in column {name!r} is not a number (use numbers, "
            "e.g. Unix seconds). Fix the row or remove it."
        )
    return values


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _raise_at_first(path: Path, bad: pa.ChunkedArray, reason: str) -> None:
    bad = bad.to_numpy(zero_copy_only=False) if bad.null_count == 0 else pc.fill_null(bad, True).to_numpy()
    if bad.any():
        raise DataError(f"{path}: row {int(np.argmax(bad)) + 1}: {reason}. Fix the row or remove it.")


def k_core(user_code: np.ndarray, item_code: np.ndarray, min_count: int) -> np.ndarray:
    """Which events survive repeatedly dropping users and items with fewer than ``min_count`` events (bool
    mask, to a fixed point). Each pass is two ``bincount`` over the events still kept."""
    keep = np.ones(len(user_code), dtype=bool)
    if min_count <= 1 or not len(user_code):
        return keep
    num_users, num_items = int(user_code.max()) + 1, int(item_code.max()) + 1
    rows, users, items = np.arange(len(user_code)), user_code, item_code
    while True:
        ok = (np.bincount(users, minlength=num_users)[users] >= min_count) & (
            np.bincount(items, minlength=num_items)[items] >= min_count
        )
        if ok.all():
            break
        rows, users, items = rows[ok], users[ok], items[ok]
    keep[:] = False
    keep[rows] = True
    return keep


def group_events(events: Events, min_count: int, min_interactions: int) -> Grouped:
    """k-core filter, drop users with fewer than ``min_interactions`` events, order users by their first kept
    event and each user's items by (time, file order), and number the items kept in vocabulary order."""
    total = len(events.user_code)
    keep = k_core(events.user_code, events.item_code, min_count)
    notes = []
    if keep.sum() < total:
        notes.append(f"{min_count}-core filtering kept {int(keep.sum())} of {total} interactions")
    rows = np.flatnonzero(keep)
    user_code = events.user_code[rows]
    counts = np.bincount(user_code, minlength=len(events.user_ids))
    dropped = int(((counts > 0) & (counts < min_interactions)).sum())
    long_enough = counts[user_code] >= min_interactions
    rows, user_code = rows[long_enough], user_code[long_enough]
    first = np.full(len(events.user_ids), total, dtype=np.int64)
    np.minimum.at(first, user_code, rows)
    kept_users = np.flatnonzero(first < total)
    kept_users = kept_users[np.argsort(first[kept_users], kind="stable")]  # order of first kept event
    rank = np.zeros(len(events.user_ids), dtype=np.int64)
    rank[kept_users] = np.arange(len(kept_users))
    by_user_time = pa.table({"user": rank[user_code], "time": events.timestamp[rows]})
    order = pc.sort_indices(by_user_time, sort_keys=[("user", "ascending"), ("time", "ascending")]).to_numpy()
    rows = rows[order]  # sort_indices is stable: ties in time keep file order
    items, vocabulary = number_items(events.item_code[rows], events.item_ids)
    lengths = np.bincount(rank[user_code], minlength=len(kept_users))
    offsets = np.zeros(len(kept_users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if dropped:
        notes.append(f"dropped {dropped} users with fewer than {min_interactions} interactions")
    return Grouped(
        events.user_ids.take(kept_users), vocabulary, items, offsets, dropped, notes, len(events.user_ids), total,
        events.timestamp[rows],
    )  # fmt: skip
