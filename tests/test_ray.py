"""Ray Data scale-out gives exactly what s4rec-score gives, on a small input with a local Ray instance.

Needs the ``[ray]`` extra. Without ray installed this module fails at import (it does not skip): CI installs
``[ray]``, and a silently skipped equivalence test would prove nothing. One Ray instance serves all the tests
here, as its start-up dominates their run time.
"""

import importlib.util
import os
import random
from pathlib import Path

import pytest
import ray  # noqa: F401  - fail loudly when the [ray] extra is missing
from click.testing import CliRunner
from score_helpers import read_jsonl, score_inputs

from s4rec import Recommender
from s4rec.batch import score_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts a local Ray cluster (CONTRIBUTING.md: the test tiers)
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def local_ray():
    # Ray's workers are new processes: they find the source tree through PYTHONPATH, as pytest's own
    # pythonpath setting reaches only this process.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*(str(ROOT / p) for p in ("sdk", "training", "export")), saved or ""])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
    if saved is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def tiny(plain_artifact, tmp_path_factory):
    return score_inputs(plain_artifact[0], tmp_path_factory)


def by_user(rows):
    return {row["user"]: row for row in rows}


def assert_same(expected_rows, actual_rows):
    expected, actual = by_user(expected_rows), by_user(actual_rows)
    assert sorted(expected) == sorted(actual)
    for user, row in expected.items():
        assert actual[user]["items"] == row["items"], user
        assert actual[user]["scores"] == pytest.approx(row["scores"], rel=1e-6), user


def test_ray_recommendations_equal_s4rec_score(local_ray, tiny, tmp_path):
    from s4rec.ray import read_histories, recommend_dataset

    source = tmp_path / "users.jsonl"
    lines = (tiny / "users.jsonl").read_text().splitlines(keepends=True)
    source.write_text("".join(lines[:60]) + "not json\n" + "".join(lines[60:]))  # a malformed line is dropped
    score_file(Recommender.load(tiny / "artifact"), source, tmp_path / "cli.jsonl", k=7)
    histories = read_histories(str(source), override_num_blocks=3)
    rows = recommend_dataset(histories, tiny / "artifact", k=7, chunk_size=50, concurrency=1).take_all()
    rows = [{"user": r["user"], "items": list(r["items"]), "scores": list(r["scores"])} for r in rows]
    assert len(rows) == 120
    assert_same(read_jsonl(tmp_path / "cli.jsonl"), rows)


def test_ray_job_example_on_a_log_matches_s4rec_score(local_ray, tiny, tmp_path):
    events = [
        (row["user"], item, t) for row in read_jsonl(tiny / "users.jsonl") for t, item in enumerate(row["history"])
    ]
    random.Random(1).shuffle(events)
    log = tmp_path / "events.csv"
    log.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in events))
    score_file(Recommender.load(tiny / "artifact"), log, tmp_path / "cli.jsonl", k=5)

    spec = importlib.util.spec_from_file_location("example_ray_job", EXAMPLES / "ray_job.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "recs"
    result = CliRunner().invoke(
        example.main, [str(tiny / "artifact"), "-i", str(log), "-o", str(out), "--format", "log", "--k", "5",
                       "--partitions", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored 120 users" in result.output
    rows = [row for path in sorted(out.glob("*.json*")) for row in read_jsonl(path)]
    assert_same(read_jsonl(tmp_path / "cli.jsonl"), rows)


def test_ray_on_a_large_format_artifact_equals_s4rec_score(local_ray, large_artifacts, tmp_path):
    """Format 3 (sidecars, encoder graph, ANN index) through Ray Data: the same as s4rec-score, exact and ANN."""
    import json

    import numpy as np

    from s4rec.ray import read_histories, recommend_dataset

    rng = np.random.default_rng(2)
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps({"user": u, "history": rng.integers(1, 2001, 1 + u % 15).tolist()}) + "\n"
                              for u in range(80)))  # fmt: skip
    large = large_artifacts[1]
    for retrieval in ("exact", "ann"):
        out = tmp_path / f"cli_{retrieval}.jsonl"
        score_file(Recommender.load(large, retrieval=retrieval), source, out, k=5)
        histories = read_histories(str(source), override_num_blocks=2)
        rows = recommend_dataset(histories, large, k=5, chunk_size=30, retrieval=retrieval).take_all()
        rows = [{"user": r["user"], "items": list(r["items"]), "scores": list(r["scores"])} for r in rows]
        assert_same(read_jsonl(out), rows)


def test_recommend_batch_candidates_allow_deny_per_intent(artifact):
    """Issue 23 in the batch function itself (what each Ray actor or Spark's mapInPandas runs): a candidates
    column, allow / deny for every row, per_intent; as s4rec-score and the SDK give them."""
    import pandas as pd

    from s4rec.ray import RecommendBatch

    batch = pd.DataFrame(
        {"user": [1, 2, 3], "history": [[1, 2, 3], [4, 5], [6]], "candidates": [list(range(5, 20)), None, [7, 8, 9]]}
    )
    fn = RecommendBatch(str(artifact[0]), k=4, allow=range(1, 30), deny=[8], per_intent=2)
    rec = Recommender.load(artifact[0])
    assert fn.version == rec.version
    out = fn(batch)
    view = rec.restricted_to(range(1, 30)).without([8])
    for row, history, candidates in zip(out.itertuples(), batch["history"], batch["candidates"]):
        assert row.items == view.recommend(history, k=4, candidates=candidates, per_intent=2).item_ids()
    bad = fn(pd.DataFrame({"user": [1], "history": [[1]], "candidates": ["7"]}))
    assert len(bad) == 0  # a row whose candidates are not a list is dropped (on_error="skip")
