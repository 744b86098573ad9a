"""Training throughput on CPU: seconds per epoch, system-time share, and each epoch against the machine's limit.

    python benchmarks/train_throughput.py --data ../shared/data/beauty.txt --epochs 2

One run trains, each in a fresh process (so that threads, the allocator and the resource counters are its own):
the backbone and S4Rec (today's defaults), with the full softmax, the sampled softmax and BCE, on 1 and 2 torch
threads, with the allocator setting the training commands use (:mod:`s4rec_train.allocator`), and, as the same-run
baseline, the full-softmax runs on 1 thread with glibc's default allocator (``S4REC_MALLOC=default``), back to back.
``--compile`` adds the backbone's full-softmax step under ``torch.compile`` (compile time against the per-epoch
gain, and how many epochs it takes to pay back). Batching is training's ``auto`` (length-sorted ``tokens`` for the
backbone, random users for S4Rec, grouped by length on CPU by ``s4rec_train.buckets``); ``--batching random
--batch-size 512`` measures the paper's batches for both.

Printed per configuration: the median training seconds per epoch (validation excluded: it runs once, after the
last epoch), user and system CPU seconds of the whole process and the system share, minor page faults, peak RSS,
and the epoch as a multiple of the machine's limit: the epoch's multiply-adds (logits: positions x scored items x
d; encoder: per position 12 d^2 per block plus 2 t d of attention; backward counted as twice the forward; S4Rec's
two views as two more encoder passes) divided by the rates of GEMMs measured in the same
process on the same threads just before training (two shapes: the logits block's, (2048, d) x (d, items), and
the encoder's linear layers', (8192, d) x (d, 4d)). A regression shows as a larger multiple whatever the machine's
load; the load average before and after is printed too.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

LOSSES = ("softmax", "sampled", "bce")
ARMS = ("backbone", "s4rec")


def gemm_rate(rows: int, inner: int, columns: int, seconds: float = 1.0) -> float:
    """Multiply-adds per second of (rows, inner) @ (inner, columns) fp32 on this process's torch threads."""
    import torch

    a, b = torch.randn(rows, inner), torch.randn(inner, columns)
    torch.mm(a, b)  # warm-up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        count += 1
    return count * rows * inner * columns / (time.perf_counter() - started)


def epoch_macs(split, config, model_config: dict, num_items: int, s4rec: bool, loss: str) -> tuple[float, float]:
    """Multiply-adds of one training epoch (forward + backward ~ 3x forward), from one epoch's batches: (the
    encoder's, the logits')."""
    from s4rec_train.batching import batch_order, user_sequences
    from s4rec_train.buckets import groups

    d, layers = model_config["dim"], model_config["layers"]
    sequences = user_sequences(split)
    order = batch_order(sequences.length, config.batch_size, np.random.default_rng(config.seed), config.batching)
    scored = {"softmax": num_items, "sampled": config.negatives + config.in_batch_negatives, "bce": 2}[loss]
    encoder_total = logits_total = 0.0
    for rows in order:
        length = sequences.length[rows]
        parts = groups(length) if config.batching == "random" else None  # what s4rec_train.buckets runs
        shapes = [(len(p), int(length[p].max())) for p in parts] if parts else [(len(rows), int(length.max()))]
        encoder = sum(layers * (b * t * 12 * d * d + 2 * b * t * t * d) for b, t in shapes)
        logits = int(length.sum()) * scored * d
        encoder_total += 3 * encoder * (3 if s4rec else 1)
        logits_total += 3 * logits
    return encoder_total, logits_total


def child(spec: dict) -> None:
    import torch

    from s4rec_train.allocator import is_tuned, keep_freed_memory

    keep_freed_memory()  # a no-op under S4REC_MALLOC=default: the baseline
    torch.set_num_threads(spec["threads"])
    from s4rec_train.data import leave_one_out, read_sequences
    from s4rec_train.objectives import ObjectiveConfig
    from s4rec_train.train import TrainConfig, train

    data = read_sequences(spec["data"])
    model_config = {"dim": 64, "layers": 2, "max_len": 50}
    s4rec = spec["arm"] == "s4rec"
    objectives = ObjectiveConfig() if s4rec else ObjectiveConfig.backbone()
    from s4rec_train.batching import resolve_batching

    config = TrainConfig(
        epochs=spec["epochs"], validate_every=spec["epochs"], seed=0, threads=spec["threads"], device="cpu",
        loss=spec["loss"], batching=resolve_batching(spec["batching"], objectives), batch_size=spec["batch_size"],
    )  # fmt: skip
    split = leave_one_out(data, model_config["max_len"])
    encoder_macs, logits_macs = epoch_macs(split, config, model_config, data.num_items, s4rec, spec["loss"])
    # The machine's rate on the epoch's two kinds of product: the logits block (positions x d x items) and the
    # encoder's linear layers (positions x d x 4d), measured here, on this process's threads, before training.
    d = model_config["dim"]
    logits_rate, encoder_rate = gemm_rate(2048, d, data.num_items), gemm_rate(8192, d, 4 * d)
    if spec.get("compile"):
        import s4rec_train.train as training

        plain = training.TrainingStep
        training.TrainingStep = lambda *a, **k: torch.compile(plain(*a, **k), dynamic=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    checkpoint = train(data, model_config, config, log=lambda _: None, objectives=objectives)
    after = resource.getrusage(resource.RUSAGE_SELF)
    seconds = [h["seconds"] for h in checkpoint["training"]["history"]]
    print(
        json.dumps(
            {
                "epoch_seconds": seconds,
                "user": after.ru_utime - before.ru_utime,
                "system": after.ru_stime - before.ru_stime,
                "minor_faults": after.ru_minflt - before.ru_minflt,
                "peak_rss_mb": after.ru_maxrss / 1024,
                "encoder_macs": encoder_macs,
                "logits_macs": logits_macs,
                "logits_gemm_rate": logits_rate,
                "encoder_gemm_rate": encoder_rate,
                # Seconds the epoch would take if every multiply-add ran at the measured GEMM rates.
                "limit_seconds": encoder_macs / encoder_rate + logits_macs / logits_rate,
                "allocator_tuned": is_tuned(),
                "valid_ndcg20": checkpoint["metrics"]["valid"]["overall"]["NDCG@20"],
            }
        )
    )


def run(spec: dict, default_allocator: bool) -> dict:
    env = dict(os.environ)
    if default_allocator:
        env["S4REC_MALLOC"] = "default"
    else:
        env.pop("S4REC_MALLOC", None)
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"child {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def describe(name: str, r: dict) -> str:
    per_epoch = statistics.median(r["epoch_seconds"][1:] or r["epoch_seconds"])  # the first epoch warms up
    cpu = r["user"] + r["system"]
    limit = r["limit_seconds"]
    return (
        f"{name:44s}{per_epoch:9.2f}{r['user']:9.1f}{r['system']:8.1f}{r['system'] / cpu:8.1%}"
        f"{r['minor_faults'] / 1e6:9.2f}{r['peak_rss_mb']:9.0f}{limit:9.2f}{per_epoch / limit:8.1f}x"
    )


@click.command()
@click.option("--data", type=click.Path(exists=True), default="../shared/data/beauty.txt", show_default=True)
@click.option("--epochs", default=2, show_default=True, help="Epochs per run (the median of all but the first).")
@click.option("--threads", "thread_counts", default="1,2", show_default=True)
@click.option("--losses", default=",".join(LOSSES), show_default=True)
@click.option("--arms", default=",".join(ARMS), show_default=True)
@click.option("--batching", default="auto", show_default=True, help="auto: what training picks for each arm.")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--baseline/--no-baseline", default=True, help="Also the softmax runs with glibc's default allocator.")
@click.option("--compile", "with_compile", is_flag=True, help="Also the backbone softmax step under torch.compile.")
@click.option("--json-out", type=click.Path(path_type=Path))
@click.option("--child", "child_spec", hidden=True)
def cli(data, epochs, thread_counts, losses, arms, batching, batch_size, baseline, with_compile, json_out, child_spec):
    if child_spec:
        return child(json.loads(child_spec))
    print("command: python " + shlex.join(sys.argv), flush=True)
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} cores", flush=True)
    base = {"data": str(Path(data).resolve()), "epochs": epochs, "batching": batching, "batch_size": batch_size}
    header = (
        f"{'configuration':44s}{'s/epoch':>9s}{'user s':>9s}{'sys s':>8s}{'sys %':>8s}{'Mfaults':>9s}"
        f"{'peak MB':>9s}{'limit s':>9s}{'x limit':>9s}"
    )
    print(header, flush=True)
    results = []
    plan = []
    for threads in [int(t) for t in thread_counts.split(",")]:
        for loss in losses.split(","):
            for arm in arms.split(","):
                plan.append((dict(base, arm=arm, loss=loss, threads=threads), False))
                if baseline and loss == "softmax" and threads == 1:
                    plan.append((dict(base, arm=arm, loss=loss, threads=threads), True))
    if with_compile:
        if not any(s["arm"] == "backbone" and s["loss"] == "softmax" and s["threads"] == 1 for s, _ in plan):
            plan.append((dict(base, arm="backbone", loss="softmax", threads=1), False))
        plan.append((dict(base, arm="backbone", loss="softmax", threads=1, epochs=max(epochs, 3), compile=True), False))
    for spec, default_allocator in plan:
        r = run(spec, default_allocator)
        name = (
            f"{spec['arm']} {spec['loss']} {spec['threads']}t"
            + (" glibc default" if default_allocator else "")
            + (" torch.compile" if spec.get("compile") else "")
        )
        print(describe(name, r), flush=True)
        results.append({"spec": spec, "default_allocator": default_allocator, **r})
    print(f"load average after: {os.getloadavg()}")

    def median_epoch(arm, loss, threads, default=False, compiled=False):
        for r in results:
            s = r["spec"]
            if (s["arm"], s["loss"], s["threads"], r["default_allocator"], bool(s.get("compile"))) == (
                arm, loss, threads, default, compiled):  # fmt: skip
                return statistics.median(r["epoch_seconds"][1:] or r["epoch_seconds"])
        return None

    print()
    for arm in arms.split(","):
        tuned, default = median_epoch(arm, "softmax", 1), median_epoch(arm, "softmax", 1, default=True)
        if tuned and default:
            print(f"{arm} softmax 1 thread: epoch {tuned:.2f} s with the setting vs {default:.2f} s with glibc's "
                  f"default: {tuned / default:.2f}x")  # fmt: skip
    for loss in losses.split(","):
        for threads in [int(t) for t in thread_counts.split(",")]:
            b, s = median_epoch("backbone", loss, threads), median_epoch("s4rec", loss, threads)
            if b and s:
                print(f"S4Rec / backbone epoch time, {loss}, {threads} thread(s): {s / b:.2f}")
        one, two = median_epoch("backbone", loss, 1), median_epoch("backbone", loss, 2)
        if one and two:
            print(f"backbone {loss}: 2 threads vs 1: {two / one:.2f}x the epoch time")
        one, two = median_epoch("s4rec", loss, 1), median_epoch("s4rec", loss, 2)
        if one and two:
            print(f"s4rec {loss}: 2 threads vs 1: {two / one:.2f}x the epoch time")
    if with_compile:
        compiled = next(r for r in results if r["spec"].get("compile"))
        plain = median_epoch("backbone", "softmax", 1)
        steady = statistics.median(compiled["epoch_seconds"][1:])
        first_extra = compiled["epoch_seconds"][0] - steady
        gain = plain - steady
        print(
            f"torch.compile (backbone softmax, 1 thread): first epoch +{first_extra:.1f} s (compilation), then "
            f"{steady:.2f} s/epoch vs {plain:.2f} s plain: {gain:+.2f} s/epoch; over a 20-epoch run "
            f"{20 * gain - first_extra:+.1f} s " + ("(pays back)" if 20 * gain > first_extra else "(does not pay back)")
        )
    if json_out:
        json_out.write_text(json.dumps({"command": "python " + shlex.join(sys.argv), "runs": results}, indent=1))


if __name__ == "__main__":
    cli()
