"""The SASRec encoder: NaN-proof masking, causality, right-aligned positions, config checks."""

import pytest
import torch

from s4rec_train.model import ModelConfig, SASRec


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SASRec(ModelConfig(num_items=30, max_len=8, dim=16, layers=2, heads=2, dropout=0.0)).eval()


def test_all_padding_length_one_and_full_length_are_finite(model):
    histories = [
        torch.zeros(2, 8, dtype=torch.long),  # all padding
        torch.tensor([[0] * 7 + [5]]),  # length 1
        torch.randint(1, 31, (3, 8)),  # full length
        torch.tensor([[7]]),  # a window of one
    ]
    for history in histories:
        out = model(history)
        assert out.shape == (*history.shape, 16)
        assert torch.isfinite(out).all()
        assert torch.isfinite(model.user_embedding(history)).all()


def test_causal_changing_a_later_item_leaves_earlier_outputs(model):
    history = torch.randint(1, 31, (1, 8))
    changed = history.clone()
    changed[0, 5] = (history[0, 5] % 30) + 1
    a, b = model(history), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_trimmed_history_scores_as_padded(model):
    padded = torch.tensor([[0, 0, 0, 0, 0, 3, 9, 4], [0, 0, 1, 2, 3, 4, 5, 6]])
    full = model.user_embedding(padded)
    torch.testing.assert_close(model.user_embedding(padded[:1, -3:]), full[:1], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.user_embedding(padded[1:, -6:]), full[1:], rtol=0, atol=1e-6)


def test_padding_does_not_leak_into_real_positions(model):
    a = torch.tensor([[0, 0, 0, 0, 0, 3, 9, 4]])
    # The padding index is the only way to mark padding; changing the padding length far away
    # must not change the last output once trimmed.
    torch.testing.assert_close(model.user_embedding(a), model.user_embedding(a[:, -4:]), rtol=0, atol=1e-6)


def test_last_only_equals_last_position_of_full_forward(model):
    history = torch.randint(0, 31, (4, 8))
    torch.testing.assert_close(model(history)[:, -1], model(history, last_only=True), rtol=0, atol=1e-6)


def test_scores_cover_items_not_padding(model):
    scores = model.scores(model.user_embedding(torch.tensor([[1, 2, 3]])))
    assert scores.shape == (1, 30)


def test_bad_shapes_are_named(model):
    with pytest.raises(ValueError, match=r"history must be \(batch, length\)"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="history length must be in 1..8, got 9"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_config_checks():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(num_items=5, dim=10, heads=3)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"num_items": 5, "colour": "red"})
    cfg = ModelConfig(num_items=5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
