"""The output formats of batch scoring and the atomic output file they are written to.

* ``jsonl``: ``{"user": ..., "items": [...], "scores": [...]}`` per user, best first;
* ``csv``: header ``user,rank,item,score``, one row per recommended item (rank 1 = best).

A history with no item known to the model gets the most popular items with no score (``null`` in JSONL,
empty in CSV). A writer takes ``(user, [(item_id, score), ...])`` rows (:meth:`write_batch`) or a scored chunk
of :mod:`s4rec.batch` (:meth:`write_scored`), which the JSONL writer formats straight from the ranked arrays.

:func:`atomic_output` writes to a temporary file next to the final one and renames it into place only when
the whole run succeeded, so an interrupted or failed run never leaves a partial file under the final name.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ScoreError
from .files import atomic_file

if TYPE_CHECKING:
    from .results import ScoredChunk


def output_format_for(path: str | Path) -> str:
    """``.csv``/``.tsv`` (optionally ``.gz``) -> csv, anything else -> jsonl."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    return "csv" if ".csv" in suffixes or ".tsv" in suffixes else "jsonl"


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

    def write_scored(self, scored: ScoredChunk) -> None:
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
        encoded = _id_texts(ranked.ids, self.encode).of(ranked.items)
        parts, start = [], 0
        for stop in [*np.flatnonzero(~full).tolist(), n]:
            for a in range(start, stop, FORMAT_ROWS):  # full rows: one formatting call per FORMAT_ROWS
                b = min(a + FORMAT_ROWS, stop)
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


FORMAT_ROWS = 1024  # rows per formatting call: bounds the Python objects held for one call


@functools.lru_cache(maxsize=64)
def _line_template(k: int) -> str:
    """One JSONL line with k items and k scores, for ``%`` with (user text, k id texts, k float scores)."""
    return '{"user": %s, "items": [' + ", ".join(["%s"] * k) + '], "scores": [' + ", ".join(["%.7g"] * k) + "]}\n"


class _IdTexts:
    """The JSON text of a vocabulary's item ids by item index (an object array, ``[0]`` "null"), each id encoded
    the first time a chunk writes it: a run writes a small part of a large catalogue, and encoding all of it up
    front took 0.25 s at 10^6 items (load 4), a sixth of scoring 3,000 users with ANN (benchmarks/large_catalogue.py).
    Filled from one thread at a time per writer; two writers of one recommender would write the same texts."""

    def __init__(self, ids: np.ndarray, encode) -> None:
        self.ids, self.encode = ids, encode
        self.texts = np.empty(len(ids), dtype=object)
        self.texts[0] = "null"
        self.done = np.zeros(len(ids), dtype=bool)
        self.done[0] = True

    def of(self, items: np.ndarray) -> np.ndarray:
        """The texts, with at least those of ``items`` (item indices) filled in."""
        needed = np.unique(items)
        new = needed[~self.done[needed]]
        if len(new):
            values = self.ids[new].tolist()
            plain = set(map(type, values)) <= _INT
            self.texts[new] = list(map(str, values)) if plain else list(map(self.encode, values))
            self.done[new] = True
        return self.texts


# id(a vocabulary's id array) -> (a weak reference to it, its _IdTexts); numpy arrays are not hashable, so not
# WeakKeyDictionary keys: an entry goes when its array does.
_ID_TEXTS: dict[int, tuple[weakref.ref, _IdTexts]] = {}


def _id_texts(ids: np.ndarray, encode) -> _IdTexts:
    """The :class:`_IdTexts` of ``ids`` (item index -> id, ``ids[0]`` None): one per id array, that is per
    recommender, kept across chunks and runs."""
    key = id(ids)
    entry = _ID_TEXTS.get(key)
    if entry is not None and entry[0]() is ids:
        return entry[1]
    texts = _IdTexts(ids, encode)
    _ID_TEXTS[key] = (weakref.ref(ids, lambda _ref: _ID_TEXTS.pop(key, None)), texts)
    return texts


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

    def write_scored(self, scored: ScoredChunk) -> None:
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
