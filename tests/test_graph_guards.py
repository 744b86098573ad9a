"""The exported graph guards its own inputs (docs/ARTIFACT.md, "Valid inputs"): callers of the raw ONNX Runtime
session (another runtime, the JavaScript SDK) get defined results for out-of-range indices, k and over-long
windows, not wrong results or an error from deep inside ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from s4rec import Recommender
from s4rec.artifact import METADATA_KEY, VARIANT_FILES

OUTPUTS = ["user_embedding", "top_scores", "top_items"]
# tests/fixtures/known/artifact as exported at commit 1e74028, before the input guards (never regenerated)
LEGACY_ARTIFACT = Path(__file__).parent / "fixtures" / "legacy" / "artifact"


@pytest.fixture(scope="module")
def graph(plain_artifact):
    directory, report = plain_artifact
    return Recommender.make_session(directory / VARIANT_FILES["fp32"]), report.metadata


def run(session, history, k, exclude=None):
    history = np.asarray(history, dtype=np.int64)
    exclude = np.zeros((len(history), 1), dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    return session.run(OUTPUTS, {"history": history, "exclude": exclude, "k": np.array(k, dtype=np.int64)})


def test_out_of_range_and_negative_history_indices_are_padding(graph):
    session, meta = graph
    n = meta["num_items"]
    for bad in (-1, -n, n + 1, n + 7, 2**40, -(2**40)):
        got = run(session, [[bad, 3, 5]], 5)
        want = run(session, [[0, 3, 5]], 5)
        for name, a, b in zip(OUTPUTS, got, want):
            assert np.array_equal(a, b) if name == "top_items" else np.allclose(a, b, atol=1e-6), (bad, name)
    only_bad = run(session, [[n + 1, -3]], 3)
    no_history = run(session, [[0]], 3)
    assert np.allclose(only_bad[0], no_history[0], atol=1e-6)
    assert np.array_equal(only_bad[2], no_history[2])


def test_k_is_clamped_to_1_through_top_k(graph):
    session, meta = graph
    top_k = meta["top_k"]
    history = [[1, 2, 3]]
    for k, expected in ((0, 1), (-5, 1), (top_k + 1, top_k), (10**6, top_k), (2, 2)):
        scores, items = run(session, history, k)[1:]
        assert scores.shape == items.shape == (1, expected), k
        assert np.array_equal(items[0], run(session, history, expected)[2][0])


def test_out_of_range_exclusions_exclude_nothing(graph):
    session, meta = graph
    n = meta["num_items"]
    history = [[4, 9, 2]]
    plain = run(session, history, 10)
    for bad in (-1, -n, n + 1, 10**9):
        got = run(session, history, 10, exclude=[[bad, 0]])
        assert np.array_equal(got[2], plain[2]), bad
        assert np.allclose(got[1], plain[1]), bad
    top = int(plain[2][0, 0])
    got = run(session, history, 10, exclude=[[top, -2, n + 5]])
    assert top not in got[2][0] and np.array_equal(got[2][0, :9], plain[2][0, 1:])


def test_over_long_window_scores_its_most_recent_max_len_items(graph):
    session, meta = graph
    max_len = meta["max_len"]
    rng = np.random.default_rng(0)
    long = rng.integers(1, meta["num_items"] + 1, (3, max_len + 7))
    got = run(session, long, 5)
    want = run(session, long[:, -max_len:], 5)
    for name, a, b in zip(OUTPUTS, got, want):
        assert np.array_equal(a, b) if name == "top_items" else np.allclose(a, b, atol=1e-6), name


def test_padding_and_sentinel_rows_are_never_returned(graph):
    session, meta = graph
    n = meta["num_items"]
    everything = np.arange(1, n + 1)[None, :]
    scores, items = run(session, [[1]], meta["top_k"], exclude=everything)[1:]
    assert np.isneginf(scores).all()  # every item excluded: only -inf entries, the contract's "drop them"
    scores, items = run(session, [[1]], meta["top_k"])[1:]
    assert ((items >= 1) & (items <= n)).all()


def test_an_older_graph_without_guards_loads_without_an_onnx_runtime_error_line(capfd):
    """tests/fixtures/legacy/artifact predates the input guards: an item index beyond num_items fails inside ONNX
    Runtime. The load-time probe runs one on purpose (the failure says what a guard would), and ONNX Runtime must
    not print its error line for it. Captured at the file-descriptor level: ONNX Runtime writes to the process's
    stderr from C++, past Python's sys.stderr."""
    path = LEGACY_ARTIFACT / VARIANT_FILES["fp32"]
    session = Recommender.make_session(path)
    n = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])["num_items"]
    feed = {"history": np.array([[n + 1]]), "exclude": np.zeros((1, 1), np.int64), "k": np.array(1)}
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    with pytest.raises(Exception, match="out of data bounds"):  # the premise: a graph without input guards
        session.run(["user_embedding"], feed, quiet)
    capfd.readouterr()
    assert Recommender.load(LEGACY_ARTIFACT).recommend([1, 2], k=3)
    stderr = capfd.readouterr().err
    assert "onnxruntime" not in stderr and "out of data bounds" not in stderr, stderr
