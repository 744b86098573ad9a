"""s4rec-score end to end with a tiny exported artifact: formats agree with the SDK, errors, atomicity."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from score_helpers import read_jsonl, score_inputs

from s4rec import Recommender
from s4rec.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("sdk", "training", "export"))}


@pytest.fixture(scope="module")
def tiny(plain_artifact, tmp_path_factory):
    return score_inputs(plain_artifact[0], tmp_path_factory)


def score(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_jsonl_scores_match_the_sdk(tiny, tmp_path):
    result = score(
        tiny / "artifact", "-i", tiny / "users.jsonl", "-o", tmp_path / "recs.jsonl", "--k", 5, "--threads", 1
    )
    assert result.exit_code == 0, result.output
    assert "scored 120 users" in result.output
    recommender = Recommender.load(tiny / "artifact")
    rows = read_jsonl(tmp_path / "recs.jsonl")
    assert [r["user"] for r in rows] == list(range(120))
    for row, line in zip(rows, read_jsonl(tiny / "users.jsonl")):
        expected = recommender.recommend(line["history"], k=5)
        assert row["items"] == [item for item, _ in expected]
        assert row["scores"] == pytest.approx([s for _, s in expected], rel=1e-6)
        assert not set(row["items"]) & set(line["history"])  # seen items excluded by default


def test_text_and_shuffled_log_inputs_give_the_same_recommendations(tiny, tmp_path):
    assert score(tiny / "artifact", "-i", tiny / "users.jsonl", "-o", tmp_path / "a.jsonl").exit_code == 0
    result = score(tiny / "artifact", "-i", tiny / "users.txt", "-o", tmp_path / "b.jsonl")
    assert result.exit_code == 0, result.output
    events = [
        (row["user"], item, t) for row in read_jsonl(tiny / "users.jsonl") for t, item in enumerate(row["history"])
    ]
    random.Random(0).shuffle(events)
    log = tmp_path / "events.tsv"
    log.write_text("ts\tu\titem\n" + "".join(f"{t * 10}\t{u}\t{i}\n" for u, i, t in events))
    result = score(tiny / "artifact", "-i", log, "-o", tmp_path / "c.jsonl", "--user-col", "u", "--time-col", "ts",
                   "--sort-buffer", 100)  # fmt: skip
    assert result.exit_code == 0, result.output
    a, b, c = (read_jsonl(tmp_path / f"{x}.jsonl") for x in "abc")
    assert a == b
    assert sorted(a, key=lambda r: r["user"]) == c  # the log comes out in user order


def test_csv_output_and_no_exclude_seen(tiny, tmp_path):
    result = score(tiny / "artifact", "-i", tiny / "users.txt", "-o", tmp_path / "r.csv", "--k", 3, "--no-exclude-seen")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "user,rank,item,score" and len(lines) == 1 + 120 * 3
    user, rank, item, value = lines[1].split(",")
    history = read_jsonl(tiny / "users.jsonl")[0]["history"]
    best = Recommender.load(tiny / "artifact").recommend(history, k=1, exclude_seen=False)[0]
    assert (user, rank, int(item)) == ("0", "1", best[0]) and float(value) == pytest.approx(best[1], rel=1e-6)


def test_existing_output_needs_force(tiny, tmp_path):
    out = tmp_path / "recs.jsonl"
    out.write_text("keep me\n")
    result = score(tiny / "artifact", "-i", tiny / "users.txt", "-o", out)
    assert result.exit_code == 2 and "already exists. Pass --force" in result.output
    assert out.read_text() == "keep me\n"
    assert score(tiny / "artifact", "-i", tiny / "users.txt", "-o", out, "--force").exit_code == 0
    assert len(read_jsonl(out)) == 120


def test_malformed_records_skip_with_line_numbers_or_fail(tiny, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"user": 1, "history": [1, 2]}\n{"user": 2, "history": [1,\n{"user": 3, "history": []}\n'
                      '{"user": 4, "history": [true]}\n')  # fmt: skip
    result = score(tiny / "artifact", "-i", source, "-o", tmp_path / "out.jsonl", "--quiet")
    assert result.exit_code == 0, result.output
    assert f"{source}:2: not valid JSON" in result.output and f"{source}:4:" in result.output
    assert "skipped 2 malformed record(s)" in result.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["user"] for r in rows] == [1, 3]
    assert rows[1]["scores"] == [None] * 10  # empty history: popular items, no model score
    result = score(tiny / "artifact", "-i", source, "-o", tmp_path / "fail.jsonl", "--on-error", "fail")
    assert (
        result.exit_code == 1 and f"{source}:2: not valid JSON" in result.output and "--on-error skip" in result.output
    )
    assert not (tmp_path / "fail.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_sigterm_leaves_no_output_and_no_temporary_file(tiny, tmp_path):
    line = (tiny / "users.jsonl").read_text().splitlines()[0] + "\n"
    source = tmp_path / "many.jsonl"
    source.write_text(line * 100_000)
    out = tmp_path / "out" / "recs.jsonl"
    command = [sys.executable, "-m", "s4rec.cli", str(tiny / "artifact"), "-i", str(source), "-o", str(out),
               "--chunk-size", "1", "--threads", "1", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # generous: a loaded 2-core machine starts Python slowly
    while not list(out.parent.glob(".recs.jsonl.*.partial")):  # wait until it is writing
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert list(out.parent.iterdir()) == []


def test_scoring_modules_do_not_import_torch_onnx_ray_or_pandas():
    code = (
        "import sys, s4rec, s4rec.cli, s4rec.batch, s4rec.records\n"
        "heavy = [m for m in ('torch', 'onnx', 'ray', 'pandas', 's4rec.ray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True)


def test_output_to_stdout(tiny):
    result = score(tiny / "artifact", "-i", tiny / "users.txt", "-o", "-", "-q", "--k", 2)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 120 and all(len(r["items"]) == 2 for r in rows)


@pytest.mark.parametrize("format_rows", [1024, 3])
def test_ranked_arrays_are_written_exactly_as_recommendation_lists(tiny, format_rows, monkeypatch):
    """s4rec-score formats an s4rec Recommender's ranked arrays directly: the same text as write_batch of
    the recommendations, for full rows, fallbacks (null scores), rows with fewer than k items, str ids."""
    import io

    import numpy as np

    from s4rec.records import Record
    from s4rec.results import RankedBatch, ScoredChunk
    from s4rec.writers import JsonlWriter

    monkeypatch.setattr("s4rec.writers.FORMAT_ROWS", format_rows)
    recommender = Recommender.load(tiny / "artifact")
    everything = list(recommender.metadata.item_ids)
    histories = [[3, 4], [], ["unknown"], everything, everything[:-2], [5] * 80, [7, "x", 8], [1], [2], [3], [4]]
    histories += [[9, 10, 11], [12], [13, 14], [15], [16], [17]]
    users = [1, "ü-ser", 3, 'q"uote', 5, 6, 7, 2**70, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    records = [Record(u, h, i) for i, (u, h) in enumerate(zip(users, histories), 1)]

    def both(recommender, ranked) -> tuple[str, str]:
        fast, slow = io.StringIO(), io.StringIO()
        JsonlWriter(fast).write_scored(ScoredChunk(records, ranked=ranked))
        JsonlWriter(slow).write_batch([(r.user, recs) for r, recs in zip(records, ranked.recommendations())])
        return fast.getvalue(), slow.getvalue()

    for k in (1, 5, recommender.top_k):
        fast, slow = both(recommender, recommender.rank_batch(histories, k=k))
        assert fast == slow and len(fast.splitlines()) == len(records)
        assert [json.loads(line)["user"] for line in fast.splitlines()] == users

    str_ids = np.array([None, *(f'sku-{i}\u00e9"' for i in everything)], dtype=object)  # a vocabulary of str ids

    ranked = recommender.rank_batch(histories, k=4)
    fast, slow = both(recommender, RankedBatch(str_ids, *[getattr(ranked, a) for a in RankedBatch.__slots__[1:]]))
    assert fast == slow and "sku-" in fast
    # only the ids written were encoded (a large catalogue's are encoded as chunks first write them)
    from s4rec.writers import _id_texts

    written = set(ranked.items[~ranked.fallback].ravel().tolist()) - {0}
    assert set(np.flatnonzero(_id_texts(str_ids, None).done).tolist()) - {0} <= written | {0}


def test_progress_bar_shows_users_of_the_estimated_total_rate_and_time_left():
    import io

    from s4rec.cli import ProgressBar
    from s4rec.progress import ScoreProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = ProgressBar(file=terminal)
    bar(ScoreProgress("scoring", 500, 5_000, 10_000, elapsed=2.0))
    assert "500 of ~1,000 users, 250 users/s, 0:00:02 left" in terminal.getvalue() and " 50%" in terminal.getvalue()
    bar(ScoreProgress("scoring", 1_000, 10_000, 10_000, elapsed=4.0, finished=True))
    assert "1,000 of 1,000 users, 250 users/s" in terminal.getvalue() and "100%" in terminal.getvalue()
    assert bar.bar is None  # closed by the last report


def test_version_and_variant_help():
    result = score("--version")
    assert result.exit_code == 0 and "version" in result.output
    assert "mobile" in score("--help").output


def test_summary_counts_fallback_users_and_users_with_only_bad_rows(tiny, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"user": 1, "history": [1, 2]}\n{"user": 2, "history": []}\n{"user": 3, "history": ["unknown-id"]}\n'
    )
    result = score(tiny / "artifact", "-i", source, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert "scored 3 users" in result.output and "2 of them got the popular items" in result.output
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n7,1,1\n7,2,2\n8,3,later\n8,4,never\n9,5\n")
    result = score(tiny / "artifact", "-i", log, "-o", tmp_path / "log.jsonl")
    assert result.exit_code == 0, result.output
    assert "scored 1 user in" in result.output and "skipped 3 malformed record(s)" in result.output
    assert "2 user(s) had only malformed rows and got no output" in result.output


def test_candidates_allow_deny_and_per_intent(artifact, tmp_path):
    """Issue 23: a record's "candidates", --allow / --deny for every user, --per-intent, the version."""
    rec = Recommender.load(artifact[0])
    histories = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9], [10]]
    lines = []
    for u, history in enumerate(histories):
        record = {"user": u, "history": history}
        if u % 2 == 0:
            record["candidates"] = list(range(5, 25)) + ["unknown"]
        lines.append(json.dumps(record))
    users = tmp_path / "users.jsonl"
    users.write_text("\n".join(lines) + "\n")
    (tmp_path / "allow.txt").write_text("\n".join(map(str, range(1, 31))) + "\n\nnot-an-item\n")
    (tmp_path / "deny.txt").write_text("5\n6\n")
    result = score(artifact[0], "-i", users, "-o", tmp_path / "out.jsonl", "--k", 5, "--allow", tmp_path / "allow.txt",
                   "--deny", tmp_path / "deny.txt", "--per-intent", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"; model version {rec.version}" in result.output
    assert (
        "--allow" in result.output and "1 of 31 item ids unknown to the model, ignored: 'not-an-item'" in result.output
    )
    view = rec.restricted_to(range(1, 31)).without([5, 6])
    for row, history in zip(read_jsonl(tmp_path / "out.jsonl"), histories):
        candidates = list(range(5, 25)) if row["user"] % 2 == 0 else None
        want = view.recommend(history, k=5, candidates=candidates, per_intent=2)
        assert row["items"] == want.item_ids(), row
        assert set(row["items"]) <= set(range(1, 31)) - {5, 6}
    # a malformed "candidates" is a malformed record, reported with its line
    users.write_text(
        '{"user": 1, "history": [1], "candidates": "5"}\n{"user": 2, "history": [1], "candidates": [1.5]}\n'
    )
    result = score(artifact[0], "-i", users, "-o", tmp_path / "bad.jsonl")
    assert result.exit_code == 0
    assert '"candidates" must be a list of item ids (or null)' in result.output
    assert '"candidates" items must be integers or non-empty strings, got 1.5' in result.output
    (tmp_path / "empty.txt").write_text("\n")
    result = score(artifact[0], "-i", users, "-o", tmp_path / "x.jsonl", "--allow", tmp_path / "empty.txt")
    assert result.exit_code == 2 and "holds no item id" in result.output


def test_per_intent_needs_item_intents(tiny, tmp_path):
    result = score(tiny / "artifact", "-i", tiny / "users.jsonl", "-o", tmp_path / "o.jsonl", "--per-intent", 1)
    assert result.exit_code == 1 and "has no intents" in result.output and not (tmp_path / "o.jsonl").exists()
