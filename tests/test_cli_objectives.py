"""s4rec-train's S4Rec flags: defaults, --backbone, overrides (tiny synthetic data, CliRunner)."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.cli_options import objective_options
from s4rec_train.data import synthetic_interactions, write_sequences
from s4rec_train.objectives import ObjectiveConfig

TINY = ["--epochs", "1", "--dim", "8", "--max-len", "10", "--batch-size", "32", "--quiet", "--device", "cpu"]


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "tiny.txt"
    write_sequences(synthetic_interactions(num_users=60, num_items=25, seed=0), path)
    return path


def test_help_states_the_objective_config_defaults():
    defaults = ObjectiveConfig()
    for _flag, name, _kind, text in objective_options:
        stated = re.search(r"\[(.+)\]$", text).group(1)
        assert stated == str(getattr(defaults, name)), name


def test_s4rec_is_the_default_and_saves_centroids(data_file, tmp_path):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(cli, [str(data_file), "-o", str(out), *TINY, "--intents", "4"])
    assert result.exit_code == 0, result.output
    assert "intents: users of the training data fall into" in result.output
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["intent_centroids"].shape == (4, 8)
    assert checkpoint["training"]["objectives"] == ObjectiveConfig(num_intents=4).to_dict()


def test_backbone_flag_and_overrides(data_file, tmp_path):
    out = tmp_path / "b.pt"
    result = CliRunner().invoke(cli, [str(data_file), "-o", str(out), *TINY, "--backbone"])
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["intent_centroids"] is None
    assert checkpoint["training"]["settings"]["batching"] == "tokens"
    flags = ["--intents", "3", "--adversary-weight", "0", "--contrastive-temperature", "0.1"]
    result = CliRunner().invoke(cli, [str(data_file), "-o", str(out), *TINY, *flags])
    assert result.exit_code == 0, result.output
    objectives = torch.load(out, weights_only=True)["training"]["objectives"]
    assert objectives["adversary_weight"] == 0 and objectives["contrastive_temperature"] == 0.1


def test_backbone_with_a_weight_is_a_usage_error(data_file, tmp_path):
    result = CliRunner().invoke(cli, [str(data_file), *TINY, "--backbone", "--distill-weight", "0.1"])
    assert result.exit_code == 2
    assert "--backbone sets every auxiliary weight to 0" in result.output


def test_side_vector_intent_source_and_prototype_switches_reach_the_checkpoint(data_file, tmp_path):
    out = tmp_path / "s.pt"
    flags = ["--intents", "4", "--side-vector", "mean", "--intent-from", "q", "--unit-prototypes", "--train-teacher"]
    result = CliRunner().invoke(cli, [str(data_file), "-o", str(out), *TINY, *flags])
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(out, weights_only=True)
    objectives = checkpoint["training"]["objectives"]
    assert (objectives["side_vector"], objectives["intent_from"]) == ("mean", "q")
    assert objectives["unit_prototypes"] is True and objectives["detach_teacher"] is False
    # unit prototypes: the trained parameter itself is put back on the unit sphere after every step (free
    # prototypes start at norm ~sqrt(d) and stay near it)
    raw = checkpoint["objective_state_dict"]["prototypes"]
    torch.testing.assert_close(raw.norm(dim=1), torch.ones(4), rtol=0, atol=1e-5)
    result = CliRunner().invoke(cli, [str(data_file), "-o", str(out), *TINY, "--side-vector", "middle"])
    assert result.exit_code == 2 and "'middle' is not one of 'last', 'mean'" in result.output
