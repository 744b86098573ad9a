"""Does a loaded graph match its metadata? A few probe runs at load time (a few milliseconds), so that an
edited or damaged metadata JSON fails with a clear :class:`~s4rec.errors.ArtifactError` instead of giving wrong
items or an IndexError later. Called by :meth:`s4rec.Recommender.load`; the format itself is
:mod:`s4rec.artifact`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .artifact import (
    EXCLUDE,
    INPUT,
    INTENT_PROBABILITIES,
    K_INPUT,
    TOP_ITEMS,
    USER_EMBEDDING,
    ArtifactMetadata,
    indices_within,
)
from .errors import ArtifactError


def check_graph_agrees(session, metadata: ArtifactMetadata, model_path: Path, encoder: bool = False) -> None:
    """The graph must be the one the metadata describes. Three runs on a few probe histories check the user
    vector's size (first, on the shortest histories), the intents, that item ``num_items`` is an item and
    ``num_items + 1`` is not, that the graph reads ``max_len`` items, and (not for a format 3 ``encoder``) that
    ``k`` stops at ``top_k``. A few milliseconds; an edited metadata JSON would otherwise give wrong items or an
    IndexError later."""
    n, length, top_k = metadata.num_items, metadata.max_len, metadata.top_k
    _check_embedding_dim(session, metadata, model_path, encoder)
    # max_len is bounded by the file's bytes over embedding_dim (s4rec.untrusted.check_sizes), now the graph's
    probe = np.zeros((4, length), dtype=np.int64)
    probe[1, -1] = n  # the last item
    probe[2, :] = 1
    probe[3, 1:] = 1  # row 2 without its oldest item: the same vector only if the graph reads fewer items
    outputs = [USER_EMBEDDING] + ([INTENT_PROBABILITIES] if metadata.num_intents else [])
    try:
        results = _probe(session, outputs + ([] if encoder else [TOP_ITEMS]), probe, None if encoder else top_k)
    except Exception as e:  # onnxruntime's own error types
        raise ArtifactError(
            f"{model_path}: the graph fails on probe histories of item indices 1..num_items {n}, max_len {length} "
            f"long ({_first_line(e)}). The metadata was edited, or the file is damaged; re-export the artifact."
        ) from None
    vectors = np.asarray(results[USER_EMBEDDING])
    problems = []
    if vectors.shape != (4, metadata.embedding_dim):
        problems.append(f"user vectors of shape {vectors.shape}, not (4, embedding_dim {metadata.embedding_dim})")
    else:
        if _same(vectors[0], vectors[1]):
            problems.append(f"item index {n} reads as padding, so the graph has fewer than num_items {n} items")
        if length > 1 and _same(vectors[2], vectors[3]):
            problems.append(f"the graph reads fewer than max_len {length} items of a history")
    if metadata.num_intents and np.shape(results[INTENT_PROBABILITIES]) != (4, metadata.num_intents):
        shape = np.shape(results[INTENT_PROBABILITIES])
        problems.append(f"intent probabilities of shape {shape}, not (4, num_intents {metadata.num_intents})")
    if not encoder:
        items = np.asarray(results[TOP_ITEMS])
        if items.shape != (4, top_k):
            problems.append(f"k = {top_k} returns {items.shape[-1]} items, so top_k is not {top_k}")
        elif not indices_within(items, n):
            problems.append(f"item index {int(items.max())} returned, beyond num_items {n}")
    # One past the last item: graphs with input guards read the index as padding; older graphs fail instead,
    # which says the same. That failure is expected, so the run logs nothing: ONNX Runtime would otherwise print
    # its "[E:onnxruntime ...] ... out of data bounds" line on stderr while loading a perfectly good artifact.
    try:
        beyond = _probe(session, [USER_EMBEDDING], np.array([[0], [n + 1]]), None if encoder else top_k, _silent())
    except Exception:
        beyond = None
    if beyond is not None and vectors.shape == (4, metadata.embedding_dim):
        if not _same(*np.asarray(beyond[USER_EMBEDDING])):
            problems.append(f"item index {n + 1} is an item, so the graph has more than num_items {n} items")
        # k = top_k + 1 is not checked here: graphs exported before the input guards return top_k + 1 items
        # (their TopK takes any k), and a smaller top_k in the metadata than the graph's is harmless (the SDK
        # clamps k to it). The probe above already refuses a top_k the graph cannot return.
    if problems:
        raise ArtifactError(
            f"{model_path}: the metadata does not match the graph: {'; '.join(problems)}. The metadata was edited, "
            "or the file is damaged; re-export the artifact."
        )


def _check_embedding_dim(session, metadata: ArtifactMetadata, model_path: Path, encoder: bool) -> None:
    """The user vector's size, on histories of one padding item (the cheapest run), before any probe as long as
    ``max_len``: the bound on ``max_len`` holds only for the graph's own ``embedding_dim``."""
    try:
        (vectors,) = _probe(session, [USER_EMBEDDING], np.zeros((4, 1), np.int64), None if encoder else 1).values()
    except Exception as e:  # onnxruntime's own error types
        raise ArtifactError(
            f"{model_path}: the graph fails on an empty history ({_first_line(e)}). The file is damaged; re-export "
            "the artifact."
        ) from None
    if np.shape(vectors) != (4, metadata.embedding_dim):
        raise ArtifactError(
            f"{model_path}: the metadata does not match the graph: user vectors of shape {np.shape(vectors)}, not "
            f"(4, embedding_dim {metadata.embedding_dim}). The metadata was edited, or the file is damaged; "
            "re-export the artifact."
        )


def _probe(
    session, outputs: list[str], histories: np.ndarray, k: int | None, options: ort.RunOptions | None = None
) -> dict[str, np.ndarray]:
    feed = {INPUT: histories.astype(np.int64)}
    if k is not None:
        feed.update({EXCLUDE: np.zeros((len(histories), 1), np.int64), K_INPUT: np.array(k, np.int64)})
    return dict(zip(outputs, session.run(outputs, feed, options)))


def _silent() -> ort.RunOptions:
    """Run options under which ONNX Runtime logs nothing below a fatal error (4), for a run expected to fail."""
    options = ort.RunOptions()
    options.log_severity_level = 4
    return options


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=0, atol=1e-6))


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_top_k(session, metadata: ArtifactMetadata, model_path: Path) -> None:
    """A format 3 full graph's ``k`` stops at ``top_k`` (one empty history: one pass over the item table)."""
    feed = {INPUT: np.zeros((1, 1), np.int64), EXCLUDE: np.zeros((1, 1), np.int64),
            K_INPUT: np.array(metadata.top_k + 1, np.int64)}  # fmt: skip
    try:
        (items,) = session.run([TOP_ITEMS], feed)
    except Exception as e:  # onnxruntime's own error types
        raise ArtifactError(
            f"{model_path}: the graph fails on an empty history ({_first_line(e)}). Re-export it."
        ) from None
    if np.shape(items) != (1, metadata.top_k):
        raise ArtifactError(
            f"{model_path}: the metadata does not match the graph: k = {metadata.top_k + 1} returns "
            f"{np.shape(items)[-1]} items, so top_k is not {metadata.top_k}. The metadata was edited, or the file "
            "is damaged; re-export the artifact."
        )


def check_encoder_agrees(session, encoder, metadata: ArtifactMetadata, encoder_path: Path) -> None:
    """A format 2 encoder-only graph (its tensors read from the model file) must give the full graph's user
    vectors (and intents) on probe histories: one run each, a fraction of a millisecond."""
    n, length = metadata.num_items, metadata.max_len
    probe = np.zeros((3, length), dtype=np.int64)
    probe[0, -1] = n
    probe[1, :] = np.arange(length) % n + 1
    outputs = [USER_EMBEDDING] + ([INTENT_PROBABILITIES] if metadata.num_intents else [])
    try:
        want = _probe(session, outputs, probe, 1)
        got = _probe(encoder, outputs, probe, None)
    except Exception as e:  # onnxruntime's own error types
        raise ArtifactError(
            f"{encoder_path}: the encoder graph fails on probe histories ({_first_line(e)}). Re-export the artifact."
        ) from None
    for name in outputs:
        if np.shape(got[name]) != np.shape(want[name]) or not np.allclose(got[name], want[name], rtol=0, atol=1e-5):
            raise ArtifactError(
                f"{encoder_path}: the encoder graph's {name} differs from the model's. It belongs to "
                "another export, or the model file was changed; re-export the artifact."
            )
