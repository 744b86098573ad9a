"""The global time split (--split time) on a small timestamped log, evaluation of an old model on a newer log
(unknown items counted, not crashing), and the MRR@k / coverage@k metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import DataError, Interactions, load_interactions, synthetic_interactions
from s4rec_train.evaluation import coverage, evaluate_targets, grouped_metrics, metrics_from_ranks
from s4rec_train.splits import Targets, time_split

TINY = ["--max-len", "10", "--dim", "16", "--layers", "1", "--heads", "2", "--threads", "1", "--quiet"]

# Five users; times 1..20. With 20 interactions, valid_fraction = test_fraction = 0.2: the test cut is the 80%
# quantile time (16), the validation cut the 60% one (12).
LOG = """user,item,timestamp
a,1,1
a,2,5
a,3,13
a,4,17
b,2,2
b,3,6
b,1,9
b,5,18
c,3,3
c,4,7
c,5,14
c,1,15
d,4,4
d,1,8
d,2,11
d,3,12
e,5,10
e,2,16
e,4,19
e,3,20
"""


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return load_interactions(path, min_count=1)


def _ids(data: Interactions, indices) -> list:
    return [data.item_ids[int(i) - 1] for i in indices]


def test_time_split_cuts_at_the_quantile_times_and_never_trains_on_later_interactions(log):
    split = time_split(log, max_len=10, valid_fraction=0.2, test_fraction=0.2)
    assert (split.valid_cut, split.test_cut) == (12.0, 16.0)
    users = log.user_ids.tolist()
    # training: everything at or before time 12
    starts, stops = log.offsets[:-1], log.offsets[1:]
    for u, user in enumerate(users):
        cut = starts[u] + split.train_length[u]
        assert (log.timestamps[starts[u] : cut] <= 12).all() and (log.timestamps[cut : stops[u]] > 12).all(), user
    ends, lengths = split.ends("train_target")
    assert all((log.timestamps[e - n : e] <= 12).all() for e, n in zip(ends, lengths))
    valid, test = split.targets("valid"), split.targets("test")
    # validation: first interaction in (12, 16]: a 13 -> 3, c 14 -> 5 (c's 15 is not a second target); e 16 -> 2
    assert sorted(users[u] for u in valid.users) == ["a", "c", "e"]
    assert dict(zip([users[u] for u in valid.users], _ids(log, valid.target))) == {"a": 3, "c": 5, "e": 2}
    # test: first interaction after 16, read from everything before it: a 17 -> 4 after 1 2 3; b 18 -> 5
    assert dict(zip([users[u] for u in test.users], _ids(log, test.target))) == {"a": 4, "b": 5, "e": 4}
    a = users.index("a")
    row = list(test.users).index(a)
    assert _ids(log, log.items[test.starts[row] : test.ends[row]]) == [1, 2, 3]
    # d has nothing after 12: neither validated nor tested, but it trains
    assert users.index("d") not in valid.users and users.index("d") not in test.users
    assert split.notes and "time split: training up to 12" in split.notes[0]


def test_time_split_needs_timestamps():
    data = synthetic_interactions(num_users=20, num_items=10)
    with pytest.raises(DataError, match="--split time needs interaction times"):
        time_split(data)


def _timestamped(num_users=300, num_items=40, seed=0) -> str:
    """A CSV log of synthetic histories with increasing times, interleaved across users."""
    data = synthetic_interactions(num_users=num_users, num_items=num_items, seed=seed)
    rng = np.random.default_rng(seed)
    rows = ["user,item,timestamp"]
    for user, history in zip(data.user_ids, data.sequences):
        times = np.sort(rng.uniform(0, 1000, len(history)))
        rows += [f"{user},{item},{t:.3f}" for item, t in zip(history.tolist(), times)]
    return "\n".join(rows) + "\n"


def test_fit_and_evaluate_with_the_time_split(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(_timestamped())
    output = tmp_path / "model.pt"
    runner = CliRunner()
    result = runner.invoke(cli, [str(path), "-o", str(output), "--epochs", "2", "--split", "time", "--backbone",
                                 "--min-count", "1", *TINY])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "time split: training up to" in result.output and "MRR@20" in result.output
    saved = torch.load(output, weights_only=True)
    assert saved["training"]["settings"]["split"] == "time"
    assert saved["metrics"]["test"]["users"]["overall"] < 300  # only users with a test-period interaction
    json_path = tmp_path / "e.json"
    result = runner.invoke(cli, ["evaluate", str(output), str(path), "--split", "time", "--min-count", "1",
                                 "--json", str(json_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    evaluated = json.loads(json_path.read_text())
    for name in ("HR@20", "NDCG@20", "MRR@20", "Coverage@20"):
        assert evaluated["test"]["overall"][name] == pytest.approx(saved["metrics"]["test"]["overall"][name])
    text = tmp_path / "seq.txt"
    text.write_text("u1 1 2 3 4\nu2 2 3 4 5\n")
    result = runner.invoke(cli, [str(text), "-o", str(tmp_path / "x.pt"), "--split", "time", *TINY])
    assert result.exit_code == 2 and "--split time needs interaction times" in result.output


def test_evaluate_on_a_newer_log_counts_unknown_items_as_misses(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text(_timestamped(num_items=40))
    model = tmp_path / "model.pt"
    result = CliRunner().invoke(cli, [str(old), "-o", str(model), "--epochs", "1", "--backbone", *TINY])
    assert result.exit_code == 0, result.output
    newer = tmp_path / "newer.csv"
    newer.write_text(_timestamped(num_items=60, seed=1))  # items 41..60 are unknown to the model
    json_path = tmp_path / "e.json"
    result = CliRunner().invoke(cli, ["evaluate", str(model), str(newer), "--min-count", "1", "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    assert "items of DATA are unknown to the model" in result.output and "counted as misses" in result.output
    evaluated = json.loads(json_path.read_text())
    unknown = evaluated["test"]["unknown"]
    assert unknown["targets"] > 0 and unknown["history_items"] > 0
    assert evaluated["test"]["users"]["overall"] == 300  # no user dropped for unknown items
    assert 0 < evaluated["test"]["overall"]["HR@20"] <= 1 - unknown["targets"] / 300
    only_unknown = tmp_path / "unknown.csv"
    only_unknown.write_text("user,item,timestamp\n" + "".join(f"u{u},x{i},{i}\n" for u in range(5) for i in range(5)))
    result = CliRunner().invoke(cli, ["evaluate", str(model), str(only_unknown), "--min-count", "1"])
    assert result.exit_code == 2 and "none of its 5 items is in the model's vocabulary" in result.output


def test_unknown_targets_are_misses_and_unknown_history_items_are_dropped():
    class Fixed(torch.nn.Module):
        """Scores item i as i (N = 5), whatever the history."""

        config = type("C", (), {"max_len": 4})()

        def __init__(self):
            super().__init__()
            self.item_table = torch.nn.Parameter(torch.arange(6, dtype=torch.float)[:, None])

        def user_embedding(self, history):
            return torch.ones(history.shape[0], 1)

    # own indices 1..6, model indices: own 6 is unknown (0)
    mapping = np.array([0, 1, 2, 3, 4, 5, 0])
    targets = Targets(
        np.array([1, 6, 2, 5, 3, 6], dtype=np.int32), np.array([0, 3]), np.array([2, 5]), np.array([4, 6]),
        np.array([True, False]), np.array([0, 1]),
    )  # fmt: skip
    remapped = targets.remapped(mapping)
    assert remapped.items.tolist() == [1, 2, 5, 3] and remapped.starts.tolist() == [0, 2]
    assert remapped.ends.tolist() == [1, 4] and remapped.target.tolist() == [4, 0]
    assert remapped.unknown_history_items == 1 and remapped.unknown_targets == 1
    result = evaluate_targets(Fixed(), remapped)
    # user 0 saw item 1: item 5 ranks first, 4 second -> rank 1; user 1's target is unknown: a miss
    assert result["head"]["HR@5"] == 1.0 and result["head"]["MRR@5"] == 0.5 and result["tail"]["HR@20"] == 0.0
    assert result["unknown"] == {"targets": 1, "history_items": 1}


def test_mrr_and_coverage_known_values():
    m = metrics_from_ranks(np.array([0, 4, 5, 19, 100]))
    assert m["MRR@5"] == pytest.approx((1 + 1 / 5) / 5)
    assert m["MRR@20"] == pytest.approx((1 + 1 / 5 + 1 / 6 + 1 / 20) / 5)
    assert m["HR@5"] == pytest.approx(2 / 5)  # the existing keys and values stay
    top = np.array([[3, 1, 2, 0], [3, 4, 5, 6]])  # 0: a short list's padding, never counted
    assert coverage(top, num_items=10, ks=(1, 2, 4)) == {"Coverage@1": 0.1, "Coverage@2": 0.3, "Coverage@4": 0.6}
    grouped = grouped_metrics(np.array([0, 30]), np.array([True, False]), np.zeros((2, 20), dtype=np.int64) + 7, 8)
    assert grouped["head"]["Coverage@20"] == grouped["tail"]["Coverage@20"] == 1 / 8
