"""s4rec-export on a tiny trained model: parity, dynamic shapes, metadata, variants, refusals, atomic output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from s4rec import Recommender
from s4rec.artifact import INPUT, MANIFEST_NAME, METADATA_KEY, VARIANT_FILES, file_sha256, items_checksum
from s4rec_export import ExportError, OutputExistsError, ParityError, SizeError, export_checkpoint
from s4rec_export.cli import cli
from s4rec_export.inference import InferenceGraph
from s4rec_export.verify import check_parity, check_stored_once, feeds, parity_cases
from s4rec_train.checkpoint import CheckpointError, model_from_checkpoint

OUTPUTS = ["user_embedding", "top_scores", "top_items", "intent_probabilities"]


def session(directory, variant="fp32"):
    return Recommender.make_session(directory / VARIANT_FILES[variant])


def torch_reference(checkpoint: dict, window: np.ndarray, top_k: int):
    """The encoder of the checkpoint, padded to max_len, scored against the whole item table."""
    model = model_from_checkpoint(checkpoint)
    max_len = model.config.max_len
    padded = np.zeros((window.shape[0], max_len), dtype=np.int64)
    padded[:, max_len - window.shape[1] :] = window
    with torch.no_grad():
        user = model.user_embedding(torch.from_numpy(padded))
        scores = model.scores(user)
        top = torch.topk(scores, top_k, dim=1)
    return user.numpy(), top.values.numpy(), top.indices.numpy() + 1


def test_export_report_and_files(artifact):
    directory, report = artifact
    names = {p.name for p in directory.iterdir()}
    assert names == {MANIFEST_NAME, *VARIANT_FILES.values(), "model.required_operators.config", "encoder.onnx"}
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert report.parity.cases == 6 + 10  # edge cases + one batch per length 1..max_len
    assert max(report.parity.max_abs_diff.values()) <= 1e-4
    assert set(report.agreement) == {"int8", "fp16", "mobile"}
    text = "\n".join(report.lines())
    assert "model.int8.onnx" in text and "parity" in text


def test_parity_with_the_original_encoder_at_every_length(artifact, intent_checkpoint):
    """ORT on trimmed windows == the untouched torch encoder on padded ones (not just the export wrapper)."""
    directory, report = artifact
    checkpoint = intent_checkpoint[1]
    ort_session = session(directory)
    top_k = report.metadata["top_k"]
    for name, window in parity_cases(checkpoint["config"]["num_items"], checkpoint["config"]["max_len"], seed=7):
        user, scores, items = ort_session.run(["user_embedding", "top_scores", "top_items"], feeds(window, top_k))
        want_user, want_scores, want_items = torch_reference(checkpoint, window, top_k)
        assert np.abs(user - want_user).max() <= 1e-4, name
        assert np.abs(scores - want_scores).max() <= 1e-4, name
        assert (items == want_items).mean() > 0.99, name  # exact ties aside
        assert items.min() >= 1


def test_dynamic_batch_and_length(artifact):
    directory, report = artifact
    ort_session = session(directory)
    meta = report.metadata
    rng = np.random.default_rng(0)
    for batch in (1, 3, 17):
        for length in (1, 4, meta["max_len"]):
            window = rng.integers(0, meta["num_items"] + 1, (batch, length))
            user, scores, items, probs = ort_session.run(OUTPUTS, feeds(window, meta["top_k"]))
            assert user.shape == (batch, meta["embedding_dim"])
            assert scores.shape == items.shape == (batch, meta["top_k"])
            assert probs.shape == (batch, meta["num_intents"])
            assert np.all(np.diff(scores, axis=1) <= 0), "top_scores must be descending"
            assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    history, exclude, k = onnx.load(str(directory / "model.onnx")).graph.input
    assert [history.name, exclude.name, k.name] == [INPUT, "exclude", "k"]
    for graph_input in (history, exclude):
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert all(isinstance(d, str) for d in dims), f"{graph_input.name}: dimensions must be dynamic, got {dims}"
    assert len(k.type.tensor_type.shape.dim) == 0, "k is a scalar"


def test_k_and_exclude_inputs(artifact, intent_checkpoint):
    """The graph returns exactly k items, best first, never an excluded one nor the padding index."""
    directory, report = artifact
    ort_session = session(directory)
    meta = report.metadata
    num_items, top_k = meta["num_items"], meta["top_k"]
    rng = np.random.default_rng(2)
    window = rng.integers(0, num_items + 1, (6, meta["max_len"]))
    full_scores, full_items = ort_session.run(["top_scores", "top_items"], feeds(window, top_k))
    for k in (1, 3, top_k):
        scores, items = ort_session.run(["top_scores", "top_items"], feeds(window, k))
        assert scores.shape == items.shape == (6, k)
        assert np.array_equal(items, full_items[:, :k]) and np.allclose(scores, full_scores[:, :k])
    extra = rng.integers(1, num_items + 1, (6, 3))
    banned = np.concatenate([window, extra], axis=1)
    scores, items = ort_session.run(["top_scores", "top_items"], feeds(window, 5, exclude=banned))
    for row in range(6):
        kept = [(i, s) for i, s in zip(full_items[row], full_scores[row]) if i not in banned[row]][:5]
        assert items[row].tolist() == [i for i, _ in kept] and np.allclose(scores[row], [s for _, s in kept])
    # Fewer items left than k: the tail is -inf (excluded items), the rest is every item left, best first.
    everything = np.tile(np.arange(1, num_items + 1), (2, 1))
    left = everything[:, 2:]  # all but items 1 and 2 excluded
    scores, items = ort_session.run(["top_scores", "top_items"], feeds(window[:2], 4, exclude=left))
    assert np.isfinite(scores[:, :2]).all() and np.isneginf(scores[:, 2:]).all()
    assert [sorted(row) for row in items[:, :2].tolist()] == [[1, 2], [1, 2]]


def test_trimmed_equals_padded(artifact):
    directory, report = artifact
    ort_session = session(directory)
    max_len = report.metadata["max_len"]
    rng = np.random.default_rng(1)
    for length in range(1, max_len + 1):
        trimmed = rng.integers(1, report.metadata["num_items"] + 1, (4, length))
        padded = np.zeros((4, max_len), dtype=np.int64)
        padded[:, max_len - length :] = trimmed
        top_k = report.metadata["top_k"]
        for exclude in (None, "seen"):
            a = ort_session.run(OUTPUTS, feeds(trimmed, top_k, None if exclude is None else trimmed))
            b = ort_session.run(OUTPUTS, feeds(padded, top_k, None if exclude is None else padded))
            for name, x, y in zip(OUTPUTS, a, b):
                assert np.abs(x - y).max() <= 1e-5, (name, length, exclude)


def test_metadata_round_trip(artifact, intent_checkpoint):
    directory, report = artifact
    path, checkpoint = intent_checkpoint
    model = onnx.load(str(directory / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["s4rec.format"] == "s4rec-onnx" and props["s4rec.format_version"] == "2"
    meta = json.loads(props[METADATA_KEY])
    assert meta == report.metadata
    assert meta["item_ids"] == checkpoint["item_ids"]
    assert meta["item_ids_sha256"] == items_checksum(checkpoint["item_ids"])
    assert meta["source_checkpoint_sha256"] == file_sha256(path)
    assert meta["checkpoint_metrics"]["test"] == checkpoint["metrics"]["test"]
    assert meta["max_len"] == checkpoint["config"]["max_len"] and meta["embedding_dim"] == checkpoint["config"]["dim"]
    assert meta["num_intents"] == 5 and meta["intent_temperature"] == 0.1 and meta["top_k"] == 20
    assert meta["opset"] == model.opset_import[0].version and meta["ir_version"] == model.ir_version
    counts = checkpoint["item_counts"].numpy()
    assert counts[meta["popular_items"][0]] == counts[1:].max()
    assert len(meta["intent_top_items"]) == 5 and all(len(row) == 20 for row in meta["intent_top_items"])
    assert Recommender.load(directory).metadata.to_dict() == meta
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    for variant, entry in manifest["variants"].items():
        assert entry["sha256"] == file_sha256(directory / entry["file"]), variant


def test_tables_stored_once(artifact, plain_artifact):
    for directory, report in (artifact, plain_artifact):
        for variant in ("fp32", "int8", "fp16"):
            path = directory / VARIANT_FILES[variant]
            if path.exists():
                check_stored_once(onnx.load(str(path)), report.parameters, variant)  # raises SizeError
    doubled = onnx.load(str(artifact[0] / "model.onnx"))
    table = max(doubled.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    copy = onnx.TensorProto()
    copy.CopyFrom(table)
    copy.name = "duplicate"
    doubled.graph.initializer.append(copy)
    with pytest.raises(SizeError, match="duplicated"):
        check_stored_once(doubled, artifact[1].parameters, "test")


def test_export_without_intents(plain_artifact):
    directory, report = plain_artifact
    meta = report.metadata
    assert meta["num_intents"] == 0 and meta["intent_top_items"] == [] and meta["top_k"] == 40
    outputs = [o.name for o in session(directory).get_outputs()]
    assert outputs == ["user_embedding", "top_scores", "top_items"]
    assert json.loads((directory / MANIFEST_NAME).read_text())["variants"].keys() == {"fp32"}


def test_variants_load_and_agree(artifact):
    directory, report = artifact
    histories = [[1, 2, 3], [5], list(range(1, 30)), [7, 7, 8]]
    reference = Recommender.load(directory).recommend_batch(histories, k=5)
    for variant, minimum in (("int8", 0.6), ("fp16", 0.95), ("mobile", 1.0)):
        rec = Recommender.load(directory, variant=variant)
        got = rec.recommend_batch(histories, k=5)
        overlap = np.mean([len(set(a.item_ids()) & set(b.item_ids())) / 5 for a, b in zip(reference, got)])
        assert overlap >= minimum, (variant, overlap)
        assert report.agreement[variant]["top10_overlap"] >= minimum
    assert report.agreement["mobile"]["max_abs_score_diff"] <= 1e-4
    sizes = report.sizes
    assert sizes["model.fp16.onnx"] < sizes["model.onnx"]
    assert sizes["model.int8.onnx"] < sizes["model.onnx"]


def test_blocked_ranking_equals_one_topk(tmp_path, intent_checkpoint):
    """Ranking blocks of items (the exporter's choice for large catalogues) return what one TopK returns."""
    blocked = export_checkpoint(intent_checkpoint[0], tmp_path / "blocked", top_k=20, block_size=2)
    plain = export_checkpoint(intent_checkpoint[0], tmp_path / "plain", top_k=20, block_size=0)
    assert blocked.metadata["ranking_block_size"] == 2 and plain.metadata["ranking_block_size"] == 0
    a, b = session(tmp_path / "blocked"), session(tmp_path / "plain")
    rng = np.random.default_rng(3)
    num_items = blocked.metadata["num_items"]
    for length in (1, 5, blocked.metadata["max_len"]):
        window = rng.integers(0, num_items + 1, (8, length))
        for k in (1, 7, 20):
            for exclude in (None, window, rng.integers(1, num_items + 1, (8, 30))):
                want = b.run(["top_scores", "top_items"], feeds(window, k, exclude))
                got = a.run(["top_scores", "top_items"], feeds(window, k, exclude))
                kept = np.isfinite(want[0])  # -inf: fewer than k items left, the tail is any excluded items
                assert np.array_equal(np.isfinite(got[0]), kept), (length, k)
                assert np.array_equal(got[1][kept], want[1][kept]), (length, k)
                assert np.allclose(got[0][kept], want[0][kept], atol=1e-6), (length, k)
    with pytest.raises(ExportError, match=r"block_size 8: fewer blocks than top_k 20 over 40 items"):
        export_checkpoint(intent_checkpoint[0], tmp_path / "too_coarse", top_k=20, block_size=8)


def test_parity_gate_fails_with_per_output_lines(artifact, tiny_checkpoint):
    """A graph that does not match torch (another model's weights) is refused, one line per output."""
    directory, _ = artifact
    other = model_from_checkpoint(tiny_checkpoint[1])
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05)
    graph = InferenceGraph(other, 20, torch.eye(5, 16), 0.1)
    with pytest.raises(ParityError) as caught:
        check_parity(graph, session(directory), "tampered")
    lines = caught.value.lines
    assert any(line.startswith("user_embedding: max abs diff") for line in lines)
    assert any(line.startswith("top_scores: max abs diff") for line in lines)
    assert "parity check failed" in str(caught.value)


def test_refuses_pickled_checkpoint(tmp_path, tiny_checkpoint):
    import argparse

    path = tmp_path / "pickled.pt"
    torch.save(dict(tiny_checkpoint[1], args=argparse.Namespace(lr=0.1)), path)  # a pickled class
    with pytest.raises(CheckpointError, match="refused, the file needs pickled Python objects"):
        export_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(cli, [str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "refused" in result.output


def test_refuses_existing_output_unless_forced(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        export_checkpoint(tiny_checkpoint[0], out)
    assert (out / "keep.txt").read_text() == "mine"
    result = CliRunner().invoke(cli, [str(tiny_checkpoint[0]), "-o", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output
    result = CliRunner().invoke(cli, [str(tiny_checkpoint[0]), "-o", str(out), "--force", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "model.onnx" in result.output and not (out / "keep.txt").exists()
    assert Recommender.load(out).recommend([1, 2], k=3)


def test_failed_export_leaves_nothing(tmp_path, tiny_checkpoint, monkeypatch):
    import s4rec_export.exporter as exporter

    def fail(*args, **kwargs):
        raise ParityError("fp32", ["top_scores: max abs diff 1e+00 > 1e-04 (worst case: test)"])

    monkeypatch.setattr(exporter, "check_parity", fail)
    out = tmp_path / "out"
    with pytest.raises(ParityError):
        export_checkpoint(tiny_checkpoint[0], out)
    assert list(tmp_path.iterdir()) == [], "a failed export must leave no file or temporary directory"
    result = CliRunner().invoke(cli, [str(tiny_checkpoint[0]), "-o", str(out)])
    assert result.exit_code == 1 and "top_scores: max abs diff" in result.output
    assert not out.exists()


def test_failed_forced_export_keeps_the_old_artifact(tmp_path, tiny_checkpoint, monkeypatch):
    import s4rec_export.exporter as exporter

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    monkeypatch.setattr(exporter, "to_onnx", lambda graph: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(tiny_checkpoint[0], out, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "old.txt").read_text() == "old"


def test_bad_intent_centroids_are_refused(tmp_path, tiny_checkpoint):
    from s4rec_train.checkpoint import save_checkpoint

    path = tmp_path / "bad.pt"
    save_checkpoint(dict(tiny_checkpoint[1], intent_centroids=torch.zeros(3, 7)), path)
    with pytest.raises(CheckpointError, match=r"intent_centroids must be a \(K, 16\) tensor, got \(3, 7\)"):
        export_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_without_torch_says_which_extra(tmp_path):
    code = "import sys; sys.modules['torch'] = None; from s4rec_export.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "model.pt", "-o", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": "sdk:training:export", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    expected = "s4rec-export needs PyTorch and onnx: pip install '/path/to/s4rec[export]' (this repository)"
    assert result.stderr.strip() == expected


def test_cli_help_and_version_need_neither_torch_nor_onnx():
    """`s4rec-export --help` is instant: it imports neither torch nor onnx (importing torch takes seconds)."""
    for args in (["--help"], ["--version"]):
        code = (
            "import sys; sys.modules['torch'] = sys.modules['onnx'] = None; from s4rec_export.cli import main; main()"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": "sdk:training:export", "PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 0, result.stderr
        assert ("--top-k" in result.stdout) if args == ["--help"] else ("version" in result.stdout)
