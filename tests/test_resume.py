"""Resume (s4rec_train.resume): a run killed with SIGKILL mid-training and resumed ends with the checkpoint an
uninterrupted run writes, tensor for tensor (CPU, one thread); a resume with other data or options is refused
with what differs; the state file is a safe, checked, plain file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import synthetic_interactions, write_sequences
from s4rec_train.resume import state_path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--max-len", "10", "--dim", "16", "--layers", "1", "--heads", "2", "--batch-size", "16", "--threads", "1"]
TINY += ["--intents", "4", "--patience", "20", "--quiet", "--seed", "3"]
RUNS = {  # S4Rec's augmentations (their generator), and sampled softmax (negatives, in-batch draws, SparseAdam)
    "s4rec-softmax": ["--loss", "softmax"],
    "s4rec-sampled-sparse": ["--loss", "sampled", "--negatives", "8", "--in-batch-negatives", "8", "--sparse-items"],
}


def _data(tmp_path: Path, users: int = 500, seed: int = 5) -> Path:
    path = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=users, num_items=60, mean_length=10, seed=seed), path)
    return path


def _command(data: Path, output: Path, epochs: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "s4rec_train", str(data), "-o", str(output), "--epochs", str(epochs), *TINY, *extra]


def _environment() -> dict:
    paths = [str(ROOT / part) for part in ("training", "sdk", "export")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))


def _tensors(checkpoint: dict) -> dict:
    out = {f"state_dict.{k}": v for k, v in checkpoint["state_dict"].items()}
    out.update({f"heads.{k}": v for k, v in (checkpoint["objective_state_dict"] or {}).items()})
    out["intent_centroids"] = checkpoint["intent_centroids"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_run_killed_mid_training_and_resumed_equals_the_uninterrupted_run(tmp_path, name):
    data, epochs, extra = _data(tmp_path), 5, RUNS[name]
    whole = tmp_path / "whole.pt"
    subprocess.run(_command(data, whole, epochs, extra), env=_environment(), check=True, capture_output=True)
    assert not state_path(whole).exists()  # a complete run leaves no state behind

    killed = tmp_path / "killed.pt"
    process = subprocess.Popen(_command(data, killed, epochs, extra), env=_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120
    while not state_path(killed).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the first epoch's state is written: the run is in its second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()
    assert state_path(killed).exists()
    assert not torch.load(killed, weights_only=True)["metrics"]["complete"]

    resumed = subprocess.run(
        _command(data, killed, epochs, [*extra, "--resume"]), env=_environment(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    done = int(resumed.stdout.split("epochs done")[0].rsplit(":", 1)[1])
    assert 1 <= done < epochs, resumed.stdout  # it continued from a completed epoch before the last
    assert not state_path(killed).exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # the kill's leftovers removed
    a, b = torch.load(whole, weights_only=True), torch.load(killed, weights_only=True)
    for key, tensor in _tensors(a).items():
        assert torch.equal(tensor, _tensors(b)[key]), key
    assert a["metrics"]["valid"] == b["metrics"]["valid"] and a["metrics"]["test"] == b["metrics"]["test"]
    assert [h["loss"] for h in a["training"]["history"]] == [h["loss"] for h in b["training"]["history"]]


def _interrupted_state(tmp_path: Path, extra=()) -> tuple[Path, Path]:
    """A state file as an interrupted run leaves it: train 2 epochs, keep the state after the first."""
    data, output = _data(tmp_path, users=200), tmp_path / "model.pt"
    from s4rec_train import resume

    saved = {}
    original = resume.RunState.save

    def keep_first(self, epoch, *args, **kwargs):
        original(self, epoch, *args, **kwargs)
        if epoch == 1:
            saved["bytes"] = self.path.read_bytes()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resume.RunState, "save", keep_first)
        result = CliRunner().invoke(cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, *extra])
    assert result.exit_code == 0, result.output
    state_path(output).write_bytes(saved["bytes"])
    return data, output


def test_resume_continues_from_the_saved_epoch_and_removes_the_state(tmp_path):
    data, output = _interrupted_state(tmp_path)
    result = CliRunner().invoke(cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, "--resume"])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "1 epochs done" in result.output
    assert result.output.count("valid HR@20") == 1  # epoch 2 only
    assert not state_path(output).exists()
    history = torch.load(output, weights_only=True)["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


@pytest.mark.parametrize(
    "change, words",
    [
        (["--lr", "0.01"], "settings.lr: 0.001 -> 0.01"),
        (["--dim", "8", "--heads", "2"], "model.dim: 16 -> 8"),
        (["--backbone"], "objectives.cluster_weight: 0.01 -> 0.0"),
    ],
)
def test_resume_with_other_options_is_refused_with_what_differs(tmp_path, change, words):
    data, output = _interrupted_state(tmp_path)
    result = CliRunner().invoke(cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, *change, "--resume"])
    assert result.exit_code == 2
    assert "--resume refused: this run differs from the interrupted one" in result.output and words in result.output
    assert state_path(output).exists()  # nothing lost


def test_resume_with_other_data_is_refused(tmp_path):
    data, output = _interrupted_state(tmp_path)
    other = tmp_path / "other.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=60, mean_length=10, seed=9), other)
    result = CliRunner().invoke(cli, [str(other), "-o", str(output), "--epochs", "2", *TINY, "--resume"])
    assert result.exit_code == 2 and "data.sha256" in result.output and "data.source" in result.output
    # only where the run executes may change
    result = CliRunner().invoke(
        cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, "--threads", "2", "--resume"]
    )
    assert result.exit_code == 0, result.output


def test_a_damaged_or_foreign_state_is_refused_in_one_line(tmp_path):
    data, output = _interrupted_state(tmp_path)
    state = state_path(output)
    content = bytearray(state.read_bytes())
    torch.save({"format": "something else"}, state)
    result = CliRunner().invoke(cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, "--resume"])
    assert result.exit_code == 2 and "not an s4rec training state" in result.output
    state.write_bytes(bytes(content[: len(content) // 2]))
    result = CliRunner().invoke(cli, [str(data), "-o", str(output), "--epochs", "2", *TINY, "--resume"])
    assert result.exit_code == 2 and "not a readable training state" in result.output


def test_the_state_loads_without_unpickling_classes(tmp_path):
    _, output = _interrupted_state(tmp_path)
    state = torch.load(state_path(output), weights_only=True)  # raises on anything but tensors and plain data
    assert state["format"] == "s4rec-training-state" and state["epoch"] == 1
    assert set(state["streams"]) >= {"per_process", "numpy", "numpy_global", "python"}


def test_resume_without_a_state_trains_from_the_start(tmp_path):
    data = _data(tmp_path, users=200)
    result = CliRunner().invoke(cli, [str(data), "-o", str(tmp_path / "m.pt"), "--epochs", "1", *TINY, "--resume"])
    assert result.exit_code == 0, result.output
    assert "no training state at" in result.output and "training from the start" in result.output
