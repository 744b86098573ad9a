"""The options and helpers the ``s4rec-train`` commands share: data columns, the split, a run's life cycle,
S4Rec's objective flags (one per ``ObjectiveConfig`` field, each showing the field's default), reading DATA,
writing JSON. Torch-free, as every module the command line imports before a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from .config import (
    INTENT_SOURCES,
    NEW_ITEM_INITS,
    SIDE_VECTORS,
    SPLITS,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
)

METRICS_LEGEND = (
    "HR@k: share of users whose held-out next item is among their top k of the whole catalogue (their history "
    "excluded); NDCG@k also rewards ranking it higher (1 at rank 1), MRR@k is 1/rank within the top k; Cov@k: "
    "share of the catalogue in at least one user's top k. valid: second-last item, test: last item (--split "
    "time: the first item of each period); head: the 20% of users with the longest histories, tail: the rest."
)
TRAIN, OBJECTIVES = TrainConfig(), ObjectiveConfig()
MODEL = ModelConfig(num_items=1)  # num_items comes from the data
DEFAULT = ParameterSource.DEFAULT


def load_data(data: Path, user_col: str, item_col: str, time_col: str, min_count: int):
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
    given = given_values(values)
    if backbone:
        clash = sorted(name for name in given if name in WEIGHT_FIELDS and given[name] > 0)
        if clash:
            raise click.UsageError(
                f"--backbone sets every auxiliary weight to 0, but {clash} were given non-zero values. "
                "Drop --backbone to train S4Rec, or drop the weights."
            )
        given.update(dict.fromkeys(WEIGHT_FIELDS, 0.0))
    return given


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON at ``path``, all or nothing."""
    from s4rec.files import atomic_file

    with atomic_file(path) as f:
        f.write(json.dumps(value, indent=2).encode())
