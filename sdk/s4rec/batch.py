"""Offline batch scoring: stream histories from a file, recommend in chunks, write the results atomically.

:func:`score_file` is what ``s4rec-score`` runs; :func:`score_records` is the loop under it, usable with any
iterable of :class:`~s4rec.records.Record` (the Ray integration reuses the same output shape). Memory stays
bounded: records are read lazily, scored ``chunk_size`` at a time (the SDK sorts each chunk by length and
runs it in ONNX Runtime calls of ``batch_size`` similar-length histories) and written out before the next
chunk is read (interaction logs additionally need the external sort in :mod:`s4rec.logs`). With read-ahead,
the next chunk is parsed and the previous one written in background threads while one is scored.

The output formats and the atomic output file are :mod:`s4rec.writers`. A run reports where it stands
through ``on_progress`` (:class:`ScoreProgress`); ``s4rec-score`` draws it as a progress bar. (One job, the
pipeline with its read-ahead threads, which is why it is longer than ~400 lines.)
"""

from __future__ import annotations

import gzip
import io
import os
import queue
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, S4RecError, ScoreError
from .logs import LogColumns, LogSummary, read_log
from .progress import ProgressReporter, ScoreProgress
from .records import (
    DEFAULT_MAX_LINE_LENGTH,
    BadRecord,
    BoundedLines,
    Record,
    check_max_line_length,
    compressed_input_error,
    detect_format,
    open_input,
    read_jsonl,
    read_text,
)
from .results import ScoredChunk
from .writers import WRITERS, atomic_output, output_format_for  # the last two: also importable from here, as before

DEFAULT_BATCH_SIZE = 256  # histories per ONNX Runtime call
DEFAULT_CHUNK_SIZE = 8192  # histories per recommend_batch call: enough to length-bucket well, a few MB


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count, inside containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# --- reading ahead ------------------------------------------------------------------------------------------


class _Failure:
    """An exception raised by the read-ahead thread, carried to the consuming thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _chunks(
    records: Iterable[Record | BadRecord], chunk_size: int, position: Callable[[], int] = lambda: 0
) -> Iterator[tuple[list, int]]:
    """Lists holding up to ``chunk_size`` records each (malformed ones ride along, in input order), each with
    ``position()`` once its last record is read (the input bytes behind it, for progress)."""
    chunk, count = [], 0
    for item in records:
        chunk.append(item)
        if type(item) is Record:
            count += 1
            if count == chunk_size:
                yield chunk, position()
                chunk, count = [], 0
    if chunk:
        yield chunk, position()


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


# --- scoring ------------------------------------------------------------------------------------------------


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
    per_intent: int | None = None,
) -> Iterator[list[tuple[Record, list]]]:
    """Yield one list of ``(record, [(item_id, score), ...])`` per chunk of ``chunk_size`` records.

    Each chunk is one ``recommender.recommend_batch`` call, which runs ONNX Runtime on ``batch_size``
    histories of similar length at a time.

    Malformed records (and records the SDK refuses, found by re-scoring a failed batch one by one) go to
    ``on_bad``, which may raise to stop the run. ``read_ahead``: read and parse the next chunk in a
    background thread while this one is scored. A record's ``candidates`` limit its list to them;
    ``per_intent`` keeps at most that many items of one intent in every list.
    """
    options = {"k": k, "batch_size": batch_size, "chunk_size": chunk_size, "exclude_seen": exclude_seen}
    options["per_intent"] = per_intent
    for scored, _ in _score_chunks(recommender, records, on_bad=on_bad, read_ahead=read_ahead, arrays=False, **options):
        yield list(zip(scored.records, scored.results))


def _check_options(recommender, k: int, batch_size: int, chunk_size: int) -> None:
    if k < 1:
        raise ScoreError(f"k must be >= 1, got {k}. Pass a positive k.", flags={"a positive k": "a positive --k"})
    top_k = getattr(recommender, "top_k", None)  # an s4rec Recommender's; stand-ins may have none
    if top_k is not None and k > top_k:
        raise ScoreError(
            f"k must be in 1..{top_k} (the artifact's top_k), got {k}. Pass a smaller k, or re-export with a "
            "larger top_k.",
            flags={"a smaller k": "a smaller --k", "a larger top_k": "a larger top_k (s4rec-export --top-k)"},
        )
    if batch_size < 1:
        raise ScoreError(
            f"batch_size must be >= 1, got {batch_size}. Pass a positive batch_size.",
            flags={"a positive batch_size": "a positive --batch-size"},
        )
    if chunk_size < 1:
        raise ScoreError(
            f"chunk_size must be >= 1, got {chunk_size}. Pass a positive chunk_size.",
            flags={"a positive chunk_size": "a positive --chunk-size"},
        )


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
    position: Callable[[], int] = lambda: 0,
    per_intent: int | None = None,
) -> Iterator[tuple[ScoredChunk, int]]:
    """:func:`score_records` as :class:`ScoredChunk` chunks, each with ``position()`` as it was when the chunk
    had been read; ``arrays``: keep an s4rec Recommender's results as ranked arrays (anything else with
    ``recommend_batch`` gives lists)."""
    _check_options(recommender, k, batch_size, chunk_size)
    errors = (S4RecError, TypeError, ValueError)  # what the SDK raises for a history it cannot score
    rank = getattr(recommender, "rank_batch", None) if arrays else None
    fixed = {"k": k, "exclude_seen": exclude_seen} | ({} if per_intent is None else {"per_intent": per_intent})

    def selection(batch: list[Record]) -> dict:
        """The batch's per-record candidates, only when a record has some (stand-ins need not take them)."""
        candidates = [r.candidates for r in batch]
        return {"candidates_per_history": candidates} if any(c is not None for c in candidates) else {}

    def run(batch: list[Record]) -> ScoredChunk:
        histories = [r.history for r in batch]
        try:
            if rank is not None:
                ranked = rank(histories, batch_size=batch_size, **fixed, **selection(batch))
                return ScoredChunk(batch, ranked=ranked)
            results = recommender.recommend_batch(histories, batch_size=batch_size, **fixed, **selection(batch))
            return ScoredChunk(batch, list(results))
        except errors:
            pass
        scored, results = [], []
        for record in batch:  # find the culprit(s): score one by one
            try:
                results.append(recommender.recommend_batch([record.history], **fixed, **selection([record]))[0])
                scored.append(record)
            except errors as e:
                on_bad(BadRecord(record.line, f"user {record.user!r}: {e}"))
        return ScoredChunk(scored, results)

    chunks = _chunks(records, chunk_size, position)
    for chunk, chunk_position in _read_ahead(chunks) if read_ahead else chunks:
        batch = []
        for record in chunk:
            if type(record) is Record:
                batch.append(record)
            else:
                on_bad(record)
        if batch:
            yield run(batch), chunk_position


class _WriteBehind:
    """Writes scored batches in a background thread, so that formatting and writing one batch overlaps with
    scoring the next. At most ``depth`` batches wait; an error in the thread is raised in the caller at the
    next hand-over or at the end. With ``enabled=False`` it writes in the calling thread.

    The thread polls for a stop flag besides waiting on the queue: a SIGTERM turns into ``SystemExit`` in the
    main thread at any bytecode (``s4rec.files.exit_on_sigterm``), also inside the queue's own locking, and a
    hand-over interrupted there once left the writer waiting for a wake-up that never came while the main thread
    waited for it to end (seen twice under load in ``test_sigterm_leaves_no_output``).
    """

    POLL = 0.2  # seconds between the writer's checks of the stop flag while the queue is empty

    def __init__(self, writer, enabled: bool = True, depth: int = 2) -> None:
        self.writer, self.enabled = writer, enabled
        self.pending: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.stop = threading.Event()  # set on an early exit: drop what is queued and end
        self.thread = threading.Thread(target=self._drain, name="s4rec-write-behind", daemon=True)

    def _drain(self) -> None:
        while not self.stop.is_set():
            try:
                batch = self.pending.get(timeout=self.POLL)
            except queue.Empty:
                continue
            if batch is None:
                return
            if self.error is None:
                try:
                    self.writer.write_scored(batch)
                except BaseException as e:  # noqa: BLE001 - raised in the caller
                    self.error = e

    def __call__(self, batch: ScoredChunk) -> None:
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
        if not self.enabled:
            return
        if exc_type is not None:  # stop early: what is queued is dropped (the output is removed anyway)
            self.stop.set()
            self.thread.join(timeout=10 * self.POLL + 5)  # a batch being written finishes first
            return
        self.pending.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


# --- reports ------------------------------------------------------------------------------------------------


@dataclass
class ScoreReport:
    """What a run did: users written, malformed records skipped, wall time; of the users written, how many
    got the popular-items fallback (no item of their history is known to the model, or it is empty); for a
    log, how many users had only malformed rows (and so got no output)."""

    users: int
    skipped: int
    seconds: float
    output: str
    fallback: int = 0
    without_valid_rows: int = 0
    version: str = ""  # the artifact's version id (Recommender.version), "" for stand-ins without one

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        notes = []
        if self.fallback:
            notes.append(f"{self.fallback:,} of them got the popular items (no known item in their history)")
        if self.skipped:
            notes.append(f"skipped {self.skipped:,} malformed record(s)")
        if self.without_valid_rows:
            notes.append(f"{self.without_valid_rows:,} user(s) had only malformed rows and got no output")
        if self.version:
            notes.insert(0, f"model version {self.version}")
        users = f"{self.users:,} user{'' if self.users == 1 else 's'}"
        return (
            f"scored {users} in {self.seconds:.1f}s ({self.users_per_second:,.0f} users/s) -> {self.output}"
            + "".join(f"; {note}" for note in notes)
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
    read_ahead: bool = True,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    warn: Callable[[str], None] | None = None,
    on_progress: Callable[[ScoreProgress], None] | None = None,
    per_intent: int | None = None,
) -> ScoreReport:
    """Score every history in ``input_path`` with ``recommender`` and write ``output_path`` atomically.

    ``recommender`` is an :class:`s4rec.Recommender` (anything with ``recommend_batch``). Formats are taken
    from the file names unless given (``jsonl``/``text``/``log`` in, ``jsonl``/``csv`` out). ``output_path``
    ``-`` writes to stdout (not atomic). ``read_ahead`` parses the next chunk and writes the previous one in
    background threads while the current one is scored. Malformed records are reported through ``warn``
    (stderr by default) with their line number and skipped, or stop the run with :class:`ScoreError` under
    ``on_error="fail"``. No line is read further than ``max_line_length`` characters: a longer one is such a
    malformed record (:class:`~s4rec.records.BoundedLines`), so one huge record cannot exhaust memory.

    A JSONL record's ``"candidates"`` limits its list to those items; ``per_intent`` keeps at most that many
    items of one intent in every list; a view (``recommender.restricted_to(...)``, ``.without(...)``) applies
    its catalogue to every user (``s4rec-score --allow`` / ``--deny``). The report names the artifact's
    version.

    ``on_progress`` gets a :class:`ScoreProgress` after every chunk scored, every 16,384 events while a log
    is read, and once more (``finished``) when the run succeeded; it is called from one thread at a time
    (while a log is read, the read-ahead thread). :class:`s4rec.cli.ProgressBar` draws them on stderr.
    """
    if on_error not in ("skip", "fail"):
        raise ScoreError(f"on_error must be 'skip' or 'fail', got {on_error!r}.", flags={"on_error": "--on-error"})
    input_path = Path(input_path)
    input_format = input_format or detect_format(input_path)
    if input_format not in ("jsonl", "text", "log"):
        raise InputError(
            f"unknown input format {input_format!r}. Pass input_format='jsonl', 'text' or 'log'.",
            flags={"input_format=": "--input-format "},
        )
    to_stdout = str(output_path) == "-"
    output_format = output_format or ("jsonl" if to_stdout else output_format_for(output_path))
    if output_format not in WRITERS:
        raise ScoreError(
            f"unknown output format {output_format!r}. Pass output_format='jsonl' or 'csv'.",
            flags={"output_format=": "--output-format "},
        )
    warn = warn or (lambda message: print(message, file=sys.stderr))
    if per_intent is not None and hasattr(recommender, "rank_batch"):
        recommender.recommend([], k=1, per_intent=per_intent)  # an artifact without item intents: its error now
    bad = _BadRecords(str(input_path), on_error, warn)
    started = time.perf_counter()
    check_max_line_length(max_line_length)
    lines, counter = open_input(input_path)
    progress = ProgressReporter(on_progress, input_path.stat().st_size, counter)
    log_summary = LogSummary()
    counts = {"fallback": 0}

    def run(out: io.TextIOBase) -> int:
        writer = WRITERS[output_format](out)
        bounded = BoundedLines(lines, max_line_length)
        if input_format == "jsonl":
            records: Iterable = read_jsonl(bounded)
        elif input_format == "text":
            records = read_text(bounded)
        else:
            tsv = ".tsv" in [s.lower() for s in input_path.suffixes]
            options = {} if sort_buffer is None else {"sort_buffer": sort_buffer}
            records = read_log(
                bounded, log_columns, tsv=tsv, on_bad=bad, on_read=progress.reading, on_sorted=progress.sorted,
                summary=log_summary, **options,
            )  # fmt: skip
        with _WriteBehind(writer, enabled=read_ahead) as write:
            for chunk, position in _score_chunks(
                recommender, records, k=k, batch_size=batch_size, chunk_size=chunk_size, exclude_seen=exclude_seen,
                on_bad=bad, read_ahead=read_ahead, arrays=True, position=lambda: counter.bytes_read,
                per_intent=per_intent,
            ):  # fmt: skip
                write(chunk)
                progress.scored(chunk, position)
                counts["fallback"] += chunk.fallbacks()
        return progress.users

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
        located = message if message.startswith(str(input_path)) else f"{input_path}: {message}"
        raise InputError(located, flags=e.flags) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # a damaged .gz input, found while reading it
        raise compressed_input_error(input_path, e) from None
    progress.report(finished=True)
    output = "stdout" if to_stdout else str(output_path)
    seconds = time.perf_counter() - started
    return ScoreReport(
        users, bad.count, seconds, output, counts["fallback"], log_summary.users_without_valid_rows,
        getattr(recommender, "version", ""),
    )  # fmt: skip
