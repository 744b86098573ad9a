"""An artifact is untrusted input: the limits on what its files can make the SDK read and allocate.

An app may load an artifact downloaded from a server it does not fully control, so everything an artifact
says is checked before the SDK acts on it (docs/ARTIFACT.md, "Threat model"). The three rules live here,
each in one function that every reader goes through:

* :func:`artifact_file`: every file an artifact names (the manifest, a variant's model file, a sidecar, the
  graph's external data) must be a plain name whose *resolved* path lies inside the artifact directory's
  resolved path. Symbolic links are followed: the artifact directory itself may be a link, and a link inside
  it that resolves inside it is allowed (ONNX Runtime's own rule for external data since 1.24); a link that
  resolves outside it is refused, so that an artifact cannot make the SDK read another file of the machine.
* :func:`parse_json` / :func:`read_json`: JSON of a bounded size and nesting depth, so that a manifest or
  metadata nested 10^6 deep is an :class:`~s4rec.errors.ArtifactError`, not a ``RecursionError``.
* :func:`check_sizes`: every size the metadata declares (``max_len``, ``num_items``, ``num_intents``,
  ``embedding_dim``) is bounded by the bytes of the file that must hold its weights, before anything is
  allocated from it (the load probe allocates ``(4, max_len)`` histories).

What these do not cover: ONNX Runtime runs the graph, and a hostile graph can spend CPU and memory as any
program can; the SDK bounds what it allocates itself, from what an artifact declares.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

from .errors import ArtifactError

MAX_JSON_DEPTH = 32  # nesting of arrays and objects; s4rec's own files nest at most 4 deep
MAX_MANIFEST_BYTES = 1 << 20  # s4rec.json: ~0.5-3 KB as s4rec-export writes it


def plain_file_name(name: object) -> bool:
    """A bare file name (no directory part, not ``.`` or ``..``): what an artifact's entries may name."""
    return (
        isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")
        and Path(name).name == name
    )  # fmt: skip


def artifact_file(directory: str | Path, name: object, what: str) -> Path:
    """``directory / name``, refused with an :class:`~s4rec.errors.ArtifactError` unless ``name`` is a plain
    file name whose resolved path (links followed) lies inside ``directory``'s resolved path.

    ``what`` says who names the file, for the message (``"s4rec.json: variants.fp32"``). Whether the file
    exists is the caller's business: a missing file has its own message there.
    """
    directory = Path(directory)
    if not plain_file_name(name):
        raise ArtifactError(
            f"{what}: invalid file name {name!r}: only files inside the artifact directory are read (paths, absolute "
            "or with '..', are refused). Re-export the artifact."
        )
    path = directory / name
    try:
        resolved, root = path.resolve(), directory.resolve()
    except (OSError, RuntimeError) as e:  # a loop of links
        raise ArtifactError(f"{path}: cannot be resolved ({e}). Re-export the artifact.") from None
    if root not in resolved.parents:
        raise ArtifactError(
            f"{path}: a link to {resolved}, outside the artifact directory {root} (named by {what}); an artifact "
            "may only read its own files. Copy the file into the directory (cp -L), or re-export the artifact."
        )
    return path


# --- JSON of bounded size and depth ----------------------------------------------------------------------

# The depth is counted on the brackets outside strings: escaped backslashes and quotes are dropped first (so
# that every remaining quote opens or closes a string), then every byte but brackets and quotes, then the
# strings; what is left is brackets alone. Linear in the text, in C but for one pass over the brackets:
# about json.loads's own time on a format 2 metadata of 10^5 ids (53 against 48 ms), 1.9 s on 20 MB nested
# 10^7 deep (benchmarks/hostile_inputs.py, 2-core machine at load 12-14).
_KEPT = b'[]{}"'
_DROPPED = bytes(b for b in range(256) if b not in _KEPT)
_STRING = re.compile(rb'"[^"]*"')
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def json_depth(text: str) -> int:
    """How deep the arrays and objects of the JSON ``text`` nest (0: a scalar); for malformed JSON a number
    that ``json.loads`` then refuses anyway."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    brackets = _STRING.sub(b"", unescaped.encode("utf-8", "surrogatepass").translate(None, _DROPPED))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def parse_json(text: str, where: str, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, with an :class:`~s4rec.errors.ArtifactError` naming ``where`` (and ``what`` it
    is: "manifest", ...) for invalid JSON and for arrays or objects nested deeper than ``max_depth``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ArtifactError(
            f"{where}: unreadable {what}: JSON nested {depth:,} deep, where s4rec's files nest at most {max_depth}. "
            "The file is damaged or not an s4rec file; re-export the artifact."
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: only where the caller's stack is already deep
        raise ArtifactError(f"{where}: unreadable {what} ({e}). Re-export the artifact.") from None


def read_json(path: str | Path, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON file ``path`` (``what`` it is, for messages; UTF-8, at most ``max_bytes``: nothing beyond them
    is read), parsed by :func:`parse_json`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ArtifactError(
            f"{path}: cannot be read ({e.strerror or e}). Check the file and its permissions."
        ) from None
    if len(data) > max_bytes:
        raise ArtifactError(
            f"{path}: unreadable {what}: larger than {max_bytes:,} bytes, far more than s4rec writes there. The file "
            "is damaged or not an s4rec file; re-export the artifact."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: unreadable {what} ({e}). Re-export the artifact.") from None
    return parse_json(text, str(path), what, max_depth)


# --- sizes declared by the metadata ------------------------------------------------------------------------


def check_sizes(values: dict, model_path: Path, model_bytes: int) -> None:
    """Bound the sizes the metadata ``values`` declare by the bytes that must hold them, before anything is
    allocated from them: every weight takes at least one byte (int8), so the model file (``model_bytes``)
    holds at least ``(max_len + num_intents) * embedding_dim`` of them (the position and centroid tables),
    plus ``(num_items + 1) * embedding_dim`` (the item table) in format 2; in format 3 the item table is the
    ``item_table`` sidecar (its recorded bytes, which are checked against the file before it is read).

    Values that are not non-negative ints are left to :class:`~s4rec.artifact.ArtifactMetadata`'s checks.
    """
    names = ("max_len", "embedding_dim", "num_items", "num_intents")
    sizes = {name: values.get(name) for name in names}
    if not all(type(v) is int and v >= 0 for v in sizes.values()):
        return
    max_len, dim, num_items, num_intents = (sizes[name] for name in names)
    in_model = (max_len + num_intents) * dim
    large = values.get("format_version") == 3
    if not large:
        in_model += (num_items + 1) * dim
    if in_model > model_bytes:
        tables = "max_len + num_intents" + ("" if large else " + num_items + 1")
        raise ArtifactError(
            f"{model_path}: the metadata declares max_len {max_len:,}, num_items {num_items:,}, num_intents "
            f"{num_intents:,} and embedding_dim {dim:,}: ({tables}) x embedding_dim = {in_model:,} weights, more "
            f"than its {model_bytes:,} bytes can hold. The metadata was edited, or the file is damaged; re-export "
            "the artifact."
        )
    table = values.get("sidecars", {}).get("item_table") if large and isinstance(values.get("sidecars"), dict) else None
    table_bytes = table.get("bytes") if isinstance(table, dict) else None
    if type(table_bytes) is int and (num_items + 1) * dim * 4 > table_bytes:
        raise ArtifactError(
            f"{model_path}: the metadata declares num_items {num_items:,} and embedding_dim {dim:,}, a float32 item "
            f"table of {(num_items + 1) * dim * 4:,} bytes, but its item_table sidecar records {table_bytes:,}. "
            "The metadata was edited, or the file is damaged; re-export the artifact."
        )
