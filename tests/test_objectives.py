"""S4Rec's objectives and augmentations on tiny synthetic data (seeded, CPU, seconds)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from s4rec_train import augment
from s4rec_train.checkpoint import load_checkpoint
from s4rec_train.data import synthetic_interactions
from s4rec_train.losses import (
    cluster_loss,
    contrastive_loss,
    dann_coefficient,
    distill_loss,
    reverse_gradient,
    sinkhorn,
)
from s4rec_train.model import ModelConfig, SASRec
from s4rec_train.objectives import ObjectiveConfig, S4RecHeads, active_config, s4rec_losses, weighted_total
from s4rec_train.train import TrainConfig, train

QUIET = dict(log=lambda _s: None)


def left_padded(lengths: list[int], width: int, num_items: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        if n:
            out[row, width - n :] = torch.randint(1, num_items + 1, (n,), generator=g)
    return out


def assert_left_padded(x: torch.Tensor) -> None:
    """Real items form one right-aligned run in every row."""
    real = (x != 0).int()
    assert torch.equal(real, real.sort(1).values)


# --- Sinkhorn -------------------------------------------------------------------------------------------


def test_sinkhorn_rows_sum_to_one_and_columns_to_b_over_k():
    torch.manual_seed(0)
    b, k = 64, 8
    scores = F.normalize(torch.randn(b, 4), dim=-1) @ F.normalize(torch.randn(k, 4), dim=-1).T
    q = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert torch.allclose(q.sum(1), torch.ones(b), atol=1e-5)
    gap3 = (q.sum(0) - b / k).abs().max()
    assert gap3 < (torch.bincount(scores.argmax(1), minlength=k) - b / k).abs().max()  # towards equal mass
    q = sinkhorn(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(q.sum(1), torch.ones(b), atol=1e-5)
    assert torch.allclose(q.sum(0), torch.full((k,), b / k), rtol=1e-3)  # converged: exact partition
    assert (q >= 0).all() and torch.isfinite(q).all()


def test_sinkhorn_spreads_users_that_all_prefer_one_prototype():
    scores = torch.zeros(32, 4)
    scores[:, 0] = 1.0  # every user closest to prototype 0: argmax would collapse
    scores += 0.01 * torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    q = sinkhorn(scores, epsilon=0.05, iterations=50)
    assert torch.bincount(q.argmax(1), minlength=4).min() > 0


# --- gradient reversal and the DANN ramp -------------------------------------------------------------------


def test_gradient_reversal_flips_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    y = reverse_gradient(x, 0.7)
    assert torch.equal(y, x)  # identity forward
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.7 * torch.arange(3.0).expand(5, 3))


def test_dann_ramp_goes_from_zero_to_one():
    assert dann_coefficient(0.0) == 0.0
    assert 0.45 < dann_coefficient(0.1) < 0.5
    assert dann_coefficient(1.0) > 0.9999


# --- each loss is finite and decreases on a tiny problem ------------------------------------------------


def _views_and_prototypes(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(16, 8, generator=g)
    views = torch.cat([base + 0.3 * torch.randn(16, 8, generator=g), base + 0.3 * torch.randn(16, 8, generator=g)])
    views = views.clone().requires_grad_(True)
    prototypes = torch.randn(4, 8, generator=g).requires_grad_(True)
    return views, prototypes


@pytest.mark.parametrize("name", ["cluster", "cluster_swapped", "contrastive", "distill"])
def test_each_prototype_loss_is_finite_and_decreases(name):
    views, prototypes = _views_and_prototypes()
    config = ObjectiveConfig(cluster_target="swapped" if name == "cluster_swapped" else "original")
    original = F.normalize(views[:16].detach() + 0.1, dim=-1)
    optimizer = torch.optim.Adam([views, prototypes], lr=0.05)
    values = []
    for _ in range(30):
        z = F.normalize(views, dim=-1)
        centroids = F.normalize(prototypes, dim=-1)
        intent = (original @ centroids.T).argmax(-1)
        if name.startswith("cluster"):
            loss = cluster_loss(z, original, centroids, config)
        elif name == "contrastive":
            loss = contrastive_loss(z, centroids, intent, temperature=0.5)
        else:
            loss = distill_loss(z, centroids[intent], temperature=0.1)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    assert values[-1] < values[0] * 0.9, values


def test_adversary_classifier_learns_while_the_encoder_is_pushed_the_other_way():
    torch.manual_seed(0)
    heads = S4RecHeads(dim=4, num_intents=2)
    user = torch.randn(64, 4)
    is_head = user[:, 0] > 0  # separable by the first dimension
    user.requires_grad_(True)
    optimizer = torch.optim.Adam(heads.adversary.parameters(), lr=0.1)
    values = []
    for _ in range(40):
        logits = heads.adversary(reverse_gradient(F.normalize(user, dim=-1), 1.0))
        loss = F.cross_entropy(logits, is_head.long())
        optimizer.zero_grad()
        user.grad = None
        loss.backward()
        optimizer.step()
        values.append(loss.item())
    assert torch.isfinite(torch.tensor(values)).all() and values[-1] < values[0] * 0.8
    # The encoder-side gradient ascends the classifier's loss: a step along -grad raises it.
    with torch.no_grad():
        before = F.cross_entropy(heads.adversary(F.normalize(user, dim=-1)), is_head.long())
        after = F.cross_entropy(heads.adversary(F.normalize(user - 0.5 * user.grad, dim=-1)), is_head.long())
    assert after > before


def _tiny_step_inputs(seed: int = 0):
    torch.manual_seed(seed)
    model = SASRec(ModelConfig(num_items=30, max_len=12, dim=8, dropout=0.1))
    heads = S4RecHeads(8, 4, torch.Generator().manual_seed(seed))
    history = left_padded([1, 2, 5, 8, 12, 12, 3, 7], 12)
    is_head = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0], dtype=torch.bool)
    cdf = torch.arange(1, 31, dtype=torch.float32).cumsum(0)
    return model, heads, history, is_head, cdf


def test_all_terms_finite_and_weight_zero_skips_a_term():
    model, heads, history, is_head, cdf = _tiny_step_inputs()
    original = model(history)[:, -1]
    full = s4rec_losses(
        model, heads, history, original, is_head, cdf, ObjectiveConfig(num_intents=4, adversary_weight=1.0), 0.5
    )
    assert set(full) == {"cluster", "contrastive", "distill", "adversary"}
    assert all(torch.isfinite(v) for v in full.values())
    for field in ("cluster_weight", "contrastive_weight", "distill_weight", "adversary_weight"):
        config = ObjectiveConfig(num_intents=4, **{"adversary_weight": 1.0, field: 0.0})
        terms = s4rec_losses(model, heads, history, original, is_head, cdf, config, 0.5)
        assert field.removesuffix("_weight") not in terms
        assert len(terms) == 3
    backbone = ObjectiveConfig.backbone()
    assert not backbone.enabled
    assert s4rec_losses(model, heads, history, original, is_head, cdf, backbone, 0.5) == {}
    assert weighted_total({}, backbone) is None


def test_warmup_scales_the_clustering_terms_but_not_the_adversary():
    terms = {name: torch.tensor(1.0) for name in ("cluster", "contrastive", "distill", "adversary")}
    config = ObjectiveConfig(cluster_weight=0.5, contrastive_weight=0.25, distill_weight=0.125, warmup=0.4)
    assert float(weighted_total(terms, config, 0.0)) == pytest.approx(config.adversary_weight)
    halfway = 0.5 * (0.5 + 0.25 + 0.125) + config.adversary_weight
    assert float(weighted_total(terms, config, 0.2)) == pytest.approx(halfway)
    full = 0.5 + 0.25 + 0.125 + config.adversary_weight
    assert float(weighted_total(terms, config, 0.4)) == pytest.approx(full)
    assert float(weighted_total(terms, config, 0.9)) == pytest.approx(full)
    no_warmup = ObjectiveConfig(cluster_weight=0.5, contrastive_weight=0.25, distill_weight=0.125, warmup=0.0)
    assert float(weighted_total(terms, no_warmup, 0.0)) == pytest.approx(full)
    with pytest.raises(ValueError, match="warmup"):
        ObjectiveConfig(warmup=1.5)


def test_cooldown_brings_the_clustering_terms_back_to_zero_and_then_skips_them():
    terms = {name: torch.tensor(1.0) for name in ("cluster", "contrastive", "distill", "adversary")}
    config = ObjectiveConfig(
        cluster_weight=0.5,
        contrastive_weight=0.25,
        distill_weight=0.125,
        adversary_weight=1.0,
        warmup=0.2,
        cooldown=0.6,
    )
    full = 0.5 + 0.25 + 0.125
    assert float(weighted_total(terms, config, 0.2)) == pytest.approx(full + 1.0)
    assert float(weighted_total(terms, config, 0.4)) == pytest.approx(0.5 * full + 1.0)  # halfway down
    assert float(weighted_total(terms, config, 0.8)) == pytest.approx(1.0)  # the adversary keeps its weight
    assert active_config(config, 0.59) is config
    after = active_config(config, 0.6)
    assert (after.cluster_weight, after.contrastive_weight, after.distill_weight) == (0.0, 0.0, 0.0)
    assert after.adversary_weight == 1.0 and not after.needs_prototypes
    with pytest.raises(ValueError, match="cooldown"):
        ObjectiveConfig(warmup=0.3, cooldown=0.2)


def test_adversary_alone_runs_no_augmentation(monkeypatch):
    model, heads, history, is_head, cdf = _tiny_step_inputs()

    def fail(*_args, **_kwargs):
        raise AssertionError("augmentations ran although no prototype term is on")

    monkeypatch.setattr("s4rec_train.objectives.two_views", fail)
    config = dataclasses.replace(ObjectiveConfig.backbone(), adversary_weight=1.0)
    terms = s4rec_losses(model, heads, history, model(history)[:, -1], is_head, cdf, config, 0.5)
    assert set(terms) == {"adversary"}


def test_whole_objective_decreases_on_a_tiny_problem():
    model, heads, history, is_head, cdf = _tiny_step_inputs()
    model.eval()  # no dropout: a cleaner signal for a 40-step check
    config = ObjectiveConfig(num_intents=4, contrastive_temperature=0.5, adversary_ramp=False)
    optimizer = torch.optim.Adam([*model.parameters(), *heads.parameters()], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    first = last = None
    for step in range(40):
        terms = s4rec_losses(
            model, heads, history, model(history)[:, -1], is_head, cdf, config, 0.0, generator=generator
        )
        total = weighted_total({k: v for k, v in terms.items() if k != "adversary"}, config)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        value = total.item()
        first = value if step == 0 else first
        last = value
    assert last < first


# --- augmentations ---------------------------------------------------------------------------------------


LENGTHS = [0, 1, 2, 3, 5, 9, 10, 10]


@pytest.mark.parametrize("operator", ["mask", "crop", "reorder"])
def test_augmentations_keep_shape_padding_and_single_item_histories(operator):
    history = left_padded(LENGTHS, 10)
    g = torch.Generator().manual_seed(0)
    ratio = {"mask": 0.3, "crop": 0.6, "reorder": 0.5}[operator]
    out = getattr(augment, operator)(history, ratio, generator=g)
    assert out.shape == history.shape and out.dtype == history.dtype
    assert torch.equal(out[:2], history[:2])  # empty and one-item histories unchanged
    n = (history != 0).sum(1)
    m = (out != 0).sum(1)
    if operator == "mask":
        assert torch.equal(m, n - (0.3 * n).floor().long().where(n > 1, 0))
        assert ((out == history) | (out == 0)).all()  # only replaced by the padding index
    else:
        assert_left_padded(out)
    if operator == "crop":
        size = (0.6 * n).floor().long().clamp(min=1).where(n > 1, n)
        assert torch.equal(m, size)
        for row in range(len(LENGTHS)):  # right-aligned contiguous run of the original
            run = out[row, 10 - int(size[row]) :].tolist()
            seq = history[row, 10 - int(n[row]) :].tolist()
            assert any(seq[i : i + len(run)] == run for i in range(len(seq) - len(run) + 1))
            assert (out[row, : 10 - int(size[row])] == 0).all()
    if operator == "reorder":
        assert torch.equal(m, n)
        assert torch.equal(out.sort(1).values, history.sort(1).values)  # a permutation of each row
        assert (out[history == 0] == 0).all()  # padding stays where it was


def test_reorder_only_moves_items_inside_one_window():
    history = torch.arange(1, 21).expand(50, 20).clone()
    out = augment.reorder(history, 0.3, generator=torch.Generator().manual_seed(1))
    changed = out != history
    assert changed.any()
    for row in changed:
        columns = row.nonzero().flatten()
        if len(columns):
            assert columns.max() - columns.min() < 6  # within the window of floor(0.3 * 20) = 6 items


def test_insert_adds_popular_items_and_keeps_order_and_max_len():
    history = left_padded(LENGTHS, 10, num_items=5)
    popularity = torch.zeros(30)
    popularity[19] = 1.0  # only item 20 has mass
    cdf = popularity.cumsum(0)
    out = augment.insert(history, 0.2, cdf, max_len=12, generator=torch.Generator().manual_seed(0))
    assert out.shape == (len(LENGTHS), 12)  # 10 + ceil(0.2 * 10) columns
    n = (history != 0).sum(1)
    count = (0.2 * n).floor().long().clamp(min=1).where(n > 1, 0)
    assert torch.equal((out != 0).sum(1), n + count)
    assert torch.equal((out == 20).sum(1), count)  # inserted items come from the popularity distribution
    for row in range(len(LENGTHS)):  # the original items keep their order
        kept = [i for i in out[row].tolist() if i not in (0, 20)]
        assert kept == history[row, 10 - int(n[row]) :].tolist()
    trimmed = augment.insert(history, 0.2, cdf, max_len=10, generator=torch.Generator().manual_seed(0))
    assert trimmed.shape == (len(LENGTHS), 10)  # keeps the most recent max_len


def test_two_views_are_left_padded_batches_of_both_views():
    history = left_padded(LENGTHS, 10)
    cdf = torch.ones(30).cumsum(0)
    views = augment.two_views(history, cdf, 10, generator=torch.Generator().manual_seed(0))
    assert views.shape[0] == 2 * len(LENGTHS) and views.shape[1] == 10
    assert torch.equal(views[1], history[1]) and torch.equal(views[9], history[1])  # length 1 unchanged
    assert torch.equal(views[0], history[0])  # empty stays empty
    assert ((views != 0).sum(1)[2:8] >= 1).all()  # every non-empty history keeps at least one item


def test_whole_auxiliary_step_has_no_data_dependent_host_sync():
    """On the meta device tensors have no values: .item(), .nonzero() or boolean-mask indexing would fail.

    So the augmentations, Sinkhorn, every loss and the backward pass completing there means a CUDA step
    never waits to read a value back.
    """
    with torch.device("meta"):
        model = SASRec(ModelConfig(num_items=30, max_len=12, dim=8))
        heads = S4RecHeads(8, 4)
        history = torch.randint(0, 31, (8, 10))
        cdf = torch.ones(30)
        is_head = torch.zeros(8, dtype=torch.bool)
    config = ObjectiveConfig(num_intents=4, adversary_weight=1.0)
    terms = s4rec_losses(model, heads, history, model(history)[:, -1], is_head, cdf, config, 0.5)
    assert set(terms) == {"cluster", "contrastive", "distill", "adversary"}
    weighted_total(terms, config).backward()
    assert heads.prototypes.grad is not None and heads.prototypes.grad.device.type == "meta"


# --- training, checkpoint ---------------------------------------------------------------------------------


def test_training_saves_centroids_and_heads(tmp_path):
    data = synthetic_interactions(num_users=120, num_items=40, seed=0)
    config = TrainConfig(epochs=2, batch_size=32, seed=0, device="cpu")
    objectives = ObjectiveConfig(num_intents=6)
    path = tmp_path / "model.pt"
    train(data, {"dim": 8, "max_len": 12}, config, path, objectives=objectives, **QUIET)
    checkpoint = load_checkpoint(path)
    centroids = checkpoint["intent_centroids"]
    assert centroids.shape == (6, 8) and centroids.dtype == torch.float32
    assert torch.allclose(centroids.norm(dim=-1), torch.ones(6), atol=1e-5)
    assert checkpoint["intent_config"] == {"num_intents": 6, "temperature": 0.1, "normalized": True}
    assert set(checkpoint["objective_state_dict"]) == {"prototypes", "adversary.weight", "adversary.bias"}
    assert set(checkpoint["state_dict"]) == set(SASRec(ModelConfig(num_items=40, dim=8, max_len=12)).state_dict())
    usage = checkpoint["metrics"]["intents"]
    assert 1 <= usage["intents_used"] <= 6
    assert checkpoint["training"]["objectives"]["num_intents"] == 6


def test_backbone_objectives_store_no_centroids_and_match_the_plain_loop():
    data = synthetic_interactions(num_users=80, num_items=30, seed=1)
    config = TrainConfig(epochs=2, batch_size=32, seed=3, device="cpu")
    a = train(data, {"dim": 8, "max_len": 10}, config, objectives=ObjectiveConfig.backbone(), **QUIET)
    zero = {"cluster_weight": 0.0, "contrastive_weight": 0.0, "distill_weight": 0.0, "adversary_weight": 0.0}
    b = train(data, {"dim": 8, "max_len": 10}, config, objectives=zero, **QUIET)
    assert a["intent_centroids"] is None and a["objective_state_dict"] is None
    assert [h["loss"] for h in a["training"]["history"]] == [h["loss"] for h in b["training"]["history"]]
    assert a["training"]["settings"]["batching"] == "tokens"  # auto, for the backbone


def test_s4rec_batch_terms_get_random_batches_and_refuse_sorted_ones():
    data = synthetic_interactions(num_users=60, num_items=20, seed=1)
    config = TrainConfig(epochs=1, batch_size=32, seed=3, device="cpu")
    checkpoint = train(data, {"dim": 8, "max_len": 10}, config, objectives=ObjectiveConfig(num_intents=4), **QUIET)
    assert checkpoint["training"]["settings"]["batching"] == "random"  # auto, with the clustering on
    # contrastive + distillation only (no clustering, no adversary)
    no_batch_terms = ObjectiveConfig(num_intents=4, cluster_weight=0.0, adversary_weight=0.0)
    checkpoint = train(data, {"dim": 8, "max_len": 10}, config, objectives=no_batch_terms, **QUIET)
    assert checkpoint["training"]["settings"]["batching"] == "tokens"
    for batching in ("tokens", "users"):
        sorted_batches = TrainConfig(epochs=1, batch_size=32, device="cpu", batching=batching)
        with pytest.raises(ValueError, match="need random batches"):
            train(data, {"dim": 8, "max_len": 10}, sorted_batches, objectives=ObjectiveConfig(num_intents=4), **QUIET)
    with pytest.raises(ValueError, match="batching must be one of"):
        TrainConfig(batching="length")


def test_objective_config_rejects_bad_values():
    with pytest.raises(ValueError, match="cluster_weight must be >= 0"):
        ObjectiveConfig(cluster_weight=-1)
    with pytest.raises(ValueError, match="cluster_target"):
        ObjectiveConfig(cluster_target="both")
    with pytest.raises(ValueError, match="unknown objective config keys"):
        ObjectiveConfig.from_dict({"alpha": 1})


def test_removed_experiment_options_of_old_checkpoints_still_read():
    """Checkpoints trained before --adversary-queue and --adversary-batch were removed list them (at 0, off) in
    training.objectives: that dict still gives the config; a non-zero value is refused, naming the commit."""
    old = dict(ObjectiveConfig(num_intents=6).to_dict(), adversary_queue=0, adversary_batch=0)
    assert ObjectiveConfig.from_dict(old) == ObjectiveConfig(num_intents=6)
    with pytest.raises(ValueError, match="adversary_queue=4096: this option was removed.*e21a317"):
        ObjectiveConfig.from_dict(dict(old, adversary_queue=4096))


def test_old_checkpoint_with_the_removed_options_loads(tmp_path):
    from s4rec_train.checkpoint import intent_table, model_from_checkpoint, save_checkpoint

    data = synthetic_interactions(num_users=60, num_items=20, seed=1)
    config = TrainConfig(epochs=1, batch_size=32, seed=0, device="cpu")
    checkpoint = train(data, {"dim": 8, "max_len": 10}, config, objectives=ObjectiveConfig(num_intents=4), **QUIET)
    checkpoint["training"]["objectives"].update(adversary_queue=0, adversary_batch=0)  # as e21a317 wrote them
    save_checkpoint(checkpoint, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    model_from_checkpoint(loaded)
    assert intent_table(loaded) is not None
    assert ObjectiveConfig.from_dict(loaded["training"]["objectives"]) == ObjectiveConfig(num_intents=4)


def test_patience_waits_for_the_end_of_the_cool_down(monkeypatch):
    # Validation gets worse every epoch after the first, so only the patience rule decides when the run stops.
    import s4rec_train.train as train_module

    real = train_module.evaluate_split
    calls = []

    def worsening(model, split, which, **kwargs):
        result = real(model, split, which, **kwargs)
        if which == "valid":
            calls.append(which)
            result["overall"] = {**result["overall"], "NDCG@20": 1.0 / len(calls)}
        return result

    monkeypatch.setattr(train_module, "evaluate_split", worsening)
    data = synthetic_interactions(num_users=80, num_items=30, seed=2)
    config = TrainConfig(epochs=10, batch_size=32, seed=0, device="cpu", patience=2)
    ran = {}
    for cooldown in (0.0, 0.5):
        calls.clear()
        objectives = ObjectiveConfig(num_intents=4, warmup=0.0, cooldown=cooldown)
        checkpoint = train(data, {"dim": 8, "max_len": 10}, config, objectives=objectives, **QUIET)
        ran[cooldown] = len(checkpoint["training"]["history"])
        assert checkpoint["metrics"]["best_epoch"] == 1
    # No cool-down: epochs 2 and 3 are stale, stop at 3. Cool-down to 0.5: the count starts at epoch 5, the first
    # epoch that ends with the weights at 0, so the run stops at 6.
    assert ran == {0.0: 3, 0.5: 6}
