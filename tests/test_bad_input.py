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
