"""Progress of a batch scoring run: :class:`ScoreProgress` is what :func:`~s4rec.batch.score_file` passes to
its ``on_progress``, with estimates (fraction done, users in all, time left) made from what the pipeline knows.

The pipeline reads ahead of what it scores, so the bytes the reader has consumed say little about the users
scored: each chunk carries the input position at which its last record was read, and the estimates use that
position (a sorted log's: its events). ``s4rec-score`` draws the reports as a progress bar
(:class:`s4rec.cli.ProgressBar`); the pipeline itself draws nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import ScoredChunk


@dataclass(frozen=True)
class ScoreProgress:
    """Where a :func:`~s4rec.batch.score_file` run stands, as passed to its ``on_progress``.

    * ``stage``: ``"sorting"`` while a log is read and grouped by user (no user can be scored before the
      whole log is read), then ``"scoring"``;
    * ``users``: users scored so far (handed to the writer);
    * ``bytes_read``: input bytes read (compressed bytes for ``.gz``) up to the last user scored (while
      sorting: so far), of ``total_bytes``, the input file's size. Parsing runs ahead of scoring; this is
      the position behind the users scored, not how far the reader got;
    * ``events``: a log's events of the users scored, of ``total_events`` (known once the log is sorted);
      0 and None for JSONL and text input;
    * ``elapsed``: seconds since the stage began;
    * ``finished``: True on the last report of a run that succeeded.
    """

    stage: str
    users: int
    bytes_read: int
    total_bytes: int
    events: int = 0
    total_events: int | None = None
    elapsed: float = 0.0
    finished: bool = False

    @property
    def fraction(self) -> float:
        """The estimated fraction of the stage done, in 0..1 (below 1 until ``finished``): a sorted log's
        events scored, else the input bytes behind the users scored."""
        if self.finished:
            return 1.0
        if self.total_events:
            done = self.events / self.total_events
        else:
            done = self.bytes_read / self.total_bytes if self.total_bytes else 0.0
        return min(done, 0.999)  # a reader's buffer may hold the end of the file before its last user is scored

    @property
    def users_per_second(self) -> float:
        return self.users / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def estimated_users(self) -> int | None:
        """The run's users estimated from the fraction done (exact once finished); None while sorting and
        before the first chunk."""
        if self.finished:
            return self.users
        fraction = self.fraction
        if self.stage != "scoring" or not self.users or fraction <= 0:
            return None
        return max(self.users, round(self.users / fraction))

    @property
    def seconds_left(self) -> float | None:
        """The stage's remaining time at its rate so far (None before anything is done)."""
        fraction = self.fraction
        if self.finished:
            return 0.0
        if fraction <= 0 or self.elapsed <= 0:
            return None
        return self.elapsed * (1 - fraction) / fraction


class ProgressReporter:
    """Builds the :class:`ScoreProgress` reports of one :func:`~s4rec.batch.score_file` run and hands them to
    ``on_progress`` (None: nobody asked, nothing is built). ``counter`` counts the input's bytes read
    (:class:`~s4rec.records.CountingReader`)."""

    def __init__(self, on_progress: Callable[[ScoreProgress], None] | None, total_bytes: int, counter) -> None:
        self.on_progress, self.total_bytes, self.counter = on_progress, total_bytes, counter
        self.stage, self.started = "scoring", time.perf_counter()
        self.users = self.events = 0
        self.total_events: int | None = None
        self.position = 0

    def report(self, finished: bool = False) -> None:
        if self.on_progress is not None:
            position = self.counter.bytes_read if self.stage == "sorting" else self.position
            self.on_progress(
                ScoreProgress(
                    self.stage, self.users, position, self.total_bytes, self.events, self.total_events,
                    time.perf_counter() - self.started, finished,
                )
            )  # fmt: skip

    def reading(self) -> None:
        """A log is being read (called by read_log every 16,384 events; its stage began with the run)."""
        self.stage = "sorting"
        self.report()

    def sorted(self, events: int) -> None:
        """The log is read and sorted: ``events`` good events, scored from now on."""
        if self.stage == "sorting":
            self.report()
        self.stage, self.started, self.total_events = "scoring", time.perf_counter(), events
        self.report()

    def scored(self, chunk: ScoredChunk, position: int) -> None:
        """A chunk of users was handed to the writer; ``position``: the input bytes behind its last record."""
        self.users += len(chunk)
        self.position = position
        if self.total_events is not None:
            self.events += sum(len(record.history) for record in chunk.records)
        self.report()
