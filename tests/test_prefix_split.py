"""Prefix (sub-sequence) splitting: every prefix of a user's training part is a training sequence of its own,
trained at its last position; validation and test are unchanged."""

from __future__ import annotations

import numpy as np
import torch

from s4rec_train.batching import batch_order, iterate_batches, prefix_sequences, user_sequences
from s4rec_train.data import Interactions, leave_one_out, synthetic_interactions
from s4rec_train.objectives import ObjectiveConfig
from s4rec_train.train import TrainConfig, train

# user a: training part 1 2 3 4 5 (6 validates, 7 tests); user b: training part 8 (nothing to learn); c: 9 10
DATA = Interactions.from_sequences(
    list(range(1, 14)), ["a", "b", "c"], [[1, 2, 3, 4, 5, 6, 7], [8, 11, 12], [9, 10, 12, 13]]
)


def test_prefixes_and_their_targets_are_exactly_the_expected_ones():
    split = leave_one_out(DATA, max_len=3)
    sequences = prefix_sequences(split)
    assert sequences.user.tolist() == [0, 0, 0, 0, 2]  # n - 1 prefixes per user
    everything = [np.arange(len(sequences))]
    (batch,) = iterate_batches(split, everything, torch.device("cpu"), sequences)
    # windows of the most recent max_len = 3 items, left-padded, each predicting the next item at its last position
    assert batch.history.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [0, 0, 9]]
    assert batch.target.tolist() == [[2], [3], [4], [5], [10]]
    assert batch.positions.tolist() == [0, 1, 2, 3, 4] and batch.last_only
    assert batch.users.tolist() == [0, 0, 0, 0, 2]  # the head/tail label of a prefix is its user's
    # without the prefix split: one sequence per user, a target at every position
    (whole,) = iterate_batches(split, [np.array([0, 2])], torch.device("cpu"), user_sequences(split))
    assert whole.history.tolist() == [[2, 3, 4], [0, 0, 9]] and whole.target.tolist() == [[3, 4, 5], [0, 0, 10]]


def test_batches_count_prefixes():
    split = leave_one_out(synthetic_interactions(num_users=300, num_items=30, seed=0), max_len=10)
    sequences = prefix_sequences(split)
    assert len(sequences) == int(np.maximum(split.train_length - 1, 0).sum())
    rng = np.random.default_rng(0)
    for batching in ("tokens", "users"):  # one position per prefix: tokens batches hold batch_size prefixes too
        batches = batch_order(sequences.length, 64, rng, batching, sequences.positions)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(sequences)))
        assert all(len(b) <= 64 for b in batches) and np.mean([len(b) for b in batches]) > 60


def test_prefix_training_changes_only_the_training_data():
    torch.set_num_threads(1)
    data = synthetic_interactions(num_users=150, num_items=30, seed=2)
    tiny = {"max_len": 10, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.1}
    lines = []
    config = TrainConfig(epochs=2, batch_size=64, lr=5e-3, prefix_split=True)
    checkpoint = train(
        data, tiny, config, log=lines.append, objectives=ObjectiveConfig(num_intents=4, adversary_weight=1.0)
    )
    prefixes = int(np.maximum(leave_one_out(data).train_length - 1, 0).sum())
    assert any(f"prefix split: {prefixes:,} training sequences" in line for line in lines)
    history = checkpoint["training"]["history"]
    assert set(history[0]["terms"]) == {"cluster", "contrastive", "distill", "adversary"}  # S4Rec on each prefix
    assert checkpoint["training"]["settings"]["prefix_split"] is True
    # validation and test: the same users and targets as without the split
    users = {"overall": 150, "head": 30, "tail": 120}
    assert checkpoint["metrics"]["valid"]["users"] == users and checkpoint["metrics"]["test"]["users"] == users
