"""Reading data, k-core filtering, the leave-one-out split and their error messages."""

import gzip

import numpy as np
import pytest

from s4rec_train.data import (
    DataError,
    head_users,
    k_core,
    leave_one_out,
    left_pad,
    load_interactions,
    read_interactions,
    read_sequences,
    remap_to_vocabulary,
)


def test_read_sequences_keeps_ids_and_order(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("1 10 20 30\n2 30 10 20 40\n3 5 6\n")
    data = read_sequences(path)
    assert data.user_ids == [1, 2]  # user 3 has only 2 items
    assert data.dropped_users == 1
    assert data.item_ids == [10, 20, 30, 40]  # items of dropped users leave the vocabulary
    assert [data.item_ids[i - 1] for i in data.sequences[1]] == [30, 10, 20, 40]


def test_read_sequences_gzip_and_string_ids(tmp_path):
    path = tmp_path / "seq.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("alice a b c\nbob c b a d\n")
    data = read_sequences(path)
    assert data.user_ids == ["alice", "bob"]
    assert data.item_ids == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "text, message",
    [("", "empty"), ("1\n", "no items"), ("1 2 3 4\n1 5 6 7\n", "more than one line")],
)
def test_read_sequences_errors(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_sequences(path)


def test_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_interactions(tmp_path / "nope.txt")


def test_read_interactions_orders_by_time_and_filters(tmp_path):
    rows = ["user,item,timestamp"]
    # u1 interacts with a..e in reverse file order; every item appears twice (u1 and u2) -> 2-core survives
    for t, item in enumerate("edcba"):
        rows.append(f"u1,{item},{10 - t}")
        rows.append(f"u2,{item},{t}")
    rows.append("u3,z,1")  # z appears once: removed by the 2-core, then u3 has nothing
    path = tmp_path / "log.csv"
    path.write_text("\n".join(rows) + "\n")
    data = read_interactions(path, min_count=2)
    assert data.user_ids == ["u1", "u2"]
    items = lambda seq: [data.item_ids[i - 1] for i in seq]  # noqa: E731
    assert items(data.sequences[0]) == list("abcde")
    assert items(data.sequences[1]) == list("edcba")
    assert any("2-core" in n for n in data.notes)


def test_read_interactions_tsv_custom_columns(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("who\twhat\twhen\n" + "".join(f"7\t{i}\t{i}\n" for i in range(4)))
    data = read_interactions(path, user_col="who", item_col="what", time_col="when", min_count=1)
    assert data.user_ids == [7] and data.item_ids == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("user,item\n1,2\n", r"missing column\(s\) \['timestamp'\]"),
        ("user,item,timestamp\n1,2,yesterday\n", r"log.csv:2: timestamp 'yesterday' in column 'timestamp' is not"),
        ("user,item,timestamp\n1,2\n", r"log.csv:2: 2 field\(s\)"),
        ("user,item,timestamp\n", "no interactions"),
    ],
)
def test_read_interactions_errors(tmp_path, text, message):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_interactions(path)


def test_all_users_too_short_is_an_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("1 1 2\n2 3\n")
    with pytest.raises(DataError, match="at least 3 interactions"):
        read_sequences(path)


def test_k_core_is_iterated_to_a_fixed_point():
    events = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    users, items = (np.unique(column, return_inverse=True)[1] for column in zip(*events))
    kept = [event for event, keep in zip(events, k_core(users, items, 2)) if keep]
    # c has one interaction -> u3 drops to one -> u3 removed -> a still has 2
    assert sorted(kept) == sorted(events[:4])


def test_leave_one_out_split():
    from s4rec_train.data import Interactions

    data = Interactions.from_sequences([1, 2, 3, 4, 5, 6], ["a", "b"], [np.array([1, 2, 3, 4, 5]), np.array([6, 5, 4])])
    split = leave_one_out(data, max_len=4)
    assert split.test_target.tolist() == [5, 4]
    assert split.valid_target.tolist() == [4, 5]
    assert split.test_history.tolist() == [[1, 2, 3, 4], [0, 0, 6, 5]]
    assert split.valid_history.tolist() == [[0, 1, 2, 3], [0, 0, 0, 6]]
    assert split.train_input.tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert split.train_target.tolist() == [[0, 0, 2, 3], [0, 0, 0, 0]]
    assert split.train_length.tolist() == [3, 1]


def test_left_pad_keeps_most_recent():
    assert left_pad([np.arange(1, 8), np.array([], dtype=np.int64)], 3).tolist() == [[5, 6, 7], [0, 0, 0]]


def test_head_users_are_the_longest_fifth():
    lengths = np.array([1, 9, 3, 8, 2, 2, 2, 2, 2, 2])
    assert np.flatnonzero(head_users(lengths)).tolist() == [1, 3]


def test_remap_to_vocabulary_drops_unknown(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("1 10 20 30 99\n2 99 98 10\n")
    data = remap_to_vocabulary(read_sequences(path), [10, 20, 30])
    assert data.user_ids == [1]
    assert data.sequences[0].tolist() == [1, 2, 3]
    assert any("unknown" in n for n in data.notes)
