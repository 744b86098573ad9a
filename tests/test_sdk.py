"""The torch-free SDK (s4rec.Recommender) on artifacts exported from tiny trained models."""

from __future__ import annotations

import json
import math
import shutil
import threading

import numpy as np
import pytest
from helpers import synthetic_histories

from s4rec import (
    ArtifactError,
    ArtifactMetadata,
    ArtifactVersionError,
    ChecksumError,
    Recommendations,
    Recommender,
    S4RecError,
    UnknownItemError,
)
from s4rec.artifact import INPUT, MANIFEST_NAME


@pytest.fixture(scope="module")
def rec(artifact):
    return Recommender.load(artifact[0])


def ranked(rec: Recommender, indices: list[int]) -> tuple[list[int], list[float]]:
    """Top items (indices) and scores straight from the session, for a known history of indices."""
    window = np.array([indices[-rec.max_len :]], dtype=np.int64)
    feed = {INPUT: window, "exclude": np.zeros((1, 1), dtype=np.int64), "k": np.array(rec.top_k)}
    scores, items = rec.session.run(["top_scores", "top_items"], feed)
    return items[0].tolist(), scores[0].tolist()


def test_recommend_matches_the_graph_and_excludes_seen(rec):
    history = [3, 4, 5, 6]  # the tiny models' item ids are 1..40 and index i has id i
    items, scores = ranked(rec, history)
    got = rec.recommend(history, k=5)
    assert isinstance(got, Recommendations) and got.unknown_items == () and not got.fallback
    want = [(i, s) for i, s in zip(items, scores) if i not in history][:5]
    assert got == want
    assert rec.recommend(history, k=5, exclude_seen=False) == list(zip(items, scores))[:5]
    banned = [want[0][0], want[2][0], "not-an-item"]
    assert rec.recommend(history, k=3, exclude=banned) == [p for p in want if p[0] not in banned][:3]
    assert all(isinstance(s, float) for _, s in got)


def test_unknown_items_ignored_and_reported_or_raised(rec):
    clean = rec.recommend([3, 4, 5], k=5)
    got = rec.recommend([3, 999, 4, "x", 5], k=5)
    assert got == clean and got.unknown_items == (999, "x")
    with pytest.raises(UnknownItemError, match=r"2 item id\(s\) unknown to the model: 999, 'x'") as caught:
        rec.recommend([3, 999, 4, "x"], unknown="error")
    assert caught.value.items == (999, "x")
    strict = Recommender.load(rec.path, unknown="error")
    with pytest.raises(UnknownItemError):
        strict.recommend([999])
    with pytest.raises(ValueError, match="unknown must be one of"):
        rec.recommend([3], unknown="drop")


def test_empty_history_falls_back_to_popular_items(rec):
    popular = rec.metadata.popular_items
    got = rec.recommend([], k=4)
    assert got.fallback and got.item_ids() == list(popular[:4])
    assert all(math.isnan(s) for _, s in got)
    only_unknown = rec.recommend(["nope"], k=4, exclude=[popular[0]])
    assert only_unknown.fallback and only_unknown.unknown_items == ("nope",)
    assert only_unknown.item_ids() == list(popular[1:5])


def test_long_history_keeps_the_most_recent_items(rec):
    history = list(range(1, 31))  # 30 items, max_len 10
    assert rec.max_len == 10
    recent = rec.recommend(history[-10:], k=5, exclude_seen=False)
    assert rec.recommend(history, k=5, exclude_seen=False) == recent
    assert not set(rec.recommend(history, k=10).item_ids()) & set(history)  # all 30 count as seen
    assert np.array_equal(rec.embed(history), rec.embed(history[-10:]))


@pytest.mark.parametrize(
    "history, message",
    [
        ("3 4 5", "got str: '3 4 5'"),
        ({3, 4}, "got set: {3, 4}"),
        (7, "got int: 7"),
        (None, "got NoneType: None"),
        ([3, 4.0], "item ids must be ints or strings, got float: 4.0"),
        ([3, [4]], "got list: [4]"),
        ([True], "got bool: True"),
        (np.zeros((2, 2), dtype=np.int64), "shape (2, 2)"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_value(rec, history, message):
    with pytest.raises(TypeError) as caught:
        rec.recommend(history)
    assert message in str(caught.value)


def test_accepted_history_types(rec):
    want = rec.recommend([3, 4, 5], k=3)
    assert rec.recommend((3, 4, 5), k=3) == want
    assert rec.recommend(np.array([3, 4, 5]), k=3) == want
    assert rec.recommend([np.int64(3), np.int32(4), 5], k=3) == want
    assert rec.recommend(range(3, 6), k=3) == want


def test_k_is_checked(rec):
    for k in (0, -1, rec.top_k + 1):
        with pytest.raises(ValueError, match=rf"k must be in 1\.\.{rec.top_k}"):
            rec.recommend([3], k=k)
    for k in (2.0, "3", True):
        with pytest.raises(TypeError, match="k must be an int"):
            rec.recommend([3], k=k)
    assert len(rec.recommend([3], k=rec.top_k - 1)) == rec.top_k - 1
    with pytest.raises(ValueError, match="k must be in"):
        rec.recommend_batch([[3]], k=0)


def test_recommend_batch_equals_single_calls(rec):
    histories = synthetic_histories() + [[], ["unknown"], [np.int64(2), 3]]
    for kwargs in ({}, {"exclude_seen": False}, {"exclude": [1, 2, 3, 4, 5]}, {"k": 7}):
        batch = rec.recommend_batch(histories, batch_size=7, **kwargs)
        single = [rec.recommend(h, **kwargs) for h in histories]
        assert len(batch) == len(histories)
        for b, s in zip(batch, single):
            assert [i for i, _ in b] == [i for i, _ in s]
            assert np.allclose([x for _, x in b], [x for _, x in s], atol=1e-5, equal_nan=True)
            assert b.fallback == s.fallback and b.unknown_items == s.unknown_items
    assert rec.recommend_batch([]) == []
    with pytest.raises(TypeError, match="histories must be a list of histories"):
        rec.recommend_batch("3 4 5")
    with pytest.raises(TypeError, match="got set"):
        rec.recommend_batch([[3], {4}])


@pytest.mark.parametrize("table", ["dense", "dict"])
def test_batch_id_mapping_equals_history_by_history(rec, table):
    """recommend_batch maps all ids of a batch at once (a dense table for small int ids, else the dict): the
    same indices, unknown ids and errors as mapping history by history."""
    mapper = Recommender.load(rec.path)
    if table == "dict":
        mapper.vocabulary.dense_table = None
    assert (mapper.vocabulary.dense_table is not None) == (table == "dense")
    batches = [
        synthetic_histories(count=30),
        [[3, 999, 4], [], [-1, 5], [2**70, 6, "x"], ("7", 8), [40, 41, 0], [1] * 60],
        [[], []],
        [],
    ]
    for histories in batches:
        known, counts, unknown_of = mapper.vocabulary.map_histories(histories, "ignore")
        rows = [mapper.vocabulary.map_history(h, "ignore") for h in histories]
        assert counts.tolist() == [len(r[0]) for r in rows]
        assert known.dtype == np.int64 and known.tolist() == [i for r in rows for i in r[0]]
        assert unknown_of == {u: r[1] for u, r in enumerate(rows) if r[1]}
    with pytest.raises(UnknownItemError, match=r"1 item id\(s\) unknown to the model: 999\.") as caught:
        mapper.recommend_batch([[3], [4, 999], [2**70]], unknown="error")
    assert caught.value.items == (999,)
    with pytest.raises(TypeError, match="got float: 1.5"):
        mapper.recommend_batch([[3], [4, 1.5]])


def test_recommend_batch_result_is_short_only_when_exclusions_eat_the_candidates(rec):
    everything = list(range(1, 41))
    got = rec.recommend_batch([[3, 4]], k=5, exclude=everything[:-2])
    assert len(got[0]) <= 2 and set(got[0].item_ids()) <= {39, 40}


def test_embed_and_embed_batch(rec):
    histories = synthetic_histories(count=20)
    batch = rec.embed_batch(histories, batch_size=6)
    assert batch.shape == (20, 16) and batch.dtype == np.float32
    for row, history in zip(batch, histories):
        assert np.allclose(row, rec.embed(history), atol=1e-5)
    empty = rec.embed([])
    assert empty.shape == (16,) and np.isfinite(empty).all()


def test_intents(rec):
    got = rec.intents([3, 4, 5], top=3)
    assert len(got) == 3 and all(isinstance(i, int) and 0 <= i < 5 for i, _ in got)
    probabilities = [p for _, p in got]
    assert probabilities == sorted(probabilities, reverse=True)
    full = rec.intents([3, 4, 5], top=5)
    assert math.isclose(sum(p for _, p in full), 1.0, abs_tol=1e-5)
    batch = rec.intents_batch([[3, 4, 5], []])
    assert batch.shape == (2, 5) and np.allclose(batch[0][[i for i, _ in full]], [p for _, p in full], atol=1e-6)
    with pytest.raises(ValueError, match=r"top must be in 1\.\.5"):
        rec.intents([3], top=6)
    items = rec.items_for_intent(2, k=4)
    assert items == list(rec.metadata.intent_top_items[2][:4])
    with pytest.raises(ValueError, match=r"intent must be in 0\.\.4"):
        rec.items_for_intent(5)
    with pytest.raises(TypeError, match="intent must be an int"):
        rec.items_for_intent("2")


def test_model_without_intents_says_so(plain_artifact):
    rec = Recommender.load(plain_artifact[0])
    assert rec.metadata.num_intents == 0 and rec.top_k == 40
    with pytest.raises(S4RecError, match="has no intents"):
        rec.intents([1, 2])
    with pytest.raises(S4RecError, match="has no intents"):
        rec.items_for_intent(0)
    assert len(rec.recommend([1, 2], k=40)) == 38


def test_thread_safety(rec):
    histories = synthetic_histories(count=40)
    serial = [rec.recommend(h, k=8) for h in histories]
    serial_batch = rec.recommend_batch(histories, k=8)
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            out = []
            for _ in range(5):
                out.append([rec.recommend(h, k=8) for h in histories])
                out.append(rec.recommend_batch(histories, k=8, batch_size=5))
            results[n] = out
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in results.values():
        for run in out:
            assert [r.item_ids() for r in run] == [r.item_ids() for r in serial]
    assert [r.item_ids() for r in serial_batch] == [r.item_ids() for r in serial]


def test_batch_methods_with_worker_threads_equal_serial(artifact):
    histories = synthetic_histories(count=50)
    serial = Recommender.load(artifact[0], threads=1)
    parallel = Recommender.load(artifact[0], threads=3)
    assert parallel.threads == 3 and Recommender.load(artifact[0], threads=0).threads >= 1
    # worker threads also build the results of their buckets: the same lists and reports, in input order
    mixed = [[], ["unknown"], *histories[:20], [2, "unknown"], [], *histories[20:]]
    got, expected = parallel.recommend_batch(mixed, k=6, batch_size=4), serial.recommend_batch(mixed, k=6, batch_size=4)
    assert got == expected
    assert [(r.fallback, r.unknown_items) for r in got] == [(r.fallback, r.unknown_items) for r in expected]
    assert got[0].fallback and got[1].unknown_items == ("unknown",) and got[22].unknown_items == ("unknown",)
    assert np.array_equal(parallel.embed_batch(histories, batch_size=4), serial.embed_batch(histories, batch_size=4))
    assert np.array_equal(
        parallel.intents_batch(histories, batch_size=4), serial.intents_batch(histories, batch_size=4)
    )


def test_load_variants_and_single_files(artifact):
    directory, _ = artifact
    assert Recommender.load(directory / "model.onnx").metadata.variant == "fp32"
    assert Recommender.load(directory, variant="int8").metadata.variant == "int8"
    assert Recommender.load(directory / "model.fp16.onnx").metadata.variant == "fp16"
    assert Recommender.load(directory, variant="mobile", threads=2).recommend([1, 2], k=3)
    assert "variant='fp32'" in repr(Recommender.load(directory))
    with pytest.raises(ValueError, match=r"threads must be an int >= 0 \(0 = all cores\), got -1"):
        Recommender.load(directory, threads=-1)


def copy_artifact(artifact, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(artifact[0], target)
    return target


def test_load_errors_name_the_file_and_the_fix(artifact, tmp_path):
    with pytest.raises(ArtifactError, match=r"no such artifact\. Create one with `s4rec-export"):
        Recommender.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"empty: no s4rec\.json"):
        Recommender.load(tmp_path / "empty")
    plain = tmp_path / "model.txt"
    plain.write_text("x")
    with pytest.raises(ArtifactError, match="expected an artifact directory, a .onnx or a .ort file"):
        Recommender.load(plain)
    target = copy_artifact(artifact, tmp_path)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    del manifest["variants"]["fp16"]
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"no 'fp16' variant in this artifact .* --quantize int8"):
        Recommender.load(target, variant="fp16")
    manifest["format_version"] = 2
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactVersionError, match="manifest format version 2, this SDK reads 1"):
        Recommender.load(target)
    (target / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        Recommender.load(target)


def test_checksum_mismatch_is_refused(artifact, tmp_path):
    target = copy_artifact(artifact, tmp_path)
    data = bytearray((target / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (target / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"model\.onnx: SHA-256 .* does not match the manifest"):
        Recommender.load(target)
    with pytest.raises(ChecksumError):
        Recommender.load(target / "model.onnx")  # a single file is checked against its directory's manifest


def rewrite_model(artifact, tmp_path, edit):
    """Copy model.onnx alone (no manifest), apply ``edit`` to the ModelProto, return the new path."""
    import onnx

    model = onnx.load(str(artifact[0] / "model.onnx"))
    edit(model)
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    return path


def set_metadata(model, **changes):
    for prop in model.metadata_props:
        if prop.key == "s4rec.metadata":
            values = json.loads(prop.value)
            values.update(changes)
            prop.value = json.dumps(values)


def test_model_file_validation(artifact, tmp_path):
    def drop_format(model):
        del model.metadata_props[:]

    with pytest.raises(ArtifactError, match=r"edited\.onnx: not an s4rec model"):
        Recommender.load(rewrite_model(artifact, tmp_path, drop_format))

    def format_version(value):
        def edit(model):
            for prop in model.metadata_props:
                if prop.key == "s4rec.format_version":
                    prop.value = value

        return edit

    with pytest.raises(
        ArtifactVersionError,
        match=r"model format version '4' is newer than this SDK, which reads versions 2 and 3\. Upgrade the SDK "
        r".*reinstall s4rec from an up-to-date checkout",
    ):
        Recommender.load(rewrite_model(artifact, tmp_path, format_version("4")))
    # metadata_props and the JSON must agree on the version
    with pytest.raises(ArtifactError, match=r"s4rec\.format_version '3' but the metadata's format_version is 2"):
        Recommender.load(rewrite_model(artifact, tmp_path, format_version("3")))
    # An artifact of format 1 (graph without the exclude and k inputs): re-export it, the checkpoint is fine.
    with pytest.raises(
        ArtifactVersionError,
        match=r"model format version 1, written by an older s4rec-export; this SDK reads versions 2 and 3 .*"
        r"Re-export the artifact from its checkpoint",
    ):
        Recommender.load(rewrite_model(artifact, tmp_path, format_version("1")))

    with pytest.raises(ChecksumError, match="item vocabulary checksum mismatch"):
        Recommender.load(rewrite_model(artifact, tmp_path, lambda m: set_metadata(m, item_ids=list(range(2, 42)))))

    with pytest.raises(ArtifactError, match="invalid s4rec metadata: .*top_k 99 > num_items 40"):
        Recommender.load(rewrite_model(artifact, tmp_path, lambda m: set_metadata(m, top_k=99)))

    def future_ir(model):
        model.ir_version = 99

    with pytest.raises(
        ArtifactVersionError,
        match=r"edited\.onnx: onnxruntime .* cannot run this model \(Unsupported model IR version: 99.*pip install -U",
    ):
        Recommender.load(rewrite_model(artifact, tmp_path, future_ir))

    def rename_output(model):
        for node in model.graph.node:
            node.output[:] = ["renamed" if o == "top_items" else o for o in node.output]
        model.graph.output[2].name = "renamed"

    with pytest.raises(ArtifactError, match=r"does not match the s4rec contract: missing outputs \['top_items'\]"):
        Recommender.load(rewrite_model(artifact, tmp_path, rename_output))

    def rename_k(model):
        for node in model.graph.node:
            node.input[:] = ["count" if i == "k" else i for i in node.input]
        next(i for i in model.graph.input if i.name == "k").name = "count"

    with pytest.raises(ArtifactError, match=r"does not match the s4rec contract: no input 'k' \(inputs: "):
        Recommender.load(rewrite_model(artifact, tmp_path, rename_k))


def test_metadata_dataclass_is_frozen_and_validated(rec):
    meta = rec.metadata
    with pytest.raises(AttributeError):
        meta.top_k = 3  # type: ignore[misc]
    values = meta.to_dict()
    assert ArtifactMetadata.from_dict(values) == meta
    with pytest.raises(ValueError, match="missing metadata keys"):
        ArtifactMetadata.from_dict({k: v for k, v in values.items() if k != "max_len"})
    with pytest.raises(ValueError, match=r"popular_items outside 1\.\.40"):
        ArtifactMetadata.from_dict(dict(values, popular_items=[0, 1]))
    with pytest.raises(ValueError, match="variant 'int4'"):
        ArtifactMetadata.from_dict(dict(values, variant="int4"))
    assert ArtifactMetadata.from_dict(dict(values, added_by_a_newer_exporter=1)) == meta
