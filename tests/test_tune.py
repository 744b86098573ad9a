"""`s4rec-train tune`: a 2-trial study on tiny data, its SQLite file resumed, a study of other data refused,
and the printed command trains the best trial's configuration (same validation NDCG@20)."""

from __future__ import annotations

import shlex

import pytest
import torch
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import synthetic_interactions, write_sequences

FIXED = ["--epochs", "2", "--max-len", "10", "--loss", "sampled", "--negatives", "16", "--threads", "1"]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=40), path)
    return path


@pytest.mark.slow
def test_a_two_trial_study_resumes_and_prints_the_best_command(tmp_path, data):
    study = tmp_path / "study.db"
    runner = CliRunner()
    result = runner.invoke(cli, ["tune", str(data), "--study", str(study), "--trials", "2", *FIXED])
    assert result.exit_code == 0, result.output
    trials = [line for line in result.output.splitlines() if line.startswith("trial ")]
    assert len(trials) == 2 and all("valid NDCG@20" in line or "pruned" in line for line in trials)
    assert "best: trial" in result.output and study.is_file()
    again = runner.invoke(cli, ["tune", str(data), "--study", str(study), "--trials", "3", *FIXED])
    assert again.exit_code == 0, again.output
    assert "study: 2 finished trials already" in again.output and "trial 2:" in again.output
    best_value = float(again.output.split("best: trial")[1].split("valid NDCG@20 ")[1].split()[0])
    command = shlex.split(again.output.split("train it with:")[1].strip().splitlines()[0])
    assert command[:2] == ["s4rec-train", str(data)] and "--lr" in command and "--contrastive-weight" in command
    output = tmp_path / "best.pt"
    args = command[1:]
    args[args.index("-o") + 1] = str(output)
    trained = runner.invoke(cli, [*args, "--threads", "1", "--quiet"])
    assert trained.exit_code == 0, trained.output
    valid = torch.load(output, weights_only=True)["metrics"]["valid"]["overall"]["NDCG@20"]
    assert round(valid, 4) == best_value  # the command is the trial's configuration


def test_a_study_of_other_data_or_settings_is_refused(tmp_path, data):
    study = tmp_path / "study.db"
    runner = CliRunner()
    result = runner.invoke(cli, ["tune", str(data), "--study", str(study), "--trials", "1", "--backbone", *FIXED])
    assert result.exit_code == 0, result.output
    other = tmp_path / "other.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=40, seed=7), other)
    result = runner.invoke(cli, ["tune", str(other), "--study", str(study), "--trials", "1", "--backbone", *FIXED])
    assert result.exit_code == 2 and "this study was made on other data" in result.output
    changed = [*FIXED[:1], "3", *FIXED[2:]]  # --epochs 3
    result = runner.invoke(cli, ["tune", str(data), "--study", str(study), "--trials", "1", "--backbone", *changed])
    assert result.exit_code == 2 and "epochs: 2 -> 3" in result.output
