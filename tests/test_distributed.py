"""Two CPU processes (gloo) train like one process with the same global batches.

The processes join through the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT),
as ``torchrun --nproc-per-node 2 -m s4rec_train`` does. With dropout off (each process draws its own masks),
the next-item loss (full and sampled softmax) gives the one-process numbers up to the order of float
summation in the gradient all-reduce; S4Rec's batch-level terms (Sinkhorn, contrastive) computed over two
shards equal the one-process terms of the whole batch, gradients included.
"""

from __future__ import annotations

import os

import ddp_helpers
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from s4rec_train.cli import cli
from s4rec_train.data import synthetic_interactions, write_sequences
from s4rec_train.losses import cluster_loss, contrastive_loss, sinkhorn
from s4rec_train.objectives import ObjectiveConfig
from s4rec_train.train import TrainConfig, train

WORLD = 2
TINY = {"max_len": 12, "dim": 16, "layers": 1, "heads": 2, "dropout": 0.0}
RUNS = {
    "softmax": TrainConfig(epochs=2, batch_size=32, seed=0, lr=5e-3, loss="softmax"),
    "sampled": TrainConfig(epochs=2, batch_size=32, seed=0, lr=5e-3, loss="sampled", negatives=16),
}
CLI_ARGS = ["--backbone", "--max-len", "10", "--dim", "16", "--layers", "1", "--epochs", "1", "--batch-size", "32"]
CLI_ARGS += ["--quiet"]
B, D, K = 7, 8, 4  # an odd global batch: the two shards differ in size


def _data():
    return synthetic_interactions(num_users=160, num_items=40, seed=1)


def _terms_inputs():
    g = torch.Generator().manual_seed(0)
    views = F.normalize(torch.randn(2 * B, D, generator=g), dim=-1)
    original = F.normalize(torch.randn(B, D, generator=g), dim=-1)
    centroids = F.normalize(torch.randn(K, D, generator=g), dim=-1)
    return views, original, centroids, torch.randint(0, K, (B,), generator=g)


def _terms(views, original, centroids, intent, target, group=None, weight=1.0):
    config = ObjectiveConfig(num_intents=K, cluster_target=target)
    views = views.clone().requires_grad_()
    contrastive = contrastive_loss(views, centroids, intent, 0.1, group) * weight
    cluster = cluster_loss(views, original, centroids, config, group) * weight
    (contrastive + cluster).backward()
    q = sinkhorn(original @ centroids.T, 0.05, 3, group)
    return contrastive.detach(), cluster.detach(), views.grad, q


def _worker(rank: int, out: str, data_file: str) -> None:
    torch.set_num_threads(1)
    from s4rec_train import distributed

    group = distributed.init_from_environment("cpu")  # ddp_helpers joined it
    results = {"rank": group.rank, "world": group.world_size}
    # S4Rec's batch-level terms on this process's shard (every WORLD-th user, as training shards batches)
    views, original, centroids, intent = _terms_inputs()
    rows = np.arange(B)[rank::WORLD]
    shard = distributed.BatchGroup(rank, tuple(len(np.arange(B)[r::WORLD]) for r in range(WORLD)))
    local = torch.cat([views[rows], views[B + rows]])
    for target in ("original", "swapped"):
        contrastive, cluster, grad, q = _terms(
            local, original[rows], centroids, intent[rows], target, shard, WORLD * len(rows) / B
        )
        total = torch.stack([contrastive, cluster])
        results[target] = {"loss": group.all_reduce(total) / WORLD, "grad": grad / WORLD, "q": q, "rows": rows}
    logs = []
    for name, config in RUNS.items():
        results[name] = train(_data(), TINY, config, log=logs.append, objectives=ObjectiveConfig.backbone())
    results["logs"] = logs
    s4rec = TrainConfig(epochs=1, batch_size=32, seed=0, lr=5e-3)
    results["s4rec"] = train(
        _data(), TINY, s4rec, log=lambda _: None, objectives=ObjectiveConfig(num_intents=4, adversary_weight=1.0)
    )
    # the command line in the process group: every process names the same output, rank 0 writes it
    cli_out = CliRunner().invoke(cli, [data_file, "-o", os.path.join(out, "cli.pt"), *CLI_ARGS, "--dropout", "0"])
    results["cli"] = (cli_out.exit_code, cli_out.output)
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    data_file = out / "data.txt"
    write_sequences(_data(), data_file)
    ddp_helpers.spawn(_worker, WORLD, out, str(data_file))
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return out, data_file, ranks


@pytest.mark.slow  # two training processes (the two_processes fixture)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_two_processes_train_like_one_with_the_same_global_batches(two_processes, name):
    _, _, ranks = two_processes
    torch.set_num_threads(1)
    single = train(_data(), TINY, RUNS[name], log=lambda _: None, objectives=ObjectiveConfig.backbone())
    for result in ranks:  # every process returns the same model and figures
        multi = result[name]
        assert [h["loss"] for h in multi["training"]["history"]] == pytest.approx(
            [h["loss"] for h in single["training"]["history"]], rel=1e-6
        )
        for key, value in single["state_dict"].items():
            torch.testing.assert_close(multi["state_dict"][key], value, rtol=0, atol=1e-5)
        assert multi["metrics"]["test"]["overall"] == pytest.approx(single["metrics"]["test"]["overall"], abs=1e-3)
        assert multi["training"]["processes"] == WORLD


@pytest.mark.slow
@pytest.mark.parametrize("target", ["original", "swapped"])
def test_s4rec_batch_terms_over_two_shards_equal_the_whole_batch(two_processes, target):
    _, _, ranks = two_processes
    views, original, centroids, intent = _terms_inputs()
    contrastive, cluster, grad, q = _terms(views, original, centroids, intent, target)
    for result in ranks:
        part = result[target]
        rows = part["rows"]
        torch.testing.assert_close(part["loss"], torch.stack([contrastive, cluster]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(part["grad"], torch.cat([grad[rows], grad[B + rows]]), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(part["q"], q[rows], rtol=1e-5, atol=1e-6)  # equal partition of the global batch


@pytest.mark.slow
def test_rank_zero_alone_logs_and_writes_the_checkpoint(two_processes):
    out, data_file, ranks = two_processes
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == WORLD for r in ranks)
    assert sum("valid HR@20" in line for line in ranks[0]["logs"]) == 4 and ranks[1]["logs"] == []
    assert any("2 processes (DDP)" in line for line in ranks[0]["logs"])
    (code0, text0), (code1, text1) = ranks[0]["cli"], ranks[1]["cli"]
    assert code0 == 0 and code1 == 0, text0 + text1
    assert "wrote" in text0 and "test overall" in text0 and text1 == ""
    written = torch.load(out / "cli.pt", weights_only=True)
    assert written["metrics"]["complete"] and written["training"]["processes"] == WORLD
    assert not [p.name for p in out.iterdir() if p.name.startswith(".cli.pt")]  # no temporary file left
    # S4Rec under DDP trains (its augmentations differ per process, so it is not compared with one process)
    history = ranks[0]["s4rec"]["training"]["history"]
    assert set(history[0]["terms"]) == {"cluster", "contrastive", "distill", "adversary"}
    assert all(np.isfinite(v) for v in history[0]["terms"].values())
    # the same command in one process gives the same model (dropout off, same global batches)
    single = CliRunner().invoke(cli, [str(data_file), "-o", str(out / "one.pt"), *CLI_ARGS, "--dropout", "0"])
    assert single.exit_code == 0, single.output
    one = torch.load(out / "one.pt", weights_only=True)
    for key, value in one["state_dict"].items():
        torch.testing.assert_close(written["state_dict"][key], value, rtol=0, atol=1e-4)


def test_global_batches_smaller_than_the_world_are_joined_to_a_neighbour():
    from s4rec_train.batching import merge_small_batches

    batches = [np.array([5]), np.array([1, 2, 3]), np.array([4]), np.array([6, 7]), np.array([8])]
    merged = merge_small_batches(batches, 2)
    assert [b.tolist() for b in merged] == [[5, 1, 2, 3, 4], [6, 7, 8]]
    assert all(len(b) >= 2 for b in merged) and merge_small_batches(batches, 1) == batches
