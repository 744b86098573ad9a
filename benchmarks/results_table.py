"""Render the JSON files written by the benchmarks as the Markdown tables of benchmarks/RESULTS.md.

    python benchmarks/results_table.py beauty_s4rec.json runs/backbone_bucket.json

Reads ``--json-out`` files of ``train_s4rec.py`` (one or more runs each), of ``train_backbone.py`` (one
backbone run) and ``s4rec-train --metrics-json`` files (one run; the seed from the name: ``..._s2.json``), so
the tables are copied from measurements, never typed in. Prints one row per (arm, group)
with test HR@5/HR@20/NDCG@5/NDCG@20 (mean ± std over seeds when there are several), then one row per arm with
seconds per training epoch (median over epochs, robust to other work on a shared machine; mean over seeds),
best epochs, intents used of K and the spread of the head share across intents.

    python benchmarks/results_table.py --pool --metrics HR@10,HR@20,NDCG@5,NDCG@20 bce_beauty_s0.json bce_beauty_s1.json

pools each arm's runs across the files (one seed per file, the same configuration: the caller's choice) into
one mean ± std row; ``--metrics`` picks the columns.

    python benchmarks/results_table.py --curves benchmarks/results/tuning/tune_tokens_*.json

prints instead, per epoch, each run's mean next-item loss (L_SR) and validation NDCG@20: the curves METHOD.md
section 7 asks to compare with the backbone's, and the tuning tables of RESULTS.md.

    python benchmarks/results_table.py --base bce_b_s0_sr.json --base bce_b_s1_sr.json --base bce_b_s2_sr.json \
        bce_b_s0_cool_nockd.json bce_b_s1_cool_nockd.json bce_b_s2_cool_nockd.json

compares each run with the ``--base`` run of the same seed (a paired comparison: the seed fixes the split's
initialisation and batch order for both): per seed the relative difference of NDCG@20 (test and validation;
overall, head, tail), their mean ± std, the paired t statistic and an exact sign-flip p-value (all 2^n sign
patterns of the n differences; with 3 seeds the smallest possible p is 0.25: three seeds cannot make a gain
significant, whatever its size).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np

METRICS = ("HR@5", "HR@20", "NDCG@5", "NDCG@20")


def load_runs(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    if "runs" in data:
        return [dict(r, source=path.name) for r in data["runs"]]
    if "complete" in data:  # s4rec-train --metrics-json: one run; its seed from the file name (..._s2.json)
        match = re.search(r"_s(\d+)(?:_|\.json$)", path.name)
        if match is None:
            raise click.UsageError(f"{path}: an s4rec-train metrics file needs its seed in its name (_s<N>.json)")
        return [{"arm": "s4rec-train", "seed": int(match.group(1)), "test": data["test"], "valid": data["valid"],
                 "best_epoch": data["best_epoch"], "epoch_seconds": [float("nan")], "intents": data.get("intents"),
                 "source": path.name}]  # fmt: skip
    # train_backbone.py: a single backbone run without validation figures.
    return [
        {"arm": "backbone", "seed": 0, "test": data["test"], "valid": None, "best_epoch": data["best_epoch"],
         "epoch_seconds": data["epoch_seconds"], "intents": None, "source": path.name}
    ]  # fmt: skip


def cell(values: list[float]) -> str:
    """Mean ± population standard deviation (half the difference for two seeds)."""
    values = np.asarray(values)
    return f"{values.mean():.4f} ± {values.std():.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def curves(runs: list[dict]) -> None:
    labels = [f"{r['source'].removesuffix('.json')} {r['arm']} s{r['seed']}" for r in runs]
    print("| epoch | " + " | ".join(f"{label} L_SR / valid NDCG@20" for label in labels) + " |")
    print("|---|" + "---|" * len(runs))
    for epoch in range(max(len(r.get("history") or ()) for r in runs)):
        cells = []
        for r in runs:
            history = r.get("history") or ()
            if epoch < len(history):
                h = history[epoch]
                cells.append(f"{h['loss']:.4f} / {h['valid']['NDCG@20']:.4f}")
            else:
                cells.append("-")
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--curves", "show_curves", is_flag=True, help="Per-epoch L_SR and validation NDCG@20 of each run.")
@click.option("--pool", is_flag=True, help="One row per arm over all the files (their seeds), not per file.")
@click.option("--metrics", default=",".join(METRICS), show_default=True, help="Comma-separated test metrics.")
@click.option(
    "--base",
    "bases",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Paired comparison: the baseline runs' files (one per seed); PATHS are compared with them.",
)
def main(paths, show_curves, pool, metrics, bases):
    runs = [run for path in paths for run in load_runs(path)]
    if bases:
        paired([run for path in bases for run in load_runs(path)], runs)
        return
    if show_curves:
        curves([r for r in runs if r.get("history")])
        return
    metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if pool:
        sources = {}
        for r in runs:
            sources.setdefault(r["arm"], []).append(r["source"])
        for r in runs:
            r["source"] = ", ".join(dict.fromkeys(sources[r["arm"]]))
    arms = list(dict.fromkeys((r["arm"], r["source"]) for r in runs))
    print("| arm | seeds | group | " + " | ".join(metrics) + " | valid NDCG@20 |")
    print("|---|---|---|" + "---|" * (len(metrics) + 1))
    for arm, source in arms:
        group_runs = [r for r in runs if r["arm"] == arm and r["source"] == source]
        seeds = ",".join(str(r["seed"]) for r in group_runs)
        for group in ("overall", "head", "tail"):
            cells = [cell([r["test"][group][m] for r in group_runs]) for m in metrics]
            valid = [r["valid"][group]["NDCG@20"] for r in group_runs if r["valid"]]
            cells.append(cell(valid) if valid else "-")
            print(f"| {arm} | {seeds} | {group} | " + " | ".join(cells) + " |")
    print()
    print("| arm | source | s/epoch (median) | best epoch | intents used | head share std (size-weighted) |")
    print("|---|---|---|---|---|---|")
    for arm, source in arms:
        group_runs = [r for r in runs if r["arm"] == arm and r["source"] == source]
        seconds, best, used, spread = arm_summary(group_runs)
        print(f"| {arm} | {source} | {seconds:.1f} | {best} | {used} | {spread} |")


def sign_flip_p(differences) -> float:
    """Two-sided exact sign-flip p-value of the mean of ``differences`` (paired, symmetric under no effect)."""
    d = np.asarray(differences, dtype=float)
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * len(d))).reshape(len(d), -1).T
    return float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12))


def paired(base_runs: list[dict], runs: list[dict]) -> None:
    """Each run against the base run of its seed: relative NDCG@20 differences, mean ± std, t, sign-flip p."""
    base = {r["seed"]: r for r in base_runs}
    missing = sorted({r["seed"] for r in runs} - set(base))
    if missing:
        raise click.UsageError(f"no --base run for seed(s) {missing}: a paired comparison needs one per seed")
    print("| split | group | per seed (seed: run vs base) | mean ± std | t (paired) | sign-flip p |")
    print("|---|---|---|---|---|---|")
    for split in ("test", "valid"):
        for group in ("overall", "head", "tail"):
            rows = [(r["seed"], r[split][group]["NDCG@20"], base[r["seed"]][split][group]["NDCG@20"]) for r in runs
                    if r[split] and base[r["seed"]][split]]  # fmt: skip
            if not rows:
                continue
            gains = np.array([value / reference - 1 for _, value, reference in rows])
            per_seed = ", ".join(f"{seed}: {v:.4f} vs {b:.4f} ({v / b - 1:+.1%})" for seed, v, b in rows)
            if len(gains) > 1:  # one seed has no spread and no t: say so rather than print nan
                spread = gains.std(ddof=1)
                t = f"{gains.mean() / (spread / np.sqrt(len(gains))):.2f}" if spread > 0 else "-"
                mean = f"{gains.mean():+.1%} ± {spread:.1%}"
            else:
                t, mean = "-", f"{gains.mean():+.1%} (one seed)"
            print(f"| {split} | {group} | {per_seed} | {mean} | {t} | {sign_flip_p(gains):.3f} |")
    print("\n(± is the sample std over seeds; p: all 2^n sign patterns of the n per-seed differences)")


def arm_summary(runs: list[dict]) -> tuple[float, str, str, str]:
    """Seconds per epoch (median over epochs, mean over runs), best epochs, intents used, head-share spread."""
    seconds = float(np.mean([np.median(r["epoch_seconds"]) for r in runs]))
    best = ",".join(str(r["best_epoch"]) for r in runs)
    intents = [r.get("intents") for r in runs]
    if not all(intents):
        return seconds, best, "-", "-"
    used = ",".join(f"{i['intents_used']}/{i['num_intents']}" for i in intents)
    spread = ",".join(f"{i['head_share_std']:.3f} ({i['head_share_std_weighted']:.3f})" for i in intents)
    return seconds, best, used, spread


if __name__ == "__main__":
    main()
