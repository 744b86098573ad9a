"""SDK speed on Beauty test histories: single-user latency vs torch eager, batch throughput vs naive padding,
cold start and peak RSS of a fresh process, int8 vs fp32.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export \
        python benchmarks/sdk_latency.py --artifact ARTIFACT_DIR --checkpoint /tmp/beauty_backbone.pt

ARTIFACT_DIR is an export of CHECKPOINT with ``--quantize int8`` (benchmarks/export_beauty.py --output DIR
makes one). Histories are the users' own item ids, all but the last interaction (the test protocol's input).

* single: ``recommend(history, k=10)`` (seen items excluded) per user, 1 thread, p50/p99 over --single users,
  median of --rounds rounds (each round times the SDK then torch over the sample; the per-round SDK p50s are
  printed, a shared machine moves them by a few percent), and torch eager doing the same job in the same
  process (ids -> indices, trimmed history, encoder with the last position only, scores over all items, seen
  items excluded, top 10, back to ids);
* batch: ``recommend_batch(all histories, k=10)`` with --batch-threads threads, against the same session fed
  batches in input order padded to max_len (the naive way), same post-processing; best of --repeats;
* cold start: a fresh ``python -c`` that imports s4rec, loads the artifact and recommends once, --cold times.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

from s4rec import Recommender
from s4rec.artifact import EXCLUDE, INPUT, K_INPUT
from s4rec.results import recommendation_lists
from s4rec.windows import exclude_input, right_aligned


def reproduce_command() -> str:
    args = " ".join(shlex.quote(a) for a in sys.argv)
    path = os.environ.get("PYTHONPATH", "")
    return f"command (in {os.getcwd()}): flock /tmp/s4rec-cpu.lock env PYTHONPATH={path} python {args}"


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    a = np.asarray(samples_ns) / 1e6  # ms
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def time_each(fn, histories, warmup: int = 200) -> list[int]:
    for h in histories[:warmup]:
        fn(h)
    out = []
    for h in histories:
        start = time.perf_counter_ns()
        fn(h)
        out.append(time.perf_counter_ns() - start)
    return out


def torch_recommender(checkpoint: Path):
    """The same job as Recommender.recommend(k=10) in torch eager (1 thread), for the latency ratio."""
    import torch

    from s4rec_train.checkpoint import load_checkpoint, model_from_checkpoint

    torch.set_num_threads(1)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    index_of = {item: i + 1 for i, item in enumerate(ckpt["item_ids"])}
    ids = [None, *ckpt["item_ids"]]
    table = model.item_table.detach()
    max_len = model.config.max_len

    @torch.inference_mode()
    def recommend(history, k=10):
        indices = [index_of[x] for x in history if x in index_of]
        user = model(torch.tensor([indices[-max_len:]]), last_only=True)  # (1, d)
        scores = user @ table.T  # (1, N + 1)
        scores[0, 0] = float("-inf")
        scores[0, indices] = float("-inf")
        top = torch.topk(scores[0], k)
        return [(ids[i], s) for i, s in zip(top.indices.tolist(), top.values.tolist())]

    return recommend


def naive_padded_batch(rec: Recommender, histories, k: int = 10, batch_size: int = 256) -> list:
    """recommend_batch without length bucketing: input order, every batch padded to max_len (the same
    vectorised id mapping and result building as recommend_batch, so that the ratio measures the bucketing)."""
    known, counts, unknown_of = rec.vocabulary.map_histories(histories, "ignore")
    ends = np.cumsum(counts)
    lengths = np.minimum(counts, rec.max_len)
    results = []
    for start in range(0, len(counts), batch_size):
        chunk = np.arange(start, min(start + batch_size, len(counts)))
        window = right_aligned(known, ends[chunk], lengths[chunk], rec.max_len)
        banned = exclude_input(window, known, ends[chunk], counts[chunk], [], True)
        feed = {INPUT: window, EXCLUDE: banned, K_INPUT: np.array(k, dtype=np.int64)}
        scores, items = rec.session.run(["top_scores", "top_items"], feed)
        results.extend(recommendation_lists(rec.vocabulary.ids_array, scores, items))
    for u, unknown_items in unknown_of.items():
        results[u].unknown_items = unknown_items
    return results


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


COLD = """
import time
t0 = time.perf_counter()
import json
from s4rec import Recommender
t1 = time.perf_counter()
rec = Recommender.load({artifact!r}, variant={variant!r})
t2 = time.perf_counter()
rec.recommend({history!r}, k=10)
t3 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "total": t3 - t0, "rss_mb": peak / 1024}}))
"""


def cold_start(artifact: Path, variant: str, history: list, times: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "sdk"))
    runs = []
    for _ in range(times):
        code = COLD.format(artifact=str(artifact), variant=variant, history=history)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        run = json.loads(out.stdout)
        run["process"] = time.perf_counter() - start
        runs.append(run)
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


@click.command()
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), default=Path("/tmp/beauty_backbone.pt"))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--single", default=3000, show_default=True, help="Users timed one by one.")
@click.option("--batch-threads", default=2, show_default=True)
@click.option("--batch-size", default=256, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="Batch timings: the best of this many.")
@click.option(
    "--rounds",
    default=5,
    show_default=True,
    help="Single-user timings: this many rounds over the sample (SDK then torch each round); the median p50/p99.",
)
@click.option("--cold", default=7, show_default=True, help="Fresh processes for the cold start (median).")
@click.option("--json-out", type=click.Path(path_type=Path))
def main(artifact, checkpoint, data, single, batch_threads, batch_size, repeats, rounds, cold, json_out):
    from s4rec_train.data import read_sequences

    interactions = read_sequences(data)
    ids = interactions.item_ids
    histories = [[ids[i - 1] for i in seq[:-1]] for seq in interactions.sequences]
    rng = np.random.default_rng(0)
    sample = [histories[i] for i in rng.choice(len(histories), size=min(single, len(histories)), replace=False)]
    lengths = np.array([len(h) for h in histories])
    print(f"{len(histories)} test histories, mean length {lengths.mean():.1f}, median {np.median(lengths):.0f}")
    figures: dict = {}

    torch_rec = torch_recommender(checkpoint)
    variants = ["fp32", "int8"]
    for variant in variants:
        rec = Recommender.load(artifact, variant=variant, threads=1)
        agree = np.mean([rec.recommend(h, k=10).item_ids() == [i for i, _ in torch_rec(h)] for h in sample[:300]])
        sdk_rounds, eager_rounds = [], []
        for _ in range(rounds):  # same run, SDK and torch alternating, so that drift hits both
            sdk_rounds.append(percentiles(time_each(lambda h, rec=rec: rec.recommend(h, k=10), sample)))
            eager_rounds.append(percentiles(time_each(torch_rec, sample)))
        sdk = tuple(statistics.median(r[i] for r in sdk_rounds) for i in (0, 1))
        eager = tuple(statistics.median(r[i] for r in eager_rounds) for i in (0, 1))
        sdk_p50s = [r[0] for r in sdk_rounds]
        figures[f"single_{variant}"] = {"sdk_p50_ms": sdk[0], "sdk_p99_ms": sdk[1], "torch_p50_ms": eager[0],
                                        "torch_p99_ms": eager[1], "ratio_p50": sdk[0] / eager[0],
                                        "sdk_p50_ms_rounds": sdk_p50s, "rounds": rounds,
                                        "same_top10_as_torch": agree}  # fmt: skip
        print(
            f"single recommend(k=10), 1 thread, {variant}: p50 {sdk[0]:.3f} ms, p99 {sdk[1]:.3f} ms; "
            f"torch eager p50 {eager[0]:.3f} ms, p99 {eager[1]:.3f} ms; SDK/torch p50 {sdk[0] / eager[0]:.2f}x; "
            f"identical top 10 as torch for {agree:.1%} of 300 users "
            f"(median of {rounds} rounds; SDK p50 per round {', '.join(f'{x:.3f}' for x in sdk_p50s)} ms)"
        )

    for variant in variants:
        rec = Recommender.load(artifact, variant=variant, threads=batch_threads)
        bucketed = rec.recommend_batch(histories, k=10, batch_size=batch_size)
        padded = naive_padded_batch(rec, histories, batch_size=batch_size)
        same = np.mean([a.item_ids() == b.item_ids() for a, b in zip(bucketed, padded)])
        t_bucketed = best_of(lambda rec=rec: rec.recommend_batch(histories, k=10, batch_size=batch_size), repeats)
        t_padded = best_of(lambda rec=rec: naive_padded_batch(rec, histories, batch_size=batch_size), repeats)
        n = len(histories)
        figures[f"batch_{variant}"] = {"users_per_s": n / t_bucketed, "padded_users_per_s": n / t_padded,
                                       "ratio": t_padded / t_bucketed, "identical_lists": same}  # fmt: skip
        print(
            f"recommend_batch(k=10), {batch_threads} threads, {variant}: {n / t_bucketed:,.0f} users/s "
            f"({t_bucketed:.2f} s for {n}); naive padding to max_len {n / t_padded:,.0f} users/s; "
            f"{t_padded / t_bucketed:.2f}x; identical lists {same:.4f}"
        )

    # The alternative design, for the record: one call at a time, each on --batch-threads intra-op threads.
    rec = Recommender.load(artifact, threads=1)
    intra = Recommender(Recommender.make_session(rec.path, batch_threads), rec.metadata, rec.path, threads=1)
    t_intra = best_of(lambda: intra.recommend_batch(histories, k=10, batch_size=batch_size), repeats)
    figures["batch_fp32_intra_op_threads"] = len(histories) / t_intra
    print(
        f"  (alternative: buckets one at a time on {batch_threads} intra-op threads: "
        f"{len(histories) / t_intra:,.0f} users/s)"
    )

    for variant in variants:
        c = cold_start(artifact, variant, sample[0], cold)
        figures[f"cold_{variant}"] = c
        print(
            f"cold start {variant} (median of {cold}): import {c['import'] * 1e3:.0f} ms + "
            f"load {c['load'] * 1e3:.0f} ms + first recommend {c['first'] * 1e3:.1f} ms = "
            f"{c['total'] * 1e3:.0f} ms in-process; "
            f"{c['process'] * 1e3:.0f} ms for the whole process; peak RSS {c['rss_mb']:.1f} MB"
        )
    print(reproduce_command())
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
