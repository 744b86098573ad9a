"""Verification run at the end of every export: ONNX checker, parity with torch, variant agreement, sizes
(tensor elements stored once, file sizes against :func:`weights_limit`).

Parity cases (each run through ONNX Runtime at its own, possibly trimmed, length and through torch padded to
``max_len``, so trimmed == padded is checked across the two runtimes too): random left-padded histories, an
all-padding history, length 1 (padded and trimmed), full length, and one batch per length 1..max_len. Each
case runs twice: nothing excluded (all ``top_k`` items, against torch's top-k) and the history's own items
excluded (against torch's scores with those items removed), each with its own ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch

from s4rec.artifact import (
    EXCLUDE,
    INPUT,
    K_INPUT,
    METADATA_KEY,
    TOP_ITEMS,
    TOP_SCORES,
    ArtifactMetadata,
    metadata_props,
)
from s4rec.windows import PADDING_INDEX, left_pad

from .errors import ParityError, SizeError, ValidationError, VariantError
from .inference import InferenceGraph

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

SIZE_SLACK = 0.01  # stored tensor elements may exceed the parameters by this fraction + 256 (scales, shapes)
GRAPH_BYTES = 64 * 1024  # nodes, names and shape constants: ~20 KB for a 2-block encoder


def check_model(model: onnx.ModelProto | str | Path, what: str) -> None:
    """``onnx.checker`` with the full check (shape inference included)."""
    try:
        onnx.checker.check_model(model if isinstance(model, onnx.ModelProto) else str(model), full_check=True)
    except Exception as e:  # onnx raises ValidationError, InferenceError, ...
        raise ValidationError(f"{what}: onnx.checker refused the model: {str(e).strip()[:500]}") from None


def parity_cases(num_items: int, max_len: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Named int64 history batches ``(b, t)``, left-padded with 0, ``1 <= t <= max_len``."""
    rng = np.random.default_rng(seed)

    def batch(lengths: list[int], width: int) -> np.ndarray:
        return left_pad([rng.integers(1, num_items + 1, length) for length in lengths], width)

    cases = [
        ("random", batch(rng.integers(0, max_len + 1, 32).tolist(), max_len)),
        ("all padding", batch([0], max_len)),
        ("all padding, trimmed", batch([0], 1)),
        ("length 1", batch([1], max_len)),
        ("length 1, trimmed", batch([1], 1)),
        ("full length", batch([max_len, max_len], max_len)),
    ]
    for length in range(1, max_len + 1):
        lengths = [length, int(rng.integers(1, length + 1)), 1, 0]
        cases.append((f"length {length}", batch(lengths, length)))
    return cases


@dataclass
class ParityReport:
    """Largest differences over all cases, per output, and how many top-k positions were exact ties."""

    cases: int = 0
    users: int = 0
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    tied_swaps: int = 0

    def summary(self) -> str:
        diffs = ", ".join(f"{name} {value:.1e}" for name, value in self.max_abs_diff.items())
        return f"{self.cases} cases, {self.users} histories; max abs diff {diffs}; tied swaps {self.tied_swaps}"


def feeds(window: np.ndarray, k: int, exclude: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The graph's inputs for ``window`` (b, t): the ``k`` best items, without ``exclude`` (b, e) (default none)."""
    if exclude is None:
        exclude = np.zeros((window.shape[0], 1), dtype=np.int64)
    return {INPUT: window, EXCLUDE: exclude, K_INPUT: np.array(k, dtype=np.int64)}


def check_parity(
    graph: InferenceGraph,
    session: InferenceSession,
    what: str,
    atol: float = 1e-4,
    tie_tol: float = 1e-6,
    seed: int = 0,
) -> ParityReport:
    """ORT (trimmed windows) vs the untouched torch SASRec (padded to max_len) on :func:`parity_cases`.

    Raises :class:`ParityError` listing every failing output and case.

    Scores, embeddings and intent probabilities must agree within ``atol``; top-k item order must be identical
    except where torch scores the two items equally (within ``tie_tol``, i.e. an exact tie up to float noise).
    """
    names = graph.output_names
    report = ParityReport(max_abs_diff={name: 0.0 for name in names if name != TOP_ITEMS})
    worst: dict[str, tuple[float, str]] = {}
    lines: list[str] = []

    def compare(name: str, got: np.ndarray, want: np.ndarray, case: str) -> None:
        diff = float(np.abs(got - want).max()) if got.size else 0.0
        if not np.isfinite(got).all():
            lines.append(f"{name}: non-finite values ({case})")
        report.max_abs_diff[name] = max(report.max_abs_diff[name], diff)
        if diff > worst.get(name, (-1.0, ""))[0]:
            worst[name] = (diff, case)

    def compare_items(got: np.ndarray, want: np.ndarray, want_scores: np.ndarray, full: np.ndarray, case: str) -> None:
        if (got < 1).any():
            lines.append(f"{TOP_ITEMS}: returned the padding index 0 ({case})")
        for row, col in zip(*np.nonzero(got != want), strict=True):
            gap = abs(full[row, got[row, col]] - want_scores[row, col])
            if gap <= tie_tol:
                report.tied_swaps += 1
            else:
                lines.append(
                    f"{TOP_ITEMS}: rank {col} is item {got[row, col]}, torch has {want[row, col]} "
                    f"(torch score gap {gap:.2e} > tie tolerance {tie_tol:.0e}; {case}, row {row})"
                )
                break

    for case, window in parity_cases(graph.config.num_items, graph.max_len, seed):
        padded = left_pad(window, graph.max_len)  # torch always gets the full window
        produced = dict(zip(names, session.run(names, feeds(window, graph.top_k)), strict=True))
        expected = {name: t.numpy() for name, t in graph.reference(torch.from_numpy(padded)).items()}
        full = expected["full_scores"]
        report.cases += 1
        report.users += window.shape[0]
        for name in names:
            got, want = produced[name], expected[name]
            if got.shape != want.shape or got.dtype != want.dtype:
                lines.append(f"{name}: {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)} ({case})")
            elif name == TOP_ITEMS:
                compare_items(got, want, expected[TOP_SCORES], full, case)
            else:
                compare(name, got, want, case)
        # The history's items excluded, k as recommend asks: at most the items that remain (never -inf).
        remaining = graph.config.num_items - int(max((np.unique(row[row > 0]).size for row in window), default=0))
        k = max(1, min(graph.top_k, remaining))
        case = f"{case}, history excluded, k {k}"
        scores, items = session.run([TOP_SCORES, TOP_ITEMS], feeds(window, k, exclude=window))
        masked = full.copy()
        masked[:, PADDING_INDEX] = -np.inf
        np.put_along_axis(masked, padded, -np.inf, axis=1)
        want_items = top_k_indices(masked, k)
        want_scores = np.take_along_axis(masked, want_items, 1)
        if items.shape != want_items.shape:
            lines.append(f"{TOP_ITEMS}: shape {list(items.shape)}, expected {list(want_items.shape)} ({case})")
            continue
        excluded = np.take_along_axis(masked, items, 1) == -np.inf
        if excluded.any():
            row = int(np.nonzero(excluded.any(1))[0][0])
            lines.append(f"{TOP_ITEMS}: returned an excluded item ({case}, row {row})")
        compare_items(items, want_items, want_scores, masked, case)
        compare(TOP_SCORES, scores, want_scores, case)
    for name, (diff, case) in worst.items():
        if diff > atol:
            lines.append(f"{name}: max abs diff {diff:.2e} > {atol:.0e} (worst case: {case})")
    if lines:
        raise ParityError(what, lines)
    return report


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest of each row, best first (ties by index): a stable argsort of the
    row's ``k`` best from argpartition, so that 10^6-column rows do not pay a full sort."""
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best.sort(axis=1)  # index order first, so that the stable sort below breaks ties by index
    order = np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable")
    return np.take_along_axis(best, order, 1)


def ranking_agreement(
    reference: InferenceSession,
    session: InferenceSession,
    num_items: int,
    max_len: int,
    top_k: int,
    k: int = 10,
    seed: int = 1,
) -> dict:
    """How a variant's rankings compare with fp32's (both ONNX Runtime sessions) on random histories.

    ``top{k}_overlap``: mean share of fp32's top k that the variant also ranks in its top k;
    ``top1_agreement``: share of histories with the same best item; ``max_abs_score_diff`` over top_scores.
    """
    overlaps, top1, max_diff, users = [], [], 0.0, 0
    for _, window in parity_cases(num_items, max_len, seed):
        ref_scores, ref_items = reference.run([TOP_SCORES, TOP_ITEMS], feeds(window, top_k))
        scores, items = session.run([TOP_SCORES, TOP_ITEMS], feeds(window, top_k))
        kk = min(k, items.shape[1])
        for a, b in zip(ref_items[:, :kk], items[:, :kk], strict=True):
            overlaps.append(len(set(a.tolist()) & set(b.tolist())) / kk)
        top1.extend((ref_items[:, 0] == items[:, 0]).tolist())
        max_diff = max(max_diff, float(np.abs(ref_scores - scores).max()))
        users += window.shape[0]
    return {
        f"top{k}_overlap": float(np.mean(overlaps)),
        "top1_agreement": float(np.mean(top1)),
        "max_abs_score_diff": max_diff,
        "histories": users,
    }


def check_agreement(agreement: dict, minimum_overlap: float, what: str, k: int = 10) -> None:
    """Raise :class:`VariantError` when ``agreement`` (:func:`ranking_agreement`) has a top-``k`` overlap with
    fp32 below ``minimum_overlap``."""
    overlap = agreement[f"top{k}_overlap"]
    if overlap < minimum_overlap:
        raise VariantError(
            f"{what}: top-{k} overlap with fp32 is {overlap:.3f} < {minimum_overlap} on "
            f"{agreement['histories']} histories (top-1 agreement {agreement['top1_agreement']:.3f}). "
            "The variant ranks too differently; ship fp32, or lower the threshold knowingly."
        )


def stored_elements(model: onnx.ModelProto) -> int:
    """Tensor elements stored in a model: initializers and Constant nodes' values."""
    total = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    total += int(np.prod(attribute.t.dims))
    return total


def check_stored_once(model: onnx.ModelProto, parameters: int, what: str) -> int:
    """Raise :class:`SizeError` when the model stores more elements than its parameters (a copied table)."""
    elements = stored_elements(model)
    if elements > parameters * (1 + SIZE_SLACK) + 256:
        raise SizeError(
            f"{what}: stores {elements:,} tensor elements for {parameters:,} parameters "
            f"({elements / parameters:.2f}x): a table was duplicated by this step. Do not ship it; "
            "report the step and the onnx/onnxruntime versions."
        )
    return elements


def weights_limit(bytes_per_element: int, elements: int, metadata: ArtifactMetadata) -> int:
    """A model file's size limit: ``bytes_per_element`` x the ``elements`` it stores + 5% + its metadata + 64 KiB
    of graph (:data:`GRAPH_BYTES`)."""
    metadata_bytes = len(metadata_props(metadata)[METADATA_KEY].encode())
    return int(bytes_per_element * elements * 1.05) + metadata_bytes + GRAPH_BYTES


def check_file_size(path: Path, limit: int, what: str, basis: str) -> int:
    """The size of ``path`` in bytes; :class:`SizeError` above ``limit`` (``basis`` says how it was made)."""
    size = path.stat().st_size
    if size > limit:
        raise SizeError(
            f"{what}: {path.name} is {size:,} bytes, above {limit:,} ({basis}): a table was duplicated by "
            "this step. Do not ship it; report the step and the onnx/onnxruntime versions."
        )
    return size
