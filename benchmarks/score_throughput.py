"""s4rec-score over many synthetic histories vs recommend_batch in memory: throughput ratio and peak RSS.

    PYTHONPATH=sdk:training:export python benchmarks/score_throughput.py ARTIFACT \\
        --data /work/shared/data/beauty.txt --users 1000000 --threads 2

Histories are synthetic but Beauty-like: each length is drawn from the benchmark file's user-sequence lengths
and each item from its item popularity (ids known to the artifact), seeded. They are written once as JSONL
(also as benchmark text / a CSV log with --formats). Then, each in its own process so that its peak RSS is
its own (``wait4``):

* ``s4rec-score ARTIFACT --input histories.jsonl --output recs.jsonl`` end to end (read, score, write);
* the in-memory baseline: the same histories parsed into lists first (not timed), then
  ``Recommender.recommend_batch`` over slices of ``--slice`` histories with the same k, threads and batch
  size, the results dropped after each slice (all 1M results at once would not fit in memory).

Prints users/s of both, the ratio (target >= 0.80) and the scoring process's peak RSS (target <= 400 MB),
plus the exact command line. ``--rounds N`` interleaves N baseline / s4rec-score runs and prints medians:
on a shared machine single runs vary by up to 2x.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("sdk", "training", "export"))}

BASELINE = """
import json, sys, time
from s4rec import Recommender
path, artifact, k, threads, batch_size, slice_size = sys.argv[1:7]
k, threads, batch_size, slice_size = int(k), int(threads), int(batch_size), int(slice_size)
histories = [json.loads(line)["history"] for line in open(path)]
recommender = Recommender.load(artifact, threads=threads)
recommender.recommend_batch(histories[:2000], k=k, batch_size=batch_size)  # warm-up
start = time.perf_counter()
for i in range(0, len(histories), slice_size):
    recommender.recommend_batch(histories[i : i + slice_size], k=k, batch_size=batch_size)
print(json.dumps({"seconds": time.perf_counter() - start, "users": len(histories)}))
"""


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """Run a command; return wall seconds, its peak RSS in MB (ru_maxrss of that child alone), stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"command failed with exit code {process.returncode}: {shlex.join(command)}")
    return seconds, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def make_histories(data: Path, artifact: Path, users: int, seed: int, workdir: Path, formats: list[str]) -> dict:
    from s4rec import Recommender

    known = set(Recommender.load(artifact).metadata.item_ids)
    lengths, counts = [], Counter()
    with open(data) as f:
        for line in f:
            tokens = line.split()[1:]
            lengths.append(len(tokens))
            counts.update(int(t) if t.isdigit() else t for t in tokens)
    items = [item for item in counts if item in known]
    if not items:
        raise SystemExit(f"{data}: none of its items is in {artifact}'s vocabulary. Pass the data it was trained on.")
    weights = np.array([counts[i] for i in items], dtype=np.float64)
    rng = np.random.default_rng(seed)
    drawn_lengths = rng.choice(np.array(lengths), size=users)
    drawn_items = rng.choice(len(items), size=int(drawn_lengths.sum()), p=weights / weights.sum())
    ids = np.array(items, dtype=object)
    paths = {}
    ends = np.cumsum(drawn_lengths)
    starts = ends - drawn_lengths
    names = {"jsonl": "histories.jsonl", "text": "histories.txt", "log": "histories.csv"}
    files = {fmt: open(workdir / names[fmt], "w") for fmt in formats}
    if "log" in files:
        files["log"].write("user,item,timestamp\n")
    for user, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        history = ids[drawn_items[a:b]].tolist()
        if "jsonl" in files:
            files["jsonl"].write(json.dumps({"user": user, "history": history}) + "\n")
        if "text" in files:
            files["text"].write(f"{user} {' '.join(map(str, history))}\n")
        if "log" in files:
            files["log"].write("".join(f"{user},{item},{t}\n" for t, item in enumerate(history)))
    for fmt, f in files.items():
        f.close()
        paths[fmt] = Path(f.name)
    return {"paths": paths, "mean_length": float(drawn_lengths.mean()), "events": int(drawn_lengths.sum())}


@click.command()
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data", type=click.Path(exists=True, path_type=Path), default=Path("/work/shared/data/beauty.txt"),
    show_default=True, help="Benchmark-format file the lengths and item popularity are drawn from.",
)  # fmt: skip
@click.option("--users", default=1_000_000, show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--slice", "slice_size", default=100_000, show_default=True, help="Baseline: histories per call.")
@click.option("--formats", default="jsonl", show_default=True, help="Comma-separated: jsonl,text,log.")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("/tmp/s4rec-score-bench"), show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--score-args", default="", help="Extra s4rec-score options, e.g. '--no-read-ahead'.")
@click.option("--rounds", default=1, show_default=True, help="Interleaved baseline / s4rec-score rounds.")
def main(artifact, data, users, k, threads, batch_size, slice_size, formats, workdir, seed, score_args, rounds):
    formats = [f.strip() for f in formats.split(",") if f.strip()]
    workdir.mkdir(parents=True, exist_ok=True)
    made = make_histories(data, artifact, users, seed, workdir, formats)
    paths = made["paths"]
    click.echo(f"{users:,} synthetic histories, mean length {made['mean_length']:.2f} (lengths and item popularity "
               f"drawn from {data.name}), k={k}, threads={threads}, batch size {batch_size}")  # fmt: skip

    baseline_input = paths.get("jsonl")
    if baseline_input is None:
        raise SystemExit("--formats must include jsonl (the in-memory baseline reads it).")
    baseline_command = [sys.executable, "-c", BASELINE, str(baseline_input), str(artifact), str(k), str(threads),
                        str(batch_size), str(slice_size)]  # fmt: skip
    baseline_rates, rates = [], {fmt: [] for fmt in formats}
    for round_ in range(1, rounds + 1):  # interleaved, so that a slow spell of a shared machine hits both sides
        _, baseline_rss, out = run_measured(baseline_command)
        baseline = json.loads(out)
        baseline_rates.append(baseline["users"] / baseline["seconds"])
        click.echo(f"[{round_}/{rounds}] recommend_batch in memory: {baseline_rates[-1]:,.0f} users/s "
                   f"({baseline['seconds']:.1f}s, slices of {slice_size:,}; its process peaked at "
                   f"{baseline_rss:,.0f} MB holding all histories)")  # fmt: skip
        for fmt in formats:
            output = workdir / f"recs.{fmt}.jsonl"
            command = [sys.executable, "-m", "s4rec.cli", str(artifact), "--input", str(paths[fmt]), "--output",
                       str(output), "--k", str(k), "--threads", str(threads), "--batch-size", str(batch_size),
                       "--force", "--quiet", *shlex.split(score_args)]  # fmt: skip
            seconds, rss, _ = run_measured(command)
            rates[fmt].append(users / seconds)
            with open(output) as f:
                written = sum(1 for _ in f)
            if written != users:
                raise SystemExit(f"s4rec-score wrote {written} users, expected {users}.")
            label = f"{fmt} {score_args}".strip()
            click.echo(f"[{round_}/{rounds}] s4rec-score {label}: {rates[fmt][-1]:,.0f} users/s ({seconds:.1f}s wall "
                       f"incl. start-up and artifact load), ratio {rates[fmt][-1] / baseline_rates[-1]:.2f} to this "
                       f"round's baseline, peak RSS {rss:,.0f} MB (target <= 400)")  # fmt: skip
    baseline_median = float(np.median(baseline_rates))
    click.echo(f"median recommend_batch in memory: {baseline_median:,.0f} users/s")
    for fmt in formats:
        median = float(np.median(rates[fmt]))
        click.echo(f"median s4rec-score {fmt}: {median:,.0f} users/s, ratio of medians {median / baseline_median:.2f} "
                   f"(target >= 0.80)")  # fmt: skip
    click.echo("command: PYTHONPATH=sdk:training:export " + shlex.join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
