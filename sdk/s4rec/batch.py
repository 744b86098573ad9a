"""Offline batch scoring: stream histories from a file, recommend in batches, write the results atomically.

:func:`score_file` is what ``s4rec-score`` runs; :func:`score_records` is the loop under it, usable with any
iterable of :class:`~s4rec.records.Record` (the Ray integration reuses the same output shape). Memory stays
bounded: records are read lazily, scored ``chunk_size`` at a time (the SDK sorts each chunk by length and
runs it in ONNX Runtime calls of ``batch_size`` similar-length histories) and written out before the next
chunk is read (interaction logs additionally need the external sort in :mod:`s4rec.records`).

Output formats:

* ``jsonl``: ``{"user": ..., "items": [...], "scores": [...]}`` per user, best first;
* ``csv``: header ``user,rank,item,score``, one row per recommended item (rank 1 = best).

A history with no item known to the model gets the most popular items with no score (``null`` in JSONL,
empty in CSV).

The output is written to a temporary file next to the final one and renamed into place only when the whole
run succeeded, so an interrupted or failed run never leaves a partial file under the final name.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, S4RecError, ScoreError
from .files import atomic_file
from .logs import LogColumns, read_log
from .records import BadRecord, Record, detect_format, open_input, read_jsonl, read_text

OUTPUT_FORMATS = ("jsonl", "csv")
DEFAULT_BATCH_SIZE = 256  # histories per ONNX Runtime call
DEFAULT_CHUNK_SIZE = 8192  # histories per recommend_batch call: enough to length-bucket well, a few MB


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count, inside containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def output_format_for(path: str | Path) -> str:
    """``.csv``/``.tsv`` (optionally ``.gz``) -> csv, anything else -> jsonl."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    return "csv" if ".csv" in suffixes or ".tsv" in suffixes else "jsonl"


# --- output -------------------------------------------------------------------------------------------------


def _score_text(score, missing: str) -> str:
    # float32 has ~7 significant digits; NaN = no model score (the popular-items fallback of an empty history)
    return missing if score != score else f"{score:.7g}"


_FORMATS = ["", *(", ".join(["%.7g"] * n) for n in range(1, 1025))]  # "%.7g, %.7g, ..." by length


class JsonlWriter:
    """``{"user": ..., "items": [...], "scores": [...]}`` per line.

    A batch is formatted into one string and written at once: this runs under the GIL next to the
    parsing and the SDK's own Python, which bound ``s4rec-score`` on two cores, so it makes few calls
    per user (integer ids, the usual case, are written with ``str`` of the list: the same text as JSON).
    """

    def __init__(self, out: io.TextIOBase) -> None:
        self.out = out
        self.encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., kwargs) builds one per call

    def write_batch(self, rows: Iterable[tuple]) -> None:
        """Write ``(user, [(item_id, score), ...])`` rows."""
        encode, formats = self.encode, _FORMATS
        lines = []
        for user, recommendations in rows:
            items, scores = zip(*recommendations) if recommendations else ((), ())
            items_text = str(list(items)) if set(map(type, items)) <= _INT else encode(items)
            if len(scores) < len(formats):
                scores_text = formats[len(scores)] % scores  # one formatting call instead of one per score
                if "nan" in scores_text:
                    scores_text = ", ".join(_score_text(score, "null") for score in scores)
            else:
                scores_text = ", ".join(_score_text(score, "null") for score in scores)
            user_text = str(user) if type(user) is int else encode(user)
            lines.append(f'{{"user": {user_text}, "items": {items_text}, "scores": [{scores_text}]}}\n')
        self.out.write("".join(lines))

    def write_scored(self, scored: _Scored) -> None:
        """Write a scored chunk; from ranked arrays, runs of full rows are formatted with one ``%`` each."""
        ranked = scored.ranked
        if ranked is None:
            self.write_batch(scored.pairs())
            return
        users = [record.user for record in scored.records]
        n, k = ranked.scores.shape
        if n == 0:
            return
        users_text = list(map(str, users)) if set(map(type, users)) <= _INT else list(map(self.encode, users))
        full = ~ranked.fallback & np.isfinite(ranked.scores).all(axis=1)  # k model scores: no null, no -inf
        line = _line_template(k)
        encoded = _encoded_ids(ranked.ids, self.encode)
        parts, start = [], 0
        for stop in [*np.flatnonzero(~full).tolist(), n]:
            for a in range(start, stop, _FORMAT_ROWS):  # full rows: one formatting call per _FORMAT_ROWS
                b = min(a + _FORMAT_ROWS, stop)
                values = np.empty((b - a, 1 + 2 * k), dtype=object)
                values[:, 0] = users_text[a:b]
                values[:, 1 : k + 1] = encoded[ranked.items[a:b]]
                values[:, k + 1 :] = ranked.scores[a:b]
                parts.append((line * (b - a)) % tuple(values.ravel().tolist()))
            if stop < n:  # a fallback row, or one with fewer than k items: formatted as write_batch does
                buffer = io.StringIO()
                JsonlWriter(buffer).write_batch([(users[stop], ranked.recommendation(stop))])
                parts.append(buffer.getvalue())
            start = stop + 1
        self.out.write("".join(parts))


_FORMAT_ROWS = 1024  # rows per formatting call: bounds the Python objects held for one call


@functools.lru_cache(maxsize=64)
def _line_template(k: int) -> str:
    """One JSONL line with k items and k scores, for ``%`` with (user text, k id texts, k float scores)."""
    return '{"user": %s, "items": [' + ", ".join(["%s"] * k) + '], "scores": [' + ", ".join(["%.7g"] * k) + "]}\n"


# id(a vocabulary's id array) -> (a weak reference to it, its ids as JSON text); numpy arrays are not
# hashable, so not WeakKeyDictionary keys: an entry goes when its array does.
_ENCODED_IDS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _encoded_ids(ids: np.ndarray, encode) -> np.ndarray:
    """The JSON text of each item id of ``ids`` (item index -> id, ``ids[0]`` None), by item index (object
    array; built once per id array, that is once per recommender)."""
    key = id(ids)
    entry = _ENCODED_IDS.get(key)
    if entry is not None and entry[0]() is ids:
        return entry[1]
    item_ids = ids[1:].tolist()
    texts = list(map(str, item_ids)) if set(map(type, item_ids)) <= _INT else list(map(encode, item_ids))
    encoded = np.array(["null", *texts], dtype=object)
    _ENCODED_IDS[key] = (weakref.ref(ids, lambda _ref: _ENCODED_IDS.pop(key, None)), encoded)
    return encoded


class CsvWriter:
    """Header ``user,rank,item,score``, one row per recommended item."""

    def __init__(self, out: io.TextIOBase) -> None:
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(["user", "rank", "item", "score"])

    def write_batch(self, rows: Iterable[tuple]) -> None:
        """Write ``(user, [(item_id, score), ...])`` rows."""
        self.writer.writerows(
            (user, rank, item, _score_text(score, ""))
            for user, recommendations in rows
            for rank, (item, score) in enumerate(recommendations, 1)
        )

    def write_scored(self, scored: _Scored) -> None:
        self.write_batch(scored.pairs())


_INT = {int}
WRITERS = {"jsonl": JsonlWriter, "csv": CsvWriter}


@contextmanager
def atomic_output(path: str | Path, force: bool = False) -> Iterator[io.TextIOBase]:
    """A UTF-8 text file (gzip-compressed for ``.gz``) that appears under ``path`` only if the block succeeds
    (:func:`s4rec.files.atomic_file`). Without ``force`` an existing ``path`` is an error, raised before
    anything is written."""
    path = Path(path)
    if path.is_dir():
        raise ScoreError(f"{path}: is a directory. Pass a file name for the output.")
    if path.exists() and not force:
        raise ScoreError(
            f"{path}: already exists. Pass force=True to overwrite it, or choose another output.",
            flags={"force=True": "--force", "another output": "another --output"},
        )
    with atomic_file(path) as raw:
        gz = path.suffix.lower() == ".gz"
        binary = gzip.GzipFile(fileobj=raw, mode="wb", filename=path.stem) if gz else raw
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()
        if gz:
            binary.close()  # writes the gzip trailer; leaves raw open for atomic_file to finish


# --- scoring ------------------------------------------------------------------------------------------------


class _Failure:
    """An exception raised by the read-ahead thread, carried to the consuming thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _chunks(records: Iterable[Record | BadRecord], chunk_size: int) -> Iterator[list]:
    """Lists holding up to ``chunk_size`` records each (malformed ones ride along, in input order)."""
    chunk, count = [], 0
    for item in records:
        chunk.append(item)
        if type(item) is Record:
            count += 1
            if count == chunk_size:
                yield chunk
                chunk, count = [], 0
    if chunk:
        yield chunk


def _read_ahead(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Parsing the next chunk then overlaps with ONNX Runtime scoring the current one (ONNX Runtime releases
    the GIL). An exception in the thread is re-raised here; when the consumer stops early the thread stops
    at its next hand-over (it is a daemon thread, so a thread stuck in a long read never blocks exit).
    """
    handover: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # noqa: BLE001 - carried to the consumer and re-raised there
            put(_Failure(e))

    thread = threading.Thread(target=produce, name="s4rec-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handover.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


class _Scored:
    """A scored chunk: its records and, per record, either its recommendations (``results``) or, from an
    s4rec :class:`~s4rec.Recommender`, the ranked arrays (``ranked``) that the JSONL writer formats as they
    are, without building a ``(item_id, score)`` list per user."""

    __slots__ = ("records", "results", "ranked")

    def __init__(self, records: list[Record], results: list | None = None, ranked=None) -> None:
        self.records, self.results, self.ranked = records, results, ranked

    def __len__(self) -> int:
        return len(self.records)

    def pairs(self) -> list[tuple]:
        """``(user, [(item_id, score), ...])`` per record."""
        results = self.results if self.ranked is None else self.ranked.recommendations()
        return [(record.user, recommendations) for record, recommendations in zip(self.records, results)]


def score_records(
    recommender,
    records: Iterable[Record | BadRecord],
    *,
    k: int = 10,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    exclude_seen: bool = True,
    on_bad: Callable[[BadRecord], None],
    read_ahead: bool = False,
) -> Iterator[list[tuple[Record, list]]]:
    """Yield one list of ``(record, [(item_id, score), ...])`` per chunk of ``chunk_size`` records.

    Each chunk is one ``recommender.recommend_batch`` call, which runs ONNX Runtime on ``batch_size``
    histories of similar length at a time.

    Malformed records (and records the SDK refuses, found by re-scoring a failed batch one by one) go to
    ``on_bad``, which may raise to stop the run. ``read_ahead``: read and parse the next chunk in a
    background thread while this one is scored.
    """
    options = {"k": k, "batch_size": batch_size, "chunk_size": chunk_size, "exclude_seen": exclude_seen}
    for scored in _score_chunks(recommender, records, on_bad=on_bad, read_ahead=read_ahead, arrays=False, **options):
        yield list(zip(scored.records, scored.results))


def _score_chunks(
    recommender,
    records: Iterable[Record | BadRecord],
    *,
    k: int,
    batch_size: int,
    chunk_size: int,
    exclude_seen: bool,
    on_bad: Callable[[BadRecord], None],
    read_ahead: bool,
    arrays: bool,
) -> Iterator[_Scored]:
    """:func:`score_records` as :class:`_Scored` chunks; ``arrays``: keep an s4rec Recommender's results as
    ranked arrays (anything else with ``recommend_batch`` gives lists)."""
    if k < 1:
        raise ScoreError(f"k must be >= 1, got {k}. Pass a positive --k.")
    if batch_size < 1:
        raise ScoreError(f"batch size must be >= 1, got {batch_size}. Pass a positive --batch-size.")
    if chunk_size < 1:
        raise ScoreError(f"chunk size must be >= 1, got {chunk_size}. Pass a positive --chunk-size.")
    errors = (S4RecError, TypeError, ValueError)  # what the SDK raises for a history it cannot score
    rank = getattr(recommender, "rank_batch", None) if arrays else None

    def run(batch: list[Record]) -> _Scored:
        histories = [r.history for r in batch]
        try:
            if rank is not None:
                return _Scored(batch, ranked=rank(histories, k=k, exclude_seen=exclude_seen, batch_size=batch_size))
            results = recommender.recommend_batch(histories, k=k, exclude_seen=exclude_seen, batch_size=batch_size)
            return _Scored(batch, list(results))
        except errors:
            pass
        scored, results = [], []
        for record in batch:  # find the culprit(s): score one by one
            try:
                results.append(recommender.recommend_batch([record.history], k=k, exclude_seen=exclude_seen)[0])
                scored.append(record)
            except errors as e:
                on_bad(BadRecord(record.line, f"user {record.user!r}: {e}"))
        return _Scored(scored, results)

    chunks = _chunks(records, chunk_size)
    for chunk in _read_ahead(chunks) if read_ahead else chunks:
        batch = []
        for record in chunk:
            if type(record) is Record:
                batch.append(record)
            else:
                on_bad(record)
        if batch:
            yield run(batch)


class _WriteBehind:
    """Writes scored batches in a background thread, so that formatting and writing one batch overlaps with
    scoring the next. At most ``depth`` batches wait; an error in the thread is raised in the caller at the
    next hand-over or at the end. With ``enabled=False`` it writes in the calling thread."""

    def __init__(self, writer, enabled: bool = True, depth: int = 2) -> None:
        self.writer, self.enabled = writer, enabled
        self.pending: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="s4rec-write-behind", daemon=True)

    def _drain(self) -> None:
        while True:
            batch = self.pending.get()
            if batch is None:
                return
            if self.error is None:
                try:
                    self.writer.write_scored(batch)
                except BaseException as e:  # noqa: BLE001 - raised in the caller
                    self.error = e

    def __call__(self, batch: _Scored) -> None:
        if not self.enabled:
            self.writer.write_scored(batch)
            return
        if self.error is not None:
            raise self.error
        self.pending.put(batch)

    def __enter__(self):
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.enabled:
            if exc_type is not None:  # stop early: drop what is queued
                while not self.pending.empty():
                    self.pending.get_nowait()
            self.pending.put(None)
            self.thread.join()
            if exc_type is None and self.error is not None:
                raise self.error


@dataclass
class ScoreReport:
    """What a run did: users written, malformed records skipped, wall time."""

    users: int
    skipped: int
    seconds: float
    output: str

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        skipped = f"; skipped {self.skipped} malformed record(s)" if self.skipped else ""
        return (
            f"scored {self.users} users in {self.seconds:.1f}s ({self.users_per_second:,.0f} users/s) "
            f"-> {self.output}{skipped}"
        )


class _BadRecords:
    """Reports each malformed record with its line number; raises on the first under ``on_error='fail'``."""

    def __init__(self, source: str, on_error: str, warn: Callable[[str], None]) -> None:
        self.source, self.on_error, self.warn, self.count = source, on_error, warn, 0

    def __call__(self, bad: BadRecord) -> None:
        self.count += 1
        where = f"{self.source}:{bad.line}: {bad.reason}"
        if self.on_error == "fail":
            raise ScoreError(
                f"{where}. Fix the record, or pass on_error='skip' to skip malformed records.",
                flags={"on_error='skip'": "--on-error skip"},
            )
        self.warn(f"{where} (skipped)")


class _Progress:
    """A click progress bar over the input's bytes (and, for logs, a second one over the sorted events)."""

    def __init__(self, enabled: bool, total_bytes: int, counter) -> None:
        self.enabled, self.total_bytes, self.counter = enabled, total_bytes, counter
        self.bar = None
        self.started = time.perf_counter()
        self.users = 0
        self.shown = 0

    def _open(self, label: str, length: int) -> None:
        import click

        if self.bar is not None:
            self.bar.render_finish()
        self.bar = click.progressbar(
            length=max(length, 1), label=label, file=sys.stderr, item_show_func=self._status, width=24
        )
        self.bar.__enter__()
        self.shown = 0

    def _status(self, _item) -> str:
        elapsed = time.perf_counter() - self.started
        return f"{self.users:,} users, {self.users / elapsed if elapsed > 0 else 0:,.0f} users/s"

    def reading(self) -> None:
        if self.enabled:
            if self.bar is None:
                self._open("sorting log", self.total_bytes)
            self._advance(self.counter.bytes_read)

    def sorted(self, events: int) -> None:
        if self.enabled:
            if self.bar is not None:
                self._advance(self.counter.bytes_read)
            self._open("scoring", events)
            self.started = time.perf_counter()

    def scored(self, users: int, position: int) -> None:
        """After a batch: ``position`` is bytes read, or events scored once a log is sorted."""
        self.users += users
        if self.enabled:
            if self.bar is None:
                self._open("scoring", self.total_bytes)
            self._advance(position)

    def _advance(self, position: int) -> None:
        if position > self.shown:
            self.bar.update(position - self.shown)
            self.shown = position

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


def score_file(
    recommender,
    input_path: str | Path,
    output_path: str | Path,
    *,
    k: int = 10,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    exclude_seen: bool = True,
    on_error: str = "skip",
    input_format: str | None = None,
    output_format: str | None = None,
    log_columns: LogColumns | None = None,
    sort_buffer: int | None = None,
    force: bool = False,
    progress: bool = False,
    read_ahead: bool = True,
    warn: Callable[[str], None] | None = None,
) -> ScoreReport:
    """Score every history in ``input_path`` with ``recommender`` and write ``output_path`` atomically.

    ``recommender`` is an :class:`s4rec.Recommender` (anything with ``recommend_batch``). Formats are taken
    from the file names unless given (``jsonl``/``text``/``log`` in, ``jsonl``/``csv`` out). ``output_path``
    ``-`` writes to stdout (not atomic). ``read_ahead`` parses the next chunk and writes the previous one in
    background threads while the current one is scored. Malformed records are reported through ``warn``
    (stderr by default) with their line number and skipped, or stop the run with :class:`ScoreError` under
    ``on_error="fail"``.
    """
    if on_error not in ("skip", "fail"):
        raise ScoreError(f"on_error must be 'skip' or 'fail', got {on_error!r}.")
    input_path = Path(input_path)
    input_format = input_format or detect_format(input_path)
    if input_format not in ("jsonl", "text", "log"):
        raise InputError(f"unknown input format {input_format!r}. Use jsonl, text or log.")
    to_stdout = str(output_path) == "-"
    output_format = output_format or ("jsonl" if to_stdout else output_format_for(output_path))
    if output_format not in WRITERS:
        raise ScoreError(f"unknown output format {output_format!r}. Use jsonl or csv.")
    warn = warn or (lambda message: print(message, file=sys.stderr))
    bad = _BadRecords(str(input_path), on_error, warn)
    started = time.perf_counter()
    lines, counter = open_input(input_path)
    bar = _Progress(progress, input_path.stat().st_size, counter)
    events_scored = 0
    is_log = input_format == "log"

    def run(out: io.TextIOBase) -> int:
        nonlocal events_scored
        writer = WRITERS[output_format](out)
        if input_format == "jsonl":
            records: Iterable = read_jsonl(lines)
        elif input_format == "text":
            records = read_text(lines)
        else:
            tsv = ".tsv" in [s.lower() for s in input_path.suffixes]
            options = {} if sort_buffer is None else {"sort_buffer": sort_buffer}
            records = read_log(
                lines, log_columns, tsv=tsv, on_bad=bad, on_read=bar.reading, on_sorted=bar.sorted, **options
            )
        users = 0
        with _WriteBehind(writer, enabled=read_ahead) as write:
            for batch in _score_chunks(
                recommender,
                records,
                k=k,
                batch_size=batch_size,
                chunk_size=chunk_size,
                exclude_seen=exclude_seen,
                on_bad=bad,
                read_ahead=read_ahead,
                arrays=True,
            ):
                write(batch)
                users += len(batch)
                if is_log:
                    events_scored += sum(len(record.history) for record in batch.records)
                bar.scored(len(batch), events_scored if is_log else counter.bytes_read)
        return users

    try:
        with lines:
            if to_stdout:
                users = run(sys.stdout)
                sys.stdout.flush()
            else:
                with atomic_output(output_path, force=force) as out:
                    users = run(out)
    except InputError as e:
        message = str(e)
        raise InputError(message if message.startswith(str(input_path)) else f"{input_path}: {message}") from None
    finally:
        bar.close()
    return ScoreReport(users, bad.count, time.perf_counter() - started, "stdout" if to_stdout else str(output_path))
