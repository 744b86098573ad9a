"""The training loop: next-item prediction with full-softmax cross-entropy plus S4Rec's auxiliary objectives
(:mod:`s4rec_train.objectives`), early stopping on validation.

Batches are cut on the host from pre-padded arrays (trimmed to the longest history in the batch, which is
exact because positions are right-aligned), pinned and moved with non-blocking copies; the loss is computed
only at non-padded positions, so no (batch, length, items) logits tensor is ever built. Everything after the
copy (augmentations, Sinkhorn, losses) runs on the training device without reading values back to the host;
losses are summed on the device and read once per epoch.

With every auxiliary weight 0 (``ObjectiveConfig.backbone()``) the step is exactly the backbone's: no extra
module, parameter or random number, so the same seed gives the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .checkpoint import new_checkpoint, save_checkpoint, with_weights
from .data import Interactions, Split, leave_one_out
from .evaluation import evaluate_split
from .model import ModelConfig, SASRec
from .objectives import ObjectiveConfig, S4RecHeads, intent_usage, s4rec_losses, weighted_total


@dataclass
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends Beauty-sized runs sooner
    batch_size: int = 256
    lr: float = 1e-3  # Adam, as in the paper
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a better validation NDCG@20 before stopping
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda (auto picks CUDA when present)
    bf16: bool = False  # bf16 autocast for the forward pass (CUDA, or CPUs with bf16 support)
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    loss: str = "softmax"  # softmax: full-catalogue cross-entropy; bce: one sampled negative (paper's SASRec)
    # How users are grouped into batches (see batch_order): tokens = similar lengths, as many training
    # positions per batch as random batches, ~2x faster on CPU than random and measured best for the backbone
    # (benchmarks/RESULTS.md section 0) and for S4Rec (section 4: valid NDCG@20 0.0351 vs 0.0297 with users
    # after 5 epochs); users; random.
    batching: str = "tokens"
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {self.batching!r}")
        if self.loss not in ("softmax", "bce"):
            raise ValueError(f"loss must be softmax or bce, got {self.loss!r}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto.")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@dataclass
class Batch:
    users: torch.Tensor  # (b,) user rows in the split
    history: torch.Tensor  # (b, t) left-padded inputs, trimmed to the longest in the batch
    target: torch.Tensor  # (b, t) next items, 0 where there is nothing to predict
    positions: torch.Tensor  # (m,) flat indices into (b * t) of the positions with a target


BATCHING = ("tokens", "users", "random")


def batch_order(
    input_length: np.ndarray, batch_size: int, rng: np.random.Generator, batching: str = "tokens"
) -> list[np.ndarray]:
    """Users of each batch for one epoch, shuffled.

    * ``random``: random batches of ``batch_size`` users. Almost every such batch holds one long history, so
      it is padded to nearly ``max_len`` although most users have ~9 items.
    * ``users``: users are shuffled, cut into pools of 32 batches and sorted by length inside each pool, then
      cut into batches of ``batch_size`` users whose order is shuffled again. Short windows, but a batch of
      256 two-item users weighs as much in a step as a batch of 256 fifty-item users, which measurably slowed
      learning of the next-item loss on Beauty (docs/s4rec.md, benchmarks/RESULTS.md).
    * ``tokens`` (default): as ``users``, but each pool is cut into batches holding about as many training
      positions as a random batch (``batch_size`` x the mean positions per user): short-history batches hold
      more users, long-history batches fewer. Steps average over as many next-item predictions as random
      batches do (the loss curve follows the random one) while the window shrinks to the batch's longest
      history.
    """
    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    order = rng.permutation(len(input_length))
    order = order[input_length[order] > 0]  # users whose training part has one item teach nothing
    if batching == "random":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    budget = batch_size * float(input_length[order].mean())
    pool = 32 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(input_length[chunk], kind="stable")]
        if batching == "users":
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
            continue
        # cut where the running count of positions crosses a multiple of the budget
        cut = np.floor(np.cumsum(input_length[chunk]) / budget).astype(np.int64)
        bounds = np.flatnonzero(np.diff(cut)) + 1
        batches.extend(b for b in np.split(chunk, bounds) if len(b))
    return [batches[i] for i in rng.permutation(len(batches))]


def input_lengths(split: Split) -> np.ndarray:
    """Training positions per user (the training part minus its first item, capped at max_len)."""
    return np.minimum(np.maximum(split.train_length - 1, 0), split.max_len)


def iterate_batches(split: Split, user_batches: list[np.ndarray], device: torch.device):
    """Training batches for the given users, cut and indexed on the host, moved with pinned non-blocking copies."""
    input_length = input_lengths(split)
    pin = device.type == "cuda"
    for users in user_batches:
        users = np.sort(users)
        t = int(input_length[users].max())
        history = split.train_input[users, -t:]
        target = split.train_target[users, -t:]
        positions = np.flatnonzero(target.reshape(-1))
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (users, history, target, positions)]
        if pin:
            tensors = [x.pin_memory() for x in tensors]
        yield Batch(*(x.to(device, non_blocking=True) for x in tensors))


def next_item_loss(
    model: SASRec, hidden: torch.Tensor, batch: Batch, kind: str = "softmax", generator=None
) -> torch.Tensor:
    """L_SR: cross-entropy of the next item at the non-padded positions only."""
    d = hidden.shape[-1]
    h = hidden.reshape(-1, d).index_select(0, batch.positions)  # (m, d)
    target = batch.target.reshape(-1).index_select(0, batch.positions)  # (m,) in 1..N
    table = model.item_table
    if kind == "softmax":
        logits = h @ table[1:].T  # (m, N), never (b, t, N)
        return F.cross_entropy(logits.float(), target - 1)
    negative = torch.randint(1, table.shape[0], target.shape, device=target.device, generator=generator)
    pos = (h * table[target]).sum(-1).float()
    neg = (h * table[negative]).sum(-1).float()
    return F.softplus(-pos).mean() + F.softplus(neg).mean()


def train(
    data: Interactions,
    model_config: dict | None = None,
    config: TrainConfig | None = None,
    output: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    objectives: ObjectiveConfig | dict | None = None,
) -> dict:
    """Train S4Rec (or, with ``ObjectiveConfig.backbone()``, the plain SASRec backbone) on ``data``.

    ``objectives`` defaults to S4Rec's defaults (:class:`ObjectiveConfig`). Returns the checkpoint dict (also
    written to ``output``): the encoder weights of the epoch with the best validation NDCG@20, the S4Rec
    heads (``objective_state_dict``) and normalised intent centroids, and that model's validation and test
    figures.
    """
    config = config or TrainConfig()
    if objectives is None:
        objectives = ObjectiveConfig()
    elif isinstance(objectives, dict):
        objectives = ObjectiveConfig.from_dict(objectives)
    model_config = dict(model_config or {})
    model_config.setdefault("num_items", data.num_items)
    model_cfg = ModelConfig.from_dict(model_config)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    split = leave_one_out(data, model_cfg.max_len)
    model = SASRec(model_cfg).to(device)
    parameters = list(model.parameters())
    heads = None
    if objectives.enabled:
        # Own generators: S4Rec's extra randomness does not shift the encoder's stream.
        init_generator = torch.Generator().manual_seed(config.seed + 1)
        heads = S4RecHeads(model_cfg.dim, objectives.num_intents, init_generator).to(device)
        parameters += list(heads.parameters())
        augment_generator = torch.Generator(device=device).manual_seed(config.seed + 2)
        is_head = torch.from_numpy(split.is_head).to(device)
        popularity = np.bincount(split.valid_history.reshape(-1), minlength=data.num_items + 1)[1:]
        popularity_cdf = torch.from_numpy(np.cumsum(popularity).astype(np.float32)).to(device)
    optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    log(
        f"data {data.source}: {len(data.user_ids)} users, {data.num_items} items, "
        f"{data.num_interactions} interactions" + "".join(f"; {n}" for n in data.notes)
    )
    log(f"model: {model.num_parameters():,} parameters on {device}; {model_cfg}")
    if heads is not None:
        log(f"S4Rec objectives ({sum(p.numel() for p in heads.parameters()):,} head parameters): {objectives}")
    else:
        log("objectives: next-item loss only (backbone)")
    log(f"batching: {config.batching}")

    best_score, best_epoch, best_state, best_heads, best_valid, stale = -1.0, 0, None, None, None, 0
    history_log, train_seconds = [], 0.0
    base = _base_checkpoint(data, model_cfg, config, objectives)
    num_batches = -(-int((split.train_length > 1).sum()) // config.batch_size)
    total_steps, step = config.epochs * num_batches, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        if heads is not None:
            heads.train()
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        term_totals: dict[str, torch.Tensor] = {}
        steps = 0
        user_batches = batch_order(input_lengths(split), config.batch_size, rng, config.batching)
        batches = iterate_batches(split, user_batches, device)
        with click.progressbar(
            batches, length=len(user_batches), label=f"epoch {epoch}", file=None if progress else _Null()
        ) as bar:
            for batch in bar:
                with autocast:
                    hidden = model(batch.history)
                loss = next_item_loss(model, hidden, batch, config.loss)
                optimize = loss
                if heads is not None:
                    terms = s4rec_losses(
                        model, heads, batch.history, hidden[:, -1], is_head[batch.users], popularity_cdf,
                        objectives, step / total_steps, autocast, augment_generator,
                    )  # fmt: skip
                    optimize = loss + weighted_total(terms, objectives, step / total_steps)
                    for name, value in terms.items():
                        term_totals[name] = term_totals.get(name, 0.0) + value.detach()
                optimizer.zero_grad(set_to_none=True)
                optimize.backward()
                optimizer.step()
                total += loss.detach()
                steps += 1
                step += 1
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        eval_started = time.perf_counter()
        valid = evaluate_split(model, split, "valid", config.eval_batch_size)
        eval_seconds = time.perf_counter() - eval_started
        score = valid["overall"]["NDCG@20"]
        improved = score > best_score
        mean_loss = float(total) / max(steps, 1)
        terms = {name: float(value) / max(steps, 1) for name, value in term_totals.items()}
        history_log.append(
            {
                "epoch": epoch,
                "loss": mean_loss,
                "terms": terms,
                "seconds": epoch_seconds,
                "valid": valid["overall"],
            }
        )
        v = valid["overall"]
        log(
            f"epoch {epoch:3d}  loss {mean_loss:.4f}"
            + "".join(f" {name} {value:.4f}" for name, value in terms.items())
            + f"  valid HR@5 {v['HR@5']:.4f} HR@20 {v['HR@20']:.4f} NDCG@20 {v['NDCG@20']:.4f}"
            f"  train {epoch_seconds:.1f}s eval {eval_seconds:.1f}s" + ("  *" if improved else "")
        )
        if improved:
            best_score, best_epoch, best_valid, stale = score, epoch, valid, 0
            best_state = _cpu_state(model)
            best_heads = _cpu_state(heads) if heads is not None else None
            if output is not None:
                metrics = {"best_epoch": epoch, "valid": valid, "complete": False}
                temperature = objectives.cluster_temperature
                save_checkpoint(with_weights(base, best_state, best_heads, temperature, metrics), output)
        else:
            stale += 1
            if stale >= config.patience:
                log(f"early stop: no better validation NDCG@20 for {config.patience} epochs")
                break

    model.load_state_dict(best_state)
    test = evaluate_split(model, split, "test", config.eval_batch_size)
    metrics = {"best_epoch": best_epoch, "valid": best_valid, "test": test, "complete": True}
    checkpoint = with_weights(base, best_state, best_heads, objectives.cluster_temperature, metrics)
    if heads is not None:
        heads.load_state_dict(best_heads)
        usage = intent_usage(model, heads, split.valid_history, split.is_head, config.eval_batch_size)
        checkpoint["metrics"]["intents"] = usage
        u = usage
        log(
            f"intents used: {u['intents_used']} of {u['num_intents']}; head share across intents "
            f"{u['head_share_min']:.2f}..{u['head_share_max']:.2f} (std {u['head_share_std']:.3f}, "
            f"size-weighted {u['head_share_std_weighted']:.3f}; overall {u['head_share_overall']:.2f})"
        )
    checkpoint["training"]["seconds"] = train_seconds
    checkpoint["training"]["epochs_run"] = len(history_log)
    checkpoint["training"]["history"] = history_log
    if output is not None:
        save_checkpoint(checkpoint, output)
    return checkpoint


def _cpu_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _base_checkpoint(
    data: Interactions, model_cfg: ModelConfig, config: TrainConfig, objectives: ObjectiveConfig
) -> dict:
    training = {
        "settings": asdict(config),
        "objectives": objectives.to_dict(),
        "data": {
            "source": data.source,
            "users": len(data.user_ids),
            "items": data.num_items,
            "interactions": data.num_interactions,
            "dropped_users": data.dropped_users,
        },
        "package_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion would need unpickling
    }
    return new_checkpoint(model_cfg, data.item_ids, data.item_counts(), training)


class _Null:
    """A write-only sink for the progress bar when it is turned off."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
