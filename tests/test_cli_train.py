"""s4rec-train as a user runs it: fit, evaluate, bad input, and the message without torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import synthetic_interactions, write_sequences

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--max-len", "10", "--dim", "16", "--layers", "1", "--epochs", "2", "--batch-size", "64", "--quiet"]


def test_fit_then_evaluate(tmp_path):
    data = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=150, num_items=30), data)
    model = tmp_path / "model.pt"
    runner = CliRunner()
    result = runner.invoke(cli, [str(data), "-o", str(model), *TINY_ARGS, "--metrics-json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "epoch   2" in result.output and "test overall" in result.output
    assert model.exists()
    saved = json.loads((tmp_path / "m.json").read_text())
    result = runner.invoke(cli, ["evaluate", str(model), str(data), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    evaluated = json.loads((tmp_path / "e.json").read_text())
    assert abs(evaluated["test"]["overall"]["NDCG@20"] - saved["test"]["overall"]["NDCG@20"]) < 1e-6


def test_bad_data_is_a_clear_usage_error(tmp_path):
    bad = tmp_path / "log.csv"
    bad.write_text("user,item,time\n1,2,3\n")
    result = CliRunner().invoke(cli, [str(bad), "-o", str(tmp_path / "m.pt"), *TINY_ARGS])
    assert result.exit_code == 2
    assert "missing column(s) ['timestamp']" in result.output and "--time-col" in result.output
    assert not (tmp_path / "m.pt").exists()


def test_evaluate_refuses_a_non_checkpoint(tmp_path):
    data = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=20, num_items=10), data)
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(cli, ["evaluate", str(junk), str(data)])
    assert result.exit_code == 2 and "not a readable torch checkpoint" in result.output


def test_without_torch_says_which_extra_to_install():
    code = "import sys; sys.modules['torch'] = None; from s4rec_train.cli import main; main()"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "training"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "pip install 's4rec[train]'" in result.stderr
