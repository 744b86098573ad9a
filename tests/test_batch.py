"""Streaming readers, writers, atomic output and the batch loop of s4rec-score, with a stand-in recommender.

The stand-in makes these tests independent of any model: what is checked here is the plumbing (formats,
grouping, line numbers, bounded memory, atomicity). tests/test_score_cli.py runs the same paths end to end
with a real exported artifact.
"""

import gzip
import io
import json
import random

import pytest

from s4rec.batch import ScoreError, atomic_output, score_file, score_records
from s4rec.errors import InputError
from s4rec.logs import LogColumns, read_log
from s4rec.records import BadRecord, Record, read_jsonl, read_text


class StandIn:
    """Recommends catalogue items 1..30 by a fixed score, seen ones left out; refuses the item 'boom'."""

    def __init__(self) -> None:
        self.calls = []

    def recommend_batch(self, histories, k=10, exclude_seen=True, batch_size=256):
        self.calls.append(len(histories))
        out = []
        for history in histories:
            if "boom" in history:
                raise ValueError("item 'boom' cannot be scored")
            seen = set(history) if exclude_seen else set()
            ranked = [(item, 1.0 / item) for item in range(1, 31) if item not in seen]
            out.append(ranked[:k])
        return out


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_jsonl_reports_malformed_records_with_line_numbers():
    lines = [
        '{"user": 1, "history": [1, 2]}\n',
        "\n",
        "{not json\n",
        '{"user": "u2", "history": ["a", 3]}\n',
        '{"user": null, "history": [1]}\n',
        '{"user": 4, "history": 5}\n',
        '{"user": 5, "history": [1.5]}\n',
        "[1, 2]\n",
        '{"user": 6, "history": []}\n',
    ]
    out = list(read_jsonl(lines))
    assert [type(r).__name__ for r in out] == [
        "Record", "BadRecord", "Record", "BadRecord", "BadRecord", "BadRecord", "BadRecord", "Record",
    ]  # fmt: skip
    assert out[0] == Record(1, [1, 2], 1) and out[2] == Record("u2", ["a", 3], 4)
    assert [r.line for r in out if isinstance(r, BadRecord)] == [3, 5, 6, 7, 8]
    assert "not valid JSON" in out[1].reason and '"user"' in out[3].reason and '"history"' in out[4].reason
    assert out[-1] == Record(6, [], 9)


def test_read_text_parses_ids_like_training():
    out = list(read_text(["7 1 2 x\n", "\n", "u8\n"]))
    assert out == [Record(7, [1, 2, "x"], 1), Record("u8", [], 3)]


LOG = """user,item,timestamp,extra
b,3,30,x
a,1,10,x
b,1,10,x
a,2,5,x
bad-row
b,2,20,x
a,9,oops,x
7,4,1,x
a,5,5,x
"""


@pytest.mark.parametrize("sort_buffer", [1, 2, 3, 1000])
def test_read_log_groups_by_user_orders_by_time_and_spills(sort_buffer, tmp_path, monkeypatch):
    monkeypatch.setattr("s4rec.logs.MERGE_FAN_IN", 2)  # also exercise multi-pass merging
    monkeypatch.setattr("s4rec.logs.SPILL_BLOCK", 2)
    bad = []
    records = list(read_log(io.StringIO(LOG), sort_buffer=sort_buffer, temp_dir=str(tmp_path), on_bad=bad.append))
    # int users before string users; time ties keep file order (a: 2 at line 5 before 5 at line 10)
    assert records == [Record(7, [4], 9), Record("a", [2, 5, 1], 5), Record("b", [1, 2, 3], 4)]
    assert [(b.line, b.reason.split()[0]) for b in bad] == [(6, "1"), (8, "timestamp")]
    assert list(tmp_path.iterdir()) == []  # temporary runs are gone


def test_read_log_header_problems_are_input_errors():
    with pytest.raises(InputError, match=r"missing column\(s\) \['timestamp'\].*log_columns"):
        list(read_log(io.StringIO("user,item,time\n1,2,3\n")))
    records = list(read_log(io.StringIO("u\ti\tt\n1\t2\t3\n"), LogColumns("u", "i", "t")))
    assert records == [Record(1, [2], 2)]


def test_score_records_batches_and_isolates_a_refused_record():
    records = [Record(u, [u], u) for u in range(1, 8)] + [Record(8, ["boom"], 8), Record(9, [1], 9)]
    bad = []
    model = StandIn()
    batches = list(score_records(model, records, k=3, chunk_size=4, on_bad=bad.append))
    assert [len(b) for b in batches] == [4, 3, 1]  # the batch with 'boom' is rescored one by one, minus it
    assert [r.user for b in batches for r, _ in b] == [1, 2, 3, 4, 5, 6, 7, 9]
    assert batches[0][0][1] == [(2, 0.5), (3, 1 / 3), (4, 0.25)]
    assert len(bad) == 1 and bad[0].line == 8 and "boom" in bad[0].reason


def test_score_file_jsonl_to_jsonl_and_csv(tmp_path):
    source = tmp_path / "in.jsonl.gz"  # compressed input works too
    with gzip.open(source, "wt") as f:
        f.write('{"user": "x", "history": [1, 3]}\n{"user": 2, "history": []}\n')
    report = score_file(StandIn(), source, tmp_path / "out.jsonl", k=2)
    assert (report.users, report.skipped) == (2, 0)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0] == {"user": "x", "items": [2, 4], "scores": [0.5, 0.25]}
    assert rows[1] == {"user": 2, "items": [1, 2], "scores": [1, 0.5]}
    score_file(StandIn(), source, tmp_path / "out.csv.gz", k=2, exclude_seen=False)
    text = gzip.open(tmp_path / "out.csv.gz", "rt").read()
    assert text.splitlines() == ["user,rank,item,score", "x,1,1,1", "x,2,2,0.5", "2,1,1,1", "2,2,2,0.5"]


def test_score_file_skip_reports_lines_and_count_fail_stops_without_output(tmp_path):
    source = write(tmp_path / "in.jsonl", '{"user": 1, "history": [1]}\noops\n{"user": 2, "history": ["boom"]}\n')
    warnings = []
    report = score_file(StandIn(), source, tmp_path / "out.jsonl", chunk_size=8, warn=warnings.append)
    assert (report.users, report.skipped) == (1, 2)
    assert warnings[0].startswith(f"{source}:2: not valid JSON") and warnings[0].endswith("(skipped)")
    assert warnings[1].startswith(f"{source}:3: user 2:") and "boom" in warnings[1]
    assert "skipped 2 malformed record(s)" in report.summary()
    with pytest.raises(ScoreError, match=r"in.jsonl:2: not valid JSON.*on_error='skip'"):
        score_file(StandIn(), source, tmp_path / "failed.jsonl", on_error="fail")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no partial, no temp file


def test_atomic_output_refuses_to_overwrite_and_leaves_nothing_on_interrupt(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(ScoreError, match="already exists. Pass force=True"):
        with atomic_output(target):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target, force=True) as out:
            out.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    with atomic_output(target, force=True) as out:
        out.write("new\n")
    assert target.read_text() == "new\n"


def test_log_input_scores_every_user_once_in_bounded_memory(tmp_path):
    rng = random.Random(0)
    events = [(u, item, t) for u in range(60) for t, item in enumerate(rng.sample(range(1, 31), 4))]
    rng.shuffle(events)
    source = write(tmp_path / "log.tsv", "user\titem\ttimestamp\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in events))
    model = StandIn()
    report = score_file(model, source, tmp_path / "out.jsonl", k=1, sort_buffer=7, chunk_size=16)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert report.users == 60 and [r["user"] for r in rows] == list(range(60))
    assert max(model.calls) == 16
    by_user = {}
    for u, i, _ in sorted(events, key=lambda e: (e[0], e[2])):
        by_user.setdefault(u, []).append(i)
    for row in rows:  # best unseen item = the smallest id not in the history
        assert row["items"] == [min(set(range(1, 31)) - set(by_user[row["user"]]))]


def test_missing_input_and_unknown_format_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        score_file(StandIn(), tmp_path / "nope.jsonl", tmp_path / "o.jsonl")
    source = write(tmp_path / "in.jsonl", "")
    with pytest.raises(ScoreError, match="unknown output format 'xml'"):
        score_file(StandIn(), source, tmp_path / "o.xml", output_format="xml")


def test_read_ahead_gives_the_same_batches_and_carries_errors_from_its_thread(tmp_path):
    records = [Record(u, [u % 30 + 1], u) for u in range(50)] + [BadRecord(51, "bad"), Record(52, [1], 52)]
    plain = list(score_records(StandIn(), records, k=2, chunk_size=7, on_bad=lambda bad: None))
    ahead = list(score_records(StandIn(), records, k=2, chunk_size=7, on_bad=lambda bad: None, read_ahead=True))
    assert ahead == plain and sum(len(b) for b in ahead) == 51
    log = write(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n1,2,oops\n")  # read in the read-ahead thread
    with pytest.raises(ScoreError, match=r"log.csv:3: timestamp 'oops'"):
        score_file(StandIn(), log, tmp_path / "out.jsonl", on_error="fail")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_a_write_error_in_the_write_behind_thread_stops_the_run_without_output(tmp_path, monkeypatch):
    def full_disk(self, rows):
        raise OSError("No space left on device")

    monkeypatch.setattr("s4rec.writers.JsonlWriter.write_batch", full_disk)
    source = write(tmp_path / "in.txt", "".join(f"{u} 1 2\n" for u in range(40)))
    with pytest.raises(OSError, match="No space left"):
        score_file(StandIn(), source, tmp_path / "out.jsonl", chunk_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_read_jsonl_blocks_give_the_same_records_as_line_by_line(monkeypatch):
    """read_jsonl parses blocks of well-formed lines at once; any block gives what line-by-line reading gives."""
    from s4rec import records

    good = [
        '{"user": 1, "history": [1, 2]}\n',
        '{"history": ["a", 3], "user": "u2"}\r\n',
        '{"user": "ü", "history": []}  \n',
        '{"user": 3, "history": [4], "extra": {"x": [1]}}',
    ]
    bad = [
        "\n",
        "   \n",
        '  {"user": 1, "history": [1]}\n',  # leading blanks: fine for json.loads
        '{"user": 1, "history": [1]} {"user": 2, "history": []}\n',
        '{"user": 1, "history": [1]}, 5\n',
        "{not json\n",
        '{"user": 1, "history": [1\n',
        "2]}\n",
        '{"user": "", "history": [1]}\n',
        '{"user": true, "history": [1]}\n',
        '{"user": 1, "history": [""]}\n',
        '{"user": 1, "history": [1.5]}\n',
        '{"user": 1, "history": "1 2"}\n',
        '{"user": 1}\n',
        '{"history": [1]}\n',
        "[1, 2]\n",
        '"text"\n',
        '\ufeff{"user": 1, "history": [1]}\n',
        '{"user": NaN, "history": [1]}\n',
    ]
    monkeypatch.setattr(records, "JSONL_BLOCK", 4)
    rng = random.Random(0)
    for _ in range(200):
        lines = [rng.choice(good) if rng.random() < 0.8 else rng.choice(bad) for _line in range(rng.randrange(0, 13))]
        assert list(records.read_jsonl(lines)) == list(records.read_jsonl_lines(lines)), lines
    lines = good * 50
    assert list(records.read_jsonl(lines)) == list(records.read_jsonl_lines(lines))
    assert records.parse_jsonl_block(good, 1, __import__("json").JSONDecoder().scan_once) is not None  # the fast path


def test_progress_counts_users_scored_and_estimates_the_total_from_bytes(tmp_path):
    """on_progress follows the users scored (not the bytes read ahead): it does not reach the end early, its
    estimate of the users in all converges, and the last report is exact."""
    users = 20_000
    source = write(tmp_path / "in.txt", "".join(f"{u} 1 2 3 4 5 6 7 8 9 10 11\n" for u in range(users)))
    reports = []
    report = score_file(StandIn(), source, tmp_path / "out.jsonl", k=1, chunk_size=1000, on_progress=reports.append)
    assert report.users == users
    assert [r.users for r in reports] == [*range(1000, users + 1, 1000), users]
    assert all(r.stage == "scoring" and r.total_events is None for r in reports)
    assert reports[-1].finished and reports[-1].fraction == 1 and reports[-1].estimated_users == users
    assert not any(r.finished for r in reports[:-1]) and all(r.fraction < 1 for r in reports[:-1])
    assert reports[0].fraction < 0.25  # one chunk of twenty, plus what the reader's buffer holds
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions)
    assert abs(reports[len(reports) // 2].estimated_users - users) < 0.1 * users
    assert all(r.seconds_left is not None and r.seconds_left >= 0 for r in reports)


def test_progress_of_a_log_follows_its_events_once_sorted(tmp_path):
    events = [(u, item, t) for u in range(40) for t, item in enumerate(range(1, 1 + u % 5))]  # 32 users
    source = write(tmp_path / "log.csv", "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in events))
    reports = []
    score_file(StandIn(), source, tmp_path / "out.jsonl", chunk_size=8, on_progress=reports.append)
    scoring = [r for r in reports if r.stage == "scoring"]
    assert scoring[0].users == 0 and all(r.total_events == len(events) for r in scoring)
    assert [r.events for r in scoring][-1] == len(events) and scoring[-1].finished and scoring[-1].users == 32
    assert scoring[-2].fraction == min(scoring[-2].events / len(events), 0.999)


def test_k_beyond_the_artifacts_top_k_stops_the_run_instead_of_skipping_every_record(tmp_path):
    class TopK(StandIn):
        top_k = 5

    source = write(tmp_path / "in.txt", "1 2 3\n2 3\n")
    with pytest.raises(ScoreError, match=r"k must be in 1\.\.5 \(the artifact's top_k\), got 6") as caught:
        score_file(TopK(), source, tmp_path / "out.jsonl", k=6)
    assert "--k" in caught.value.for_command_line() and "--k" not in str(caught.value)
    assert not (tmp_path / "out.jsonl").exists()
