"""s4rec_train.buckets: the encoder run in groups of similar length gives the padded run's outputs."""

from __future__ import annotations

import numpy as np
import torch

from s4rec_train.buckets import MIN_SAVING, encode, groups, spans
from s4rec_train.model import ModelConfig, SASRec


def mixed_batch(rows: int = 96, max_len: int = 30, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    history = torch.zeros(rows, max_len, dtype=torch.long)
    for i in range(rows):
        n = int(min(rng.geometric(1 / 6), max_len))
        history[i, max_len - n :] = torch.from_numpy(rng.integers(1, 51, n))
    history[0, -3] = 0  # a masked item inside a history (an augmented view) keeps the row's span
    return history


def test_grouped_outputs_equal_the_padded_run_at_every_real_position():
    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=50, max_len=30, dim=16, heads=2, layers=2)).eval()
    history = mixed_batch()
    assert groups(spans(history)) is not None  # the batch is grouped, or the test tests nothing
    real = history != 0
    full, grouped = model(history), encode(model, history)
    assert torch.allclose(full[real], grouped[real], atol=1e-5)
    assert torch.allclose(model(history, last_only=True), encode(model, history, last_only=True), atol=1e-5)


def test_gradients_equal_the_padded_run():
    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=50, max_len=30, dim=16, heads=2, layers=2, dropout=0.0))
    history = mixed_batch()
    weights = torch.randn(history.shape[0], 16)
    grads = []
    for run in (model, lambda h, last_only: encode(model, h, last_only)):
        model.zero_grad()
        (run(history, last_only=True) * weights).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-5), name


def test_groups_save_positions_and_similar_lengths_run_as_one_batch():
    span = np.array([3] * 200 + [10] * 50 + [50] * 6)
    parts = groups(span)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(span)))  # every row once
    positions = sum(len(p) * span[p].max() for p in parts)
    assert positions <= 200 * 3 + 50 * 10 + 6 * 50  # the exact best cut into <= 4 groups
    assert groups(np.full(256, 7)) is None  # nothing to save
    similar = np.array([6] * 128 + [7] * 128)  # a `tokens` batch: saving below MIN_SAVING
    assert groups(similar) is None and (1 - 6 / 7) / 2 < MIN_SAVING
