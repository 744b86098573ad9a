"""Sampled softmax: the sampling distributions and their logQ correction, accidental hits, `--loss auto`, and
the whole sampled step on the meta device (no value read back to the host)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s4rec_train.batching import Batch
from s4rec_train.data import synthetic_interactions
from s4rec_train.model import ModelConfig, SASRec
from s4rec_train.objectives import ObjectiveConfig, S4RecHeads
from s4rec_train.sampled import SAMPLED_ABOVE, NegativeSampler, resolve_loss, sampled_softmax_loss
from s4rec_train.step import TrainingStep
from s4rec_train.train import TrainConfig, train

COUNTS = np.array([0, 50, 30, 10, 5, 4, 1])  # training-target counts of items 1..6 (index 0 = padding)


@pytest.mark.parametrize("kind", ["uniform", "popularity", "mixed"])
def test_expected_counts_are_those_of_the_draws(kind):
    sampler = NegativeSampler(COUNTS, 64, kind, generator=torch.Generator().manual_seed(0))
    draws = torch.stack([sampler.draw() for _ in range(3000)])  # (steps, 64)
    assert draws.min() >= 1 and draws.max() <= 6
    seen = torch.bincount(draws.reshape(-1), minlength=7)[1:].double() / len(draws)  # mean count per step
    expected = sampler.log_expected(torch.arange(1, 7)).exp().double()
    assert expected.sum() == pytest.approx(64, rel=1e-5)
    torch.testing.assert_close(seen, expected, rtol=0.05, atol=0.05)


def test_in_batch_items_add_to_the_expected_count_of_popular_items():
    sampler = NegativeSampler(COUNTS, 10, "uniform")
    items = torch.arange(1, 7)
    share = torch.tensor(COUNTS[1:] / COUNTS.sum(), dtype=torch.float32)
    torch.testing.assert_close(sampler.log_expected(items, in_batch=8).exp(), 10 / 6 + 8 * share)


class Everything:
    """A 'sampler' whose negatives are every item once, each expected once: then sampled softmax is the full one."""

    def __init__(self, num_items):
        self.num_items = num_items

    def draw(self):
        return torch.arange(1, self.num_items + 1)

    def log_expected(self, items, in_batch=0):
        return torch.zeros(items.shape)


def test_with_every_item_as_negative_the_loss_is_the_full_softmax():
    g = torch.Generator().manual_seed(0)
    table, h = torch.randn(7, 4, generator=g), torch.randn(5, 4, generator=g)
    target = torch.tensor([1, 3, 3, 6, 2])
    sampled = sampled_softmax_loss(h, target, table, Everything(6))
    full = F.cross_entropy(h @ table[1:].T, target - 1)
    # each target is among the negatives too (an accidental hit): masked, so it counts once, as the positive
    torch.testing.assert_close(sampled, full)


def test_accidental_hits_are_masked_and_in_batch_items_join_the_candidates():
    g = torch.Generator().manual_seed(0)
    table, h = torch.randn(7, 4, generator=g), torch.randn(3, 4, generator=g)
    target = torch.tensor([1, 2, 3])
    sampler = NegativeSampler(COUNTS, 4, "uniform", generator=torch.Generator().manual_seed(1))
    in_batch = torch.tensor([1, 2, 3])  # each position's own target among them
    loss = sampled_softmax_loss(h, target, table, sampler, in_batch)
    negatives = torch.cat(
        [NegativeSampler(COUNTS, 4, "uniform", generator=torch.Generator().manual_seed(1)).draw(), in_batch]
    )
    logits = h @ table[negatives].T - sampler.log_expected(negatives, 3)
    logits[negatives[None] == target[:, None]] = float("-inf")
    positive = (h * table[target]).sum(-1, keepdim=True) - sampler.log_expected(target, 3)[:, None]
    torch.testing.assert_close(
        loss, F.cross_entropy(torch.cat([positive, logits], 1), torch.zeros(3, dtype=torch.long))
    )


def test_auto_is_full_softmax_for_beauty_sized_catalogues_and_sampled_above_the_threshold():
    assert resolve_loss("auto", 12_101) == "softmax"  # Beauty
    assert resolve_loss("auto", SAMPLED_ABOVE) == "softmax" and resolve_loss("auto", SAMPLED_ABOVE + 1) == "sampled"
    assert resolve_loss("bce", 10**7) == "bce"
    assert TrainConfig().loss == "auto"
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="nce")
    with pytest.raises(ValueError, match="sparse_items needs a sampled loss"):
        TrainConfig(loss="softmax", sparse_items=True)


@pytest.mark.parametrize("sparse", [False, True])
def test_sampled_training_learns_and_records_the_loss(sparse):
    torch.set_num_threads(1)
    data = synthetic_interactions(num_users=200, num_items=40, seed=1)
    config = TrainConfig(epochs=4, batch_size=32, lr=5e-3, loss="sampled", negatives=16, sparse_items=sparse)
    tiny = {"max_len": 12, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.1}
    checkpoint = train(data, tiny, config, log=lambda _: None, objectives=ObjectiveConfig(num_intents=4))
    history = checkpoint["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert checkpoint["metrics"]["test"]["overall"]["HR@5"] > 0.3  # random ranking of 40 items: 0.125
    assert (
        checkpoint["training"]["next_item_loss"] == "sampled" and checkpoint["training"]["settings"]["negatives"] == 16
    )
    assert not checkpoint["state_dict"]["item_embedding.weight"].is_sparse


def test_whole_sampled_step_has_no_data_dependent_host_sync():
    """The meta-device check of test_objectives, for a whole training step with sampled softmax: drawing the
    negatives (uniform and by popularity), the logQ correction, masking hits, the S4Rec terms and backward."""
    sampler = NegativeSampler(np.arange(31), 16, "mixed", device="meta")
    with torch.device("meta"):
        model = SASRec(ModelConfig(num_items=30, max_len=12, dim=8))
        heads = S4RecHeads(8, 4)
        history = torch.randint(0, 31, (8, 10))
        batch = Batch(
            torch.arange(8),
            history,
            torch.randint(1, 31, (8, 10)),
            torch.arange(40),
            in_batch=torch.randint(1, 31, (12,)),
        )
        cdf, is_head = torch.ones(30), torch.zeros(8, dtype=torch.bool)
    step = TrainingStep(
        model,
        heads,
        ObjectiveConfig(num_intents=4, adversary_weight=1.0),
        "sampled",
        contextlib.nullcontext(),
        sampler,
        cdf,
        is_head,
    )
    optimize, loss, terms = step(batch, 0.5)
    assert loss.device.type == "meta" and set(terms) == {"cluster", "contrastive", "distill", "adversary"}
    optimize.backward()
    assert model.item_embedding.weight.grad is not None and model.item_embedding.weight.grad.device.type == "meta"


def test_command_line_trains_with_sampled_softmax_and_prefixes(tmp_path):
    from click.testing import CliRunner

    from s4rec_train.cli import cli
    from s4rec_train.data import write_sequences

    data, model = tmp_path / "data.txt", tmp_path / "model.pt"
    write_sequences(synthetic_interactions(num_users=80, num_items=30), data)
    args = [str(data), "-o", str(model), "--max-len", "8", "--dim", "8", "--layers", "1", "--epochs", "1", "--quiet"]
    args += ["--backbone", "--loss", "sampled", "--negatives", "8", "--negative-sampler", "mixed"]
    args += ["--in-batch-negatives", "0", "--prefix-split", "--sparse-items"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "sampled softmax, 8 mixed negatives, logQ-corrected; item table: sparse gradients" in result.output
    settings = torch.load(model, weights_only=True)["training"]["settings"]
    assert settings["prefix_split"] and settings["negatives"] == 8 and settings["in_batch_negatives"] == 0
