"""The columnar data path: Parquet and CSV logs through pyarrow, the array-based text reader, compact ids, and
the same results and error messages as the line-by-line readers they replace."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from s4rec_train.data import DataError, Interactions, leave_one_out, load_interactions, read_sequences
from s4rec_train.ids import Ids, as_ids


def _rows(n_users=40, n_items=15, seed=0):
    """A shuffled log in which every user and item survive a 2-core; ties in time included."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for _ in range(int(rng.integers(3, 9))):
            rows.append((f"u{u}", int(rng.integers(0, n_items)), int(rng.integers(0, 5))))
    return [rows[i] for i in rng.permutation(len(rows))]


def _by_user(data: Interactions) -> dict:
    return {user: [data.item_ids[i - 1] for i in seq] for user, seq in zip(data.user_ids, data.sequences)}


def _python_reference(rows, min_count):
    """What the line-by-line reader did: k-core, users by first kept event, items by (time, file order)."""
    events = [(u, i, t, n) for n, (u, i, t) in enumerate(rows)]
    while True:
        users, items = {}, {}
        for u, i, _, _ in events:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        kept = [e for e in events if users[e[0]] >= min_count and items[e[1]] >= min_count]
        if len(kept) == len(events):
            break
        events = kept
    out: dict = {}
    for u, i, t, n in events:
        out.setdefault(u, []).append((t, n, i))
    return {u: [i for _, _, i in sorted(v)] for u, v in out.items() if len(v) >= 3}


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "tsv", "parquet"])
def test_every_log_format_groups_like_the_line_by_line_reader(tmp_path, suffix):
    rows = _rows()
    path = tmp_path / f"log.{suffix}"
    if suffix == "parquet":
        users, items, times = zip(*rows)
        pq.write_table(pa.table({"timestamp": list(times), "user": list(users), "item": list(items)}), path)
    else:
        sep = "\t" if suffix == "tsv" else ","
        text = f"user{sep}item{sep}timestamp\n" + "".join(f"{u}{sep}{i}{sep}{t}\n" for u, i, t in rows)
        if suffix.endswith(".gz"):
            with gzip.open(path, "wt") as f:
                f.write(text)
        else:
            path.write_text(text)
    data = load_interactions(path, min_count=2)
    want = _python_reference(rows, 2)
    assert list(data.user_ids) == list(want)  # users in order of their first kept event
    assert _by_user(data) == want
    assert list(data.item_ids) == sorted({i for seq in want.values() for i in seq})
    assert isinstance(data.items, np.ndarray) and data.items.dtype == np.int32 and len(data.offsets) == 41


def test_irregular_rows_are_read_exactly_and_bad_rows_named_by_line(tmp_path):
    good = "".join(f"{u % 7},{u % 5},{u}\n" for u in range(2000))
    path = tmp_path / "log.csv"
    # a row with an extra field, a line of blanks, spaces around fields and a user written " 006 ": all fine for the
    # line-by-line reader, so they are read (pyarrow is strict about them; the exact reader takes over)
    path.write_text("user,item,timestamp\n" + good + "3,4,2000,extra\n   \n 006 , 1 , 2001 \n")
    data = load_interactions(path, min_count=1)
    assert sorted(data.user_ids) == list(range(7))
    assert data.num_interactions == 2002
    assert _by_user(data)[6][-1] == 1  # " 006 " is the user 6, its last event the item 1
    # a bad row late in a large file still gets its own line number and the usual message
    path.write_text("user,item,timestamp\n" + good + "1,2,yesterday\n")
    with pytest.raises(DataError, match=r"log.csv:2002: timestamp 'yesterday' in column 'timestamp' is not a number"):
        load_interactions(path)
    path.write_text("user,item,timestamp\n" + good + ",2,5\n")
    with pytest.raises(DataError, match=r"log.csv:2002: empty 'user' field. Fix the row or remove it."):
        load_interactions(path)


def test_string_ids_and_ids_that_look_like_integers(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\nalice,+5,1\nalice,x,2\nalice,05,3\nbob,5,1\nbob,x,2\nbob,y,3\n")
    data = load_interactions(path, min_count=1)
    assert data.user_ids == ["alice", "bob"]
    assert data.item_ids == [5, "x", "y"]  # +5, 05 and 5 are the integer 5; integers sort before strings
    assert _by_user(data) == {"alice": [5, "x", 5], "bob": [5, "x", "y"]}


def test_parquet_errors_name_the_file_row_and_columns(tmp_path):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [1, 2], "item": [3, 4], "time": [1, 2]}), path)
    with pytest.raises(DataError, match=r"missing column\(s\) \['timestamp'\]; the file has") as error:
        load_interactions(path)
    assert "--time-col" in error.value.for_command_line()
    pq.write_table(pa.table({"user": ["a", None, "c"], "item": [1, 2, 3], "timestamp": [1, 2, 3]}), path)
    with pytest.raises(DataError, match=r"log.parquet: row 2: empty 'user' field"):
        load_interactions(path)
    pq.write_table(pa.table({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": ["1", "x", "3"]}), path)
    with pytest.raises(DataError, match=r"row 2: timestamp 'x' in column 'timestamp' is not a number"):
        load_interactions(path)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_interactions(path)


def test_parquet_times_and_dictionary_ids(tmp_path):
    path = tmp_path / "log.parquet"
    times = pa.array(np.array([3, 1, 2, 1, 2, 3], dtype="datetime64[s]"))
    users = pa.array(["a", "a", "a", "b", "b", "b"]).dictionary_encode()
    pq.write_table(pa.table({"user": users, "item": [30, 10, 20, 10, 20, 30], "timestamp": times}), path)
    data = load_interactions(path, min_count=1)
    assert _by_user(data) == {"a": [10, 20, 30], "b": [10, 20, 30]}


def test_text_reader_splits_like_str_split_and_ends_lines_like_python(tmp_path):
    path = tmp_path / "seq.txt"
    # \x1c and the ideographic space are whitespace to str.split(); a lone \r ends a line; "07" is the user 7
    path.write_bytes("7 1\x1c2\u30003\r8 3 2 1\r\n\n9\t4 4 4  \n".encode())
    data = read_sequences(path)
    assert data.user_ids == [7, 8, 9]
    assert _by_user(data) == {7: [1, 2, 3], 8: [3, 2, 1], 9: [4, 4, 4]}
    path.write_text("1 10 20 30\n2 5 6 7\n\n01 7 8 9\n")
    with pytest.raises(DataError, match=r"seq.txt:4: user 1 appears on more than one line"):
        read_sequences(path)
    path.write_text("1 10 20 30\n   \n  2  \n")
    with pytest.raises(DataError, match=r"seq.txt:3: a user with no items \('2'\)"):
        read_sequences(path)
    path.write_bytes(b"1 2 3 \xff\n")
    with pytest.raises(DataError, match=r"seq.txt:1: not valid UTF-8 \(byte 0xff at column 7\); re-encode"):
        read_sequences(path)


def test_ids_read_like_lists_and_are_stored_compactly():
    ints, strings, mixed = as_ids([3, 1, 2]), as_ids(["b", "a"]), as_ids([1, "a"])
    assert ints.values.dtype == np.int64 and strings.values.dtype != object and mixed.values.dtype == object
    assert ints == [3, 1, 2] and [3, 1, 2] == ints and ints != [3, 1] and list(strings) == ["b", "a"]
    assert type(ints[0]) is int and type(strings[1]) is str and isinstance(ints[1:], Ids)
    assert as_ids([2**70]).tolist() == [2**70]


def test_split_windows_are_cut_from_the_flat_arrays():
    sequences = [np.arange(1, 9), np.array([9, 10, 11])]
    data = Interactions.from_sequences(list(range(1, 12)), ["a", "b"], sequences)
    split = leave_one_out(data, max_len=3)
    assert split.window("test", np.array([0, 1])).tolist() == [[5, 6, 7], [0, 9, 10]]
    assert split.window("train_input", np.array([0]), width=2).tolist() == [[4, 5]]
    assert split.window_item_counts("valid").tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0]
    items, starts, ends = split.seen("test")
    assert items[starts[0] : ends[0]].tolist() == list(range(1, 8))  # the whole history, not the window
