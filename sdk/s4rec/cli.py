"""``s4rec-score``: offline batch scoring of a file of histories with an s4rec artifact, and its progress bar.

The command is a thin layer over :func:`s4rec.batch.score_file`; this is the only module of the SDK that
draws anything on the terminal (click), so the library stays usable from any program.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from .batch import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, available_cores, score_file
from .errors import S4RecError
from .files import exit_on_sigterm
from .logs import DEFAULT_SORT_BUFFER, LogColumns
from .progress import ScoreProgress
from .records import DEFAULT_MAX_LINE_LENGTH


class ProgressBar:
    """:func:`~s4rec.batch.score_file`'s ``on_progress`` as a click progress bar on stderr: the estimated
    fraction done, users scored of the estimated total, users/s and time left (a log first gets a bar of its
    own while it is read and sorted). It closes itself on the last report of a run; call :meth:`close` when a
    run stops early.

        score_file(recommender, "users.jsonl", "recs.jsonl", on_progress=ProgressBar())
    """

    steps = 1000  # the bar's length: per mille of the stage done (its position is the estimated fraction)

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file  # None: stderr
        self.bar = None
        self.stage: str | None = None
        self.shown = 0
        self.latest: ScoreProgress | None = None

    def __call__(self, progress: ScoreProgress) -> None:
        if progress.stage != self.stage:
            self._open(progress.stage)
        self.latest = progress
        position = round(progress.fraction * self.steps)
        if position > self.shown:
            self.bar.update(position - self.shown)
            self.shown = position
        else:
            self.bar.render_progress()  # new figures, same position
        if progress.finished:
            self.close()

    def _open(self, stage: str) -> None:
        if self.bar is not None:  # the previous stage is over
            self.bar.update(self.steps - self.shown)
            self.close()
        label = "sorting log" if stage == "sorting" else "scoring"
        self.bar = click.progressbar(
            length=self.steps,
            label=label,
            file=self.file or sys.stderr,
            item_show_func=self._status,
            show_eta=False,
            width=24,
        )
        self.bar.__enter__()
        self.stage, self.shown = stage, 0

    def _status(self, _item) -> str | None:
        p = self.latest
        if p is None:
            return None
        if p.stage == "sorting":
            text = f"{p.bytes_read / 1e6:,.1f} of {p.total_bytes / 1e6:,.1f} MB read"
        else:
            total = p.estimated_users
            of = "" if total is None else f" of {total:,}" if p.finished else f" of ~{total:,}"
            text = f"{p.users:,}{of} users, {p.users_per_second:,.0f} users/s"
        left = p.seconds_left
        if left is not None and not p.finished:
            minutes, seconds = divmod(round(left), 60)
            text += f", {minutes // 60}:{minutes % 60:02}:{seconds:02} left"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()
            self.bar = None


def _check_recall(
    recommender, input_path: Path, input_format: str, count: int, k: int, exclude_seen: bool, max_line_length: int
) -> str:
    """Recall@k of ANN against exact retrieval on the first ``count`` histories of a JSONL or text input."""
    from .recall import recall_at_k
    from .records import BoundedLines, Record, detect_format, open_input, read_jsonl, read_text

    fmt = detect_format(input_path) if input_format == "auto" else input_format
    if fmt not in ("jsonl", "text"):
        raise click.BadParameter("--check-recall reads JSONL or text inputs.", param_hint="--check-recall")
    lines, _ = open_input(input_path)
    histories = []
    with lines:
        for record in (read_jsonl if fmt == "jsonl" else read_text)(BoundedLines(lines, max_line_length)):
            if type(record) is Record:
                histories.append(record.history)
                if len(histories) == count:
                    break
    return recall_at_k(recommender, histories, k=k, exclude_seen=exclude_seen, sample=None).summary()


def _catalogue(recommender, allow_path: Path | None, deny_path: Path | None):
    """The recommender restricted to ``--allow``'s items and without ``--deny``'s (a view: nothing is copied);
    unknown ids are reported on stderr and ignored."""
    from .records import read_item_ids

    for path, flag, make in ((allow_path, "--allow", "restricted_to"), (deny_path, "--deny", "without")):
        if path is None:
            continue
        ids = read_item_ids(path)
        if not ids:
            raise click.BadParameter(f"{path} holds no item id. Write one item id per line.", param_hint=flag)
        before = len(recommender.restriction.unknown_items) if recommender.restriction is not None else 0
        recommender = getattr(recommender, make)(ids)
        unknown = recommender.restriction.unknown_items[before:]
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            click.echo(f"{flag} {path}: {len(unknown):,} of {len(ids):,} item ids unknown to the model, ignored: "
                       f"{shown}", err=True)  # fmt: skip
    return recommender


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("artifact", type=click.Path(path_type=Path))  # Recommender.load says what is missing
@click.option(
    "--input", "-i", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Histories: .jsonl ({\"user\": ..., \"history\": [...]}), .csv/.tsv interaction log, or benchmark "
    "text 'user item item ...' (any of them .gz).",
)  # fmt: skip
@click.option(
    "--output", "-o", "output_path", required=True, type=click.Path(path_type=Path),
    help="Where to write recommendations: .jsonl or .csv (optionally .gz); '-' for stdout.",
)  # fmt: skip
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per user.")
@click.option(
    "--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(min=1),
    help="Histories per ONNX Runtime call (of similar length).",
)  # fmt: skip
@click.option(
    "--chunk-size", default=DEFAULT_CHUNK_SIZE, show_default=True, type=click.IntRange(min=1),
    help="Histories read, length-sorted and written at a time; bounds memory.",
)  # fmt: skip
@click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="ONNX Runtime threads [default: all available cores].",
)  # fmt: skip
@click.option(
    "--variant", default="fp32", show_default=True,
    help="Artifact variant: fp32, int8, fp16 or mobile (whichever the artifact has; see its s4rec.json).",
)  # fmt: skip
@click.option(
    "--exclude-seen/--no-exclude-seen", default=True, show_default=True,
    help="Leave out items already in the user's history.",
)  # fmt: skip
@click.option(
    "--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
    help="Malformed record: report it with its line number and skip it, or stop.",
)  # fmt: skip
@click.option(
    "--input-format", type=click.Choice(["auto", "jsonl", "text", "log"]), default="auto", show_default=True,
    help="auto: from the file name (.jsonl/.json/.ndjson, .csv/.tsv = log, else text).",
)  # fmt: skip
@click.option(
    "--output-format", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
    help="auto: from the file name (.csv/.tsv = csv, else jsonl).",
)  # fmt: skip
@click.option("--user-col", default="user", show_default=True, help="Log: user column.")
@click.option("--item-col", default="item", show_default=True, help="Log: item column.")
@click.option("--time-col", default="timestamp", show_default=True, help="Log: numeric timestamp column.")
@click.option("--sep", default=None, help="Log: field separator [default: tab for .tsv, else from the header].")
@click.option(
    "--sort-buffer", default=DEFAULT_SORT_BUFFER, show_default=True, type=click.IntRange(min=1),
    help="Log: events held in memory by the external sort (~200 bytes each); the rest spills to temp files.",
)  # fmt: skip
@click.option(
    "--max-line-length", default=DEFAULT_MAX_LINE_LENGTH, show_default=True, type=click.IntRange(min=1), metavar="N",
    help="Characters of an input line read at most: a longer line is a malformed record (reported with its line "
    "number, then skipped or fatal as --on-error says), so one huge record cannot exhaust memory.",
)  # fmt: skip
@click.option(
    "--read-ahead/--no-read-ahead", default=True, show_default=True,
    help="Parse the next chunk and write the previous one in background threads while one is scored.",
)  # fmt: skip
@click.option(
    "--retrieval", type=click.Choice(["exact", "ann"]), default="exact", show_default=True,
    help="exact: score every item; ann: candidates from the artifact's ANN index (s4rec-export --ann), re-ranked "
    "exactly (pip install '/path/to/s4rec[ann]').",
)  # fmt: skip
@click.option(
    "--check-recall", type=click.IntRange(min=1), default=None, metavar="N",
    help="With --retrieval ann: first measure recall@K against exact retrieval on N histories of the input and "
    "print it.",
)  # fmt: skip
@click.option(
    "--allow", "allow_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Recommend only these items (e.g. what is in stock): a file of item ids, one per line (plain or .gz).",
)  # fmt: skip
@click.option(
    "--deny", "deny_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Never recommend these items: a file of item ids, one per line (plain or .gz).",
)  # fmt: skip
@click.option(
    "--per-intent", type=click.IntRange(min=1), default=None, metavar="N",
    help="At most N items of one intent in a list (S4Rec artifacts with item intents).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.version_option(package_name="s4rec")
def main(
    artifact, input_path, output_path, k, batch_size, chunk_size, threads, variant, exclude_seen, on_error,
    input_format, output_format, user_col, item_col, time_col, sep, sort_buffer, max_line_length, read_ahead,
    retrieval, check_recall, allow_path, deny_path, per_intent, force, quiet,
) -> None:  # fmt: skip
    """Recommend K items for every user in --input with the s4rec ARTIFACT and write them to --output.

    Streams: memory stays bounded whatever the input size (a CSV/TSV log is grouped by user with an external
    sort; the output lists users in sorted id order). Other inputs keep their order. The output appears under
    its name only when the run succeeds. Histories are the user's own item ids, oldest first; items unknown to
    the model are ignored; an empty history gets the most popular items. A JSONL record may carry
    "candidates": [item, ...] to rank only those for that user; --allow / --deny apply to every user.

    \b
    Example:
      s4rec-score model/ --input users.jsonl --output recs.jsonl --k 20
    """
    from . import Recommender

    exit_on_sigterm()  # a SIGTERM removes the partial output
    if str(output_path) != "-" and output_path.exists() and not force:
        raise click.BadParameter(f"{output_path} already exists. Pass --force to overwrite it.", param_hint="--output")
    if check_recall is not None and retrieval != "ann":
        raise click.BadParameter(
            "--check-recall measures ANN retrieval: pass --retrieval ann.", param_hint="--check-recall"
        )
    bar = None if quiet else ProgressBar()
    try:
        recommender = Recommender.load(
            artifact, threads=threads or available_cores(), variant=variant, retrieval=retrieval
        )
        recommender = _catalogue(recommender, allow_path, deny_path)
        if check_recall is not None:
            recall = _check_recall(
                recommender, input_path, input_format, check_recall, k, exclude_seen, max_line_length
            )
            click.echo(recall, err=True)
        report = score_file(
            recommender, input_path, output_path, k=k, batch_size=batch_size, chunk_size=chunk_size,
            exclude_seen=exclude_seen,
            on_error=on_error, input_format=None if input_format == "auto" else input_format,
            output_format=None if output_format == "auto" else output_format,
            log_columns=LogColumns(user_col, item_col, time_col, sep), sort_buffer=sort_buffer,
            max_line_length=max_line_length, read_ahead=read_ahead, force=force,
            warn=lambda message: click.echo(message, err=True), on_progress=bar, per_intent=per_intent,
        )  # fmt: skip
    except S4RecError as e:
        raise click.ClickException(e.for_command_line()) from None
    finally:
        if bar is not None:
            bar.close()
    if not quiet or report.skipped:
        click.echo(report.summary(), err=True)


if __name__ == "__main__":
    main()
