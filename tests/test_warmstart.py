"""Warm start (s4rec_train.warmstart, `s4rec-train NEW --init-from OLD.pt`): the vocabulary grows with the old
rows bit-identical, new items get rows by the chosen initialisation, the encoder and the intent prototypes are
carried over, the old checkpoint's settings are used unless given; every loss, --sparse-items and torchrun;
bad input gets one line."""

from __future__ import annotations

import os

import ddp_helpers
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s4rec_train.checkpoint import load_checkpoint
from s4rec_train.cli import cli
from s4rec_train.config import ADDED_OPTIONS
from s4rec_train.data import Interactions, leave_one_out, synthetic_interactions, write_sequences
from s4rec_train.model import ModelConfig, SASRec
from s4rec_train.objectives import S4RecHeads
from s4rec_train.warmstart import (
    COOCCUR_WINDOW,
    WarmStart,
    cooccurrence_rows,
    reference_run,
    warm_objectives,
    warm_schedule,
    warm_settings,
)

TINY = ["--max-len", "10", "--dim", "16", "--layers", "1", "--heads", "2", "--threads", "1", "--quiet"]
OLD = [*TINY, "--epochs", "2", "--batch-size", "32", "--lr", "0.005", "--intents", "4"]


def _newer(num_users=220, seed=1) -> Interactions:
    """Newer data: items 1..50 where the old data had 1..40, minus item 7 (it left the catalogue)."""
    data = synthetic_interactions(num_users=num_users, num_items=50, seed=seed)
    items = np.where(data.items == 7, 8, data.items)
    return Interactions(data.item_ids, data.user_ids, items, data.offsets, "newer")


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """(path, checkpoint, old data file, newer data file): a tiny S4Rec model with 4 intents on items 1..40."""
    directory = tmp_path_factory.mktemp("warm")
    old_data, new_data = directory / "old.txt", directory / "new.txt"
    write_sequences(synthetic_interactions(num_users=200, num_items=40, seed=0), old_data)
    write_sequences(_newer(), new_data)
    result = CliRunner().invoke(cli, [str(old_data), "-o", str(directory / "old.pt"), *OLD])
    assert result.exit_code == 0, result.output
    return directory / "old.pt", load_checkpoint(directory / "old.pt"), old_data, new_data


def _grown(path, init: str):
    warm = WarmStart.load(path, init)
    data = warm.grow(_newer())
    config = ModelConfig.from_dict({**warm.model_config, "num_items": data.num_items})
    torch.manual_seed(123)
    model, heads = SASRec(config), S4RecHeads(config.dim, 4, torch.Generator().manual_seed(5))
    split = leave_one_out(data, config.max_len)
    warm.apply(model, heads, split, seed=0, log=lambda _: None)
    return warm, data, split, model, heads


@pytest.mark.parametrize("init", ["cooccur", "mean", "normal"])
def test_growth_keeps_the_old_rows_encoder_and_prototypes_bit_identical(old, init):
    path, checkpoint, _, _ = old
    warm, data, _, model, heads = _grown(path, init)
    old_ids = list(checkpoint["item_ids"])
    assert data.item_ids.tolist()[:40] == old_ids  # old items keep their indices
    assert sorted(data.item_ids.tolist()[40:]) == list(range(41, 51))  # new items after them
    assert (warm.old_items, warm.new_items, warm.absent_items) == (40, 10, 1)  # item 7 is kept though absent
    assert any("1 of its items are not in this log and are kept" in note for note in data.notes)
    table = model.item_embedding.weight.detach()
    old_table = checkpoint["state_dict"]["item_embedding.weight"]
    assert torch.equal(table[:41], old_table)
    for name, tensor in checkpoint["state_dict"].items():
        if name != "item_embedding.weight":
            assert torch.equal(model.state_dict()[name], tensor), name
    assert torch.equal(heads.prototypes.detach(), checkpoint["objective_state_dict"]["prototypes"])
    new_rows = table[41:]
    if init == "mean":
        assert torch.equal(new_rows, old_table[1:].mean(0).expand(10, -1))
    elif init == "normal":
        assert 0.01 < float(new_rows.std()) < 0.03 and abs(float(new_rows.mean())) < 0.01
    else:  # every new item has old neighbours here: rows differ from the plain mean and from each other
        assert not torch.equal(new_rows[0], old_table[1:].mean(0)) and not torch.equal(new_rows[0], new_rows[1])


def test_cooccurrence_rows_average_the_old_neighbours_in_the_training_part_only():
    # items 1..3 old, 4 and 5 new; user 0: 1 2 4 3 | 5 5 (the last two are validation and test)
    data = Interactions.from_sequences(list(range(1, 6)), [0, 1], [[1, 2, 4, 3, 5, 5], [3, 3, 3]], "hand")
    split = leave_one_out(data, max_len=10)
    table = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 2)  # old rows 0..3
    fallback = torch.tensor([-1.0, -1.0])
    rows = cooccurrence_rows(table, split, n_old=3, count=2, fallback=fallback)
    assert COOCCUR_WINDOW >= 2
    # item 4's neighbours within the training part (1 2 4 3): items 1, 2, 3
    assert torch.allclose(rows[0], table[[1, 2, 3]].mean(0))
    # item 5 occurs only as validation and test targets: it must not be placed by them
    assert torch.equal(rows[1], fallback)


@pytest.mark.parametrize(
    "options",
    [["--loss", "softmax"], ["--loss", "sampled", "--negatives", "8"], ["--loss", "bce"],
     ["--loss", "sampled", "--negatives", "8", "--sparse-items"]],
    ids=["softmax", "sampled", "bce", "sparse-items"],
)  # fmt: skip
def test_warm_start_trains_with_every_loss(old, tmp_path, options):
    path, checkpoint, _, new_data = old
    output = tmp_path / "new.pt"
    result = CliRunner().invoke(cli, [str(new_data), "--init-from", str(path), "-o", str(output), "--epochs", "1",
                                      "--quiet", *options])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "10 new items get new rows (cooccur)" in result.output
    new = load_checkpoint(output)
    assert new["config"]["num_items"] == 50 and new["item_ids"][:40] == checkpoint["item_ids"]
    # the old model's shape and settings, not the command line's defaults
    assert {k: new["config"][k] for k in ("max_len", "dim", "layers")} == {"max_len": 10, "dim": 16, "layers": 1}
    assert new["training"]["settings"]["batch_size"] == 32 and new["training"]["settings"]["patience"] == 5
    # the warm schedule: 10x the old lr, decaying linearly, validated after the given last epoch
    settings = new["training"]["settings"]
    assert (settings["lr"], settings["lr_schedule"], settings["validate_every"]) == (0.05, "linear", 1)
    assert new["training"]["objectives"]["num_intents"] == 4
    assert new["training"]["warm_start"]["new_items"] == 10 and new["training"]["warm_start"]["absent_items"] == 1
    assert new["intent_centroids"].shape == (4, 16)


def test_options_given_override_the_old_checkpoint(old, tmp_path):
    path, _, _, new_data = old
    output = tmp_path / "new.pt"
    args = [str(new_data), "--init-from", str(path), "-o", str(output), "--epochs", "1", "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--lr", "0.002", "--dropout", "0.2", "--new-item-init", "mean"])
    assert result.exit_code == 0, result.output
    assert "given here" in result.output and "'lr'" in result.output
    new = load_checkpoint(output)
    assert new["training"]["settings"]["lr"] == 0.002 and new["config"]["dropout"] == 0.2
    assert new["training"]["settings"]["batch_size"] == 32  # not given: the old run's
    assert new["training"]["warm_start"]["new_item_init"] == "mean"


def test_the_warm_schedule_and_its_reference_over_a_chain_of_days(old, tmp_path):
    path, checkpoint, _, new_data = old
    assert checkpoint["training"]["epochs_run"] == 2 and checkpoint["training"]["settings"]["lr"] == 0.005
    # A 20-epoch S4Rec reference run at 1e-3: 30% of its time is 9 epochs without the auxiliary terms (an epoch
    # costs 1/1.5), from 1e-2, one validation after the last; 6 epochs when the command line keeps the terms on.
    settings = {**checkpoint["training"]["settings"], "lr": 1e-3}
    reference = {**checkpoint, "training": {**checkpoint["training"], "epochs_run": 20, "settings": settings}}
    assert warm_schedule(reference) == {"epochs": 9, "lr": 1e-2, "lr_schedule": "linear", "validate_every": 9}
    assert warm_objectives(reference) == {"warmup": 0.0, "cooldown": 0.02}
    assert warm_schedule(reference, {}, {"cluster_weight": 0.1})["epochs"] == 6
    assert warm_objectives(reference, {"cluster_weight": 0.1}) == {}
    assert warm_schedule(reference, {"epochs": 4, "lr": 3e-3}) == {"lr_schedule": "linear", "validate_every": 4}
    backbone = {**reference, "training": {**reference["training"], "objectives": {"cluster_weight": 0.0,
                "contrastive_weight": 0.0, "distill_weight": 0.0, "adversary_weight": 0.0}}}  # fmt: skip
    assert warm_schedule(backbone)["epochs"] == 6 and warm_objectives(backbone) == {}
    # a warm start's checkpoint records its reference: the next day's schedule is the same, not 30% of 30%
    recorded = {"reference": {"epochs": 20, "lr": 1e-3, "s4rec_terms": True}}
    day2 = {**checkpoint, "training": {**checkpoint["training"], "epochs_run": 9, "warm_start": recorded}}
    assert reference_run(day2)["epochs"] == 20 and warm_schedule(day2)["epochs"] == 9
    # the command line: no schedule option given, the warm schedule (the old run's 2 epochs: 0.3 x 2 x 1.5 = 1)
    output = tmp_path / "new.pt"
    result = CliRunner().invoke(cli, [str(new_data), "--init-from", str(path), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "warm start schedule: epochs 1, lr 0.05, lr_schedule linear, validate_every 1" in result.output
    assert "auxiliary terms fall to 0 over the first 2% of the steps" in result.output
    new = load_checkpoint(output)
    assert new["training"]["epochs_run"] == 1 and new["intent_centroids"].shape == (4, 16)
    assert (new["training"]["objectives"]["warmup"], new["training"]["objectives"]["cooldown"]) == (0.0, 0.02)
    assert new["training"]["warm_start"]["reference"] == {"epochs": 2, "lr": 0.005, "s4rec_terms": True}


def test_a_warm_start_reads_the_options_its_checkpoint_predates_as_that_code_had_them(old):
    """A checkpoint written before --side-vector, --unit-prototypes, --train-teacher, --intent-from, --warmup and
    --cooldown existed was trained as the code was then (config.ADDED_OPTIONS), not with today's defaults."""
    _, checkpoint, _, _ = old
    predates = {k: v for k, v in checkpoint["training"]["objectives"].items() if k not in ADDED_OPTIONS}
    older = {**checkpoint, "training": {**checkpoint["training"], "objectives": predates}}
    _, _, objectives = warm_settings(older, {}, {}, {"cluster_weight": 0.01}, log=lambda _: None)
    assert {k: objectives[k] for k in ("side_vector", "unit_prototypes", "detach_teacher", "intent_from")} == {
        "side_vector": "last", "unit_prototypes": False, "detach_teacher": True, "intent_from": "p"}  # fmt: skip
    assert (objectives["warmup"], objectives["cooldown"]) == (0.0, 0.0)
    stored = {**older, "training": {**older["training"], "objectives": dict(predates, side_vector="mean")}}
    assert warm_settings(stored, {}, {}, {"cluster_weight": 0.01}, log=lambda _: None)[2]["side_vector"] == "mean"


def test_bad_warm_starts_get_one_line(old, tmp_path):
    path, checkpoint, _, new_data = old
    out = str(tmp_path / "new.pt")
    runner = CliRunner()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    result = runner.invoke(cli, [str(new_data), "--init-from", str(junk), "-o", out])
    assert result.exit_code == 2 and "Invalid value for --init-from" in result.output
    assert "not a readable s4rec checkpoint" in result.output
    damaged = tmp_path / "damaged.pt"
    torch.save(dict(checkpoint, item_ids=[*checkpoint["item_ids"][:-1], 999]), damaged)  # checksum now stale
    result = runner.invoke(cli, [str(new_data), "--init-from", str(damaged), "-o", out])
    assert result.exit_code == 2 and "does not match the sha256" in result.output
    strings = tmp_path / "strings.txt"
    strings.write_text("".join(f"u{u} a{u % 5} b{u % 3} c{u % 4} d{u % 2}\n" for u in range(30)))
    result = runner.invoke(cli, [str(strings), "--init-from", str(path), "-o", out])
    assert result.exit_code == 2 and "its item ids are strings" in result.output and "holds integers" in result.output
    result = runner.invoke(cli, [str(new_data), "--init-from", str(path), "-o", out, "--dim", "32"])
    assert result.exit_code == 2 and "--dim 32 (it has 16)" in result.output
    result = runner.invoke(cli, [str(new_data), "-o", out, "--new-item-init", "mean"])
    assert result.exit_code == 2 and "needs --init-from" in result.output
    assert not os.path.exists(out)


WORLD = 2
# The learning rate the tolerance below is argued for: the warm schedule would take 10x the old run's 0.005, and
# at 0.05 the summation-order rounding grew to 1.5e-4 in a CI run.
PINNED_LR = ["--lr", "0.001"]


def _worker(rank: int, directory: str, old: str, data: str) -> None:
    # The worker owns the process group (ddp_helpers joins it and ends it after saving), as tests/
    # test_distributed.py's does: once, in a fresh-clone CI run, the command ending a group it had started
    # aborted process 1 at exit (SIGABRT, "terminate called without an active exception" from gloo's teardown).
    torch.set_num_threads(1)
    args = [data, "--init-from", old, "-o", os.path.join(directory, "ddp.pt"), "--epochs", "2", "--backbone",
            "--dropout", "0", "--quiet", *PINNED_LR]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    torch.save({"code": result.exit_code, "output": result.output}, os.path.join(directory, f"rank{rank}.pt"))


@pytest.mark.slow
def test_warm_start_under_two_processes_trains_like_one(old, tmp_path):
    path, _, _, new_data = old
    ddp_helpers.spawn(_worker, WORLD, tmp_path, str(path), str(new_data))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert all(r["code"] == 0 for r in ranks), ranks
    one_process = [str(new_data), "--init-from", str(path), "-o", str(tmp_path / "one.pt"), "--epochs", "2",
                   "--backbone", "--dropout", "0", "--quiet", *PINNED_LR]  # fmt: skip
    single = CliRunner().invoke(cli, one_process)
    assert single.exit_code == 0, single.output
    ddp, one = load_checkpoint(tmp_path / "ddp.pt"), load_checkpoint(tmp_path / "one.pt")
    assert ddp["training"]["processes"] == WORLD and ddp["training"]["warm_start"]["new_items"] == 10
    assert ddp["item_ids"] == one["item_ids"]
    # Gradients are all-reduced in another summation order, and Adam divides each step by sqrt(v): for a weight
    # whose gradient is near zero that rounding moves it by up to ~2e-5 (CI saw 1.56e-5). 1e-4 stays far below one
    # learning-rate step (1e-3), so a missed or doubled update still fails.
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][key], value, rtol=0, atol=1e-4)
