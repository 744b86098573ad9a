"""``s4rec-train``: train a model (``s4rec-train DATA -o model.pt``) or evaluate one (``... evaluate``).

This module imports torch only inside the commands, so that ``s4rec-train --help`` and ``--version`` work
(and are fast) without it, and ``s4rec-train`` on a machine without torch can say which extra to install
instead of failing with a traceback. The defaults it shows come from the torch-free config dataclasses
(:mod:`s4rec_train.config`). It also renders the training loop's progress (a bar or plain lines). Most of its
length is the option declarations, one per training setting.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from .config import (
    BATCHING,
    DEVICES,
    INTENT_SOURCES,
    LOSSES,
    LR_SCHEDULES,
    MACHINE_SETTINGS,
    NEW_ITEM_INITS,
    SAMPLERS,
    SIDE_VECTORS,
    SPLITS,
    STUDENTS,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
)

MISSING_TORCH = (
    "s4rec-train needs PyTorch: pip install torch (CPU: pip install torch==2.13.0), then "
    "pip install '/path/to/s4rec[train]' (this repository)"
)
MISSING_PYARROW = "s4rec-train reads data with pyarrow: pip install '/path/to/s4rec[train]' (or pip install pyarrow)"
HELP_OPTIONS = ("-h", "--help")
METRICS_LEGEND = (
    "HR@k: share of users whose held-out next item is among their top k of the whole catalogue (their history "
    "excluded); NDCG@k also rewards ranking it higher (1 at rank 1), MRR@k is 1/rank within the top k; Cov@k: "
    "share of the catalogue in at least one user's top k. valid: second-last item, test: last item (--split "
    "time: the first item of each period); head: the 20% of users with the longest histories, tail: the rest."
)
TRAIN, OBJECTIVES = TrainConfig(), ObjectiveConfig()
MODEL = ModelConfig(num_items=1)  # num_items comes from the data
DEFAULT = ParameterSource.DEFAULT


class DefaultCommandGroup(click.Group):
    """A group whose first argument may be data for the default command: ``s4rec-train DATA ...``.

    Its help is the default command's (usage, options with their defaults) followed by the command list, so
    that ``s4rec-train --help`` documents what ``s4rec-train DATA`` does.
    """

    default_command = "fit"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in (*HELP_OPTIONS, "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[fit] DATA [OPTIONS]")
        formatter.write_usage(ctx.command_path, "evaluate CHECKPOINT DATA [OPTIONS]", prefix="       ")
        formatter.write_usage(ctx.command_path, "tune DATA [OPTIONS]", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        default = self.commands[self.default_command]
        default_ctx = click.Context(
            default, info_name=ctx.info_name, help_option_names=ctx.help_option_names, show_default=True
        )
        options = [param for param in default.get_params(default_ctx) if isinstance(param, click.Option)]
        records = [param.get_help_record(default_ctx) for param in options]
        records += [param.get_help_record(ctx) for param in self.get_params(ctx) if param.name == "version"]
        with formatter.section(f"Options (of {self.default_command})"):
            formatter.write_dl([record for record in records if record is not None])
        self.format_commands(ctx, formatter)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": list(HELP_OPTIONS), "show_default": True})
@click.version_option(package_name="s4rec")
def cli() -> None:
    """Train and evaluate S4Rec sequential recommenders.

    \b
    s4rec-train DATA -o model.pt          train (same as `s4rec-train fit DATA -o model.pt`)
    s4rec-train evaluate model.pt DATA    evaluate a checkpoint on DATA (its own or a newer log)
    s4rec-train tune DATA                 search hyperparameters with Optuna (validation NDCG@20)

    DATA is a benchmark-format file (`user item item ...` per line, oldest first, optionally .gz), a
    CSV/TSV interaction log (optionally .gz) or a Parquet log with user, item and timestamp columns. The
    options below are training's; see `s4rec-train evaluate --help` for evaluation's. Several processes:
    `torchrun --nproc-per-node N -m s4rec_train DATA ...`.
    """


class TrainingProgressBar:
    """``train(on_progress=...)`` for a terminal: a click progress bar per epoch (steps, ETA, running loss)."""

    def __init__(self, file=None) -> None:
        self.file = file if file is not None else sys.stderr
        self.bar = None
        self.epoch = None
        self.loss_text, self.loss_read_at = "", -math.inf

    def __call__(self, progress) -> None:
        if progress.epoch != self.epoch:
            self.close()
            self.epoch = progress.epoch
            self.bar = click.progressbar(
                length=progress.steps, label=f"epoch {progress.epoch}/{progress.epochs}", file=self.file,
                show_pos=True, item_show_func=lambda _item: self.loss_text,
            )  # fmt: skip
            self.bar.__enter__()
        # The running loss is read from the training device at most once a second, not every step.
        if progress.elapsed - self.loss_read_at >= 1.0 or progress.step == progress.steps:
            self.loss_text, self.loss_read_at = f"loss {progress.loss:.4f}", progress.elapsed
        self.bar.update(progress.step - self.bar.pos)
        if progress.step >= progress.steps:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class ProgressLines:
    """``train(on_progress=...)`` for a log file, CI or nohup: a plain line every ``interval`` seconds of an
    epoch (step/steps, rates, running loss, the epoch's ETA); the epoch summary line follows each epoch."""

    def __init__(self, echo=None, interval: float = 30.0) -> None:
        self.echo = echo if echo is not None else (lambda line: click.echo(line, err=True))  # flushed: nohup
        self.interval = interval
        self.epoch, self.shown_at = None, 0.0

    def __call__(self, progress) -> None:
        if progress.epoch != self.epoch:
            self.epoch, self.shown_at = progress.epoch, 0.0
        if progress.elapsed - self.shown_at < self.interval:
            return
        self.shown_at = progress.elapsed
        rate = progress.step / progress.elapsed
        eta = (progress.steps - progress.step) / rate
        self.echo(
            f"epoch {progress.epoch}/{progress.epochs}  step {progress.step}/{progress.steps}  "
            f"{rate:.2f} steps/s  {progress.users / progress.elapsed:,.0f} users/s  loss {progress.loss:.4f}  "
            f"epoch ETA {format_duration(eta)}"
        )

    def close(self) -> None:
        pass


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_reporter(stream=None) -> TrainingProgressBar | ProgressLines:
    """A progress bar when ``stream`` (stderr by default) is a terminal, otherwise plain lines every 30 s."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return TrainingProgressBar(stream)
    return ProgressLines(lambda line: click.echo(line, file=stream))


def _load_data(data: Path, user_col: str, item_col: str, time_col: str, min_count: int):
    from .data import DataError, load_interactions

    try:
        return load_interactions(data, user_col=user_col, item_col=item_col, time_col=time_col, min_count=min_count)
    except DataError as e:
        raise click.BadParameter(e.for_command_line(), param_hint="DATA") from None


data_options = [
    click.option("--user-col", default="user", show_default=True, help="User column of a CSV/TSV log."),
    click.option("--item-col", default="item", show_default=True, help="Item column of a CSV/TSV log."),
    click.option("--time-col", default="timestamp", show_default=True, help="Timestamp column of a log."),
    click.option("--min-count", default=5, show_default=True, type=click.IntRange(1), help="k-core filter for logs."),
]


def with_data_options(f):
    for option in reversed(data_options):
        f = option(f)
    return f


# The split (fit, evaluate, tune) and a run's life cycle (fit): warm start, resume, tracking.
split_options = [
    click.option("--split", type=click.Choice(SPLITS), default=TRAIN.split,
                 help="loo: leave-one-out (each user's last item is test, the one before validation); time: a "
                 "global temporal split of a log with timestamps (the last --test-fraction of the interactions "
                 "in time are the test period, the --valid-fraction before it validation)."),
    click.option("--valid-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=TRAIN.valid_fraction, help="--split time: share of the interactions in the validation "
                 "period."),
    click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=TRAIN.test_fraction, help="--split time: share of the interactions in the test period."),
]  # fmt: skip
run_options = [
    click.option("--init-from", type=click.Path(path_type=Path), show_default="none",
                 help="Warm start from this checkpoint: its items keep their rows, new items get new ones, the "
                 "encoder and intent prototypes are carried over; its settings are used unless given here."),
    click.option("--new-item-init", type=click.Choice(NEW_ITEM_INITS), default=NEW_ITEM_INITS[0],
                 help="--init-from: rows of new items: mean of the old rows of the items next to them in the "
                 "training data (cooccur), the mean old row, or N(0, 0.02)."),
    click.option("--resume", is_flag=True,
                 help="Continue the interrupted run that writes OUTPUT from its last completed epoch (the state "
                 "saved beside it, OUTPUT.state); refused if the data or options differ."),
    click.option("--track", is_flag=True,
                 help="Log this run (settings, per-epoch losses and figures, final metrics, a copy of the "
                 "checkpoint) as TensorBoard files in a directory of its own under --track-dir (pip install "
                 "'.[track]')."),
    click.option("--track-dir", type=click.Path(path_type=Path), default="runs",
                 help="--track: where the runs' directories go (`tensorboard --logdir DIR` shows them)."),
]  # fmt: skip


def with_options(options):
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def given_values(values: dict) -> dict:
    """Those of ``values`` (parameter name -> value) set on the command line, not left at their default."""
    ctx = click.get_current_context()
    return {name: value for name, value in values.items() if ctx.get_parameter_source(name) != DEFAULT}


def _objective(flag: str, name: str, kind, text: str) -> tuple:
    return flag, name, kind, f"{text} [{getattr(OBJECTIVES, name)}]"


# S4Rec's objective flags: (flag, ObjectiveConfig field it sets, type, help ending in the field's default).
objective_options = [
    _objective("--cluster-weight", "cluster_weight", float, "alpha, weight of the online-clustering loss"),
    _objective("--contrastive-weight", "contrastive_weight", float, "beta1, weight of the contrastive loss"),
    _objective("--distill-weight", "distill_weight", float, "beta2, weight of the self-distillation loss"),
    _objective("--adversary-weight", "adversary_weight", float, "lambda, weight of the head/tail adversary"),
    _objective("--intents", "num_intents", click.IntRange(2), "K, number of intent prototypes"),
    _objective("--cluster-temperature", "cluster_temperature", float, "tau1 of the soft intent assignment"),
    _objective("--contrastive-temperature", "contrastive_temperature", float, "tau2 of the contrastive loss"),
    _objective("--distill-temperature", "distill_temperature", float, "tau3 of the self-distillation"),
    _objective("--sinkhorn-epsilon", "sinkhorn_epsilon", float, "entropy regularisation of Sinkhorn targets"),
    _objective("--cluster-target", "cluster_target", click.Choice(["original", "swapped"]),
               "which history's Sinkhorn targets supervise the views"),
    _objective("--mask-ratio", "mask_ratio", click.FloatRange(0, 1), "fraction of items the mask view hides"),
    _objective("--crop-ratio", "crop_ratio", click.FloatRange(0, 1), "fraction of items the crop view keeps"),
    _objective("--reorder-ratio", "reorder_ratio", click.FloatRange(0, 1), "fraction the reorder view shuffles"),
    _objective("--insert-ratio", "insert_ratio", click.FloatRange(0, 1), "fraction of items insert view adds"),
    _objective("--warmup", "warmup", click.FloatRange(0, 1),
               "fraction of training over which alpha, beta1, beta2 rise from 0"),
    _objective("--cooldown", "cooldown", click.FloatRange(0, 1),
               "fraction of training at which alpha, beta1, beta2 are back at 0 after the warm-up (0 = never)"),
    _objective("--side-vector", "side_vector", click.Choice(SIDE_VECTORS),
               "the user vector the auxiliary terms read: the last position's or the mean over the history"),
    _objective("--distill-students", "distill_students", click.Choice(STUDENTS),
               "whose views L_CKD pulls toward their intent's prototype: all users or the tail only"),
    _objective("--intent-from", "intent_from", click.Choice(INTENT_SOURCES),
               "a user's intent h(u): argmax of the soft assignment p or of the Sinkhorn target q"),
]  # fmt: skip
# Boolean ObjectiveConfig fields: (flag pair, field, help).
objective_switches = [
    ("--unit-prototypes/--free-prototypes", "unit_prototypes",
     "keep the prototypes on the unit sphere after every step (free: normalised in the forward pass only)"),
    ("--detach-teacher/--train-teacher", "detach_teacher",
     "the distillation teacher (the intent's prototype) takes no gradient from L_CKD"),
]  # fmt: skip
WEIGHT_FIELDS = ("cluster_weight", "contrastive_weight", "distill_weight", "adversary_weight")


def with_objective_options(f):
    for flag, name, kind, text in reversed(objective_options):
        description = text.rpartition(" [")[0]  # click states the default, as for the other options
        f = click.option(flag, name, type=kind, default=getattr(OBJECTIVES, name), help=f"S4Rec: {description}.")(f)
    for flag, name, text in reversed(objective_switches):
        f = click.option(flag, name, default=getattr(OBJECTIVES, name), help=f"S4Rec: {text}.")(f)
    f = click.option(
        "--adversary-ramp/--no-adversary-ramp", default=OBJECTIVES.adversary_ramp,
        help="S4Rec: ramp the gradient-reversal coefficient from 0 to 1 as DANN does.",
    )(f)  # fmt: skip
    return click.option(
        "--backbone", is_flag=True,
        help="Train the plain SASRec backbone: every auxiliary weight 0 (no S4Rec objective is computed).",
    )(f)  # fmt: skip


def objective_settings(backbone: bool, values: dict) -> dict:
    """ObjectiveConfig fields from the command line: only those given there (the rest keeps ObjectiveConfig's
    default, and --backbone can tell a weight the user gave from a default)."""
    ctx = click.get_current_context()
    given = {name: value for name, value in values.items() if ctx.get_parameter_source(name) != DEFAULT}
    if backbone:
        clash = sorted(name for name in given if name in WEIGHT_FIELDS and given[name] > 0)
        if clash:
            raise click.UsageError(
                f"--backbone sets every auxiliary weight to 0, but {clash} were given non-zero values. "
                "Drop --backbone to train S4Rec, or drop the weights."
            )
        given.update(dict.fromkeys(WEIGHT_FIELDS, 0.0))
    return given


@cli.command("fit")
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
    interactions = _load_data(data, user_col, item_col, time_col, min_count)
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


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON at ``path``, all or nothing."""
    from s4rec.files import atomic_file

    with atomic_file(path) as f:
        f.write(json.dumps(value, indent=2).encode())


@cli.command("evaluate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    show_default="none",
    help="Also write the metrics here (JSON).",
)
@click.option(
    "--device", type=click.Choice(DEVICES), default=TRAIN.device, help="auto: CUDA when torch sees a GPU, else CPU."
)
@with_data_options
@with_options(split_options)
def evaluate(checkpoint, data, json_path, device, user_col, item_col, time_col, min_count, split, valid_fraction,
             test_fraction):  # fmt: skip
    """Evaluate CHECKPOINT on DATA: full ranking, history excluded, overall/head/tail.

    DATA may be the data the checkpoint was trained on or a newer log: items the model does not know are left
    out of the histories (as the SDK ignores them) and, as targets, count as misses (their numbers are
    printed). --split time evaluates the last period of a log with timestamps.
    """
    import numpy as np

    from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
    from .data import DataError, require_both_groups
    from .evaluation import evaluate_targets, format_table
    from .splits import make_split, split_targets
    from .train import resolve_device, split_notes

    try:
        ckpt = load_checkpoint(checkpoint)
    except CheckpointError as e:
        raise click.BadParameter(str(e), param_hint="CHECKPOINT") from None
    interactions = _load_data(data, user_col, item_col, time_col, min_count)
    model = model_from_checkpoint(ckpt).to(resolve_device(device))
    index_of = {item: i + 1 for i, item in enumerate(ckpt["item_ids"])}
    mapping = np.array([0] + [index_of.get(item, 0) for item in interactions.item_ids], dtype=np.int64)
    unknown_items = int((mapping[1:] == 0).sum())
    if unknown_items == interactions.num_items:
        raise click.BadParameter(
            f"{interactions.source}: none of its {interactions.num_items:,} items is in the model's vocabulary "
            f"(e.g. {interactions.item_ids[0]!r} vs the model's {ckpt['item_ids'][0]!r}). Evaluate on data with "
            "the item ids the model was trained on (check --item-col).",
            param_hint="DATA",
        )
    try:
        chosen = make_split(interactions, model.config.max_len, split, valid_fraction, test_fraction)
        require_both_groups(chosen, interactions.source)
    except DataError as e:
        raise click.BadParameter(e.for_command_line(), param_hint="DATA") from None
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    for note in [*interactions.notes, *split_notes(chosen)]:
        click.echo(note, err=True)
    if unknown_items:
        click.echo(f"{unknown_items:,} of the {interactions.num_items:,} items of DATA are unknown to the model",
                   err=True)  # fmt: skip
    results = {}
    for name, what in (("valid", "validation"), ("test", "test")):
        targets = split_targets(chosen, name).remapped(mapping)
        started = time.perf_counter()
        click.echo(f"{what}: ranking all {model.config.num_items:,} items for {len(targets):,} users ...", err=True)
        results[name] = evaluate_targets(model, targets)
        targets_unknown, history_unknown = (
            results[name]["unknown"]["targets"],
            results[name]["unknown"]["history_items"],
        )
        click.echo(
            f"{what}: done in {time.perf_counter() - started:.1f} s"
            + (f"; {targets_unknown:,} targets unknown to the model (counted as misses)" if targets_unknown else "")
            + (f"; {history_unknown:,} unknown history items ignored" if history_unknown else ""),
            err=True,
        )
    click.echo(format_table(results))
    click.echo(METRICS_LEGEND)
    if json_path:
        write_json(json_path, results)


@cli.command("tune")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--study", type=click.Path(path_type=Path), default="s4rec-tune.db",
              help="The study's SQLite file: created, or continued when it exists (refused if it was made on "
              "other data or with other fixed settings).")  # fmt: skip
@click.option("--trials", default=20, type=click.IntRange(1), help="Finished trials the study should have.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), show_default="none",
              help="Stop starting trials after this many seconds.")  # fmt: skip
@click.option("--epochs", default=10, type=click.IntRange(1), help="Fixed: epochs per trial (an upper bound).")
@click.option("--patience", default=TRAIN.patience, type=click.IntRange(1), help="Fixed: early stopping.")
@click.option("--loss", type=click.Choice(LOSSES), default=TRAIN.loss, help="Fixed: the next-item loss.")
@click.option("--negatives", default=TRAIN.negatives, type=click.IntRange(1), help="Fixed: sampled negatives.")
@click.option("--max-len", default=MODEL.max_len, type=click.IntRange(1), help="Fixed: history window.")
@click.option("--lr-schedule", default=TRAIN.lr_schedule, type=click.Choice(LR_SCHEDULES), help="Fixed.")
@click.option("--backbone", is_flag=True, help="Tune the plain SASRec backbone (no S4Rec weights searched).")
@click.option("--seed", default=TRAIN.seed, help="Fixed: every trial's seed, and the sampler's.")
@click.option("--threads", type=click.IntRange(1), default=TRAIN.threads, show_default="torch's default",
              help="torch CPU threads.")  # fmt: skip
@click.option("--device", type=click.Choice(DEVICES), default=TRAIN.device, help="auto: CUDA when present.")
@with_data_options
@with_options(split_options)
def tune(data, study, trials, timeout, epochs, patience, loss, negatives, max_len, lr_schedule, backbone, seed,
         threads, device, user_col, item_col, time_col, min_count, split, valid_fraction, test_fraction):  # fmt: skip
    """Search S4Rec's hyperparameters on DATA with Optuna (validation NDCG@20; pip install '.[tune]').

    Searched: --lr, --dropout, --dim, --layers, --batch-size and S4Rec's weights and temperatures; the options
    here are fixed for the whole study. Bad trials are pruned by epoch; the study lives in --study (SQLite)
    and resumes when run again. Prints the exact s4rec-train command of the best configuration.
    """
    from .tune import TuneError, best_command, open_study, run_study

    interactions = _load_data(data, user_col, item_col, time_col, min_count)
    fixed = {"epochs": epochs, "patience": patience, "loss": loss, "negatives": negatives, "max_len": max_len,
             "lr_schedule": lr_schedule, "backbone": backbone, "seed": seed, "split": split,
             "valid_fraction": valid_fraction, "test_fraction": test_fraction, "min_count": min_count}  # fmt: skip
    settings = {"epochs": epochs, "patience": patience, "loss": loss, "negatives": negatives, "seed": seed,
                "lr_schedule": lr_schedule, "threads": threads, "device": device, "split": split,
                "valid_fraction": valid_fraction, "test_fraction": test_fraction}  # fmt: skip
    objectives = {name: 0.0 for name in WEIGHT_FIELDS} if backbone else {}
    try:
        opened = open_study(study, interactions, fixed, seed)
        click.echo(f"study {study}: up to {trials} trials of up to {epochs} epochs on {interactions.source}")
        run_study(interactions, opened, trials, {"max_len": max_len}, settings, objectives, backbone, click.echo,
                  timeout)  # fmt: skip
    except TuneError as e:
        raise click.UsageError(str(e)) from None
    try:
        best = opened.best_trial
    except ValueError:
        raise click.ClickException(f"{study}: no trial has finished yet; run the command again.") from None
    fixed_args = [
        "--epochs",
        str(epochs),
        "--patience",
        str(patience),
        "--loss",
        loss,
        "--negatives",
        str(negatives),
        "--max-len",
        str(max_len),
        "--lr-schedule",
        lr_schedule,
        "--seed",
        str(seed),
    ]
    if split != "loo":
        fixed_args += ["--split", split, "--valid-fraction", str(valid_fraction), "--test-fraction", str(test_fraction)]
    columns = {"min_count": min_count, "user_col": user_col, "item_col": item_col, "time_col": time_col}
    for name, value in given_values(columns).items():
        fixed_args += [f"--{name.replace('_', '-')}", str(value)]
    fixed_args += ["--backbone"] if backbone else []
    click.echo(f"best: trial {best.number}, valid NDCG@20 {best.value:.4f}")
    click.echo("train it with:")
    click.echo("  " + best_command(data, opened, fixed_args))


def main() -> None:
    """The ``s4rec-train`` entry point. Without torch, anything but --help and --version says which extra to
    install (one line, exit 1); torch itself is imported only by the command that runs."""
    args = sys.argv[1:]
    asks_for_help = any(arg in (*HELP_OPTIONS, "--version") for arg in args)
    if not asks_for_help and importlib.util.find_spec("torch") is None:
        click.echo(MISSING_TORCH, err=True)
        sys.exit(1)
    if not asks_for_help and importlib.util.find_spec("pyarrow") is None:
        click.echo(MISSING_PYARROW, err=True)
        sys.exit(1)
    if not asks_for_help:  # s4rec imports onnxruntime, which --help and --version do without
        from s4rec.files import exit_on_sigterm

        exit_on_sigterm()  # a SIGTERM removes the partial output; nothing appears under the output's name
        from .allocator import keep_freed_memory

        keep_freed_memory()  # large blocks reused, not mapped and unmapped every step (allocator.py: -30% time)
    cli()


if __name__ == "__main__":
    main()
