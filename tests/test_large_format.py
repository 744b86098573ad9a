"""Format 3 (large catalogues) on a small synthetic catalogue forced into it: 2,000 items, sidecar files, the
encoder-only graph, the int8 scoring table and the ANN index. The SDK, s4rec-score and the Ray adapter work on
it unchanged, exact results equal format 2's, ANN keeps the exclusions and k, bad files are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from s4rec import ArtifactError, ChecksumError, Recommender
from s4rec.ann import DEFAULT_EF_SEARCH, probe_items
from s4rec.batch import score_file
from s4rec.ray import RecommendBatch
from s4rec.recall import recall_at_k

pytest.importorskip("faiss", reason="the [ann] extra")  # installed by scripts/test.sh (README command 2, CI)
pytestmark = pytest.mark.slow  # every test reads a format 3 export with an ANN index (CONTRIBUTING.md)

NUM_ITEMS = 2000


@pytest.fixture(scope="module")
def artifacts(large_artifacts):
    return large_artifacts


@pytest.fixture(scope="module")
def histories():
    rng = np.random.default_rng(5)
    return [rng.integers(1, NUM_ITEMS + 1, int(rng.integers(0, 30))).tolist() for _ in range(150)]


def test_layout_and_formats(artifacts):
    small, large = artifacts
    # format 2: the model file and its encoder-only graph, whose tensors are read from model.onnx
    assert {p.name for p in small.iterdir()} == {"s4rec.json", "model.onnx", "encoder.onnx"}
    assert (small / "encoder.onnx").stat().st_size < 64 * 1024
    names = {p.name for p in large.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "encoder.onnx", "item_table.npy", "items.npy", "popular.npy",
            "intent_top_items.npy", "item_intents.npy", "items.faiss", "item_table.int8.npy",
            "item_table.scales.npy"} <= names  # fmt: skip
    manifest = json.loads((large / "s4rec.json").read_text())
    assert set(manifest["files"]) >= {"item_ids", "item_table", "encoder", "ann_index", "item_table_int8"}
    a, b = Recommender.load(small), Recommender.load(large)
    assert a.metadata.format_version == 2 and b.metadata.format_version == 3 and b.metadata.large
    assert (large / "model.onnx").stat().st_size < 100_000  # the table is external data in item_table.npy
    table = np.load(large / "item_table.npy", allow_pickle=False)
    assert table.shape[0] >= NUM_ITEMS + 2 and not table[0].any() and not table[NUM_ITEMS + 1 :].any()
    assert type(b.vocabulary.index_of).__name__ == "ArrayIndex"


def test_exact_results_equal_format_2(artifacts, histories):
    a, b = (Recommender.load(p) for p in artifacts)
    for h in histories[:40]:
        for k, exclude_seen in ((10, True), (50, False)):
            x, y = a.recommend(h, k=k, exclude_seen=exclude_seen), b.recommend(h, k=k, exclude_seen=exclude_seen)
            assert x.item_ids() == y.item_ids() and x.fallback == y.fallback
            assert np.allclose([s for _, s in x], [s for _, s in y], atol=1e-5, equal_nan=True)
    assert [r.item_ids() for r in a.recommend_batch(histories, k=7, exclude=[5, 6])] == [
        r.item_ids() for r in b.recommend_batch(histories, k=7, exclude=[5, 6])
    ]
    assert np.allclose(a.embed_batch(histories), b.embed_batch(histories), atol=1e-5)
    assert np.allclose(a.intents_batch(histories), b.intents_batch(histories), atol=1e-5)
    x, y = a.intents(histories[1]), b.intents(histories[1])
    assert [i for i, _ in x] == [i for i, _ in y] and np.allclose([p for _, p in x], [p for _, p in y], atol=1e-6)
    assert a.items_for_intent(2, 5) == b.items_for_intent(2, 5)
    assert a.recommend([], k=5).item_ids() == b.recommend([], k=5).item_ids()
    assert b.recommend([10**9, "unknown"], k=3).unknown_items == (10**9, "unknown")


def test_bounded_score_matrix_per_call(artifacts, histories, monkeypatch):
    import s4rec.recommender as module

    b = Recommender.load(artifacts[1])
    want = [r.item_ids() for r in b.recommend_batch(histories, k=5)]
    monkeypatch.setattr(module, "SCORE_CELLS", 3 * (NUM_ITEMS + 1))
    bounded = Recommender.load(artifacts[1])
    assert bounded.max_users_per_call == 3
    assert [r.item_ids() for r in bounded.recommend_batch(histories, k=5)] == want


def test_int8_table_agrees_with_fp32(artifacts, histories):
    fp32, int8 = (Recommender.load(artifacts[1], variant=v) for v in ("fp32", "int8"))
    assert int8.metadata.table_precision == "int8"
    overlap = np.mean([len(set(x.item_ids()) & set(y.item_ids())) / 10 for x, y in
                       zip(fp32.recommend_batch(histories, k=10), int8.recommend_batch(histories, k=10))])  # fmt: skip
    assert overlap > 0.9
    # exact ranking of the int8 table's scores: single and batch calls agree
    assert [r.item_ids() for r in int8.recommend_batch(histories[:20], k=10)] == [
        int8.recommend(h, k=10).item_ids() for h in histories[:20]
    ]


def test_ann_keeps_exclusions_and_k(artifacts, histories):
    exact = Recommender.load(artifacts[1])
    ann = Recommender.load(artifacts[1], retrieval="ann")
    assert ann.retrieval == "ann"
    report = recall_at_k(ann, histories, k=10)
    assert report.recall >= 0.95 and report.users == sum(1 for h in histories if h)
    for h in [h for h in histories if h][:30]:
        got = ann.recommend(h, k=10, exclude=[3, 4])
        assert len(got) == 10 and not set(got.item_ids()) & (set(h) | {3, 4})
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        # the scores are the model's exact scores of those items
        index = {i: s for i, s in exact.recommend(h, k=50, exclude=[3, 4])}
        assert all(abs(index[i] - s) < 1e-4 for i, s in got if i in index)
    # a history of 45 items leaves top_k - 45 candidates: seen items never crowd out the k asked for
    long = list(range(1, 46))
    assert len(ann.recommend(long, k=50)) == 50 and not set(ann.recommend(long, k=50).item_ids()) & set(long)
    batch = ann.recommend_batch(histories, k=8)
    assert [r.item_ids() for r in batch[:20]] == [ann.recommend(h, k=8).item_ids() for h in histories[:20]]
    assert ann.recommend([], k=4).fallback
    with pytest.raises(ValueError, match="k must be in 1..50"):
        ann.recommend([1], k=51)


def test_ann_search_equals_a_loop_per_user(artifacts, histories):
    """The batched re-ranking gives what scoring each user's candidates on their own gives."""
    ann = Recommender.load(artifacts[1], retrieval="ann")
    users, banned, _ = ann.user_vectors(histories)
    banned = [np.union1d(b, [3, 4]) if i % 2 else b for i, b in enumerate(banned)]  # some rows ban more
    k = 12
    scores, items = ann.ann.search(users, k, banned)
    labels = ann.ann._knn(users, max(ann.ann.ef_search, k + max(len(b) for b in banned)))
    for row, user in enumerate(users):
        candidates = labels[row][labels[row] > 0]
        candidates = candidates[~np.isin(candidates, banned[row])]
        exact = ann.ann.table[candidates] @ user
        best = np.argsort(-exact, kind="stable")[:k]
        assert items[row, : len(best)].tolist() == candidates[best].tolist()
        assert np.allclose(scores[row, : len(best)], exact[best], rtol=1e-6, atol=1e-6)
        assert not set(items[row].tolist()) & set(banned[row].tolist())
    # a row with fewer than k candidates left ends in -inf and item 0, as the graph's output
    few = ann.ann.search(users[:1], k, [np.arange(1, NUM_ITEMS + 1)])
    assert np.isneginf(few[0]).all() and not few[1].any()


def test_s4rec_score_with_ann_equals_in_memory_ranking(artifacts, histories, tmp_path):
    """Chunks smaller than the input (read, score and write overlap): the file holds recommend_batch's lists."""
    ann = Recommender.load(artifacts[1], retrieval="ann", threads=2)
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps({"user": u, "history": h}) + "\n" for u, h in enumerate(histories)))
    out = tmp_path / "ann.jsonl"
    score_file(ann, source, out, k=7, chunk_size=16, batch_size=5)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = ann.recommend_batch(histories, k=7)
    assert [r["user"] for r in got] == list(range(len(histories)))
    assert [r["items"] for r in got] == [w.item_ids() for w in want]
    assert all(np.allclose(r["scores"], [s for _, s in w], rtol=1e-6) for r, w in zip(got, want) if not w.fallback)


def test_s4rec_score_and_ray_adapter_work_unchanged(artifacts, histories, tmp_path):
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps({"user": u, "history": h}) + "\n" for u, h in enumerate(histories)))
    outputs = {}
    for name, path, retrieval in (("small", artifacts[0], "exact"), ("large", artifacts[1], "exact"),
                                  ("ann", artifacts[1], "ann")):  # fmt: skip
        out = tmp_path / f"{name}.jsonl"
        score_file(Recommender.load(path, retrieval=retrieval, threads=2), source, out, k=6)
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["items"] for r in outputs["small"]] == [r["items"] for r in outputs["large"]]
    assert len(outputs["ann"]) == len(histories)
    import pandas as pd

    frame = pd.DataFrame({"user": list(range(len(histories))), "history": histories})
    for name, retrieval in (("large", "exact"), ("ann", "ann")):
        ray_out = RecommendBatch(str(artifacts[1]), k=6, retrieval=retrieval)(frame)
        assert [list(r) for r in ray_out["items"]] == [r["items"] for r in outputs[name]]


def test_score_cli_check_recall(artifacts, histories, tmp_path):
    from click.testing import CliRunner

    from s4rec.cli import main

    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps({"user": u, "history": h}) + "\n" for u, h in enumerate(histories)))
    result = CliRunner().invoke(
        main, [str(artifacts[1]), "-i", str(source), "-o", str(tmp_path / "r.jsonl"), "--retrieval", "ann",
               "--check-recall", "100", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recall@10 of ANN against exact retrieval" in result.output


def copy(large, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(large, target)
    return target


def test_probe_rule_and_its_override(artifacts, histories):
    """The exporter records the scanned share's rule (3% of the items, at least PROBE_MIN_ITEMS; chosen
    at 10^6 items by benchmarks/probes/ann_probe_sweep.py); the SDK scans what the artifact records, and
    set_probe_items moves it: scanning every list finds the exact top k."""
    assert probe_items(2_000) == 2_000 and probe_items(100_000) == probe_items(333_333) == 10_000  # the floor
    assert probe_items(333_334) == 10_001 and probe_items(1_000_000) == 30_000 and probe_items(10**7) == 300_000
    ann = Recommender.load(artifacts[1], retrieval="ann")
    entry = json.loads((artifacts[1] / "s4rec.json").read_text())["files"]["ann_index"]
    assert ann.ann.probe_items == entry["probe_items"] == probe_items(NUM_ITEMS)
    assert ann.ann.ef_search == entry["ef_search"] == DEFAULT_EF_SEARCH == 300
    narrow = Recommender.load(artifacts[1], retrieval="ann")
    narrow.ann.set_probe_items(1)  # the single best list
    assert narrow.ann.width == 1 and narrow.ann.index.nprobe == 1
    assert recall_at_k(narrow, histories, k=10).recall < 1.0
    narrow.ann.set_probe_items(NUM_ITEMS)  # every list: the exact ranking of the candidates' scores
    assert narrow.ann.width == len(narrow.ann.sizes)
    assert recall_at_k(narrow, histories, k=10).min_recall == 1.0
    for bad in (0, NUM_ITEMS + 1, True, 2.5):
        with pytest.raises(ValueError, match="probe_items must be an int"):
            narrow.ann.set_probe_items(bad)


def test_bad_sidecars_are_refused_naming_the_file(artifacts, tmp_path, monkeypatch):
    large = artifacts[1]
    broken = copy(large, tmp_path)
    (broken / "items.npy").unlink()
    with pytest.raises(ArtifactError, match=r"items\.npy: sidecar file 'item_ids' of model\.onnx is missing\. Copy"):
        Recommender.load(broken)

    broken = copy(large, tmp_path / "b")
    data = bytearray((broken / "popular.npy").read_bytes())
    data[-1] ^= 1
    (broken / "popular.npy").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"popular\.npy: SHA-256 .* does not match .* restore it or re-export"):
        Recommender.load(broken)

    broken = copy(large, tmp_path / "c")
    with open(broken / "item_table.npy", "ab") as f:
        f.write(b"\0" * 16)
    with pytest.raises(ArtifactError, match=r"item_table\.npy: .* bytes, the metadata of model\.onnx records"):
        Recommender.load(broken)

    broken = copy(large, tmp_path / "d")
    data = bytearray((broken / "item_table.npy").read_bytes())
    data[-5] ^= 1  # same size, different contents: only verify="full" hashes the large tables
    (broken / "item_table.npy").write_bytes(bytes(data))
    import s4rec.sidecars

    monkeypatch.setattr(s4rec.sidecars, "HASHED_ALWAYS_BYTES", 100_000)  # this table is ~130 KB: "large" here
    Recommender.load(broken)
    with pytest.raises(ChecksumError, match=r"item_table\.npy: SHA-256"):
        Recommender.load(broken, verify="full")

    with pytest.raises(ArtifactError, match="encoder-only graph of a format 3 artifact"):
        Recommender.load(large / "encoder.onnx")
    with pytest.raises(ArtifactError, match="retrieval='ann' needs a format 3 artifact"):
        Recommender.load(artifacts[0], retrieval="ann")
    no_index = copy(large, tmp_path / "e")
    (no_index / "items.faiss").unlink()
    Recommender.load(no_index)  # exact retrieval does not need the index
    with pytest.raises(ArtifactError, match="items.faiss: sidecar file 'ann_index'"):
        Recommender.load(no_index, retrieval="ann")
