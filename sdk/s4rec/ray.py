"""Batch scoring on Ray Data: the same recommendations as ``s4rec-score``, over partitioned data on a cluster.

Needs the ``[ray]`` extra (``pip install "s4rec[ray]"``); ``import s4rec`` never imports this module.

    import ray
    from s4rec.ray import RecommendBatch, read_histories

    histories = read_histories("s3://bucket/users/*.jsonl")          # columns: user, history
    recs = histories.map_batches(
        RecommendBatch,                                              # a class: one artifact load per worker
        fn_constructor_kwargs={"artifact": "/models/s4rec", "k": 10},
        batch_size=8192, batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1,      # 4 actors, 1 CPU each
    )
    recs.write_json("s3://bucket/recs/")                             # columns: user, items, scores

:func:`recommend_dataset` wraps that call. The artifact path must be readable from every worker (a shared
file system, or ship it with ``runtime_env={"working_dir": ...}``). The batch function itself needs only
pandas and the SDK, so :class:`RecommendBatch` is also what to run in Spark's ``mapInPandas`` (docs/batch.md).
"""

from __future__ import annotations

import logging
from typing import Any

from .batch import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, score_records
from .records import BadRecord, Record, read_jsonl, read_text

log = logging.getLogger(__name__)


def _plain(value):
    """numpy / pyarrow scalars and arrays -> Python ints, strings and lists (what the SDK's ids are)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "as_py"):
        return value.as_py()
    return value


class RecommendBatch:
    """Callable class for ``Dataset.map_batches`` (and Spark ``mapInPandas``): loads the artifact once.

    Takes a batch with a ``user`` and a ``history`` column (a pandas DataFrame or a dict of numpy arrays) and
    returns one with ``user``, ``items`` (ranked item ids) and ``scores``, in the same format. Rows whose
    history is not a list of item ids, or that the SDK refuses, are dropped and logged (``on_error="skip"``)
    or raise ``ValueError`` (``on_error="fail"``).

    As ``s4rec-score``: a ``candidates`` column (``candidates_column``; a list of item ids, or None, per row)
    limits each row's list to those items; ``allow`` / ``deny`` (collections of item ids) restrict every row's
    catalogue (:meth:`Recommender.restricted_to` / ``without``); ``per_intent`` keeps at most that many items
    of one intent per list. ``self.version`` is the artifact's version id (logged when the actor starts).
    """

    def __init__(
        self,
        artifact: str,
        k: int = 10,
        exclude_seen: bool = True,
        threads: int = 1,
        variant: str = "fp32",
        on_error: str = "skip",
        batch_size: int = DEFAULT_BATCH_SIZE,
        user_column: str = "user",
        history_column: str = "history",
        retrieval: str = "exact",
        allow=None,
        deny=None,
        per_intent: int | None = None,
        candidates_column: str = "candidates",
    ) -> None:
        from . import Recommender

        if on_error not in ("skip", "fail"):
            raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}.")
        recommender = Recommender.load(artifact, threads=threads, variant=variant, retrieval=retrieval)
        if allow is not None:
            recommender = recommender.restricted_to(list(allow))
        if deny is not None:
            recommender = recommender.without(list(deny))
        if per_intent is not None:
            recommender.recommend([], k=1, per_intent=per_intent)  # an artifact without item intents: its error now
        self.recommender, self.version, self.per_intent = recommender, recommender.version, per_intent
        self.k, self.exclude_seen, self.on_error, self.batch_size = k, exclude_seen, on_error, batch_size
        self.user_column, self.history_column, self.candidates_column = user_column, history_column, candidates_column
        log.info("s4rec artifact %s, version %s", artifact, recommender.version)

    def _bad(self, bad: BadRecord) -> None:
        message = f"row {bad.line} of the batch: {bad.reason}"
        if self.on_error == "fail":
            raise ValueError(f"{message}. Fix the row, or use on_error='skip' to drop such rows.")
        log.warning("%s (skipped)", message)

    def __call__(self, batch: Any) -> Any:
        users = [_plain(u) for u in batch[self.user_column]]
        histories = [_plain(h) for h in batch[self.history_column]]
        has_candidates = self.candidates_column in (batch.columns if hasattr(batch, "columns") else batch)
        candidates = [_plain(c) for c in batch[self.candidates_column]] if has_candidates else [None] * len(users)
        records = [
            _record(user, history, row, chosen)
            for row, (user, history, chosen) in enumerate(zip(users, histories, candidates))
        ]
        out_users, out_items, out_scores = [], [], []
        for scored in score_records(
            self.recommender, records, k=self.k, batch_size=self.batch_size, chunk_size=max(len(records), 1),
            exclude_seen=self.exclude_seen, on_bad=self._bad, per_intent=self.per_intent,
        ):  # fmt: skip
            for record, recommendations in scored:
                out_users.append(record.user)
                out_items.append([item for item, _ in recommendations])
                out_scores.append([float(score) for _, score in recommendations])
        if hasattr(batch, "iloc"):  # pandas in, pandas out
            import pandas as pd

            return pd.DataFrame({"user": out_users, "items": out_items, "scores": out_scores})
        import numpy as np

        def column(values: list):
            array = np.empty(len(values), dtype=object)
            array[:] = values
            return array

        return {"user": column(out_users), "items": column(out_items), "scores": column(out_scores)}


def _record(user, history, row: int, candidates) -> Record | BadRecord:
    if not isinstance(history, list):
        return BadRecord(row, f"history {history!r}")
    if candidates is not None and not isinstance(candidates, list):
        if candidates != candidates:  # pandas' NaN for a missing value
            candidates = None
        else:
            return BadRecord(row, f"candidates {candidates!r} (a list of item ids, or None)")
    return Record(user, history, row, candidates)


def _parse_lines(reader):
    """A Ray ``map_batches`` function turning a ``text`` column of lines into ``user`` / ``history`` rows."""

    def parse(batch):
        import pandas as pd

        rows = [r for r in reader(list(batch["text"])) if isinstance(r, Record)]
        bad = len(batch["text"]) - len(rows)
        if bad and reader is read_jsonl:
            log.warning("%d malformed JSONL line(s) dropped", bad)
        return pd.DataFrame({"user": [r.user for r in rows], "history": [r.history for r in rows]})

    return parse


def read_histories(paths, format: str = "jsonl", **read_args):
    """A Ray dataset with ``user`` and ``history`` columns from JSONL or benchmark-text files.

    Both are read as lines and parsed with the same readers as ``s4rec-score``, so ids come out alike
    (integers where they look like integers) and malformed JSONL lines are dropped and counted in the log.
    For CSV/TSV interaction logs use :func:`histories_from_log`.
    """
    import ray.data

    if format not in ("jsonl", "text"):
        raise ValueError(f"format must be 'jsonl' or 'text', got {format!r}. Use histories_from_log for logs.")
    lines = ray.data.read_text(paths, **read_args)
    return lines.map_batches(_parse_lines(read_jsonl if format == "jsonl" else read_text), batch_format="pandas")


def histories_from_log(
    events,
    user_column: str = "user",
    item_column: str = "item",
    time_column: str = "timestamp",
    num_partitions: int | None = None,
):
    """Group a Ray dataset of interaction events into ``user`` / ``history`` rows, each ordered by time.

    ``events`` is e.g. ``ray.data.read_csv(path)``. Ties in time keep the order of the rows within a group.
    ``num_partitions``: shuffle partitions of the groupby (Ray's default is 200, slow for small inputs).
    """

    def group(frame):
        import pandas as pd

        frame = frame.sort_values(time_column, kind="stable")
        return pd.DataFrame({"user": [_plain(frame[user_column].iloc[0])], "history": [_plain(frame[item_column])]})

    grouped = events.groupby(user_column) if num_partitions is None else events.groupby(user_column, num_partitions)
    return grouped.map_groups(group, batch_format="pandas")


def recommend_dataset(
    histories,
    artifact: str,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 1,
    threads: int = 1,
    variant: str = "fp32",
    on_error: str = "skip",
    retrieval: str = "exact",
    allow=None,
    deny=None,
    per_intent: int | None = None,
):
    """``histories.map_batches(RecommendBatch, ...)`` with ``concurrency`` actors of ``threads`` threads each
    (``allow``, ``deny``, ``per_intent`` and a ``candidates`` column: :class:`RecommendBatch`).

    Each actor gets Ray batches of ``chunk_size`` rows and runs ONNX Runtime on ``batch_size`` at a time, as
    ``s4rec-score --chunk-size --batch-size`` does. Each actor reserves ``threads`` CPUs for its lifetime:
    leave at least one CPU of the cluster free (``concurrency * threads < CPUs``), or the tasks that read
    the input cannot be scheduled and the job waits forever.
    """
    from ray.data import ActorPoolStrategy

    return histories.map_batches(
        RecommendBatch,
        fn_constructor_kwargs={
            "artifact": str(artifact), "k": k, "exclude_seen": exclude_seen, "threads": threads,
            "variant": variant, "on_error": on_error, "batch_size": batch_size, "retrieval": retrieval,
            "allow": None if allow is None else list(allow), "deny": None if deny is None else list(deny),
            "per_intent": per_intent,
        },
        batch_size=chunk_size,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=threads,
    )  # fmt: skip
