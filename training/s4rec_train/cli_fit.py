"""``s4rec-train [fit] DATA -o model.pt``: train S4Rec (or the backbone), from scratch, warm or resumed."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_options import (
    DEFAULT,
    METRICS_LEGEND,
    MODEL,
    TRAIN,
    given_values,
    load_data,
    objective_settings,
    run_options,
    split_options,
    with_data_options,
    with_objective_options,
    with_options,
    write_json,
)
from .cli_progress import progress_reporter
from .config import BATCHING, DEVICES, LOSSES, LR_SCHEDULES, MACHINE_SETTINGS, SAMPLERS, ObjectiveConfig, TrainConfig


@click.command("fit")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default="model.pt",
              help="Checkpoint of the best epoch (by validation NDCG@20), rewritten whenever it improves.")  # fmt: skip
@click.option("--epochs", default=TRAIN.epochs, type=click.IntRange(1),
              help="Upper bound on epochs; early stopping usually ends sooner.")  # fmt: skip
@click.option("--batch-size", default=TRAIN.batch_size, type=click.IntRange(1),
              help="Users per batch (tokens batching: the training positions of that many average users).")  # fmt: skip
@click.option("--lr", default=TRAIN.lr, type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@click.option("--lr-schedule", default=TRAIN.lr_schedule, type=click.Choice(LR_SCHEDULES),
              help="constant; linear: warm-up over 5% of the steps, then down to 0 at the last epoch.")  # fmt: skip
@click.option("--patience", default=TRAIN.patience, type=click.IntRange(1),
              help="Early stopping: validations without a better validation NDCG@20.")  # fmt: skip
@click.option("--validate-every", default=TRAIN.validate_every, type=click.IntRange(1),
              help="Validate after every N epochs (and after the last); the best validated epoch is kept.")  # fmt: skip
@click.option("--max-len", default=MODEL.max_len, type=click.IntRange(1),
              help="History window: the most recent items the model reads.")  # fmt: skip
@click.option("--dim", default=MODEL.dim, type=click.IntRange(1), help="Embedding size d.")
@click.option("--layers", default=MODEL.layers, type=click.IntRange(1), help="Transformer blocks.")
@click.option("--heads", default=MODEL.heads, type=click.IntRange(1), help="Attention heads (--dim must divide by it).")
@click.option("--dropout", default=MODEL.dropout, type=click.FloatRange(0, 1, max_open=True),
              help="Hidden and attention dropout.")  # fmt: skip
@click.option("--loss", type=click.Choice(LOSSES), default=TRAIN.loss,
              help="Next-item loss. softmax: cross-entropy over the whole catalogue; sampled: sampled softmax "
              "(shared negatives, logQ-corrected) for large catalogues; auto: softmax up to 50,000 items, sampled "
              "above; bce: one sampled negative (the paper's SASRec).")  # fmt: skip
@click.option("--negatives", default=TRAIN.negatives, type=click.IntRange(1),
              help="Sampled softmax: negatives drawn per step, shared by the batch.")  # fmt: skip
@click.option("--negative-sampler", type=click.Choice(SAMPLERS), default=TRAIN.negative_sampler,
              help="Sampled softmax: draw negatives uniformly, by popularity as targets, or half each.")  # fmt: skip
@click.option("--in-batch-negatives", default=TRAIN.in_batch_negatives, type=click.IntRange(0),
              help="Sampled softmax: also at most this many of the batch's own target items (0: none).")  # fmt: skip
@click.option("--sparse-items/--no-sparse-items", default=TRAIN.sparse_items,
              help="Sampled losses: sparse gradients and SparseAdam for the item table (only the rows a step uses "
              "move; much faster on CPU at 10^6 items; not with NCCL).")  # fmt: skip
@click.option("--prefix-split/--no-prefix-split", default=TRAIN.prefix_split,
              help="Train on every prefix of each history as its own sequence, with the loss at its last position "
              "(sub-sequence splitting); validation and test are unchanged.")  # fmt: skip
@click.option("--device", type=click.Choice(DEVICES), default=TRAIN.device,
              help="auto: CUDA when torch sees a GPU, else CPU.")  # fmt: skip
@click.option("--bf16/--no-bf16", default=TRAIN.bf16,
              help="bf16 autocast for the forward pass (CUDA, or CPUs with bf16 support).")  # fmt: skip
@click.option("--batching", type=click.Choice(BATCHING), default=TRAIN.batching,
              help="auto: tokens for the backbone, random for S4Rec (its clustering and adversary need random "
              "batches); tokens: similar-length users, as many training positions per batch as random batches (fast "
              "on CPU, measured best for the backbone); users: similar-length batches of --batch-size users; random: "
              "random batches.")  # fmt: skip
@click.option("--threads", type=click.IntRange(1), default=TRAIN.threads, show_default="torch's default",
              help="torch CPU threads (the default, one per core, was fastest for every loss on a 2-core machine: "
              "docs/training.md).")  # fmt: skip
@click.option("--seed", default=TRAIN.seed, help="Seed of the weights, dropout, batch order and augmentations.")
@click.option("--metrics-json", type=click.Path(path_type=Path), show_default="none",
              help="Also write the final metrics here (JSON).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar and no progress lines (epoch summaries stay).")
@click.option("--verbose", is_flag=True, help="Also log the full configurations, each loss term and intent details.")
@with_objective_options
@with_data_options
@with_options(split_options)
@with_options(run_options)
def fit(data, output, epochs, batch_size, lr, lr_schedule, patience, validate_every, max_len, dim, layers, heads,
        dropout, loss, negatives, negative_sampler, in_batch_negatives, sparse_items, prefix_split, device, bf16,
        batching, threads, seed, metrics_json, quiet, verbose, backbone, adversary_ramp, user_col, item_col, time_col,
        min_count, split, valid_fraction, test_fraction, init_from, new_item_init, resume, track, track_dir,
        **objective_values):  # fmt: skip
    """Train S4Rec on DATA and write the best checkpoint (by validation NDCG@20) to OUTPUT.

    DATA is a benchmark-format file (`user item item ...` per line, oldest first, optionally .gz), a
    CSV/TSV interaction log (optionally .gz) or a Parquet log with user, item and timestamp columns.

    S4Rec (a SASRec encoder trained with next-item prediction plus online intent clustering, contrastive
    learning with intent negatives, cluster-level self-distillation and a head/tail adversary) is the
    default; --backbone trains the next-item loss alone. A weight of 0 turns its term off.

    Under torchrun (`torchrun --nproc-per-node N -m s4rec_train DATA ...`) the N processes train together
    with DistributedDataParallel (NCCL on GPUs, gloo on CPU); rank 0 logs and writes OUTPUT.

    The training state is saved beside OUTPUT after every epoch (OUTPUT.state, removed at the end): --resume
    continues an interrupted run. --init-from OLD.pt warm-starts from an older model on newer data.
    """
    from dataclasses import asdict

    from s4rec.errors import OutputError

    from . import distributed
    from .checkpoint import CheckpointError
    from .data import DataError
    from .evaluation import format_table
    from .train import train

    if init_from is None and click.get_current_context().get_parameter_source("new_item_init") != DEFAULT:
        raise click.UsageError("--new-item-init sets the rows of a warm start's new items; it needs --init-from.")
    objectives = objective_settings(backbone, dict(objective_values, adversary_ramp=adversary_ramp))
    joined = not distributed.current().enabled  # a process group this command starts, it also ends
    group = distributed.init_from_environment(device)
    echo = click.echo if group.is_main else (lambda *_a, **_k: None)
    interactions = load_data(data, user_col, item_col, time_col, min_count)
    progress = None if quiet or not group.is_main else progress_reporter()
    tracker = None
    try:
        settings = dict(
            epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, device=device,
            bf16=bf16, batching=batching, threads=threads, loss=loss, negatives=negatives,
            negative_sampler=negative_sampler, in_batch_negatives=in_batch_negatives, sparse_items=sparse_items,
            prefix_split=prefix_split, lr_schedule=lr_schedule, validate_every=validate_every, split=split,
            valid_fraction=valid_fraction, test_fraction=test_fraction,
        )  # fmt: skip
        model_config = {"max_len": max_len, "dim": dim, "layers": layers, "heads": heads, "dropout": dropout}
        warm = None
        if init_from is not None:
            from .warmstart import WarmStart, warm_settings

            warm = WarmStart.load(init_from, new_item_init)
            machine = {name: settings[name] for name in MACHINE_SETTINGS}
            given = {**given_values(settings), **machine}
            model_config, config, objectives = warm_settings(
                warm.checkpoint, given_values(model_config), given, objectives, echo
            )
            echo(f"warm start from {init_from}: its settings" + (f", with {sorted(given.keys() - set(machine))} "
                 "given here" if given.keys() - set(machine) else ""))  # fmt: skip
        else:
            config = TrainConfig(**settings)
        if track and group.is_main:
            from .tracking import TrackingUnavailable, open_tracker

            try:
                tracker = open_tracker(track_dir, data, output)
            except TrackingUnavailable as e:
                raise click.ClickException(str(e)) from None
            tracker.log_settings({
                "data": {"path": str(data), "users": interactions.num_users, "items": interactions.num_items,
                         "interactions": interactions.num_interactions},
                "model": model_config, "training": asdict(config),
                "objectives": ObjectiveConfig.from_dict(objectives).to_dict(),
                "warm_start": {"from": str(init_from), "new_item_init": new_item_init} if init_from else {},
                "resume": {"resume": resume},
            })  # fmt: skip
        checkpoint = train(
            interactions,
            model_config,
            config,
            output,
            log=echo,
            objectives=objectives,
            on_progress=progress,
            verbose=verbose,
            init_from=warm,
            resume=resume,
            on_epoch=tracker.log_epoch if tracker is not None else None,
        )
        if tracker is not None:
            tracker.finish(checkpoint, output)
            echo(f"tracked run {tracker.run_id} in {tracker.location}")
    except CheckpointError as e:  # --init-from a damaged or foreign file
        raise click.BadParameter(str(e), param_hint="--init-from") from None
    except OutputError as e:  # no room to write the checkpoint: the previous one (if any) is untouched
        raise click.ClickException(str(e)) from None
    except DataError as e:  # e.g. too few users to split
        raise click.BadParameter(e.for_command_line(), param_hint="DATA") from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    finally:
        if progress is not None:
            progress.close()
        if tracker is not None:
            tracker.close()  # a run that failed is marked so
        if joined:
            distributed.shutdown()
    if not group.is_main:
        return
    metrics = checkpoint["metrics"]
    click.echo(f"best epoch {metrics['best_epoch']}; wrote {output.resolve()}")
    click.echo(format_table({"valid": metrics["valid"], "test": metrics["test"]}))
    click.echo(METRICS_LEGEND)
    if metrics_json:
        write_json(metrics_json, metrics)
