"""Experiment tracking (--track): a run's directory with TensorBoard event files (settings, per-epoch losses and
validation figures, final figures), settings.json and the checkpoint's copy; off by default."""

from __future__ import annotations

import json
import struct

import torch
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import synthetic_interactions, write_sequences

TINY = ["--max-len", "10", "--dim", "16", "--layers", "1", "--heads", "2", "--threads", "1", "--quiet"]


def read_events(path) -> list:
    """The Event records of a TensorBoard event file (TFRecord framing: length, its CRC, data, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    events, data = [], path.read_bytes()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        event = Event()
        event.ParseFromString(data[offset + 12 : offset + 12 + length])
        events.append(event)
        offset += 12 + length + 4
    return events


def scalars(directory) -> dict:
    """{tag: [(step, value), ...]} over every event file under ``directory``."""
    out: dict = {}
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        for event in read_events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_track_writes_a_run_with_settings_epochs_final_figures_and_the_checkpoint(tmp_path):
    data = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=40), data)
    runs, output = tmp_path / "runs", tmp_path / "model.pt"
    args = [str(data), "-o", str(output), "--epochs", "3", "--intents", "4", *TINY, "--track", "--track-dir", str(runs)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (run,) = list(runs.iterdir())
    assert run.name.endswith("-model") and f"tracked run {run.name} in {runs}" in result.output
    settings = json.loads((run / "settings.json").read_text())
    assert settings["model"]["dim"] == 16 and settings["training"]["epochs"] == 3
    assert settings["objectives"]["num_intents"] == 4
    logged = scalars(run)
    assert [step for step, _ in logged["train/loss"]] == [1, 2, 3]
    checkpoint = torch.load(output, weights_only=True)
    history = checkpoint["training"]["history"]
    assert [v for _, v in logged["train/loss"]] == [float(torch.tensor(h["loss"])) for h in history]
    assert [v for _, v in logged["valid/NDCG_20"]] == [float(torch.tensor(h["valid"]["NDCG@20"])) for h in history]
    assert {"train/term/cluster", "train/term/contrastive", "valid/MRR_20", "valid/Coverage_20"} <= set(logged)
    test = checkpoint["metrics"]["test"]["overall"]["NDCG@20"]
    assert logged["final/test/NDCG_20"][0][1] == float(torch.tensor(test))
    assert (run / "model.pt").read_bytes() == output.read_bytes()


def test_tracking_is_off_by_default(tmp_path, monkeypatch):
    data = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=40), data)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [str(data), "-o", "m.pt", "--epochs", "1", "--backbone", *TINY])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "m.pt"]
