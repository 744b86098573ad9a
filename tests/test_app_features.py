"""Recommendations an app can show (issue 23): candidates (allow-lists), ``score``, catalogue views
(``restricted_to`` / ``without``), ``similar_items``, intent-diverse lists (``per_intent``), the artifact's
version and format 2's encoder-only graph, each against a brute-force numpy reference on the item table read
with onnx (not with the SDK's own reader), on the tiny session artifacts (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import NUM_INTENTS, NUM_ITEMS, synthetic_histories
from onnx import numpy_helper

from s4rec import ArtifactVersionError, ChecksumError, Recommender, S4RecError, UnknownItemError, selection
from s4rec.artifact import ITEM_TABLE_INITIALIZER, artifact_version

LEGACY = Path(__file__).parent / "fixtures" / "legacy" / "artifact"  # exported before this release (commit 1e74028)


@pytest.fixture(scope="module")
def rec(artifact):
    return Recommender.load(artifact[0])


@pytest.fixture(scope="module")
def table(artifact) -> np.ndarray:
    """(N + 1, d) float32: the item table as onnx reads it (row 0 padding)."""
    model = onnx.load(str(artifact[0] / "model.onnx"))
    tensor = next(t for t in model.graph.initializer if t.name == ITEM_TABLE_INITIALIZER)
    return numpy_helper.to_array(tensor)[: NUM_ITEMS + 1]


def reference(rec, table, history, k, candidates=None, exclude=(), exclude_seen=True, per_intent=None):
    """Brute force: the user vector times every allowed row, seen and excluded items removed, best first."""
    user = rec.session.run(["user_embedding"], _feed(history, rec.max_len))[0][0]
    scores = table @ user
    allowed = set(range(1, NUM_ITEMS + 1)) if candidates is None else {c for c in candidates if c in range(1, 41)}
    allowed -= set(exclude) | (set(history) if exclude_seen else set())
    order = sorted(allowed, key=lambda i: (-scores[i], i))
    if per_intent is not None:
        intents, taken, kept = rec.metadata.item_intents, {}, []
        for i in order:
            if taken.get(intents[i - 1], 0) < per_intent:
                taken[intents[i - 1]] = taken.get(intents[i - 1], 0) + 1
                kept.append(i)
        order = kept
    return [(i, float(scores[i])) for i in order[:k]]


def _feed(history, max_len):
    window = np.array([history[-max_len:] or [0]], dtype=np.int64)
    return {"history": window, "exclude": np.zeros((1, 1), np.int64), "k": np.array(1)}


def same(got, want, atol=1e-5):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=atol, equal_nan=True)


@pytest.fixture(params=["rows", "mask"])
def path(request, monkeypatch):
    """Both ways of ranking candidates: row by row, or the graph with everything else excluded."""
    if request.param == "mask":
        monkeypatch.setattr(selection, "ROWS_MIN", 0)
        monkeypatch.setattr(selection, "ROWS_SHARE", 0.0)
    return request.param


# --------------------------------------------------------------------------------------------- candidates


def test_candidates_rank_exactly_those_items(rec, table, path):
    for history in synthetic_histories(count=25):
        candidates = list(range(1, NUM_ITEMS + 1, 3))
        got = rec.recommend(history, k=8, candidates=candidates, exclude=[4, 7])
        if not history:
            assert got.fallback
            continue
        same(got, reference(rec, table, history, 8, candidates, exclude=[4, 7]))
        assert not got.fallback and got.unknown_candidates == ()
        same(rec.recommend(history, k=5, candidates=candidates, exclude_seen=False),
             reference(rec, table, history, 5, candidates, exclude_seen=False))  # fmt: skip


def test_candidates_bad_input(rec):
    history = [3, 4, 5]
    plain = rec.recommend(history, k=5, candidates=[8, 9, 10, 11, 12, 13])
    # unknown ids are ignored and reported, duplicates count once, the order of candidates does not matter
    got = rec.recommend(history, k=5, candidates=[13, 8, "x", 9, 9, 10, 999, 11, 12, 8])
    assert got == plain and got.unknown_candidates == ("x", 999) and got.unknown_items == ()
    with pytest.raises(UnknownItemError, match=r"2 item id\(s\) in candidates unknown to the model: 'x', 999"):
        rec.recommend(history, candidates=[8, "x", 999], unknown="error")
    # an empty candidate list gives an empty result, not the popular items
    empty = rec.recommend(history, candidates=[])
    assert empty == [] and not empty.fallback
    assert rec.recommend(history, candidates=[3, 4, 5]) == []  # all seen
    assert rec.recommend(history, candidates=["nope"]) == []
    # k larger than what remains gives a shorter list
    assert rec.recommend(history, k=10, candidates=[3, 8, 9]).item_ids() in ([8, 9], [9, 8])
    for bad in ("8, 9", {8: 1}, 8, [[8]], [8.5], [None], [8, True], [np.bool_(True)], np.zeros((2, 2), np.int64)):
        with pytest.raises(TypeError, match="candidates|item ids"):
            rec.recommend(history, candidates=bad)
    assert rec.recommend(history, k=3, candidates=np.array([8, 9, 10])) == rec.recommend(
        history, k=3, candidates={8, 9, 10}
    )


def test_empty_history_with_candidates_gets_the_popular_candidates(rec):
    popular = list(rec.metadata.popular_items)
    candidates = [popular[5], popular[1], 40, 39]
    got = rec.recommend([], k=4, candidates=candidates)
    assert got.fallback and all(math.isnan(s) for _, s in got)
    expected = [p for p in popular if p in candidates]  # all 40 items are in the stored popularity ranking
    assert got.item_ids() == expected
    assert rec.recommend(["unknown"], k=2, candidates=candidates).item_ids() == expected[:2]
    assert rec.recommend([], candidates=[]) == []


def test_batch_candidates_equal_single_calls(rec, path):
    histories = synthetic_histories(count=30)
    candidates = list(range(2, NUM_ITEMS + 1, 2))
    batch = rec.recommend_batch(histories, k=6, candidates=candidates, exclude=[10])
    for history, got in zip(histories, batch):
        same(got, rec.recommend(history, k=6, candidates=candidates, exclude=[10]))
        assert got.fallback == (not history)
    own = [None if i % 3 == 0 else list(range(1 + i % 5, NUM_ITEMS + 1, 4)) + ["zz"] for i in range(len(histories))]
    ranked = rec.rank_batch(histories, k=6, candidates_per_history=own)
    for u, (history, mine) in enumerate(zip(histories, own)):
        single = rec.recommend(history, k=6, candidates=mine)
        same(ranked.recommendation(u), single)
        assert ranked.recommendation(u).unknown_candidates == single.unknown_candidates
    with pytest.raises(ValueError, match="candidates has 2 entries for 30 histories"):
        rec.recommend_batch(histories, candidates_per_history=[[1], [2]])
    with pytest.raises(TypeError, match="candidates must be a list with one collection"):
        rec.recommend_batch(histories, candidates_per_history="abc")


# --------------------------------------------------------------------------------------------- score


def test_score_returns_the_models_scores_in_the_given_order(rec, table):
    history = [3, 4, 5, 6]
    user = rec.session.run(["user_embedding"], _feed(history, rec.max_len))[0][0]
    items = [9, 3, 40, 9, 1]
    got = rec.score(history, items)
    assert np.allclose(got, [table[i] @ user for i in items], atol=1e-5)
    assert got[0] == got[3] and got.unknown_items == () and not got.fallback
    for item, score in rec.recommend(history, k=5):  # the numbers recommend gives those items
        assert abs(rec.score(history, [item])[0] - score) < 1e-5
    with_unknown = rec.score(history + ["h"], [9, "x", 3])
    assert math.isnan(with_unknown[1]) and with_unknown.unknown_items == ("x",)
    assert with_unknown.unknown_history == ("h",)
    assert np.allclose([with_unknown[0], with_unknown[2]], [got[0], got[1]], atol=1e-6)
    with pytest.raises(UnknownItemError):
        rec.score(history, [9, "x"], unknown="error")
    nothing = rec.score([], [9, 3])
    assert nothing.fallback and all(math.isnan(s) for s in nothing)
    assert rec.score(history, []) == []
    with pytest.raises(TypeError, match="items must be"):
        rec.score(history, "9")
    histories = synthetic_histories(count=20)
    lists = [[1, 2, 3, h[0] if h else 4] for h in histories]
    for history, want, scores in zip(histories, lists, rec.score_batch(histories, lists)):
        single = rec.score(history, want)
        assert np.allclose(scores, single, atol=1e-5, equal_nan=True) and scores.fallback == single.fallback


# --------------------------------------------------------------------------------------------- views


def test_views_restrict_every_call_and_share_the_recommender(rec, path):
    stock = list(range(5, 30))
    view = rec.restricted_to(stock + ["gone"])
    assert view.restriction.unknown_items == ("gone",) and rec.restriction is None
    assert view.session is rec.session and view.vocabulary is rec.vocabulary and view.version == rec.version
    histories = synthetic_histories(count=20)
    for history in histories:
        same(view.recommend(history, k=5, exclude=[6]), rec.recommend(history, k=5, candidates=stock, exclude=[6]))
        narrowed = view.restricted_to(range(1, 12)).without([7])
        same(narrowed.recommend(history, k=5), rec.recommend(history, k=5, candidates=[5, 6, 8, 9, 10, 11]))
        same(view.recommend(history, k=4, candidates=[1, 2, 5, 6, 8]),
             rec.recommend(history, k=4, candidates=[5, 6, 8]))  # fmt: skip
        same(rec.without([1, 2, 3]).recommend(history, k=5), rec.recommend(history, k=5, exclude=[1, 2, 3]))
    batch = view.recommend_batch(histories, k=5)
    for history, got in zip(histories, batch):
        same(got, view.recommend(history, k=5))
    assert all(i in stock for got in batch for i in got.item_ids())
    denied = rec.without([1, 2, 3]).recommend_batch(histories, k=5)
    assert denied == rec.recommend_batch(histories, k=5, exclude=[1, 2, 3])
    # the fallback keeps to the view, and similar items too
    assert set(view.recommend([], k=20).item_ids()) <= set(stock)
    assert set(view.similar_items(5, k=20).item_ids()) <= set(stock) - {5}
    with pytest.raises(UnknownItemError):
        rec.restricted_to([1, "gone"], unknown="error")
    assert rec.restricted_to([]).recommend([3, 4]) == []


def test_a_view_is_safe_across_threads(rec):
    view = rec.restricted_to(range(10, 35))
    histories = synthetic_histories(count=40)
    want = [view.recommend(h, k=5) for h in histories]
    results, errors = {}, []

    def work(t: int) -> None:
        try:
            results[t] = [view.recommend(h, k=5) for h in histories]
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(results[t] == want for t in range(4))


# --------------------------------------------------------------------------------------------- similar items


def test_similar_items_from_the_item_vectors(rec, table):
    unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-30)
    for query in ([5], [5, 9], [12, 12]):
        vector = unit[sorted(set(query))].mean(axis=0)
        scores = unit @ (vector / np.linalg.norm(vector))  # the cosine
        order = sorted(set(range(1, NUM_ITEMS + 1)) - set(query) - {7}, key=lambda i: (-scores[i], i))
        got = rec.similar_items(query if len(query) > 1 else query[0], k=6, exclude=[7])
        same(got, [(i, float(scores[i])) for i in order[:6]])
    within = rec.similar_items(5, k=3, candidates=[1, 2, 3, 4, 5, "x"])
    assert set(within.item_ids()) <= {1, 2, 3, 4} and len(within) == 3 and within.unknown_candidates == ("x",)
    partial = rec.similar_items([5, "unknown"], k=3)
    assert partial == rec.similar_items(5, k=3) and partial.unknown_items == ("unknown",)
    with pytest.raises(UnknownItemError, match="no item of the query is known"):
        rec.similar_items("unknown")
    with pytest.raises(UnknownItemError, match="no item of the query is known"):
        rec.similar_items([])
    with pytest.raises(UnknownItemError):
        rec.similar_items([5, "unknown"], unknown="error")
    with pytest.raises(TypeError):
        rec.similar_items(5.0)
    with pytest.raises(ValueError, match="k must be in"):
        rec.similar_items(5, k=0)


# --------------------------------------------------------------------------------------------- intents


def test_item_intents_are_the_closest_centroids(rec, table, intent_checkpoint):
    centroids = intent_checkpoint[1]["intent_centroids"].numpy()
    items = table[1:] / np.linalg.norm(table[1:], axis=1, keepdims=True)
    want = (items @ centroids.T).argmax(axis=1)
    assert list(rec.metadata.item_intents) == want.tolist() and len(set(want.tolist())) > 1
    assert all(0 <= i < NUM_INTENTS for i in rec.metadata.item_intents)


def test_per_intent_keeps_at_most_n_items_of_one_intent(rec, table, path):
    intents = rec.metadata.item_intents
    for history in synthetic_histories(count=25)[1:]:
        for n in (1, 2):
            got = rec.recommend(history, k=8, per_intent=n)
            if not history:
                continue
            counts = np.bincount([intents[i - 1] for i in got.item_ids()], minlength=NUM_INTENTS)
            assert counts.max() <= n
            same(got, reference(rec, table, history, 8, per_intent=n))
            same(rec.recommend(history, k=4, per_intent=n, candidates=range(1, 30)),
                 reference(rec, table, history, 4, candidates=range(1, 30), per_intent=n))  # fmt: skip
    # five intents, one item each: at most five items whatever k
    assert len(rec.recommend([3, 4], k=10, per_intent=1)) <= NUM_INTENTS
    popular = rec.recommend([], k=10, per_intent=1)
    assert popular.fallback and len({intents[i - 1] for i in popular.item_ids()}) == len(popular)
    histories = synthetic_histories(count=20)
    for history, got in zip(histories, rec.recommend_batch(histories, k=6, per_intent=2)):
        same(got, rec.recommend(history, k=6, per_intent=2))


def test_per_intent_errors(rec, plain_artifact):
    with pytest.raises(TypeError, match="per_intent must be an int"):
        rec.recommend([3], per_intent="2")
    with pytest.raises(ValueError, match="per_intent must be >= 1"):
        rec.recommend([3], per_intent=0)
    with pytest.raises(S4RecError, match="has no intents"):
        Recommender.load(plain_artifact[0]).recommend([3], per_intent=1)
    with pytest.raises(ArtifactVersionError, match="Re-export it from its checkpoint"):
        Recommender.load(LEGACY).recommend([3], k=3, per_intent=1)


# --------------------------------------------------------------------------------------------- version


def test_version_is_short_stable_and_shared_by_the_variants(artifact, intent_checkpoint):
    versions = {Recommender.load(artifact[0], variant=v).version for v in ("fp32", "int8", "fp16", "mobile")}
    assert len(versions) == 1
    version = versions.pop()
    assert len(version) == 12 and int(version, 16) >= 0
    metadata = Recommender.load(artifact[0]).metadata
    assert metadata.version == version
    checkpoint_sha = hashlib.sha256(Path(intent_checkpoint[0]).read_bytes()).hexdigest()
    assert metadata.source_checkpoint_sha256 == checkpoint_sha


def test_legacy_artifacts_keep_loading_and_get_a_version():
    rec = Recommender.load(LEGACY)
    manifest = json.loads((LEGACY / "s4rec.json").read_text())
    assert rec.metadata.version == "" and rec.encoder is None
    fp32_sha256 = manifest["variants"]["fp32"]["sha256"]
    assert rec.version == artifact_version(rec.metadata.source_checkpoint_sha256, fp32_sha256)
    # candidates, score, similar items and views work on them (the item table is read from model.onnx)
    plain = rec.recommend([1, 2], k=5, exclude_seen=False)
    within = rec.recommend([1, 2], k=3, candidates=plain.item_ids()[:3], exclude_seen=False)
    assert within.item_ids() == plain.item_ids()[:3]
    assert np.allclose(rec.score([1, 2], plain.item_ids()), [s for _, s in plain], atol=1e-5)
    assert len(rec.similar_items(1, k=3)) == 3


# --------------------------------------------------------------------------------------------- format 2 encoder


def test_format_2_encoder_reads_its_tensors_from_model_onnx(artifact, rec):
    directory = artifact[0]
    assert rec.encoder is not None
    encoder = onnx.load(str(directory / "encoder.onnx"), load_external_data=False)
    external = [t for t in encoder.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert ITEM_TABLE_INITIALIZER in {t.name for t in external}
    assert all(e.value == "model.onnx" for t in external for e in t.external_data if e.key == "location")
    assert sum(len(t.raw_data) for t in encoder.graph.initializer) < 1024 * len(encoder.graph.initializer)
    for history in synthetic_histories(count=10):
        full = rec.session.run(["user_embedding"], _feed(history, rec.max_len))[0][0]
        assert np.allclose(rec.embed(history), full, atol=1e-5)
    # the int8 and fp16 variants compute other user vectors: they keep the full graph
    assert Recommender.load(directory, variant="int8").encoder is None


def test_a_changed_encoder_is_refused(artifact, tmp_path):
    copy = tmp_path / "artifact"
    shutil.copytree(artifact[0], copy)
    data = bytearray((copy / "encoder.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="encoder"):
        Recommender.load(copy)


# --------------------------------------------------------------------------------------------- format 3, ANN


def test_format_3_and_ann_candidates(large_artifacts, monkeypatch):
    pytest.importorskip("faiss", reason="the [ann] extra")
    small, large = large_artifacts
    exact2, exact3 = Recommender.load(small), Recommender.load(large)
    ann = Recommender.load(large, retrieval="ann")
    assert exact2.version != exact3.version  # another graph (the table is external data in format 3)
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, 2001, int(rng.integers(1, 20))).tolist() for _ in range(40)]
    few = rng.choice(np.arange(1, 2001), 50, replace=False).tolist()
    many = rng.choice(np.arange(1, 2001), 1200, replace=False).tolist()
    hits = total = 0
    for history in histories:
        for candidates in (few, many):
            want = exact2.recommend(history, k=10, candidates=candidates)
            same(exact3.recommend(history, k=10, candidates=candidates), want)
            assert set(want.item_ids()) <= set(candidates) - set(history)
            got = ann.recommend(history, k=10, candidates=candidates)
            assert set(got.item_ids()) <= set(candidates) - set(history) and len(got) == 10
            hits += len(set(got.item_ids()) & set(want.item_ids()))
            total += 10
        same(exact3.recommend(history, k=5, per_intent=1), exact2.recommend(history, k=5, per_intent=1))
        assert np.allclose(exact3.score(history, few), exact2.score(history, few), atol=1e-5)
    assert hits / total >= 0.9  # 50 candidates are scored exactly; 1,200 through the index, over-fetched
    monkeypatch.setattr(selection, "ANN_ROWS", 0)  # every candidate set through the index
    for history in histories[:10]:
        got = ann.recommend(history, k=10, candidates=few)
        assert set(got.item_ids()) <= set(few) - set(history) and len(got) == 10
    same(ann.similar_items(7, k=5), exact3.similar_items(7, k=5))
    # the fallback: the popular candidates first (the stored ranking holds 1,000 of 2,000), then catalogue order
    popular = set(np.asarray(exact3.metadata.popular_items).tolist())
    outside = sorted(set(range(1, 2001)) - popular)[:3]
    inside = [p for p in np.asarray(exact3.metadata.popular_items).tolist()][:2]
    got = exact3.recommend([], k=5, candidates=outside[::-1] + inside)
    assert got.fallback and got.item_ids() == inside + outside


def test_initializer_reader_is_bounded(artifact, tmp_path):
    from s4rec.errors import ArtifactError
    from s4rec.protobuf import initializer, tensor_array

    path = artifact[0] / "model.onnx"
    location = initializer(path, ITEM_TABLE_INITIALIZER)
    assert location.dims[1] == 16 and location.data_type == 1 and not location.external
    model = onnx.load(str(path))
    want = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == ITEM_TABLE_INITIALIZER))
    assert np.array_equal(tensor_array(path, location), want)
    assert initializer(path, "no such tensor") is None
    data = path.read_bytes()
    rng = np.random.default_rng(1)
    broken = tmp_path / "broken.onnx"
    for cut in (1, 7, len(data) // 3, location.offset + 5, len(data) - 1):
        broken.write_bytes(data[:cut])
        try:
            found = initializer(broken, ITEM_TABLE_INITIALIZER)
        except ArtifactError as e:
            assert "not an ONNX model" in str(e)
        else:  # a cut after the table leaves it readable; before it, the walk ends without it
            assert found is None or found.offset + found.length <= cut
    for _ in range(200):  # flipped bytes: a location inside the file, None, or ArtifactError; nothing else
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), 3):
            mutated[position] = int(rng.integers(0, 256))
        broken.write_bytes(bytes(mutated))
        try:
            found = initializer(broken, ITEM_TABLE_INITIALIZER)
        except ArtifactError:
            continue
        assert found is None or 0 <= found.offset and found.offset + found.length <= len(data) or found.offset == -1
    broken.write_bytes(b"")
    with pytest.raises(ArtifactError):
        initializer(broken, ITEM_TABLE_INITIALIZER)


def test_item_vectors(rec, table):
    assert np.array_equal(rec.item_vectors(), table[1:]) and not rec.item_vectors().flags.writeable
    got = rec.item_vectors([5, "x", 2])
    assert np.array_equal(got[[0, 2]], table[[5, 2]]) and np.isnan(got[1]).all()
    with pytest.raises(UnknownItemError):
        rec.item_vectors(["x"], unknown="error")
