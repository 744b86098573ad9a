"""Artifacts from a server, inputs from strangers (issue 27): each hostile input is built here, and each is
refused with one line (an ArtifactError, or a FILE:LINE report), quickly, within the memory the honest input
needs, without reading outside the artifact directory and without leaving anything behind.

The artifacts are copies of the committed micro artifacts (tests/fixtures/known/), so no export runs here.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import with_edited_metadata

from s4rec import Recommender
from s4rec.cli import main as score_main
from s4rec.errors import ArtifactError

KNOWN = Path(__file__).parent / "fixtures" / "known"
SMALL = KNOWN / "artifact"  # format 2: model.onnx + s4rec.json
LARGE = KNOWN / "artifact-large"  # format 3: sidecars, external data, encoder.onnx


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _move_outside(artifact: Path, name: str, outside: Path) -> Path:
    """Replace ``artifact/name`` by a symbolic link to the same file moved to ``outside``."""
    outside.mkdir(exist_ok=True)
    target = outside / name
    shutil.move(artifact / name, target)
    (artifact / name).symlink_to(target)
    return target


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# The peak RSS of the process itself: Linux's VmHWM. Not ru_maxrss, which in a child includes its parent's peak
# (carried over the spawn: a child of a pytest process that has loaded torch reports ~580 MB however small).
PEAK = """
import resource
try:
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) // 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print("peak", peak)
"""


def _peak_rss_mb(code: str, *args: str) -> tuple[int, str, float]:
    """Run ``code`` in a fresh interpreter: (its peak RSS in MB, its stdout, wall seconds)."""
    wrapped = code + PEAK
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapped, *args], capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return int(lines[-1].split()[1]), "\n".join(lines[:-1]), seconds


# --- 1. nothing is read outside the artifact directory --------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["items.npy", "popular.npy", "item_table.npy", "encoder.onnx", "model.onnx", "s4rec.json"]
)
def test_a_link_out_of_the_artifact_directory_is_refused(tmp_path, name):
    artifact = _copy(LARGE, tmp_path / "artifact")
    outside = _move_outside(artifact, name, tmp_path / "elsewhere")
    with pytest.raises(ArtifactError) as caught:
        Recommender.load(artifact)
    message = _one_line(caught.value)
    assert f"{artifact / name}: a link to {outside.resolve()}, outside the artifact directory" in message, message


def test_a_link_out_of_a_format_2_directory_is_refused(tmp_path):
    artifact = _copy(SMALL, tmp_path / "artifact")
    _move_outside(artifact, "model.onnx", tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="outside the artifact directory"):
        Recommender.load(artifact)


def test_a_linked_artifact_directory_and_a_link_that_stays_inside_load(tmp_path):
    """The documented choice: links are followed; what must hold is that the target is inside the directory."""
    artifact = _copy(LARGE, tmp_path / "store" / "artifact")
    (artifact / "items.npy").rename(artifact / "items-v1.npy")
    (artifact / "items.npy").symlink_to("items-v1.npy")  # a relative link inside the directory
    linked = tmp_path / "current"
    linked.symlink_to(artifact, target_is_directory=True)
    reference = Recommender.load(LARGE)
    for path in (artifact, linked):
        recommender = Recommender.load(path)
        assert list(recommender.recommend([1, 2], k=3)) == list(reference.recommend([1, 2], k=3))


def _with_external_data_location(artifact: Path, location: str) -> None:
    """Point the item table's external data of ``artifact/model.onnx`` at ``location`` (manifest updated)."""
    import onnx

    path = artifact / "model.onnx"
    model = onnx.load(str(path), load_external_data=False)
    changed = 0
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
                changed += 1
    assert changed
    onnx.save(model, str(path))
    manifest = json.loads((artifact / "s4rec.json").read_text())
    data = path.read_bytes()
    manifest["variants"]["fp32"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (artifact / "s4rec.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["a link outside", "a path with '..'"])
def test_external_data_outside_the_directory_is_refused_before_onnx_runtime_opens_it(tmp_path, how):
    """The graph names a file that is no sidecar: the SDK's own check refuses it (ONNX Runtime < 1.24 would
    read it), whatever the installed ONNX Runtime does."""
    artifact = _copy(LARGE, tmp_path / "artifact")
    secret = tmp_path / "secret.npy"
    shutil.copy(LARGE / "item_table.npy", secret)
    if how == "a link outside":
        (artifact / "table.npy").symlink_to(secret)
        _with_external_data_location(artifact, "table.npy")
    else:
        _with_external_data_location(artifact, "../secret.npy")
    with pytest.raises(ArtifactError) as caught:
        Recommender.load(artifact)
    message = _one_line(caught.value)
    assert f"{artifact / 'model.onnx'}: external data of the graph" in message, message
    assert "outside the artifact directory" in message or "invalid file name '../secret.npy'" in message


def test_external_data_locations_are_read_as_onnx_writes_them():
    import onnx

    from s4rec.protobuf import external_data_locations

    for name in ("model.onnx", "model.int8.onnx", "encoder.onnx"):
        model = onnx.load(str(LARGE / name), load_external_data=False)
        expected = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
        assert set(external_data_locations(LARGE / name)) == expected and expected
    assert external_data_locations(SMALL / "model.onnx") == []


# --- 2. sizes declared in metadata are bounded before anything is allocated -----------------------------------

LOAD = "import sys\nfrom s4rec import Recommender\ntry:\n    Recommender.load(sys.argv[1])\n    print('loaded')\nexcept Exception as e:\n    print(type(e).__name__, e)"  # noqa: E501


@pytest.mark.parametrize("max_len", [10**6, 10**9])
def test_a_huge_max_len_is_refused_at_once_within_the_honest_memory(tmp_path, max_len):
    """Before: the probe allocated (4, max_len) histories: 1.8 GB of RSS at 10^7, a MemoryError at 10^9."""
    edited = with_edited_metadata(SMALL, tmp_path / "artifact", max_len=max_len)
    honest_rss, out, _ = _peak_rss_mb(LOAD, str(SMALL))
    assert out == "loaded"
    rss, out, seconds = _peak_rss_mb(LOAD, str(edited))
    assert out.startswith("ArtifactError ") and "\n" not in out, out
    assert f"the metadata declares max_len {max_len:,}" in out and "more than its" in out, out
    assert rss < honest_rss + 30, (rss, honest_rss)
    assert seconds < 20  # an interpreter start on a busy machine; the check itself takes milliseconds


def test_an_embedding_dim_below_the_graphs_is_refused_before_the_long_probe(tmp_path):
    """A smaller embedding_dim would let max_len grow as far as the file's bytes: the user vector is checked
    first, on the shortest histories."""
    edited = with_edited_metadata(SMALL, tmp_path / "artifact", embedding_dim=1, max_len=15000)
    with pytest.raises(ArtifactError, match=r"user vectors of shape \(4, 8\), not \(4, embedding_dim 1\)"):
        Recommender.load(edited)


def _rewrite_npy_header(path: Path, shape: tuple) -> None:
    """Keep the data, declare ``shape`` (a lying header, as a hostile artifact would write it)."""
    from s4rec.sidecars import npy_header

    array = np.load(path, allow_pickle=False)
    fake = np.lib.stride_tricks.as_strided(array, shape=shape, strides=(0,) * len(shape))
    data = path.read_bytes()[len(npy_header(array)) :]
    path.write_bytes(npy_header(fake) + data)


def test_a_npy_header_declaring_more_than_its_file_holds_is_refused_without_allocating_it(tmp_path):
    """numpy's np.load allocates what a header declares (74.5 GiB for 10^10 int64) before reading the file."""
    import onnx

    artifact = _copy(LARGE, tmp_path / "artifact")
    _rewrite_npy_header(artifact / "popular.npy", (10**10,))
    model = onnx.load(str(artifact / "model.onnx"), load_external_data=False)
    for prop in model.metadata_props:  # the metadata agrees with the lying header and the file's new checksum
        if prop.key == "s4rec.metadata":
            values = json.loads(prop.value)
            data = (artifact / "popular.npy").read_bytes()
            values["sidecars"]["popular_items"].update(
                shape=[10**10], bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
            )
            prop.value = json.dumps(values)
    onnx.save(model, str(artifact / "model.onnx"))
    data = (artifact / "model.onnx").read_bytes()
    manifest = json.loads((artifact / "s4rec.json").read_text())
    manifest["variants"]["fp32"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (artifact / "s4rec.json").write_text(json.dumps(manifest))
    rss, out, _ = _peak_rss_mb(LOAD, str(artifact))
    assert out.startswith("ArtifactError ") and "popular.npy: not a readable .npy file" in out, out
    assert rss < 400, rss  # the honest load takes ~70 MB; the header asked for 74.5 GiB


ANN_LOAD = """
import json, sys
from pathlib import Path
import numpy as np
from s4rec.ann import AnnIndex
entry = json.loads(sys.argv[2])
try:
    AnnIndex.load(Path(sys.argv[1]), entry, np.zeros((301, 4), np.float32), 300, None)
    print("loaded")
except Exception as e:
    print(type(e).__name__, e)
"""


def _forged_ann_index(tmp_path, forge) -> tuple[Path, str]:
    """A faiss index of 300 items in 8 lists, as s4rec.ann writes it, its bytes passed through ``forge``; and its
    sidecar entry (JSON)."""
    pytest.importorskip("faiss", reason="the [ann] extra")
    from s4rec.ann import build_index

    table = np.random.default_rng(0).normal(size=(301, 4)).astype(np.float32)
    path = tmp_path / "items.faiss"
    entry = build_index(table, path, 300, lists=8, threads=1)
    path.write_bytes(forge(bytearray(path.read_bytes())))
    return path, json.dumps(entry)


def _first_list_at(data: bytearray) -> int:
    """Byte offset of the id count of the first inverted list (s4rec.ann's walk, d = 4, 8 lists)."""
    import struct

    at = 4 + 33 + 16 + 4 + 33  # "IwPf", header, lists and nprobe, "IxF2", header
    at += 8 + 4 * struct.unpack_from("<Q", data, at)[0]  # centroids
    at += 1 + 8 + 33 + 24  # direct map (none), fast-scan fields, quantizer shape
    at += 8 + 4 * struct.unpack_from("<Q", data, at)[0]  # quantizer centroids
    return at + 4 + 32  # "ilbl", list layout


def test_an_ann_index_declaring_a_huge_list_is_refused_before_faiss_allocates(tmp_path):
    """faiss allocates a list as its count declares: 10^9 ids (8 GB) in a file of a few KB."""
    import struct

    def forge(data):
        struct.pack_into("<Q", data, _first_list_at(data), 10**9)
        return data

    rss, out, _ = _peak_rss_mb(ANN_LOAD, *map(str, _forged_ann_index(tmp_path, forge)))
    assert out.startswith("ArtifactError ") and "a list of 1,000,000,000 items declared" in out, out
    assert rss < 200, rss


def test_an_ann_index_with_an_id_outside_the_catalogue_is_refused(tmp_path):
    """faiss returns a list's ids as they are: one past the items would index outside the item table."""
    import struct

    def forge(data):
        struct.pack_into("<q", data, _first_list_at(data) + 8, 10**6)  # the first id of the first list
        return data

    _, out, _ = _peak_rss_mb(ANN_LOAD, *map(str, _forged_ann_index(tmp_path, forge)))
    assert out.startswith("ArtifactError ") and "ids that are not items" in out, out


def test_an_ann_index_whose_codes_do_not_match_its_ids_is_refused(tmp_path):
    """faiss reads a list's codes as its id count says: one id more would read past them."""
    import struct

    def forge(data):
        at = _first_list_at(data)
        count = struct.unpack_from("<Q", data, at)[0]
        struct.pack_into("<Q", data, at, count + 1)
        return data

    _, out, _ = _peak_rss_mb(ANN_LOAD, *map(str, _forged_ann_index(tmp_path, forge)))
    assert out.startswith("ArtifactError ") and "not a faiss" in out, out


def test_an_intact_ann_index_loads(tmp_path):
    _, out, _ = _peak_rss_mb(ANN_LOAD, *map(str, _forged_ann_index(tmp_path, lambda data: data)))
    assert out == "loaded", out


def test_an_hnswlib_index_of_an_older_export_names_the_re_export(tmp_path):
    from s4rec.ann import AnnIndex
    from s4rec.errors import ArtifactVersionError

    entry = {"library": "hnswlib", "space": "ip", "elements": 20}
    with pytest.raises(ArtifactVersionError, match="Re-export the artifact with s4rec-export --large-format --ann"):
        AnnIndex.load(tmp_path / "items.hnsw", entry, np.zeros((21, 4), np.float32), 20, None)


# --- 3. JSON nested very deep, or far too large ---------------------------------------------------------------


def test_a_deeply_nested_manifest_is_an_artifact_error(tmp_path):
    artifact = _copy(SMALL, tmp_path / "artifact")
    manifest = json.loads((artifact / "s4rec.json").read_text())
    text = json.dumps(manifest)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (artifact / "s4rec.json").write_text(text)
    with pytest.raises(ArtifactError) as caught:
        Recommender.load(artifact)
    assert "unreadable manifest: JSON nested 100,001 deep" in _one_line(caught.value)


def test_a_manifest_far_larger_than_s4rec_writes_is_refused_unread(tmp_path):
    artifact = _copy(SMALL, tmp_path / "artifact")
    with open(artifact / "s4rec.json", "a") as f:
        f.write(" " * (2 << 20))
    with pytest.raises(ArtifactError, match="unreadable manifest: larger than 1,048,576 bytes"):
        Recommender.load(artifact)


def test_deeply_nested_metadata_is_an_artifact_error(tmp_path):
    deep = {"nested": json.loads("[" * 500 + "]" * 500)}  # within json.loads's recursion, beyond the bound
    edited = with_edited_metadata(SMALL, tmp_path / "deep", checkpoint_metrics=deep)
    with pytest.raises(ArtifactError, match="unreadable s4rec.metadata: JSON nested 502 deep"):
        Recommender.load(edited)
    import onnx

    model = onnx.load(str(SMALL / "model.onnx"))  # deeper than json.loads can go: a RecursionError before
    for prop in model.metadata_props:
        if prop.key == "s4rec.metadata":
            prop.value = prop.value[:-1] + ',"x":' + "[" * 10**6 + "]" * 10**6 + "}"
    onnx.save(model, str(tmp_path / "deeper.onnx"))
    with pytest.raises(ArtifactError, match="JSON nested 1,000,001 deep"):
        Recommender.load(tmp_path / "deeper.onnx")


def test_json_depth_counts_brackets_outside_strings_only():
    from s4rec.untrusted import json_depth

    cases = {
        "1": 0, '"[[["': 0, "[]": 1, '{"a": [1, {"b": []}]}': 4, '["\\"[", "\\\\", "]]"]': 1,
        '[["\\\\\\"[[", {}]]': 3, json.dumps({"ids": ["a[", "b{", '"c']}): 2,
    }  # fmt: skip
    for text, depth in cases.items():
        assert json_depth(text) == depth, text
    rng = np.random.default_rng(0)
    for _ in range(200):  # random documents: the depth of what json.loads reads back
        value, depth = "x", 0
        for _ in range(int(rng.integers(0, 12))):
            value = [value, "]["] if rng.random() < 0.5 else {"k[": value}
            depth += 1
        assert json_depth(json.dumps(value)) == depth


# --- 4. a line that inflates to hundreds of MB in s4rec-score ------------------------------------------------


def _lines(data: bytes, limit: int, reader: str = "text") -> list:
    from s4rec.records import BoundedLines, read_jsonl, read_text

    text = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data), buffer_size=8), encoding="utf-8", newline="")
    records = (read_text if reader == "text" else read_jsonl)(BoundedLines(text, limit))
    return [(r.line, getattr(r, "history", "bad")) for r in records]


def test_bounded_lines_keep_line_numbers_and_line_breaks():
    """The bound falls on a "\\r\\n" or a lone "\\r" as well as inside a line."""
    nines = 10**17 - 1  # 17 digits: "2 " + 17 digits + "\\r" is 20 characters, the bound
    assert _lines(b"1 2 3\n2 " + b"9 " * 50 + b"\n3 4\r\n4 5", 20) == [(1, [2, 3]), (2, "bad"), (3, [4]), (4, [5])]
    assert _lines(b"1 2\r\n2 " + b"9" * 17 + b"\r\n3 4\r5\r6\n", 19) == [
        (1, [2]), (2, [nines]), (3, [4]), (4, []), (5, []),
    ]  # fmt: skip
    assert _lines(b"1 2\r2 " + b"9" * 17 + b"\r3 4\n", 19) == [(1, [2]), (2, [nines]), (3, [4])]
    assert _lines(b"1 2\r2 " + b"9" * 40 + b"\r3 4\n", 19) == [(1, [2]), (2, "bad"), (3, [4])]
    assert _lines(b"1 2\r2 " + b"9" * 37 + b"\r\n3 4\n", 19) == [(1, [2]), (2, "bad"), (3, [4])]
    jsonl = b'{"user":1,"history":[1]}\n{"user":2,"history":[' + b"1," * 50 + b'1]}\n{"user":3,"history":[]}\n'
    assert _lines(jsonl, 30, "jsonl") == [(1, [1]), (2, "bad"), (3, [])]


def test_an_overlong_log_row_and_header_are_reported_with_their_line(tmp_path):
    from s4rec.errors import InputError
    from s4rec.logs import log_events
    from s4rec.records import BadRecord, BoundedLines

    def events(data: bytes):
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
        return list(log_events(BoundedLines(text, 30)))

    got = events(b"user,item,timestamp\n1,2,3\n1," + b"9" * 100 + b",4\n2,3,4\n")
    assert got[0] == (2, 1, 2, 3.0) and got[2] == (4, 2, 3, 4.0)
    assert type(got[1]) is BadRecord and got[1].line == 3 and "more than 30 characters" in got[1].reason
    with pytest.raises(InputError, match="line 1 \\(the header\\): a line of more than 30 characters"):
        events(b"user,item,timestamp" + b",x" * 40 + b"\n1,2,3\n")


def _inflating_input(path: Path, record_mb: int) -> None:
    """A gzip file of 2,000 users, line 1,001 a history that inflates to ``record_mb`` MB (a few hundred KB
    compressed), line 1,002 one of 500,000 items (1 MB, within a bound of 1 MiB characters)."""
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(b"".join(b"%d 1 2 3 4 5 6 7\n" % u for u in range(1000)))
        f.write(b"9999")
        piece = b" 1" * (1 << 19)
        for _ in range(record_mb):
            f.write(piece)
        f.write(b"\n9998" + b" 2" * 500_000 + b"\n")
        f.write(b"".join(b"%d 1 2 3 4 5 6 7\n" % u for u in range(1000, 2000)))


SCORE = "import sys\nfrom s4rec.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('exit', e.code)"  # noqa: E501


def test_s4rec_score_stops_an_inflating_record_with_a_file_line_report(tmp_path):
    """One record of 64 MB (unbounded, it is read whole and parsed into 33 million ids: gigabytes), bounded
    at 1 MiB: skipped with FILE:LINE, or the run stops there with on-error fail; memory within the honest
    run's. The line of 1 MB within the bound is scored, in memory of its own size (its exclusions once made an
    `exclude` input as wide as it for each of the 255 other users of its bucket: 1 GB)."""
    source = tmp_path / "users.txt.gz"
    _inflating_input(source, record_mb=64)
    honest = tmp_path / "honest.txt.gz"
    with gzip.open(honest, "wb") as f:
        f.write(b"".join(b"%d 1 2 3 4 5 6 7\n" % u for u in range(2001)))
    common = [str(SMALL), "--k", "5", "-q", "--max-line-length", str(1 << 20)]
    honest_rss, out, _ = _peak_rss_mb(SCORE, *common, "-i", str(honest), "-o", str(tmp_path / "honest.jsonl"))
    assert out == "exit 0", out
    output = tmp_path / "out" / "recs.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", SCORE + PEAK, *common, "-i", str(source), "-o", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    exit_line, peak = done.stdout.strip().splitlines()
    assert exit_line == "exit 0", done.stderr[-2000:]
    report = f"{source}:1001: a line of more than 1,048,576 characters (the max_line_length bound, s4rec-score "
    assert report in done.stderr and "(skipped)" in done.stderr, done.stderr[-2000:]
    assert len(output.read_text().splitlines()) == 2001
    assert int(peak.split()[1]) < honest_rss + 80, (peak, honest_rss)

    failed = tmp_path / "failed" / "recs.jsonl"
    result = CliRunner().invoke(score_main, [*common, "-i", str(source), "-o", str(failed), "--on-error", "fail"])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and report in errors[0], result.stderr[-2000:]
    assert "--on-error skip" in errors[0]
    assert not failed.parent.exists() or not any(failed.parent.iterdir()), "nothing may be left behind"


def test_long_exclusions_are_scored_in_parts_with_the_same_results(monkeypatch):
    import s4rec.recommender as module
    from s4rec.recommender import exclusion_parts

    counts = np.array([3, 900, 5, 40, 2, 700, 1, 6])
    bucket = np.arange(len(counts))
    monkeypatch.setattr(module, "EXCLUDE_CELLS", 1000)
    parts = exclusion_parts(bucket, counts, extra=2)
    assert sorted(np.concatenate(parts).tolist()) == bucket.tolist()
    assert all(len(p) == 1 or len(p) * (counts[p].max() + 2) <= 1000 for p in parts), parts
    assert len(parts) > 1
    (whole_bucket,) = exclusion_parts(np.arange(3), np.array([3, 5, 9]), 0)  # within the cells: as it is
    assert whole_bucket.tolist() == [0, 1, 2]
    rng = np.random.default_rng(0)
    histories = [list(rng.integers(1, 13, size=int(n))) for n in (0, 1, 3, 9, 40, 2, 300, 7, 5, 120)]
    recommender = Recommender.load(SMALL)
    whole = recommender.rank_batch(histories, k=5, exclude=[4], batch_size=256)
    monkeypatch.setattr(module, "EXCLUDE_CELLS", 64)  # every history longer than ~60 in a part of its own
    split = recommender.rank_batch(histories, k=5, exclude=[4], batch_size=256)
    np.testing.assert_array_equal(whole.items, split.items)
    np.testing.assert_array_equal(whole.scores, split.scores)


def test_score_file_refuses_a_bad_bound_before_opening_anything(tmp_path):
    from s4rec.batch import score_file

    with pytest.raises(ValueError, match="max_line_length must be an int >= 1, got 0"):
        score_file(object(), tmp_path / "missing.txt", tmp_path / "out.jsonl", max_line_length=0)
    assert not (tmp_path / "out.jsonl").exists()


# --- 5. a full disk while s4rec-train writes its checkpoint ----------------------------------------------------


def _train_data(tmp_path: Path) -> Path:
    data = tmp_path / "data.txt"
    data.write_text("".join(f"{u} " + " ".join(str(1 + (u + i) % 9) for i in range(6)) + "\n" for u in range(40)))
    return data


class _FillingDisk(io.RawIOBase):
    """A file whose writes fail with ENOSPC once ``room`` bytes are written, as a full disk's do."""

    def __init__(self, fd: int, room: int) -> None:
        self.file, self.room = io.FileIO(fd, "wb"), room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        super().close()


@pytest.mark.slow
def test_train_on_a_disk_that_fills_while_torch_writes_the_checkpoint_says_so_in_one_line(tmp_path, monkeypatch):
    """torch's serializer turns the write's OSError into a RuntimeError; the checkpoint writer still reports
    the full disk in one line and leaves nothing behind (~5-12 s: a real training run)."""
    import s4rec.files
    from s4rec_train.cli import cli as train_cli

    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if mode == "wb":
            return io.BufferedWriter(_FillingDisk(fd, room=4096))
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(s4rec.files.os, "fdopen", fdopen)
    data, model = _train_data(tmp_path), tmp_path / "model.pt"
    result = CliRunner().invoke(train_cli, [str(data), "-o", str(model), "--epochs", "1", "--dim", "8", "--quiet"])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: {model}: no space left on the device while writing it; nothing was left behind. Free some space "
        "(or raise the limit) and run again, or write the output elsewhere."
    ], result.stderr[-2000:]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and its EFBIG, as Linux gives them")
def test_train_under_a_file_size_limit_says_so_in_one_line(tmp_path):
    """The kernel's own refusal (EFBIG under ulimit -f), in a real s4rec-train process: ~5-10 s (torch)."""
    data, model = _train_data(tmp_path), tmp_path / "model.pt"
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "from s4rec_train.cli import cli\n"
        "cli(sys.argv[1:])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data), "-o", str(model), "--epochs", "1", "--dim", "8", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and errors == [
        f"Error: {model}: file too large (a file-size limit) while writing it; nothing was left behind. Free some "
        "space (or raise the limit) and run again, or write the output elsewhere."
    ], done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


# --- 6. partials of writers killed outright are reclaimed, never a live writer's -------------------------------

HOLD = """
import sys, time
from pathlib import Path
from s4rec.files import atomic_file, published_directory
output = Path(sys.argv[1])
if sys.argv[2] == "directory":
    with published_directory(output) as work:
        (work / "model.onnx").write_bytes(b"x" * 1000)
        print(work, flush=True)
        time.sleep(600)
else:
    with atomic_file(output) as f:
        f.write(b"x" * 1000)
        f.flush()
        print(sorted(output.parent.glob("." + output.name + ".*.partial"))[0], flush=True)
        time.sleep(600)
"""


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_partial_left_by_a_killed_writer_is_reclaimed_and_a_live_one_is_not(tmp_path, kind):
    """kill -9 leaves the partial (no cleanup can run); while its writer lives, nothing takes it; once it is
    dead, the next write of the same output removes it."""
    from s4rec.files import atomic_file, published_directory, reclaim_stale_partials

    output = tmp_path / ("artifact" if kind == "directory" else "model.pt")
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(output), kind], stdout=subprocess.PIPE, text=True)
    try:
        partial = Path(writer.stdout.readline().strip())
        assert partial.exists() and partial.name.startswith(f".{output.name}.") and partial.name.endswith(".partial")
        assert reclaim_stale_partials(output) == [] and partial.exists()  # its writer is alive
        if kind == "directory":
            with published_directory(output) as work:  # a second writer of the same output, meanwhile
                (work / "model.onnx").write_bytes(b"y")
        else:
            with atomic_file(output) as f:
                f.write(b"y")
        assert partial.exists() and output.exists()
    finally:
        writer.kill()  # SIGKILL: no cleanup runs
        writer.wait()
    assert partial.exists()
    other = tmp_path / f".{output.name}x.abcd1234.partial"  # another output's name: not ours to remove
    other.mkdir()
    if kind == "directory":
        with published_directory(output) as work:  # the next export
            (work / "model.onnx").write_bytes(b"z")
    else:
        with atomic_file(output) as f:
            f.write(b"z")
    assert not partial.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, other.name])


@pytest.mark.slow
def test_an_export_killed_outright_leaves_a_partial_that_the_next_export_reclaims(tmp_path, tiny_checkpoint):
    """A real s4rec-export, killed with SIGKILL while it works (~10-20 s: two exports)."""
    import signal

    output = tmp_path / "artifact"
    export = [sys.executable, "-m", "s4rec_export.cli", str(tiny_checkpoint[0]), "-o", str(output), "--quiet"]
    process = subprocess.Popen(export, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    partials: list[Path] = []
    while not partials and time.monotonic() < deadline and process.poll() is None:
        partials = list(tmp_path.glob(".artifact.*.partial"))
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert partials and partials[0].exists() and not output.exists()
    done = subprocess.run(export, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
