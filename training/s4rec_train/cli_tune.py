"""``s4rec-train tune DATA``: the command line of the Optuna search (:mod:`s4rec_train.tune`)."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_options import (
    MODEL,
    TRAIN,
    WEIGHT_FIELDS,
    given_values,
    load_data,
    split_options,
    with_data_options,
    with_options,
)
from .config import DEVICES, LOSSES, LR_SCHEDULES


@click.command("tune")
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

    interactions = load_data(data, user_col, item_col, time_col, min_count)
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
