"""benchmarks/results_table.py's paired comparison: the figures RESULTS.md quotes for S4Rec against its backbone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

spec = importlib.util.spec_from_file_location(
    "results_table", Path(__file__).parents[1] / "benchmarks" / "results_table.py"
)
results_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_table)


def test_sign_flip_p_counts_every_sign_pattern():
    assert results_table.sign_flip_p([0.1, 0.2, 0.3]) == pytest.approx(2 / 8)  # all +, or all -: 2 of 8
    assert results_table.sign_flip_p([0.1, -0.1]) == 1.0
    # |sum| >= 0.5: every sign the same (0.7, 2 patterns) or one 0.1 flipped (0.5, 4 patterns)
    assert results_table.sign_flip_p([0.3, 0.1, -0.1, 0.2]) == pytest.approx(6 / 16)


def _run_file(path: Path, seed: int, test: float, valid: float) -> Path:
    groups = {g: {"NDCG@20": value} for g, value in (("overall", test), ("head", test), ("tail", test))}
    valid_groups = {g: {"NDCG@20": valid} for g in ("overall", "head", "tail")}
    run = {"arm": "x", "seed": seed, "test": groups, "valid": valid_groups, "best_epoch": 1, "epoch_seconds": [1.0],
           "intents": None}  # fmt: skip
    path.write_text(json.dumps({"command": "", "runs": [run]}))
    return path


def test_paired_compares_each_run_with_the_base_run_of_its_seed(tmp_path):
    bases = [_run_file(tmp_path / f"b{s}.json", s, 0.040, 0.050) for s in (0, 1)]
    runs = [_run_file(tmp_path / "r0.json", 0, 0.044, 0.050), _run_file(tmp_path / "r1.json", 1, 0.038, 0.055)]
    args = [f"--base={b}" for b in bases] + [str(r) for r in runs]
    result = CliRunner().invoke(results_table.main, args)
    assert result.exit_code == 0, result.output
    assert "0: 0.0440 vs 0.0400 (+10.0%), 1: 0.0380 vs 0.0400 (-5.0%) | +2.5% ± 10.6%" in result.output
    missing = CliRunner().invoke(results_table.main, [f"--base={bases[0]}", str(runs[1])])
    assert missing.exit_code == 2 and "no --base run for seed(s) [1]" in missing.output
