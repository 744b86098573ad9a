"""The training loop (:func:`train`, settings :class:`TrainConfig`): next-item prediction plus S4Rec's auxiliary
objectives, evaluation on validation after every epoch, early stopping, the best epoch's checkpoint.

The parts it drives have their own modules: batches (:mod:`s4rec_train.batching`), one step's losses as a
module (:mod:`s4rec_train.step`; the terms are :mod:`s4rec_train.losses`, :mod:`s4rec_train.sampled` and
:mod:`s4rec_train.objectives`), evaluation (:mod:`s4rec_train.evaluation`), several processes
(:mod:`s4rec_train.distributed`) and the checkpoint (:mod:`s4rec_train.checkpoint`). Everything after a
batch's copy to the device (augmentations, negatives, Sinkhorn, losses) runs there without reading values
back to the host; losses are summed on the device and read once per epoch.

Under torchrun (DDP) every process runs this loop on its share of each global batch; evaluation is sharded
by blocks of users and the ranks all-reduced, so every process has the same figures (and makes the same
early-stopping decision) and rank 0 alone logs and writes the checkpoint.

With every auxiliary weight 0 (``ObjectiveConfig.backbone()``) the step is exactly the backbone's: no extra
module, parameter or random number, so the same seed gives the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import __version__
from . import distributed as distributed_training
from . import resume as resume_state
from .batching import (
    batch_order,
    iterate_batches,
    merge_small_batches,
    prefix_sequences,
    resolve_batching,
    target_items,
    user_sequences,
)
from .checkpoint import new_checkpoint, save_checkpoint, with_weights
from .config import ModelConfig, ObjectiveConfig, TrainConfig
from .data import Interactions, require_both_groups
from .evaluation import evaluate_split, intent_usage
from .model import SASRec
from .objectives import S4RecHeads
from .sampled import SAMPLED_ABOVE, NegativeSampler, resolve_loss
from .splits import make_split
from .step import TrainingStep

__all__ = ["Progress", "TrainConfig", "resolve_device", "train"]


@dataclass(frozen=True)
class Progress:
    """Where a run is, handed to ``train(on_progress=...)`` after every optimizer step."""

    epoch: int  # 1-based
    epochs: int  # TrainConfig.epochs, an upper bound: early stopping may end the run sooner
    step: int  # optimizer steps done in this epoch, 1..steps
    steps: int  # steps in this epoch (with `tokens` batching it varies a little from epoch to epoch)
    users: int  # users trained on so far in this epoch
    elapsed: float  # seconds since this epoch's first step began
    # The epoch's summed next-item loss, on the training device: read only when `loss` is asked for, so
    # that reporting progress does not make every CUDA step wait for its loss.
    loss_total: torch.Tensor = field(repr=False, compare=False)

    @property
    def loss(self) -> float:
        """Mean next-item loss of this epoch's steps so far (reads the value from the training device)."""
        return float(self.loss_total) / self.step


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device of a ``TrainConfig.device`` setting (auto: CUDA when torch sees one; under DDP the
    process's own GPU, ``local_rank``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto.")
    return torch.device("cuda", local_rank) if name == "cuda" and local_rank is not None else torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed torch's default generator (weights, dropout) and numpy's global one."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(
    data: Interactions,
    model_config: dict | None = None,
    config: TrainConfig | None = None,
    output: str | Path | None = None,
    log: Callable[[str], None] = print,
    objectives: ObjectiveConfig | dict | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    verbose: bool = False,
    init_from=None,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    final_test: bool = True,
) -> dict:
    """Train S4Rec (or, with ``ObjectiveConfig.backbone()``, the plain SASRec backbone) on ``data``.

    ``objectives`` defaults to S4Rec's defaults (:class:`ObjectiveConfig`). Returns the checkpoint dict (also
    written to ``output``): the encoder weights of the epoch with the best validation NDCG@20, the S4Rec
    heads (``objective_state_dict``) and normalised intent centroids, and that model's validation and test
    figures.

    ``log`` receives the run's description and one summary line per epoch (loss, validation figures, times);
    ``verbose`` adds the full configurations, each loss term and the intents' head shares to it;
    ``on_progress``, when given, a :class:`Progress` after every optimizer step (the command line draws a
    progress bar or prints a line now and then from it). In a process group (torchrun; see
    :mod:`s4rec_train.distributed`) every process trains its share with DDP and returns the same checkpoint;
    only rank 0 logs, reports progress and writes ``output``.

    ``init_from`` (a :class:`~s4rec_train.warmstart.WarmStart`): start from an older checkpoint, ``data``'s
    vocabulary grown onto it. With ``output``, the training state is saved beside it after every epoch
    (:mod:`s4rec_train.resume`) and ``resume`` continues from it. ``on_epoch`` receives each epoch's history
    record (rank 0; experiment tracking, tuning: it may raise to stop the run); ``final_test=False`` skips
    the test evaluation (tuning chooses on validation only).
    """
    config = config or TrainConfig()
    if objectives is None:
        objectives = ObjectiveConfig()
    elif isinstance(objectives, dict):
        objectives = ObjectiveConfig.from_dict(objectives)
    model_config = dict(model_config or {})
    if init_from is not None:  # the old model's shape unless given; the vocabulary grown onto the old one
        data = init_from.grow(data)
        model_config = {**init_from.model_config, **model_config}
    model_config.setdefault("num_items", data.num_items)
    model_cfg = ModelConfig.from_dict(model_config)
    config = replace(config, batching=resolve_batching(config.batching, objectives))  # the checkpoint says which
    group = distributed_training.current()
    state_file = resume_state.state_path(output) if output is not None else None  # every process reads it
    if not group.is_main:
        log, on_progress, output, on_epoch = (lambda _: None), None, None, None
    detail = log if verbose else (lambda _: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, group.local_rank if group.enabled else None)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    split = make_split(data, model_cfg.max_len, config.split, config.valid_fraction, config.test_fraction)
    require_both_groups(split, data.source)
    model = SASRec(model_cfg).to(device)
    parameters = list(model.parameters())
    heads = popularity_cdf = is_head = augment_generator = None
    if objectives.enabled:
        # Own generators: S4Rec's extra randomness does not shift the encoder's stream (one per process).
        init_generator = torch.Generator().manual_seed(config.seed + 1)
        heads = S4RecHeads(model_cfg.dim, objectives.num_intents, init_generator, objectives.unit_prototypes).to(device)
        parameters += list(heads.parameters())
        augment_generator = torch.Generator(device=device).manual_seed(config.seed + 2 + 1000 * group.rank)
        is_head = torch.from_numpy(split.is_head).to(device)
        popularity = split.window_item_counts("valid")[1:]
        popularity_cdf = torch.from_numpy(np.cumsum(popularity).astype(np.float32)).to(device)
    if init_from is not None:  # the old encoder, heads and rows; the new items' rows (warmstart.py)
        init_from.apply(model, heads, split, config.seed, log)
    if heads is not None:  # how far the prototypes turn from here: the epoch diagnostics
        start_centroids = heads.centroids().detach().clone()
    if group.enabled:
        torch.manual_seed(config.seed + group.rank)  # dropout: each process its own masks (DDP syncs weights)
    sequences = prefix_sequences(split) if config.prefix_split else user_sequences(split)
    loss_kind = resolve_loss(config.loss, data.num_items)
    sampler, in_batch, negative_generator = None, None, None
    if loss_kind == "sampled":
        # Negatives: the same draws in every process (one generator seed), so the global batch shares them.
        target_counts = np.bincount(target_items(split, sequences), minlength=data.num_items + 1)
        negative_generator = torch.Generator(device=device).manual_seed(config.seed + 3)
        sampler = NegativeSampler(target_counts, config.negatives, config.negative_sampler, device, negative_generator)
        if config.in_batch_negatives:
            in_batch = (config.in_batch_negatives, np.random.default_rng(config.seed + 4))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16)
    step_module = TrainingStep(
        model, heads, objectives, loss_kind, autocast, sampler, popularity_cdf, is_head, augment_generator,
        low_precision=config.bf16, rank=group.rank,
    )  # fmt: skip
    optimizer = _optimizer(model, parameters, config, loss_kind, group)  # before DDP: it may make the table sparse
    runner = step_module
    if group.enabled:
        from torch.nn.parallel import DistributedDataParallel

        unused = heads is not None and (
            objectives.adversary_weight == 0 or not objectives.needs_prototypes or objectives.cooldown > 0
        )  # the prototypes take no gradient after a cool-down
        ids = [device.index] if device.type == "cuda" else None
        runner = DistributedDataParallel(step_module, device_ids=ids, find_unused_parameters=unused)
    log(
        f"data {data.source}: {len(data.user_ids):,} users, {data.num_items:,} items, "
        f"{data.num_interactions:,} interactions" + "".join(f"; {n}" for n in [*data.notes, *split_notes(split)])
    )
    table = model.item_embedding.weight.numel()
    log(
        f"model: SASRec encoder, {model.num_parameters():,} parameters (item table {table:,}, positions and "
        f"transformer {model.num_parameters() - table:,}) on {device}"
    )
    detail(f"  {model_cfg}")
    if heads is not None:
        prototypes, adversary = heads.prototypes.numel(), sum(p.numel() for p in heads.adversary.parameters())
        log(
            f"objectives: S4Rec (next-item loss + {_active_terms(objectives)}); training heads "
            f"{prototypes + adversary:,} parameters: {objectives.num_intents} intent prototypes {prototypes:,} "
            f"(exported as the intent centroids) + adversary {adversary:,} (not exported)"
        )
        detail(f"  {objectives}")
        if objectives.cooldown:
            log(f"cool-down: the auxiliary weights reach 0 at {objectives.cooldown:.0%} of training; early stopping "
                "counts only the validations after it")  # fmt: skip
    else:
        log("objectives: next-item loss only (backbone)")
    log(_describe_loss(config, loss_kind, data.num_items))
    detail(
        f"  batching: {config.batching}"
        + (f"; prefix split: {len(sequences):,} training sequences" if config.prefix_split else "")
        + (f"; {group.world_size} processes (DDP), each its share of every batch" if group.enabled else "")
        + f"; {config}"
    )
    if config.prefix_split or group.enabled:
        log(
            (f"prefix split: {len(sequences):,} training sequences" if config.prefix_split else "")
            + ("; " if config.prefix_split and group.enabled else "")
            + (f"{group.world_size} processes (DDP)" if group.enabled else "")
        )

    best_score, best_epoch, best_state, best_heads, best_valid, stale = -1.0, 0, None, None, None, 0
    history_log, train_seconds = [], 0.0
    base = _base_checkpoint(data, model_cfg, config, objectives, loss_kind, group.world_size)
    if init_from is not None:
        base["training"]["warm_start"] = init_from.summary()
    # The ramps (DANN, warm-up) measure progress in steps of batch_size sequences; `tokens` batching takes about
    # as many steps (about one more per pool of 32 batches), and both ramps are flat once progress reaches 1.
    num_batches = -(-int((sequences.length > 0).sum()) // config.batch_size)
    total_steps, step = config.epochs * num_batches, 0
    evaluation = {"batch_size": config.eval_batch_size, "shard": group.shard, "reduce": group.all_reduce}
    positions = sequences.positions if sequences.last_only else None
    # Resume (resume.py): the state saved after each epoch; the loop continues after the last one saved.
    fingerprint = resume_state.run_fingerprint(
        data, model_cfg, config, objectives, loss_kind, group.world_size, init_from
    )
    run_state = resume_state.RunState(state_file, fingerprint, group)
    in_batch_rng = in_batch[1] if in_batch else None
    streams = resume_state.Streams(rng, in_batch_rng, augment_generator, negative_generator, device)
    first_epoch, stopped = 1, False
    saved = run_state.load() if resume else None
    if resume and saved is None:
        log(f"resume: no training state at {state_file}: training from the start")
    elif not resume and state_file is not None and state_file.exists():
        log(f"an interrupted run's training state is at {state_file}; training from the start (--resume continues it)")
    if saved is not None:
        run_state.restore(saved, model, heads, optimizer, streams)
        first_epoch, step, stopped = saved["epoch"] + 1, saved["step"], saved["stopped"]
        history_log, train_seconds = saved["history"], saved["train_seconds"]
        b = saved["best"]
        best_score, best_epoch, best_state, best_heads, best_valid, stale = (
            b["score"],
            b["epoch"],
            b["state"],
            b["heads"],
            b["valid"],
            b["stale"],
        )
        log(f"resumed from {state_file}: {saved['epoch']} epochs done" + (" (early stop)" if stopped else ""))
        for record in history_log:
            if on_epoch is not None:
                on_epoch(record)

    def save_state(epoch: int, stopped: bool = False) -> None:
        best = {"score": best_score, "epoch": best_epoch, "state": best_state, "heads": best_heads,
                "valid": best_valid, "stale": stale}  # fmt: skip
        run_state.save(epoch, step, stopped, model, heads, optimizer, best, history_log, train_seconds, streams)

    for epoch in range(first_epoch, config.epochs + 1) if not stopped else ():
        model.train()
        if heads is not None:
            heads.train()
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        term_totals: dict[str, torch.Tensor] = {}
        steps = 0
        user_batches = batch_order(sequences.length, config.batch_size, rng, config.batching, positions)
        if group.enabled:
            user_batches = merge_small_batches(user_batches, group.world_size)
        batch_users = np.cumsum([len(users) for users in user_batches])  # sequences trained on after each step
        for batch in iterate_batches(split, user_batches, device, sequences, group.shard, in_batch):
            optimize, loss, terms = runner(batch, step / total_steps)
            for name, value in terms.items():
                term_totals[name] = term_totals.get(name, 0.0) + value
            optimizer.zero_grad(set_to_none=True)
            optimize.backward()
            if config.lr_schedule != "constant":
                _set_lr(optimizer, config.lr * lr_factor(config.lr_schedule, step, total_steps))
            optimizer.step()
            if heads is not None and objectives.unit_prototypes:
                heads.renormalize_()  # SwAV: the prototypes stay on the unit sphere
            total += loss
            steps += 1
            step += 1
            if on_progress is not None:
                elapsed = time.perf_counter() - started
                users = int(batch_users[steps - 1])
                loss_total = total.clone()  # a copy on the device, no host sync: `total` keeps growing
                on_progress(Progress(epoch, config.epochs, steps, len(user_batches), users, elapsed, loss_total))
        if group.enabled:  # each process summed its weighted share: the global batches' mean is sum / world
            total = group.all_reduce(total) / group.world_size
            term_totals = {name: group.all_reduce(value) / group.world_size for name, value in term_totals.items()}
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        if epoch % config.validate_every and epoch != config.epochs:
            mean_loss = float(total) / max(steps, 1)
            history_log.append({"epoch": epoch, "loss": mean_loss, "seconds": epoch_seconds})
            log(f"epoch {epoch:3d}  loss {mean_loss:.4f}  train {epoch_seconds:.1f}s (validated every "
                f"{config.validate_every} epochs)")  # fmt: skip
            if on_epoch is not None:
                on_epoch(history_log[-1])
            save_state(epoch)
            continue
        eval_started = time.perf_counter()
        valid = evaluate_split(model, split, "valid", **evaluation)
        eval_seconds = time.perf_counter() - eval_started
        score = valid["overall"]["NDCG@20"]
        improved = score > best_score
        mean_loss = float(total) / max(steps, 1)
        terms = {name: float(value) / max(steps, 1) for name, value in term_totals.items()}
        entry = {"epoch": epoch, "loss": mean_loss, "terms": terms, "seconds": epoch_seconds, "valid": valid["overall"]}
        if heads is not None and objectives.needs_prototypes:
            entry["intents"] = _intent_diagnostics(model, heads, split, start_centroids, evaluation)
        history_log.append(entry)
        v = valid["overall"]
        log(
            f"epoch {epoch:3d}  loss {mean_loss:.4f}"
            + "".join(f" {name} {value:.4f}" for name, value in terms.items() if verbose)
            + f"  valid HR@20 {v['HR@20']:.4f} NDCG@20 {v['NDCG@20']:.4f}"
            + (f" (HR@5 {v['HR@5']:.4f})" if verbose else "")
            + f"  train {epoch_seconds:.1f}s eval {eval_seconds:.1f}s"
            + ("  * best so far" if improved else "")
            + (_describe_diagnostics(terms, entry.get("intents"), objectives) if heads is not None else "")
        )
        if on_epoch is not None:
            on_epoch(history_log[-1])
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
        if step < objectives.cooldown * total_steps:
            # The auxiliary weights are still falling, so the objective is still changing: patience starts when the
            # next-item loss trains alone. Counted during the cool-down, it ended a Toys run at epoch 46 of a
            # cool-down to epoch 70, 17.5% below the backbone; counted after it, that seed ends 4.2% below
            # (RESULTS.md sections 12 and 14).
            stale = 0
        save_state(epoch, stopped=stale >= config.patience)
        if stale >= config.patience:
            every = "" if config.validate_every == 1 else f" validations ({config.validate_every} epochs each)"
            log(f"early stop: no better validation NDCG@20 for {config.patience}{every or ' epochs'}")
            break

    model.load_state_dict(best_state)
    test = evaluate_split(model, split, "test", **evaluation) if final_test else None
    metrics = {"best_epoch": best_epoch, "valid": best_valid, "test": test, "complete": True}
    checkpoint = with_weights(base, best_state, best_heads, objectives.cluster_temperature, metrics)
    if heads is not None:
        heads.load_state_dict(best_heads)
        usage = intent_usage(model, heads, split, **evaluation)
        checkpoint["metrics"]["intents"] = usage
        u = usage
        log(f"intents: users of the training data fall into {u['intents_used']} of the {u['num_intents']} intents")
        detail(
            f"  head share across intents (fraction of each intent's users who are head users; the adversary "
            f"pushes it towards the overall share): "
            f"{u['head_share_min']:.2f}..{u['head_share_max']:.2f} (std {u['head_share_std']:.3f}, "
            f"size-weighted {u['head_share_std_weighted']:.3f}; overall {u['head_share_overall']:.2f})"
        )
    checkpoint["training"]["seconds"] = train_seconds
    checkpoint["training"]["epochs_run"] = len(history_log)
    checkpoint["training"]["history"] = history_log
    if output is not None:
        save_checkpoint(checkpoint, output)
    run_state.remove()  # the run is complete (rank 0)
    group.barrier()  # the others wait until rank 0 has written the checkpoint
    return checkpoint


def _intent_diagnostics(model, heads, split, start_centroids: torch.Tensor, evaluation: dict) -> dict:
    """Per-epoch health of the intent model: how many intents the validation histories use and the largest one's
    share (argmax p of the serving vector), and the mean cosine of the prototypes to where they started."""
    usage = intent_usage(model, heads, split, **evaluation)
    turned = (heads.centroids().detach() * start_centroids).sum(-1).mean()
    return {
        "used": usage["intents_used"],
        "largest_share": usage["largest_intent_share"],
        "cosine_to_start": float(turned),
    }


def _describe_diagnostics(terms: dict, intents: dict | None, objectives: ObjectiveConfig) -> str:
    """`  [adv CE 0.690 (ln 2 0.693), clust 9.10/9.70 (2 ln K), intents 97/128, largest 4%, ...]` for the epoch
    line: an adversary at ln 2 never classifies; L_Clust at 2 ln K has learnt no assignment."""
    parts = []
    if "adversary" in terms:
        parts.append(f"adv CE {terms['adversary']:.3f} (ln 2 {math.log(2):.3f})")
    if "cluster" in terms:
        parts.append(f"clust {terms['cluster']:.2f}/{2 * math.log(objectives.num_intents):.2f} (2 ln K)")
    if intents:
        parts.append(
            f"intents {intents['used']}/{objectives.num_intents}, largest {intents['largest_share']:.0%}, "
            f"prototypes' cosine to start {intents['cosine_to_start']:.3f}"
        )
    return f"  [{', '.join(parts)}]" if parts else ""


class _Optimizers:
    """Adam for the dense parameters and SparseAdam for the item table (``TrainConfig.sparse_items``)."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def _active_terms(objectives: ObjectiveConfig) -> str:
    names = {"cluster_weight": "intent clustering", "contrastive_weight": "contrastive",
             "distill_weight": "self-distillation", "adversary_weight": "head/tail adversary"}  # fmt: skip
    return ", ".join(label for field, label in names.items() if getattr(objectives, field) > 0)


LR_WARMUP = 0.05  # the linear schedule's warm-up: this fraction of the run's steps


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The learning rate of ``step`` (0-based) of ``total_steps`` as a fraction of ``TrainConfig.lr``."""
    if schedule == "constant":
        return 1.0
    warmup = max(1, round(LR_WARMUP * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def _set_lr(optimizer, lr: float) -> None:
    for one in getattr(optimizer, "optimizers", (optimizer,)):
        for group in one.param_groups:
            group["lr"] = lr


def _optimizer(model: SASRec, parameters: list, config: TrainConfig, loss: str, group) -> torch.optim.Optimizer:
    if not config.sparse_items:
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if loss == "softmax":
        raise ValueError(f"sparse_items needs a sampled loss; `{config.loss}` trains this data with the full softmax.")
    if group.enabled and torch.distributed.get_backend() == "nccl":
        raise ValueError("sparse_items: NCCL cannot all-reduce sparse gradients; train without it on GPUs.")
    model.item_embedding.sparse = True  # the lookups of histories and views; the loss reads this flag too
    table = model.item_embedding.weight
    dense = [p for p in parameters if p is not table]
    return _Optimizers(
        torch.optim.Adam(dense, lr=config.lr, weight_decay=config.weight_decay),
        torch.optim.SparseAdam([table], lr=config.lr),
    )


def _describe_loss(config: TrainConfig, kind: str, num_items: int) -> str:
    why = ""
    if config.loss == "auto":
        why = f" (auto: {num_items:,} items {'>' if kind == 'sampled' else '<='} {SAMPLED_ABOVE:,})"
    if kind != "sampled":
        return f"next-item loss: {kind}{why}"
    in_batch = f" + up to {config.in_batch_negatives} in-batch" if config.in_batch_negatives else ""
    negatives = f"{config.negatives} {config.negative_sampler} negatives{in_batch}"
    sparse = "; item table: sparse gradients, SparseAdam" if config.sparse_items else ""
    return f"next-item loss: sampled softmax{why}, {negatives}, logQ-corrected{sparse}"


def split_notes(split) -> list[str]:
    """What a time split says about itself (its cuts and periods); nothing for leave-one-out."""
    return list(getattr(split, "notes", []))


def _cpu_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _base_checkpoint(
    data: Interactions,
    model_cfg: ModelConfig,
    config: TrainConfig,
    objectives: ObjectiveConfig,
    loss: str,
    processes: int,
) -> dict:
    training = {
        "settings": asdict(config),
        "next_item_loss": loss,  # what `auto` chose
        "processes": processes,
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
