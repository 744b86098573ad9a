"""Format 3 sidecar files and the array-backed item vocabulary, without an export: encodings, checks, mapping."""

from __future__ import annotations

import numpy as np
import pytest

from s4rec import ArtifactError, ChecksumError, ItemVocabulary
from s4rec.sidecars import TABLE_HEADER_BYTES, Sidecars, write_item_ids, write_npy


@pytest.mark.parametrize(
    "ids",
    [[5, 3, 10**12, -7, 0], ["a", "é-sku", "", "z" * 40], [1, "1", 2]],
    ids=["sparse ints", "strings", "mixed"],
)
def test_item_ids_round_trip(tmp_path, ids):
    entries = write_item_ids(tmp_path, ids)
    got = Sidecars(tmp_path, entries, tmp_path / "model.onnx").item_ids(len(ids))
    assert list(got.tolist() if isinstance(got, np.ndarray) else got) == ids
    assert isinstance(got, np.ndarray) == all(type(i) is int for i in ids)


def test_table_header_is_page_aligned_and_numpy_reads_it(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    entry = write_npy(tmp_path / "t.npy", table, header_bytes=TABLE_HEADER_BYTES)
    raw = (tmp_path / "t.npy").read_bytes()
    assert len(raw) == TABLE_HEADER_BYTES + table.nbytes and raw[TABLE_HEADER_BYTES:] == table.tobytes()
    assert np.array_equal(np.load(tmp_path / "t.npy", mmap_mode="r", allow_pickle=False), table)
    assert entry["shape"] == [4, 3] and entry["dtype"] == "float32"


def test_sidecar_checks(tmp_path):
    entries = {"popular_items": write_npy(tmp_path / "popular.npy", np.arange(1, 6, dtype=np.int64))}
    sidecars = Sidecars(tmp_path, entries, tmp_path / "model.onnx")
    assert sidecars.array("popular_items").tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ArtifactError, match="lists no 'item_table' sidecar"):
        sidecars.path("item_table")
    bad = dict(entries["popular_items"], shape=[6])
    with pytest.raises(ArtifactError, match=r"int64\[5\], the metadata records int64\[6\]"):
        Sidecars(tmp_path, {"popular_items": bad}, tmp_path / "model.onnx").array("popular_items")
    with pytest.raises(ArtifactError, match="invalid file name"):
        Sidecars(tmp_path, {"x": dict(bad, file="../x.npy")}, tmp_path / "m.onnx").path("x")
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    from s4rec.sidecars import file_entry

    entry = file_entry(pickled, dtype="object", shape=[1])
    with pytest.raises(ArtifactError, match="not a readable .npy file"):  # allow_pickle=False
        Sidecars(tmp_path, {"p": entry}, tmp_path / "m.onnx").array("p")
    (tmp_path / "popular.npy").write_bytes((tmp_path / "popular.npy").read_bytes()[:-8] + b"\1" * 8)
    with pytest.raises(ChecksumError, match="popular.npy: SHA-256"):
        sidecars.array("popular_items")


@pytest.mark.parametrize("ids", [np.array([7, 3, 10**15, 42, -5]), np.array([4, 2, 9, 1, 3])], ids=["sparse", "dense"])
def test_array_vocabulary_maps_like_the_dict(ids):
    array_vocabulary, dict_vocabulary = ItemVocabulary(ids.astype(np.int64)), ItemVocabulary(ids.tolist())
    assert (array_vocabulary.dense_table is None) == (ids.max() > 1000)
    histories = [[3, 42, 99, -5, "3", 10**30], [], [10**15, 7], [4, 2**64]]
    for h in histories:
        assert array_vocabulary.map_history(h) == dict_vocabulary.map_history(h)
    a, b = array_vocabulary.map_histories(histories), dict_vocabulary.map_histories(histories)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert array_vocabulary.exclusion_indices([3, 42, "x"]) == dict_vocabulary.exclusion_indices([3, 42, "x"])
    assert [array_vocabulary.ids[i] for i in range(1, 6)] == ids.tolist()
    assert array_vocabulary.ids[0] is None
    with pytest.raises(ValueError, match="duplicates"):
        ItemVocabulary(np.array([5, 6, 5], dtype=np.int64))
    with pytest.raises(ValueError, match="duplicates"):
        ItemVocabulary(np.array([5, 10**15, 5], dtype=np.int64))
