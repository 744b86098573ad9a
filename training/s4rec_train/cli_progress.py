"""How ``s4rec-train`` shows a run's progress: a progress bar on a terminal, plain lines in a log file.

Both are ``train(on_progress=...)`` callbacks (:class:`s4rec_train.train.Progress` each step); the epoch summary
lines are the training loop's own.
"""

from __future__ import annotations

import math
import sys

import click


class TrainingProgressBar:
    """``train(on_progress=...)`` for a terminal: a click progress bar per epoch (steps, ETA, running loss)."""

    def __init__(self, file=None) -> None:
        self.file = file if file is not None else sys.stderr
        self.bar = None
        self.epoch = None
        self.loss_text, self.loss_read_at = "", -math.inf

    def __call__(self, progress) -> None:
        if progress.epoch != self.epoch:
            self.close()
            self.epoch = progress.epoch
            self.bar = click.progressbar(
                length=progress.steps, label=f"epoch {progress.epoch}/{progress.epochs}", file=self.file,
                show_pos=True, item_show_func=lambda _item: self.loss_text,
            )  # fmt: skip
            self.bar.__enter__()
        # The running loss is read from the training device at most once a second, not every step.
        if progress.elapsed - self.loss_read_at >= 1.0 or progress.step == progress.steps:
            self.loss_text, self.loss_read_at = f"loss {progress.loss:.4f}", progress.elapsed
        self.bar.update(progress.step - self.bar.pos)
        if progress.step >= progress.steps:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class ProgressLines:
    """``train(on_progress=...)`` for a log file, CI or nohup: a plain line every ``interval`` seconds of an
    epoch (step/steps, rates, running loss, the epoch's ETA); the epoch summary line follows each epoch."""

    def __init__(self, echo=None, interval: float = 30.0) -> None:
        self.echo = echo if echo is not None else (lambda line: click.echo(line, err=True))  # flushed: nohup
        self.interval = interval
        self.epoch, self.shown_at = None, 0.0

    def __call__(self, progress) -> None:
        if progress.epoch != self.epoch:
            self.epoch, self.shown_at = progress.epoch, 0.0
        if progress.elapsed - self.shown_at < self.interval:
            return
        self.shown_at = progress.elapsed
        rate = progress.step / progress.elapsed
        eta = (progress.steps - progress.step) / rate
        self.echo(
            f"epoch {progress.epoch}/{progress.epochs}  step {progress.step}/{progress.steps}  "
            f"{rate:.2f} steps/s  {progress.users / progress.elapsed:,.0f} users/s  loss {progress.loss:.4f}  "
            f"epoch ETA {format_duration(eta)}"
        )

    def close(self) -> None:
        pass


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_reporter(stream=None) -> TrainingProgressBar | ProgressLines:
    """A progress bar when ``stream`` (stderr by default) is a terminal, otherwise plain lines every 30 s."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return TrainingProgressBar(stream)
    return ProgressLines(lambda line: click.echo(line, file=stream))
