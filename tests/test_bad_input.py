"""Bad input and faults, as a hostile user would try them: each case ends in one clear ``Error:`` line that
names the file (and line), or in a reported skip, with no traceback and nothing half-written left on disk.

One table per command; each row is (name, how to make the input, options, expected exit code, a fragment of
the message, what the output directory must hold afterwards).
"""

from __future__ import annotations

import errno
import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import GRAPH_MISMATCH_CASES, with_edited_metadata
from score_helpers import score_inputs

from s4rec.cli import main as score_main


@pytest.fixture(scope="module")
def tiny(plain_artifact, tmp_path_factory):
    return score_inputs(plain_artifact[0], tmp_path_factory)


GOOD_JSONL = b'{"user": 1, "history": [1, 2]}\n'


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# name, file name, content, extra options, exit code, message fragment (with {path}), users written (None: no
# output file may exist)
SCORE_CASES = [
    ("non-UTF-8 JSONL line, skipped", "in.jsonl", GOOD_JSONL + b'{"user": 2, "history": ["caf\xe9"]}\n' + GOOD_JSONL,
     [], 0, "{path}:2: not valid UTF-8 (byte 0xe9", 2),
    ("non-UTF-8 JSONL line, fail", "in.jsonl", GOOD_JSONL + b'{"user": 2, "history": ["caf\xe9"]}\n',
     ["--on-error", "fail"], 1, "{path}:2: not valid UTF-8 (byte 0xe9 at column 29)", None),
    ("non-UTF-8 text line, skipped", "in.txt", b"1 1 2\n2 3 \xff\xfe\n3 4\n", [], 0, "{path}:2: not valid UTF-8", 2),
    ("non-UTF-8 log field, skipped", "in.csv", b"user,item,timestamp\n1,2,3\n1,\xff,4\n2,3,5\n", [], 0,
     "{path}:3: column 'item': not valid UTF-8 (byte 0xff", 2),
    ("non-UTF-8 log header", "in.csv", b"us\xe9r,item,timestamp\n1,2,3\n", [], 1,
     "{path}: line 1 (the header): not valid UTF-8", None),
    ("UTF-8 byte-order mark", "in.jsonl", b"\xef\xbb\xbf" + GOOD_JSONL, [], 0, None, 1),
    ("byte-order mark before a log header", "in.csv", b"\xef\xbb\xbfuser,item,timestamp\n1,2,3\n", [], 0, None, 1),
    (".gz that is not gzip", "in.jsonl.gz", GOOD_JSONL, [], 1, "{path}: not a gzip file", None),
    ("gzip data without .gz", "in.jsonl", _gz(GOOD_JSONL), [], 1, "{path}: holds gzip-compressed data", None),
    ("truncated .gz", "in.txt.gz", _gz(b"".join(b"%d 1 2 3\n" % u for u in range(20000)))[:2000], [], 1,
     "{path}: the gzip data is damaged or truncated", None),
    ("binary garbage", "in.txt", bytes(range(256)) * 64, [], 1, "{path}: not a text file", None),
    ("k above the artifact's top_k", "in.jsonl", GOOD_JSONL, ["--k", "41"], 1,
     "k must be in 1..40 (the artifact's top_k), got 41", None),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, filename, content, options, code, message, users", SCORE_CASES, ids=[c[0] for c in SCORE_CASES]
)
def test_s4rec_score_bad_input(tiny, tmp_path, name, filename, content, options, code, message, users):
    source = tmp_path / filename
    source.write_bytes(content)
    output = tmp_path / "out" / "recs.jsonl"
    result = CliRunner().invoke(score_main, [str(tiny / "artifact"), "-i", str(source), "-o", str(output), *options])
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), "a traceback, not a message"
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    if code:
        assert len(errors) == 1, result.stderr
        assert message.format(path=source) in errors[0]
        assert str(source) in errors[0] or "--k" in errors[0] or "k must be" in errors[0]
    elif message:
        assert message.format(path=source) in result.stderr and "(skipped)" in result.stderr
    left = sorted(p.name for p in output.parent.iterdir()) if output.parent.exists() else []
    if users is None:
        assert left == [], "nothing may be left behind"
    else:
        assert left == ["recs.jsonl"]
        assert len(output.read_text().splitlines()) == users


def test_s4rec_score_on_a_full_disk_says_so_in_one_line(tiny, tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    source = tmp_path / "in.txt"
    source.write_text("".join(f"{u} 1 2\n" for u in range(50)))
    monkeypatch.setattr("s4rec.writers.JsonlWriter.write_scored", lambda self, chunk: full(self, chunk))
    output = tmp_path / "out" / "recs.jsonl"
    result = CliRunner().invoke(score_main, [str(tiny / "artifact"), "-i", str(source), "-o", str(output)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {output}: no space left on the device while writing it; nothing was left behind. "
                      "Free some space (or raise the limit) and run again, or write the output elsewhere."]  # fmt: skip
    assert sorted(p.name for p in output.parent.iterdir()) == []


def test_non_utf8_lines_are_reported_by_the_readers(tmp_path):
    """The SDK's readers (what Ray and score_records use): a bad line is a BadRecord, the rest is read."""
    from s4rec.records import BadRecord, open_input, read_jsonl, read_text

    path = tmp_path / "in.txt"
    path.write_bytes(b"1 1 2\n2 \xc3\x28\n3 caf\xc3\xa9 4\n")  # line 2: an invalid 2-byte sequence; line 3: valid UTF-8
    lines, _ = open_input(path)
    with lines:
        records = list(read_text(lines))
    assert [type(r).__name__ for r in records] == ["Record", "BadRecord", "Record"]
    assert records[1] == BadRecord(2, "not valid UTF-8 (byte 0xc3 at column 3); re-encode the file as UTF-8")
    assert records[2].history == ["café", 4]
    path = Path(tmp_path / "in.jsonl")
    path.write_bytes(GOOD_JSONL * 600 + b'{"user": 9, "history": [1, "\xff"]}\n')  # a bad line in the second block
    lines, _ = open_input(path)
    with lines:
        records = list(read_jsonl(lines))
    assert len(records) == 601 and records[-1] == BadRecord(
        601, "not valid UTF-8 (byte 0xff at column 29); re-encode the file as UTF-8"
    )


# --- s4rec-export: interruptions, a crash in the middle of a forced replacement, a full disk -------------------


def _export_env():
    import os

    root = Path(__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(root / p) for p in ("sdk", "training", "export"))}


@pytest.mark.slow  # an export in a fresh process, killed
def test_sigterm_during_export_leaves_no_partial_directory(tmp_path, tiny_checkpoint):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "artifact"
    command = [
        sys.executable,
        "-c",
        "from s4rec_export.cli import main; main()",
        str(tiny_checkpoint[0]),
        "-o",
        str(out),
    ]
    process = subprocess.Popen(command, env=_export_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".artifact.*.partial")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert list(tmp_path.glob(".artifact.*.partial")), "the export never started its temporary directory"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == [], "an interrupted export leaves nothing behind"


@pytest.mark.slow  # an export in a fresh process, killed
@pytest.mark.parametrize("atomic_swap", [True, False], ids=["exchange", "two renames"])
def test_crash_between_the_renames_of_a_forced_export_is_recovered(tmp_path, tiny_checkpoint, monkeypatch, atomic_swap):
    import os

    import s4rec.files as files
    from s4rec import Recommender
    from s4rec_export import export_checkpoint

    out = tmp_path / "artifact"
    export_checkpoint(tiny_checkpoint[0], out, top_k=5)
    before = (out / "model.onnx").read_bytes()
    if not atomic_swap:
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    real_replace, calls = os.replace, []

    def crash_on_the_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between moving the old artifact aside and the new one in
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", crash_on_the_second_rename)
    if atomic_swap:  # one atomic exchange: there is no moment without an artifact under the name
        export_checkpoint(tiny_checkpoint[0], out, top_k=6, force=True)
        assert Recommender.load(out).top_k == 6 and calls == []
        return
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(tiny_checkpoint[0], out, top_k=6, force=True)
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert not out.exists() and files.interrupted_backup(out) is not None
    lines = []
    with pytest.raises(Exception, match="already exists"):  # the next run puts the old one back first
        export_checkpoint(tiny_checkpoint[0], out, top_k=6, log=lines.append)
    assert (out / "model.onnx").read_bytes() == before and "interrupted forced export" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_export_and_train_on_a_full_disk_say_so_in_one_line(tmp_path, tiny_checkpoint, monkeypatch):
    import onnx

    from s4rec_export.cli import cli as export_cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save_model", full)
    out = tmp_path / "artifact"
    result = CliRunner().invoke(export_cli, [str(tiny_checkpoint[0]), "-o", str(out), "--quiet"])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"{out}: no space left on the device" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    import torch

    from s4rec_train.cli import cli as train_cli

    data = tmp_path / "data.txt"
    data.write_text("".join(f"{u} " + " ".join(str(1 + (u + i) % 9) for i in range(6)) + "\n" for u in range(40)))
    monkeypatch.setattr(torch, "save", full)
    model = tmp_path / "model.pt"
    result = CliRunner().invoke(train_cli, [str(data), "-o", str(model), "--epochs", "1", "--dim", "8", "--quiet"])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"{model}: no space left on the device" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_a_sigterm_a_library_swallowed_still_publishes_nothing(tmp_path, monkeypatch):
    import os
    import signal

    from s4rec import files

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(files, "_terminated_with", None)
    try:
        files.exit_on_sigterm()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:  # what a library that catches everything does with the SystemExit
            pass
        with pytest.raises(SystemExit) as stopped:
            with files.atomic_file(tmp_path / "out.jsonl") as f:
                f.write(b"{}\n")
        work = files.temporary_directory_beside(tmp_path / "artifact")
        with pytest.raises(SystemExit):
            files.publish_directory(work, tmp_path / "artifact")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "artifact").exists()
    assert [p.name for p in tmp_path.iterdir()] == [work.name]  # the caller's cleanup removes its own directory


def test_published_directory_replaces_on_success_and_leaves_the_old_one_on_failure(tmp_path):
    from s4rec import files

    output = tmp_path / "artifact"
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="export failed"):
        with files.published_directory(output) as work:
            (work / "new.txt").write_text("new")
            raise RuntimeError("export failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]  # the partial directory is gone
    assert [p.name for p in output.iterdir()] == ["old.txt"]
    with files.published_directory(output) as work:
        (work / "new.txt").write_text("new")
        assert not (output / "new.txt").exists()  # nothing under the name until the block ends
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
    assert [p.name for p in output.iterdir()] == ["new.txt"]


# --- s4rec-train: the data readers ------------------------------------------------------------------------------

GOOD_TEXT = b"".join(b"%d %d %d %d %d\n" % (u, 1 + u % 7, 1 + u % 5, 1 + u % 3, 1 + u % 4) for u in range(30))
GOOD_LOG = b"user,item,timestamp\n" + b"".join(
    b"u%d,%d,%d\n" % (u, 1 + (u + t) % 6, t) for u in range(30) for t in [0, 1, 2]
)
TRAIN_DATA_CASES = [
    ("non-UTF-8 text line", "data.txt", b"1 2 3 4\n2 caf\xe9 3 4\n",
     "{path}:2: not valid UTF-8 (byte 0xe9 at column 6); re-encode the file as UTF-8."),
    ("non-UTF-8 text line after CRLF", "data.txt", b"1 2 3 4\r\n2 3 4 5\r\n3 4 \xff 5\r\n",
     "{path}:3: not valid UTF-8 (byte 0xff at column 5)"),
    ("non-UTF-8 log field", "log.csv", b"user,item,timestamp\n1,2,3\n1,\xff,4\n",
     "{path}:3: column 'item': not valid UTF-8 (byte 0xff at column 1); re-encode the file as UTF-8."),
    ("non-UTF-8 log header", "log.csv", b"us\xe9r,item,timestamp\n1,2,3\n",
     "{path}: line 1 (the header): not valid UTF-8 (byte 0xe9 at column 3)"),
    (".gz that is not gzip (text)", "data.txt.gz", GOOD_TEXT, "{path}: not a gzip file"),
    (".gz that is not gzip (log)", "log.csv.gz", GOOD_LOG, "{path}: not a gzip file"),
    ("truncated .gz (text)", "data.txt.gz", _gz(b"".join(b"%d 1 2 3\n" % u for u in range(20000)))[:2000],
     "{path}: the gzip data is damaged or truncated"),
    ("truncated .gz (log)", "log.csv.gz",
     _gz(b"user,item,timestamp\n" + b"".join(b"%d,1,2\n" % u for u in range(20000)))[:2000],
     "{path}: the gzip data is damaged or truncated"),
    ("gzip data without .gz (text)", "data.txt", _gz(GOOD_TEXT), "{path}: holds gzip-compressed data"),
    ("gzip data without .gz (log)", "log.csv", _gz(GOOD_LOG), "{path}: holds gzip-compressed data"),
    ("binary file (text)", "data.txt", bytes(range(256)) * 64, "{path}: not a text file"),
    ("binary file (log)", "log.csv", bytes(range(256)) * 64, "{path}: not a text file"),
    ("empty text file", "data.txt", b"", "{path}: the file is empty"),
    ("empty log", "log.csv", b"", "{path}: the log is empty"),
    ("empty .gz", "data.txt.gz", _gz(b""), "{path}: the file is empty"),
    ("damaged Parquet", "log.parquet", b"PAR1" + bytes(64) + b"PAR1", "{path}: not a readable Parquet file"),
]  # fmt: skip


@pytest.mark.parametrize("name, filename, content, message", TRAIN_DATA_CASES, ids=[c[0] for c in TRAIN_DATA_CASES])
def test_training_data_readers_refuse_bad_files_in_one_line(tmp_path, name, filename, content, message):
    from s4rec_train.cli import cli as train_cli
    from s4rec_train.data import DataError, load_interactions

    source = tmp_path / filename
    source.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_interactions(source, min_count=1)
    assert message.format(path=source) in str(caught.value) and "\n" not in str(caught.value)
    model = tmp_path / "out" / "model.pt"
    result = CliRunner().invoke(train_cli, [str(source), "-o", str(model), "--epochs", "1", "--dim", "8", "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), "a traceback, not a message"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message.format(path=source) in errors[0], result.stderr
    assert "Traceback" not in result.output and sorted(p.name for p in tmp_path.iterdir()) == [filename]


@pytest.mark.parametrize(
    "filename, content",
    [("data.txt", GOOD_TEXT), ("log.csv", GOOD_LOG), ("data.txt.gz", _gz(GOOD_TEXT)), ("log.csv.gz", _gz(GOOD_LOG))],
)
def test_training_data_readers_ignore_a_bom_and_crlf(tmp_path, filename, content):
    from s4rec_train.data import load_interactions

    plain = tmp_path / filename
    plain.write_bytes(content)
    expected = load_interactions(plain, min_count=1)
    raw = gzip.decompress(content) if filename.endswith(".gz") else content
    for variant in (b"\xef\xbb\xbf" + raw, raw.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")):
        plain.write_bytes(_gz(variant) if filename.endswith(".gz") else variant)
        data = load_interactions(plain, min_count=1)
        assert list(data.user_ids) == list(expected.user_ids) and "\ufeff" not in str(data.user_ids[0])
        assert list(data.item_ids) == list(expected.item_ids)
        assert data.items.tolist() == expected.items.tolist()


def test_an_unreadable_data_file_is_one_line(tmp_path, monkeypatch):
    from s4rec_train.cli import cli as train_cli

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    source = tmp_path / "data.txt"
    source.write_bytes(GOOD_TEXT)
    monkeypatch.setattr("s4rec.records.open", refused, raising=False)  # the tests may run as root
    result = CliRunner().invoke(train_cli, [str(source), "-o", str(tmp_path / "m.pt"), "--epochs", "1", "--quiet"])
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for DATA: {source}: cannot be read (Permission denied). Check the file "
                      "and its permissions."]  # fmt: skip


# --- checkpoints: validated on load (s4rec-export, s4rec-train evaluate) -----------------------------------------


def _state(checkpoint, **changes):
    return dict(checkpoint["state_dict"], **changes)


def _flip_a_tensor_byte(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_and_extra = int.from_bytes(data[member.header_offset + 26 : member.header_offset + 28], "little")
    name_and_extra += int.from_bytes(data[member.header_offset + 28 : member.header_offset + 30], "little")
    data[member.header_offset + 30 + name_and_extra + member.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


# name, the checkpoint dict from the tiny one (or None: the file itself is edited), a message fragment
CHECKPOINT_CASES = [
    ("config not a dict", lambda c: dict(c, config=[16, 2]), "config must be a dict of the model's settings, got list"),
    ("config lacks dim", lambda c: dict(c, config={k: v for k, v in c["config"].items() if k != "dim"}),
     "config lacks ['dim']"),
    ("config num_items a string", lambda c: dict(c, config=dict(c["config"], num_items="40")),
     "config num_items must be an integer >= 1, got '40'"),
    ("item table rows != num_items + 1",
     lambda c: dict(c, state_dict=_state(c, **{"item_embedding.weight": c["state_dict"]["item_embedding.weight"][1:]})),
     "state_dict['item_embedding.weight'] has shape (40, 16), the config needs (41, 16) (num_items + 1 = 41 rows"),
    ("config dim != the weights'", lambda c: dict(c, config=dict(c["config"], dim=32)),
     "state_dict['item_embedding.weight'] has shape (41, 16), the config needs (41, 32)"),
    ("a weight missing", lambda c: dict(c, state_dict={k: v for k, v in c["state_dict"].items() if "norm2" not in k}),
     "state_dict does not fit the config's model: missing ['blocks.0.norm2.weight'"),
    ("item_ids shorter", lambda c: dict(c, item_ids=c["item_ids"][:-1]), "item_ids has 39 ids, the item table 40"),
    ("item_ids longer", lambda c: dict(c, item_ids=[*c["item_ids"], "x"]), "item_ids has 41 ids, the item table 40"),
    ("item_ids duplicated", lambda c: dict(c, item_ids=[*c["item_ids"][:-1], c["item_ids"][0]]),
     "item_ids names 1 more than once"),
    ("intent centroids of the wrong dim", lambda c: dict(c, intent_centroids=__import__("torch").zeros(3, 7)),
     "intent_centroids must be a (K, 16) tensor, got (3, 7)"),
    ("intent_config not a dict", lambda c: dict(c, intent_config=[5]), "intent_config must be a dict or None, got"),
    ("truncated file", "truncate", "not a readable s4rec checkpoint (not a torch zip archive"),
    ("a flipped byte in a tensor", "flip", "damaged: its content does not match the sha256 save_checkpoint recorded"),
    ("a flipped byte, no checksum (older file)", "flip-old", "damaged (its zip archive fails its CRC check at"),
    ("not a checkpoint", "junk", "not a readable s4rec checkpoint"),
]  # fmt: skip


def _bad_checkpoint(tiny_checkpoint, tmp_path, how) -> Path:
    import torch

    from s4rec_train.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "model.pt"
    if callable(how):
        save_checkpoint(how(load_checkpoint(tiny_checkpoint[0])), path)
    elif how == "truncate":
        path.write_bytes(tiny_checkpoint[0].read_bytes()[: tiny_checkpoint[0].stat().st_size // 2])
    elif how == "flip":
        save_checkpoint(load_checkpoint(tiny_checkpoint[0]), path)
        _flip_a_tensor_byte(path)
    elif how == "flip-old":
        torch.save({k: v for k, v in load_checkpoint(tiny_checkpoint[0]).items() if k != "checksum"}, path)
        _flip_a_tensor_byte(path)
    else:
        path.write_bytes(b"PK\x03\x04" + bytes(200))
    return path


@pytest.mark.parametrize("name, how, message", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_bad_checkpoint_is_refused_in_one_line(tmp_path, tiny_checkpoint, name, how, message):
    from s4rec_export.cli import cli as export_cli
    from s4rec_train.checkpoint import CheckpointError, load_checkpoint

    path = _bad_checkpoint(tiny_checkpoint, tmp_path, how)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)
    out = tmp_path / "artifact"
    result = CliRunner().invoke(export_cli, [str(path), "-o", str(out), "--quiet"])
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_evaluate_refuses_a_damaged_checkpoint_in_one_line(tmp_path, tiny_checkpoint):
    from s4rec_train.cli import cli as train_cli

    path = _bad_checkpoint(tiny_checkpoint, tmp_path, "flip")
    data = tmp_path / "data.txt"
    data.write_bytes(GOOD_TEXT)
    result = CliRunner().invoke(train_cli, ["evaluate", str(path), str(data), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "damaged" in errors[0] and "copy it again" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "model.pt"]


def test_checkpoint_checksum_round_trip_and_older_files_still_load(tmp_path, tiny_checkpoint):
    import torch

    from s4rec_train.checkpoint import content_sha256, load_checkpoint, save_checkpoint

    loaded = load_checkpoint(tiny_checkpoint[0])
    assert loaded["checksum"]["value"] == content_sha256(loaded) == content_sha256(tiny_checkpoint[1])
    save_checkpoint(loaded, tmp_path / "again.pt")  # the stale checksum of a loaded dict is replaced
    assert load_checkpoint(tmp_path / "again.pt")["checksum"] == loaded["checksum"]
    torch.save({k: v for k, v in loaded.items() if k != "checksum"}, tmp_path / "old.pt")
    assert "checksum" not in load_checkpoint(tmp_path / "old.pt")
    assert content_sha256(dict(loaded, item_ids=[*loaded["item_ids"][1:], 0])) != loaded["checksum"]["value"]


# --- artifacts: the manifest, the metadata against the graph, an interrupted forced export ------------------------


def _artifact_copy(plain_artifact, tmp_path) -> Path:
    import shutil

    target = tmp_path / "artifact"
    shutil.copytree(plain_artifact[0], target)
    return target


def _edit_manifest(directory: Path, edit) -> None:
    import json

    manifest = json.loads((directory / "s4rec.json").read_text())
    edit(manifest)
    (directory / "s4rec.json").write_text(json.dumps(manifest))


def _entry(**changes):
    def edit(manifest):
        manifest["variants"]["fp32"] = dict(manifest["variants"]["fp32"], **changes)
        manifest["variants"]["fp32"] = {k: v for k, v in manifest["variants"]["fp32"].items() if v is not None}

    return edit


MANIFEST_CASES = [
    ("entry without file", _entry(file=None), "variants.fp32 has no 'file' name (got None)"),
    ("entry without sha256", _entry(sha256=None), "variants.fp32: 'sha256' must be 64 lowercase hex digits, got None"),
    ("entry of the wrong type", lambda m: m["variants"].update(fp32=["model.onnx"]),
     "variants.fp32 must be an object with 'file' and 'sha256', got list"),
    ("file a number", _entry(file=7), "variants.fp32 has no 'file' name (got 7)"),
    ("file outside the directory ('..')", _entry(file="../plain/artifact/model.onnx"),
     "variants.fp32: 'file' '../plain/artifact/model.onnx' is not a file name inside the artifact directory"),
    ("file an absolute path", _entry(file="/etc/hostname"), "'file' '/etc/hostname' is not a file name inside"),
    ("bytes not a number", _entry(bytes="many"), "variants.fp32: 'bytes' must be an integer >= 0, got 'many'"),
    ("bytes other than the file's", _entry(bytes=123), "model.onnx: "),
    ("files table of the wrong type", lambda m: m.update(files=[1]), "manifest 'files' must be an object"),
]  # fmt: skip


@pytest.mark.parametrize("name, edit, message", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_a_bad_manifest_entry_is_refused(tmp_path, plain_artifact, name, edit, message):
    from s4rec import Recommender
    from s4rec.errors import ArtifactError

    target = _artifact_copy(plain_artifact, tmp_path)
    _edit_manifest(target, edit)
    with pytest.raises(ArtifactError) as caught:
        Recommender.load(target)
    assert message in str(caught.value) and str(target) in str(caught.value), str(caught.value)


@pytest.mark.parametrize("name, changes, message", GRAPH_MISMATCH_CASES, ids=[c[0] for c in GRAPH_MISMATCH_CASES])
def test_metadata_that_disagrees_with_the_graph_is_refused(tmp_path, plain_artifact, name, changes, message):
    from s4rec import Recommender
    from s4rec.errors import ArtifactError

    target = with_edited_metadata(plain_artifact[0], tmp_path / "artifact", **changes)
    with pytest.raises(ArtifactError, match="the metadata does not match the graph") as caught:
        Recommender.load(target)
    assert message in str(caught.value) and str(target / "model.onnx") in str(caught.value), str(caught.value)


def test_a_missing_artifact_with_an_interrupted_exports_backup_says_where_it_is(tmp_path, plain_artifact, tiny):
    import shutil

    from s4rec import Recommender
    from s4rec.errors import ArtifactError
    from s4rec.files import interrupted_backup

    backup = tmp_path / ".artifact.x1y2.old" / "artifact"
    shutil.copytree(plain_artifact[0], backup)  # what a crash between the two renames of --force leaves
    out = tmp_path / "artifact"
    assert interrupted_backup(out) == backup
    expected = (
        f"{out}: no such artifact: an interrupted forced s4rec-export left the previous one in {backup}. "
        f"Run s4rec-export -o {out} again (it puts the previous one back first), or move it back: mv {backup} {out}"
    )
    with pytest.raises(ArtifactError) as caught:
        Recommender.load(out)
    assert str(caught.value) == expected
    recs = tmp_path / "recs.jsonl"
    result = CliRunner().invoke(score_main, [str(out), "-i", str(tiny / "users.jsonl"), "-o", str(recs)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [f"Error: {expected}"]
    assert not recs.exists() and backup.is_dir()


def test_a_top_k_below_the_graphs_loads_and_caps_k(tmp_path, plain_artifact):
    # Graphs exported before the input guards return any k; a metadata top_k below the graph's is harmless.
    from s4rec import Recommender

    rec = Recommender.load(with_edited_metadata(plain_artifact[0], tmp_path / "artifact", top_k=5))
    assert len(rec.recommend([1, 2], k=5)) == 5
    with pytest.raises(ValueError):
        rec.recommend([1, 2], k=6)
