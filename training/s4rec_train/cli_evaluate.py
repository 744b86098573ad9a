"""``s4rec-train evaluate CHECKPOINT DATA``: a checkpoint's figures on its own data or a newer log."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .cli_options import METRICS_LEGEND, TRAIN, load_data, split_options, with_data_options, with_options, write_json
from .config import DEVICES


@click.command("evaluate")
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
    interactions = load_data(data, user_col, item_col, time_col, min_count)
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
