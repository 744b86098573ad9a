"""Hyperparameter search (``s4rec-train tune DATA``) with Optuna: which settings give the best validation
NDCG@20, with bad trials stopped early, in a study that survives interruptions.

* **Search space** (:func:`suggest`): learning rate (log 3e-4..1e-2), dropout (0.1..0.6 by 0.1), embedding size
  (32, 64, 128), transformer blocks (1..3), batch size (128, 256, 512) and, for S4Rec, the weights of the
  clustering (log 1e-3..1e-1), contrastive (log 1e-2..1) and distillation (log 1e-3..1) terms and the
  contrastive and distillation temperatures (log 0.05..1). Everything else is fixed for the study (the
  ``tune`` command's options: epochs, loss, negatives, ...).
* **Objective**: the run's best validation NDCG@20, the number training selects its checkpoint by. The test
  split is never evaluated during a study (``train(final_test=False)``).
* **Pruning**: each epoch's validation NDCG@20 is reported; Optuna's median pruner stops a trial whose figure
  is below the median of the earlier trials at the same epoch (after 2 finished trials and from its second
  epoch on).
* **Sampler**: TPE, seeded with ``--seed`` (same seed, same sequence of trials on an idle study).
* **Storage**: a local SQLite file (``--study``). Running the command again continues the study up to
  ``--trials`` finished trials; a trial that was running when its process died is marked failed once its
  heartbeat is stale and retried once. The file records the data's SHA-256 and the fixed settings; a study of
  other data or other fixed settings is refused (what differs is named).

At the end :func:`best_command` gives the exact ``s4rec-train`` command that trains the best configuration
(the same fixed settings and seed). Optuna is the ``[tune]`` extra.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

from .config import TrainConfig

__all__ = ["FLAGS", "TuneError", "best_command", "open_study", "run_study", "suggest"]

MISSING = "s4rec-train tune needs Optuna: pip install '/path/to/s4rec[tune]' (or pip install optuna)"
STUDY_NAME = "s4rec"
SEARCH_SPACE_VERSION = 1  # recorded in the study; bump when suggest() changes
# the searched settings and their command-line flags, in the order the best command lists them
FLAGS = {
    "lr": "--lr", "dropout": "--dropout", "dim": "--dim", "layers": "--layers", "batch_size": "--batch-size",
    "cluster_weight": "--cluster-weight", "contrastive_weight": "--contrastive-weight",
    "distill_weight": "--distill-weight", "contrastive_temperature": "--contrastive-temperature",
    "distill_temperature": "--distill-temperature",
}  # fmt: skip


class TuneError(ValueError):
    """A study that cannot be used with this data or these settings, with what to do."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise TuneError(MISSING) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command prints one line per trial itself
    return optuna


def suggest(trial, backbone: bool) -> dict:
    """One trial's settings: ``{setting: value}`` for :data:`FLAGS`' names (S4Rec's only without ``backbone``)."""
    values = {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "dropout": trial.suggest_int("dropout_tenths", 1, 6) / 10,  # 0.1..0.6 as exact decimals (0.3, not 0.30..04)
        "dim": trial.suggest_categorical("dim", [32, 64, 128]),
        "layers": trial.suggest_int("layers", 1, 3),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
    }
    if not backbone:
        values.update(
            cluster_weight=trial.suggest_float("cluster_weight", 1e-3, 1e-1, log=True),
            contrastive_weight=trial.suggest_float("contrastive_weight", 1e-2, 1.0, log=True),
            distill_weight=trial.suggest_float("distill_weight", 1e-3, 1.0, log=True),
            contrastive_temperature=trial.suggest_float("contrastive_temperature", 0.05, 1.0, log=True),
            distill_temperature=trial.suggest_float("distill_temperature", 0.05, 1.0, log=True),
        )
    trial.set_user_attr("settings", values)  # what best_command prints
    return values


def _split(values: dict) -> tuple[dict, dict, dict]:
    model = {k: values[k] for k in ("dropout", "dim", "layers") if k in values}
    train = {k: values[k] for k in ("lr", "batch_size") if k in values}
    objectives = {k: v for k, v in values.items() if k not in model and k not in train}
    return model, train, objectives


def open_study(path: str | Path, data, fixed: dict, seed: int):
    """The study in the SQLite file ``path`` (created if missing), checked against ``data`` and ``fixed``."""
    optuna = _optuna()
    from optuna import storages

    path = Path(path)
    # a trial whose process died (no heartbeat for 90 s) is marked failed and retried once; Optuna 4.9 renamed
    # the callback
    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    else:
        retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = storages.RDBStorage(f"sqlite:///{path.resolve()}", heartbeat_interval=30, grace_period=90, **retry)
    identity = {"data_sha256": data.content_sha256(), "data_source": str(data.source), "fixed": fixed,
                "search_space_version": SEARCH_SPACE_VERSION}  # fmt: skip
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="maximize", sampler=sampler, pruner=pruner,
        load_if_exists=True,
    )  # fmt: skip
    recorded = study.user_attrs
    if not recorded:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        return study
    if recorded.get("data_sha256") != identity["data_sha256"]:
        raise TuneError(
            f"{path}: this study was made on other data ({recorded.get('data_source')}, sha256 "
            f"{str(recorded.get('data_sha256'))[:12]}...), not {data.source} ({identity['data_sha256'][:12]}...): "
            "its trials would not compare. Use another --study file for this data."
        )
    from .resume import differences

    changed = differences(recorded.get("fixed", {}), fixed)
    if recorded.get("search_space_version") != SEARCH_SPACE_VERSION:
        changed.append(f"search space version {recorded.get('search_space_version')} -> {SEARCH_SPACE_VERSION}")
    if changed:
        raise TuneError(
            f"{path}: this study's fixed settings differ from this command's: {'; '.join(changed)}. Run with its "
            "settings, or use another --study file."
        )
    return study


def run_study(
    data, study, trials: int, model: dict, settings: dict, objectives: dict, backbone: bool,
    log: Callable[[str], None] = print, timeout: float | None = None,
) -> None:  # fmt: skip
    """Run trials until the study has ``trials`` finished (complete or pruned) ones (or ``timeout`` seconds)."""
    optuna = _optuna()
    from .train import train

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done:
        log(f"study: {done} finished trials already (best valid NDCG@20 {_best_value(study)})")
    remaining = trials - done
    if remaining <= 0:
        return

    def objective(trial) -> float:
        values = suggest(trial, backbone)
        model_part, train_part, objective_part = _split(values)
        config = TrainConfig(**{**settings, **train_part})
        started = time.perf_counter()
        epochs = []

        def report(record: dict) -> None:
            if "valid" not in record:
                return
            epochs.append(record["epoch"])
            trial.report(record["valid"]["NDCG@20"], record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        shown = " ".join(f"{name} {_format(value)}" for name, value in values.items())
        try:
            checkpoint = train(
                data, {**model, **model_part}, config, None, log=lambda _: None,
                objectives={**objectives, **objective_part}, on_epoch=report, final_test=False,
            )  # fmt: skip
        except optuna.TrialPruned:
            seconds = time.perf_counter() - started
            log(f"trial {trial.number}: {shown} -> pruned after epoch {epochs[-1]} ({seconds:.0f} s)")
            raise
        value = checkpoint["metrics"]["valid"]["overall"]["NDCG@20"]
        best_epoch = checkpoint["metrics"]["best_epoch"]
        log(
            f"trial {trial.number}: {shown} -> valid NDCG@20 {value:.4f} (epoch {best_epoch}, "
            f"{time.perf_counter() - started:.0f} s)"
        )
        return value

    study.optimize(objective, n_trials=remaining, timeout=timeout, gc_after_trial=True)


def _best_value(study) -> str:
    try:
        return f"{study.best_value:.4f}"
    except ValueError:  # no complete trial yet
        return "none yet"


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_command(data_path: str | Path, study, fixed_args: list[str], output: str = "model.pt") -> str:
    """The ``s4rec-train`` command that trains the study's best trial (floats exactly as the trial had them)."""
    best = study.best_trial.user_attrs["settings"]
    args = ["s4rec-train", str(data_path), "-o", output, *fixed_args]
    for name, flag in FLAGS.items():
        if name in best:
            args += [flag, repr(best[name]) if isinstance(best[name], float) else str(best[name])]
    return " ".join(args)
