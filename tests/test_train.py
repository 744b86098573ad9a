"""Training loop, checkpoint contract and full-ranking evaluation on tiny synthetic data."""

import numpy as np
import pytest
import torch

from s4rec_train.batching import batch_order
from s4rec_train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from s4rec_train.data import leave_one_out, synthetic_interactions
from s4rec_train.evaluation import exclude_history, grouped_metrics, metrics_from_ranks, rank_targets
from s4rec_train.train import TrainConfig, train

TINY = {"max_len": 12, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    data = synthetic_interactions(num_users=300, num_items=40, seed=1)
    lines = []
    checkpoint = train(data, TINY, TrainConfig(epochs=8, batch_size=64, seed=0, lr=5e-3), path, log=lines.append)
    return data, checkpoint, path, lines


def test_training_learns_and_logs(trained):
    data, checkpoint, _, lines = trained
    history = checkpoint["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    # the cyclic synthetic data are learnable: far better than random ranking of 40 items (HR@5 = 0.125)
    assert checkpoint["metrics"]["test"]["overall"]["HR@5"] > 0.4
    assert sum("valid HR@20" in line for line in lines) == len(history)


def test_checkpoint_is_weights_only_and_rebuilds_the_model(trained):
    data, checkpoint, path, _ = trained
    loaded = torch.load(path, weights_only=True)
    assert loaded["item_ids"] == data.item_ids
    assert loaded["metrics"]["complete"] is True
    model = model_from_checkpoint(load_checkpoint(path))
    split = leave_one_out(data, model.config.max_len)
    ranks = rank_targets(model, split.test_history, split.test_target, seen=split.seen("test"))
    assert metrics_from_ranks(ranks)["NDCG@20"] == pytest.approx(checkpoint["metrics"]["test"]["overall"]["NDCG@20"])


def test_same_seed_same_result():
    data = synthetic_interactions(num_users=120, num_items=30, seed=2)
    config = TrainConfig(epochs=2, batch_size=32, seed=3)
    a = train(data, TINY, config, log=lambda _: None)
    b = train(data, TINY, config, log=lambda _: None)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key])


def test_bce_loss_option_trains():
    data = synthetic_interactions(num_users=120, num_items=30, seed=2)
    checkpoint = train(data, TINY, TrainConfig(epochs=3, batch_size=32, loss="bce"), log=lambda _: None)
    assert np.isfinite(checkpoint["training"]["history"][-1]["loss"])


def test_bucketed_batches_cover_every_trainable_user_once():
    lengths = np.array([0, 3, 50, 1, 7, 0, 2, 9] * 40)
    rng = np.random.default_rng(0)
    for batching in ("tokens", "users", "random"):
        batches = batch_order(lengths, 16, rng, batching)
        users = np.concatenate(batches)
        assert sorted(users.tolist()) == np.flatnonzero(lengths > 0).tolist()
        if batching != "tokens":
            assert all(len(b) <= 16 for b in batches)


def test_bucketed_batches_hold_similar_numbers_of_positions():
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(0.12, 5000), 50)
    budget = 64 * lengths.mean()
    batches = batch_order(lengths, 64, rng, "tokens")
    positions = np.array([lengths[b].sum() for b in batches])
    assert positions.max() <= budget + 50  # a batch closes once it crosses the budget
    assert abs(len(batches) - len(lengths) / 64) <= 3  # about as many steps as random batches
    sizes = [len(b) for b in batches]
    assert max(sizes) > 3 * min(sizes)  # short histories share a batch with many others


def test_train_config_errors():
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)


class Payload:
    """Any class instance needs code to be unpickled."""


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "s4rec-checkpoint", "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused, the file needs pickled Python objects"):
        load_checkpoint(path)


def test_truncated_or_foreign_checkpoint_is_refused(tmp_path, trained):
    _, _, path, _ = trained
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable s4rec checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an s4rec checkpoint"):
        load_checkpoint(foreign)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, trained, monkeypatch):
    _, checkpoint, path, _ = trained
    target = tmp_path / "model.pt"
    save_checkpoint(checkpoint, target)
    before = target.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half")  # torch.save gets the open temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(checkpoint, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind


def test_metrics_known_values():
    m = metrics_from_ranks(np.array([0, 4, 5, 19, 100]))
    assert m["HR@5"] == pytest.approx(2 / 5)
    assert m["HR@20"] == pytest.approx(4 / 5)
    expected = (1 / np.log2(2) + 1 / np.log2(6)) / 5
    assert m["NDCG@5"] == pytest.approx(expected)
    grouped = grouped_metrics(np.array([0, 100]), np.array([True, False]))
    assert grouped["head"]["HR@5"] == 1.0 and grouped["tail"]["HR@5"] == 0.0


def test_exclusion_removes_history_and_padding():
    scores = torch.arange(6, dtype=torch.float).repeat(2, 1)
    out = exclude_history(scores, torch.tensor([[0, 5], [2, 3]]))
    assert torch.isinf(out[:, 0]).all()
    assert torch.isinf(out[0, 5]) and torch.isinf(out[1, 2]) and torch.isinf(out[1, 3])
    assert torch.isfinite(out[0, 1:5]).all()


def test_rank_is_over_all_items_with_history_excluded():
    class Fixed(torch.nn.Module):
        """Scores item i as i: the best item is N; history items are excluded."""

        def __init__(self):
            super().__init__()
            self.item_table = torch.nn.Parameter(torch.arange(11, dtype=torch.float)[:, None])

        def user_embedding(self, history):
            return torch.ones(history.shape[0], 1)

    model = Fixed()
    history = torch.tensor([[0, 10], [0, 0]])
    ranks = rank_targets(model, history, torch.tensor([9, 9]))
    assert ranks.tolist() == [0, 1]  # item 10 is excluded for user 0 only


def test_evaluation_excludes_the_whole_history_beyond_max_len():
    """A user longer than max_len: items seen before the window are excluded too (not only the window's)."""
    from s4rec_train.data import Interactions
    from s4rec_train.evaluation import evaluate_split

    class Fixed(torch.nn.Module):
        """Scores item i as i: item 10 is the best, item 9 the second best."""

        def __init__(self):
            super().__init__()
            self.item_table = torch.nn.Parameter(torch.arange(11, dtype=torch.float)[:, None])

        def user_embedding(self, history):
            return torch.ones(history.shape[0], 1)

    # user 0 saw item 10 first, then 6 other items: with max_len 3 the window no longer holds item 10
    long_user = np.array([10, 1, 2, 3, 4, 5, 9, 8], dtype=np.int64)  # valid target 9, test target 8
    short_user = np.array([1, 2, 9, 8], dtype=np.int64)
    data = Interactions.from_sequences(list(range(1, 11)), [0, 1], [long_user, short_user])
    split = leave_one_out(data, max_len=3)
    assert 10 not in split.test_history[0]  # the window lost it
    model = Fixed()
    window_only = rank_targets(model, split.test_history, split.test_target)
    whole = rank_targets(model, split.test_history, split.test_target, seen=split.seen("test"))
    # test target 8: above it are 10 (seen long ago) and 9 (seen, in the window): only the window excludes 9
    assert window_only.tolist() == [1, 1]
    assert whole.tolist() == [0, 1]  # user 1 never saw 10
    test = evaluate_split(model, split, "test")
    assert test["overall"]["HR@5"] == 1.0 and test["overall"]["NDCG@5"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    valid = evaluate_split(model, split, "valid")  # valid target 9: item 10 seen by user 0 only
    assert valid["overall"]["NDCG@5"] == pytest.approx((1 + 1 / np.log2(3)) / 2)


def test_progress_reports_every_step_and_leaves_the_numbers_alone():
    data = synthetic_interactions(num_users=120, num_items=30, seed=2)
    config = TrainConfig(epochs=2, batch_size=32, seed=3)
    seen = []
    a = train(data, TINY, config, log=lambda _: None, on_progress=seen.append)
    b = train(data, TINY, config, log=lambda _: None)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key])
    for epoch, summary in enumerate(a["training"]["history"], start=1):
        steps = [p for p in seen if p.epoch == epoch]
        assert [p.step for p in steps] == list(range(1, steps[0].steps + 1))
        assert all(p.epochs == 2 and p.elapsed >= 0 for p in steps)
        assert steps[-1].users == int((leave_one_out(data, TINY["max_len"]).train_length > 1).sum())
        assert steps[-1].loss == pytest.approx(summary["loss"])  # the running loss ends at the epoch's mean


def test_validate_every_validates_on_schedule_and_after_the_last_epoch():
    from s4rec_train.config import ObjectiveConfig

    data = synthetic_interactions(num_users=120, num_items=30, seed=2)
    lines = []
    config = TrainConfig(epochs=5, batch_size=64, lr=5e-3, validate_every=2, lr_schedule="linear")
    checkpoint = train(data, TINY, config, None, log=lines.append, objectives=ObjectiveConfig.backbone())
    validated = [h["epoch"] for h in checkpoint["training"]["history"] if "valid" in h]
    assert validated == [2, 4, 5] and checkpoint["metrics"]["best_epoch"] in validated
    assert sum("validated every 2 epochs" in line for line in lines) == 2


def test_linear_schedule_warms_up_then_decays_to_zero():
    from s4rec_train.train import lr_factor

    factors = [lr_factor("linear", step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == 1.0  # 5 warm-up steps
    assert all(a >= b for a, b in zip(factors[4:], factors[5:])) and factors[-1] == pytest.approx(1 / 95)
    assert lr_factor("constant", 50, 100) == 1.0
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="cosine")
