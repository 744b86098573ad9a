"""The benchmark format (``user_id item item ...`` per line, oldest first, plain or ``.gz``) read into flat
arrays with pyarrow: no Python object per line, per user or per token.

The file's bytes are cut into lines with numpy (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line, as for
Python's own text files), the lines become one Arrow string array over the same buffer, and pyarrow splits
them on exactly the characters ``str.split()`` splits on. Each line's first token is its user, the rest its
items; ids are parsed once per distinct token (:func:`s4rec_train.ids.factorize`). The errors are those of
the line-by-line reader this replaces: a line with a user and no items, a user on two lines, an empty file.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from s4rec.errors import InputError
from s4rec.records import compressed_input_error, open_input, undecodable

from .columnar import TRAINING_INPUTS, Grouped
from .errors import DataError
from .ids import factorize, number_items

# Every character for which str.isspace() is true (what str.split() splits on), as an RE2 class.
WHITESPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+"


def read_bytes(path: Path) -> bytes | memoryview:
    """The file's bytes, decompressed and without a UTF-8 byte-order mark, after the checks ``s4rec-score``
    makes (:func:`s4rec.records.open_input`: gzip data and name agree, no NUL bytes at the start)."""
    try:
        lines, _ = open_input(path, TRAINING_INPUTS)
        lines.close()
        if path.suffix.lower() != ".gz":
            data = path.read_bytes()
        else:
            try:
                data = gzip.decompress(path.read_bytes())
            except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                raise compressed_input_error(path, e) from None
    except InputError as e:
        raise DataError(str(e)) from None
    # A view, not a copy: the file may be gigabytes.
    return memoryview(data)[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


def undecodable_line(path: Path, data: bytes | memoryview) -> str | None:
    """``FILE:LINE: not valid UTF-8 (byte 0x.. at column C); re-encode the file as UTF-8.`` for the first line
    that is not UTF-8 (the SDK readers' wording, :func:`s4rec.records.undecodable`), or None."""
    data = bytes(data)
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        bad = e.start
    start = max(data.rfind(b"\n", 0, bad), data.rfind(b"\r", 0, bad)) + 1
    ends = [i for i in (data.find(b"\n", bad), data.find(b"\r", bad)) if i >= 0]
    line = data[start : min(ends, default=len(data))].decode("utf-8", "surrogateescape")
    # Line ends as _lines cuts them: \n, \r\n and a lone \r.
    line_no = data.count(b"\n", 0, start) + data.count(b"\r", 0, start) - data.count(b"\r\n", 0, start) + 1
    return f"{path}:{line_no}: {undecodable(line)}."


def _lines(data: bytes | memoryview) -> pa.Array:
    """One string per line of ``data``, each with its line break (whitespace to the split that follows)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newline = raw == 10
    lone_cr = raw == 13
    lone_cr[:-1] &= ~newline[1:]
    ends = np.flatnonzero(newline | lone_cr) + 1
    if not len(ends) or ends[-1] != len(raw):
        ends = np.append(ends, len(raw))
    large = len(raw) >= 2**31 - 1
    offsets = np.concatenate([[0], ends]).astype(np.int64 if large else np.int32)
    kind = pa.large_string() if large else pa.string()
    lines = pa.Array.from_buffers(kind, len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    lines.validate(full=True)  # UTF-8
    return lines


def read_benchmark_text(path: Path, min_interactions: int) -> Grouped:
    """Users (in file order) and their items; users with fewer than ``min_interactions`` items are dropped
    and the vocabulary holds the items of the users kept."""
    data = read_bytes(path)
    try:
        lines = _lines(data)
    except pa.ArrowInvalid:
        message = undecodable_line(path, data)
        if message is None:
            raise
        raise DataError(message) from None
    tokens = pc.split_pattern_regex(lines, WHITESPACE)
    flat = tokens.flatten()
    line_of_token = np.repeat(np.arange(len(lines)), np.diff(tokens.offsets.to_numpy()))
    kept = pc.greater(pc.binary_length(flat), 0).to_numpy(zero_copy_only=False)
    flat, line_of_token = flat.filter(pa.array(kept)), line_of_token[kept]
    per_line = np.bincount(line_of_token, minlength=len(lines))
    user_lines = np.flatnonzero(per_line)
    if not len(user_lines):
        raise DataError(f"{path}: the file is empty. Expected one line per user: 'user_id item item ...'.")
    first_token = np.concatenate([[0], np.cumsum(per_line[user_lines])[:-1]])
    is_user = np.zeros(len(flat), dtype=bool)
    is_user[first_token] = True
    user_code, user_ids = factorize(flat.filter(pa.array(is_user)))
    _check_lines(path, lines, user_lines, per_line[user_lines], user_code, user_ids)
    item_code, item_ids = factorize(flat.filter(pa.array(~is_user)))
    lengths = per_line[user_lines] - 1
    keep = lengths >= min_interactions
    dropped = int((~keep).sum())
    if not keep.any():
        raise DataError(
            f"{path}: no user has the {min_interactions} interactions training needs (one each for training, "
            f"validation and test): all {dropped:,} users have fewer. Use more data."
        )
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    lengths, starts = lengths[keep], starts[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    event = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])  # events of the kept users
    items, vocabulary = number_items(item_code[event], item_ids)
    notes = [f"dropped {dropped} users with fewer than {min_interactions} interactions"] if dropped else []
    return Grouped(user_ids.take(user_code[keep]), vocabulary, items, offsets, dropped, notes)


def _check_lines(path, lines, user_lines, tokens_per_line, user_code, user_ids) -> None:
    """The first line (in file order) that has a user and no items, or repeats an earlier line's user."""
    no_items = np.flatnonzero(tokens_per_line < 2)
    first_of_user = np.full(len(user_ids), len(user_code), dtype=np.int64)
    np.minimum.at(first_of_user, user_code, np.arange(len(user_code)))
    repeats = np.flatnonzero(first_of_user[user_code] != np.arange(len(user_code)))
    worst = min([int(a[0]) for a in (no_items, repeats) if len(a)], default=None)
    if worst is None:
        return
    line_no = int(user_lines[worst]) + 1
    if len(no_items) and no_items[0] == worst:
        text = lines[int(user_lines[worst])].as_py().strip()
        raise DataError(
            f"{path}:{line_no}: a user with no items ({text!r}). Each line must be 'user_id item item ...'."
        )
    user = user_ids[int(user_code[worst])]
    raise DataError(
        f"{path}:{line_no}: user {user!r} appears on more than one line. Give each user one line "
        "with the whole history, oldest first."
    )
