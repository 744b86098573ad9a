"""s4rec-train as a user runs it: fit, evaluate, bad input, and the message without torch."""

import io
import json
import os
import re
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
    assert result.exit_code == 2 and "not a readable s4rec checkpoint" in result.output


def test_without_torch_says_which_extra_to_install():
    code = "import sys; sys.modules['torch'] = None; from s4rec_train.cli import main; main()"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "training"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "pip install '/path/to/s4rec[train]' (this repository)" in result.stderr


def progress(epoch, step, steps=200, elapsed=0.0, loss=3.0):
    import torch

    from s4rec_train.train import Progress

    return Progress(epoch, 4, step, steps, users=10 * step, elapsed=elapsed, loss_total=torch.tensor(loss * step))


def test_progress_lines_without_a_terminal_every_30_seconds():
    from s4rec_train.cli_progress import ProgressLines, progress_reporter

    lines = []
    report = ProgressLines(lines.append)
    for epoch in (1, 2):
        for step in range(1, 201):
            report(progress(epoch, step, elapsed=0.5 * step))  # 100 s per epoch
    assert len(lines) == 6  # at 30, 60 and 90 s of each epoch
    assert lines[0] == "epoch 1/4  step 60/200  2.00 steps/s  20 users/s  loss 3.0000  epoch ETA 1m10s"
    assert lines[3].startswith("epoch 2/4  step 60/200")
    assert isinstance(progress_reporter(io.StringIO()), ProgressLines)


def test_progress_bar_on_a_terminal():
    from s4rec_train.cli_progress import TrainingProgressBar, progress_reporter

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = progress_reporter(screen)
    assert isinstance(bar, TrainingProgressBar)
    for step in range(1, 6):
        bar(progress(1, step, steps=5, elapsed=step, loss=2.5))
    assert bar.bar is None  # closed after the epoch's last step
    assert "epoch 1/4" in screen.getvalue() and "5/5" in screen.getvalue() and "loss 2.5000" in screen.getvalue()


def test_only_the_command_line_imports_click():
    package = ROOT / "training" / "s4rec_train"
    imports = re.compile(r"^\s*(import|from)\s+click\b", re.MULTILINE)
    users = sorted(p.name for p in package.glob("*.py") if imports.search(p.read_text()))
    assert users == ["cli.py", "cli_evaluate.py", "cli_fit.py", "cli_options.py", "cli_progress.py", "cli_tune.py"]


def test_help_shows_training_options_with_the_config_defaults():
    """`s4rec-train --help` is training's help (usage, every option with its default) and names evaluate."""
    import click

    from s4rec_train.config import ModelConfig, TrainConfig
    from s4rec_train.objectives import ObjectiveConfig

    result = CliRunner().invoke(cli, ["--help"], prog_name="s4rec-train")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Usage: s4rec-train [fit] DATA [OPTIONS]" in text and "s4rec-train evaluate" in text
    train, model, objectives = TrainConfig(), ModelConfig(num_items=1), ObjectiveConfig()
    expected = {
        "--output": "model.pt", "--epochs": train.epochs, "--batch-size": train.batch_size, "--lr": train.lr,
        "--patience": train.patience, "--max-len": model.max_len, "--dim": model.dim, "--layers": model.layers,
        "--heads": model.heads, "--dropout": model.dropout, "--loss": train.loss, "--seed": train.seed,
        "--device": train.device, "--batching": train.batching, "--threads": "(torch's default)",
        "--intents": objectives.num_intents, "--cluster-weight": objectives.cluster_weight,
    }  # fmt: skip
    fit = cli.commands["fit"]
    ctx = click.Context(fit, show_default=True)
    records = {
        opt: record for param in fit.params if isinstance(param, click.Option)
        for opt in param.opts if (record := param.get_help_record(ctx))
    }  # fmt: skip
    for flag, default in expected.items():
        assert flag in text, flag
        assert f"[default: {default}" in " ".join(records[flag][1].split()), flag
    undocumented = [p.name for p in fit.params if isinstance(p, click.Option) and not p.help]
    assert undocumented == []


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from s4rec_train.cli import cli\n"
        "for args in (['--help'], ['fit', '--help'], ['evaluate', '--help'], ['--version']):\n"
        "    assert cli(args, standalone_mode=False) == 0, args\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("sdk", "training", "export")))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "False"
    assert "--max-len" in result.stdout
    # and without torch at all, the entry point still answers --help
    blocked = "import sys; sys.modules['torch'] = None; sys.argv[1:] = ['--help']\n"
    blocked += "from s4rec_train.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "--epochs" in result.stdout, result.stderr


def test_data_too_small_for_a_head_and_a_tail_group_is_refused_up_front(tmp_path):
    from click.testing import CliRunner

    from s4rec_train.cli import cli

    path = tmp_path / "two.txt"
    path.write_text("1 1 2 3\n2 2 3 1\n")
    result = CliRunner().invoke(cli, [str(path), "-o", str(tmp_path / "m.pt"), "--epochs", "1"])
    assert result.exit_code == 2 and "too small to train and evaluate: 2 user(s)" in result.output
    assert "nan" not in result.output and not (tmp_path / "m.pt").exists()
