"""Large catalogues (10^5 and 10^6 items): artifact size, load time and RSS, single-user latency (exact float32,
exact int8, ANN), recall, batch and s4rec-score throughput, each against numpy exhaustive scoring in the same run.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export:benchmarks python benchmarks/large_catalogue.py \\
        --base /tmp/beauty.pt --data ../shared/data/beauty.txt --workdir /tmp/large_bench

``--base`` is a trained checkpoint (3 epochs of Beauty: ``s4rec-train ../shared/data/beauty.txt -o
/tmp/beauty.pt --backbone --epochs 3 --threads 1``); the large tables are grown from it
(benchmarks/large_checkpoint.py), so the user vectors are a trained model's (its test histories). The checkpoints
and artifacts are kept in ``--workdir`` and reused by the next run (the 10^6 export, ANN index included, takes
several minutes here); ``--fresh`` rebuilds them.

Single-user figures: ``recommend(history, k=10)`` (seen items excluded), 1 thread, p50/p99 per round, rounds
interleaved (each round times every method over the same users), the median of rounds; the baseline is numpy
doing the exact job for the same user vector: ``table @ user``, the seen items set to -inf, ``argpartition`` for
the top 10 (what an application would write without the SDK). Batch: ``rank_batch`` on 2 threads; its baseline
numpy ``users @ table.T`` in slices + argpartition. RSS: a fresh process per variant (VmRSS after the load and
after 50 recommendations, VmHWM).

Limits, measured in the same run so that figures from a busy and an idle machine compare: a fixed reference
workload (a 512 x 512 x 512 float32 matmul on 1 thread: GFLOP/s), the table-read bandwidth (numpy's BLAS
``table @ user`` on the in-memory float32 table, 1 thread: GB/s; a single exact query must read the table
once, so table bytes / bandwidth is its floor) and a blocked GEMM on the batch's shapes (``users @ table.T``
in blocks of 32 users on 2 threads, scores only: users/s). Every result is printed with its fraction of its
limit: single exact p50 against the read floor of its table (float32 or int8 bytes), batch users/s against the
GEMM's, ANN p50 against the exhaustive numpy query, ``s4rec-score`` against the in-memory ``rank_batch`` of
the same recommender (``--score-rounds`` pairs alternated on one freshly loaded recommender, medians: one pair
of single runs swung from 0.6x to 1.1x on the loaded machine), and the load average before and after each size.
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

# numpy's BLAS on one thread, as ONNX Runtime's calls: the single-user baseline is one core, and the batch
# baseline runs two Python threads (numpy releases the GIL in matmul), as rank_batch runs two buckets at once.
# (OpenBLAS's own threads spin-wait, which on a busy 2-core machine made a 20k-item GEMV take 24 ms.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402

from s4rec import Recommender
from s4rec.batch import score_file
from s4rec.recall import recall_at_k


def reproduce_command() -> str:
    args = " ".join(shlex.quote(a) for a in sys.argv)
    path = os.environ.get("PYTHONPATH", "")
    return f"command (in {os.getcwd()}): flock /tmp/s4rec-cpu.lock env PYTHONPATH={path} python {args}"


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def prepare(base: Path | None, items: int, workdir: Path, fresh: bool, ann_threads: int) -> Path:
    """The grown checkpoint and its format 3 export (fp32 + int8 + ANN index), reused when present."""
    from large_checkpoint import large_checkpoint

    from s4rec_export import export_checkpoint
    from s4rec_train.checkpoint import save_checkpoint

    checkpoint = workdir / f"large_{items}.pt"
    artifact = workdir / f"artifact_{items}"
    if fresh or not checkpoint.exists():
        started = time.perf_counter()
        save_checkpoint(large_checkpoint(base, items), checkpoint)
        print(f"[{items:,}] checkpoint grown in {time.perf_counter() - started:.1f} s")
    small = workdir / f"artifact_{items}_format2"
    if items <= 200_000 and (fresh or not small.exists()):  # the format 2 file, for the load-time comparison
        export_checkpoint(checkpoint, small, large_format=False, force=True)
    if fresh or not artifact.exists():
        started = time.perf_counter()
        report = export_checkpoint(
            checkpoint, artifact, large_format=True, quantize="int8", ann=True, ann_threads=ann_threads, force=True
        )
        print(f"[{items:,}] export {time.perf_counter() - started:.0f} s: " + ", ".join(
            f"{k} {v:.0f}s" for k, v in report.seconds.items()))  # fmt: skip
        for line in report.lines()[1:]:
            if "int8 vs fp32" in line or "parity" in line:
                print(f"[{items:,}] {line.strip()}")
    return artifact


PROBE = """
import json, time, sys
t = time.perf_counter()
from s4rec import Recommender
t0 = time.perf_counter()
rec = Recommender.load({artifact!r}, variant={variant!r}, retrieval={retrieval!r})
t1 = time.perf_counter()
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
after_load = status("VmRSS:")
for h in {histories!r}:
    rec.recommend(h, k=10)
rss, peak = status("VmRSS:"), status("VmHWM:")
print(json.dumps({{"import_s": t0 - t, "load_s": t1 - t0, "rss_load_mb": after_load, "rss_mb": rss, "peak_mb": peak}}))
"""


def probe(artifact: Path, variant: str, retrieval: str, histories: list) -> dict:
    code = PROBE.format(artifact=str(artifact), variant=variant, retrieval=retrieval, histories=histories[:50])
    sdk = str(Path(__file__).resolve().parent.parent / "sdk")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=sdk))  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_limits(table: np.ndarray, users: np.ndarray, block: int = 32) -> dict:
    """The same-run limits (module docstring), best of 3: reference GFLOP/s (a fixed 512^3 matmul, 1 thread),
    table-read GB/s (``table @ user``, BLAS on 1 thread: every exact query reads every row once) and GEMM users/s
    (``users @ table.T`` in blocks of ``block`` users on 2 threads, scores only)."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    flops, reads, gemm = [], [], []

    def product(start: int) -> None:
        users[start : start + block] @ table.T

    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(4):
                a @ a
            flops.append(4 * 2 * 512**3 / (time.perf_counter() - start) / 1e9)
            start = time.perf_counter()
            table @ users[0]
            reads.append(table.nbytes / (time.perf_counter() - start) / 1e9)
            start = time.perf_counter()
            list(pool.map(product, range(0, len(users), block)))
            gemm.append(len(users) / (time.perf_counter() - start))
    return {"reference_gflops": max(flops), "read_gbs": max(reads), "gemm_users_s": max(gemm)}


def numpy_recommender(rec: Recommender):
    """The exact job in plain numpy: the SDK's user vector (encoder graph), then table @ user + argpartition."""
    table = np.load(rec.path.parent / "item_table.npy", mmap_mode="r")[: rec.metadata.num_items + 1]
    table = np.ascontiguousarray(table)  # in memory, as an application would hold it
    vocabulary = rec.vocabulary

    def recommend(history, k=10):
        indices, _ = vocabulary.map_history(history)
        user = rec.encoder.run(["user_embedding"], {"history": np.array([indices[-rec.max_len :]])})[0][0]
        scores = table @ user
        scores[0] = -np.inf
        scores[indices] = -np.inf
        best = np.argpartition(-scores, k)[:k]
        best = best[np.argsort(-scores[best])]
        return vocabulary.ids_array[best].tolist()

    return recommend, table


def time_each(fn, histories, upper: float = 99) -> tuple[float, float]:
    """Milliseconds of ``fn(h)`` per history after 5 warm-up calls: the median and the ``upper`` percentile."""
    for h in histories[:5]:
        fn(h)
    times = []
    for h in histories:
        start = time.perf_counter_ns()
        fn(h)
        times.append(time.perf_counter_ns() - start)
    a = np.array(times) / 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, upper))


def test_histories(data: Path | None, base: Path | None, count: int, seed: int = 0) -> list[list]:
    """Histories in the base checkpoint's ids: its data's test inputs (all but the last item), a sample."""
    rng = np.random.default_rng(seed)
    if data is None or base is None:
        return [rng.integers(1, 4096, int(rng.integers(1, 20))).tolist() for _ in range(count)]
    from s4rec_train.data import read_sequences

    interactions = read_sequences(data)
    ids = interactions.item_ids
    histories = [[ids[i - 1] for i in seq[:-1]] for seq in interactions.sequences if len(seq) > 1]
    return [histories[i] for i in rng.choice(len(histories), size=min(count, len(histories)), replace=False)]


@click.command()
@click.option("--base", type=click.Path(exists=True, path_type=Path), default=None, help="Trained checkpoint.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None, help="Its data (histories).")
@click.option("--sizes", default="100000,1000000", show_default=True)
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("/tmp/large_bench"), show_default=True)
@click.option("--fresh", is_flag=True, help="Rebuild the checkpoints and artifacts.")
@click.option("--single", default=300, show_default=True, help="Users timed one by one per round (exact).")
@click.option("--rounds", default=3, show_default=True)
@click.option("--batch-users", default=3000, show_default=True)
@click.option("--recall-users", default=1000, show_default=True)
@click.option("--ef", default=None, type=int, help="ANN ef_search (default: the artifact's).")
@click.option("--score-rounds", default=3, show_default=True, help="rank_batch / s4rec-score pairs per variant.")
@click.option("--json-out", type=click.Path(path_type=Path))
def main(base, data, sizes, workdir, fresh, single, rounds, batch_users, recall_users, ef, score_rounds, json_out):
    workdir.mkdir(parents=True, exist_ok=True)
    histories = test_histories(data, base, max(single * 3, batch_users, recall_users))
    print(f"{len(histories)} histories, mean length {np.mean([len(h) for h in histories]):.1f}; {load_average()}")
    figures: dict = {}
    for items in [int(float(s)) for s in sizes.split(",")]:
        figures[str(items)] = measure(items, base, workdir, fresh, histories, single, rounds, batch_users,
                                      recall_users, ef, score_rounds)  # fmt: skip
    print(reproduce_command())
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))


def measure(items, base, workdir, fresh, histories, single, rounds, batch_users, recall_users, ef, score_rounds):
    """Every figure of one catalogue size (the module docstring)."""
    started = time.perf_counter()
    artifact = prepare(base, items, workdir, fresh, ann_threads=0)
    f: dict = {"bytes": sum(p.stat().st_size for p in artifact.iterdir())}
    f["files"] = {p.name: p.stat().st_size for p in sorted(artifact.iterdir())}
    print(f"[{items:,}] artifact {f['bytes'] / 1e6:,.1f} MB: " + ", ".join(
        f"{n} {b / 1e6:.1f} MB" for n, b in f["files"].items() if b > 1e5))  # fmt: skip
    small = workdir / f"artifact_{items}_format2"
    probes = [(artifact, "fp32", "exact"), (artifact, "int8", "exact"), (artifact, "fp32", "ann")]
    for path, variant, retrieval in probes + ([(small, "fp32", "format2")] if small.exists() else []):
        p = probe(path, variant, "exact" if retrieval == "format2" else retrieval, histories)
        f[f"load_{variant}_{retrieval}"] = p
        print(f"[{items:,}] load {variant} {retrieval}: {p['load_s']:.2f} s (import {p['import_s']:.2f} s), "
              f"RSS {p['rss_load_mb']:.0f} MB after load, {p['rss_mb']:.0f} MB after 50 recommendations, "
              f"peak {p['peak_mb']:.0f} MB")  # fmt: skip

    fp32 = Recommender.load(artifact, variant="fp32")
    int8 = Recommender.load(artifact, variant="int8")
    ann = Recommender.load(artifact, retrieval="ann", ef_search=ef)
    numpy_rec, table = numpy_recommender(fp32)
    limits = machine_limits(table, fp32.embed_batch(histories[:batch_users]))
    f["limits"] = limits
    read_ms = {
        "exact fp32": table.nbytes / limits["read_gbs"] / 1e6,
        "exact int8": table.size / limits["read_gbs"] / 1e6,
    }
    print(f"[{items:,}] limits: reference matmul {limits['reference_gflops']:.1f} GFLOP/s (1 thread), table read "
          f"{limits['read_gbs']:.2f} GB/s (1 thread: a float32 query reads {table.nbytes / 1e6:.0f} MB in >= "
          f"{read_ms['exact fp32']:.1f} ms, int8 {read_ms['exact int8']:.1f} ms), numpy GEMM "
          f"{limits['gemm_users_s']:,.0f} users/s (2 threads); {load_average()}")  # fmt: skip
    sample = histories[:single]
    methods = {"numpy": numpy_rec, "exact fp32": lambda h: fp32.recommend(h, k=10),
               "exact int8": lambda h: int8.recommend(h, k=10), "ann": lambda h: ann.recommend(h, k=10)}  # fmt: skip
    per_round: dict[str, list] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            per_round[name].append(time_each(fn, sample))
    for name, values in per_round.items():
        p50 = statistics.median(v[0] for v in values)
        p99 = statistics.median(v[1] for v in values)
        f[f"single_{name}"] = {"p50_ms": p50, "p99_ms": p99, "round_p50s": [v[0] for v in values]}
    base_p50 = f["single_numpy"]["p50_ms"]
    for name in methods:
        s = f[f"single_{name}"]
        floor = f"; {read_ms[name] / s['p50_ms']:.2f} of the read floor" if name in read_ms else ""
        print(f"[{items:,}] single {name:10s}: p50 {s['p50_ms']:7.3f} ms, p99 {s['p99_ms']:7.3f} ms "
              f"({s['p50_ms'] / base_p50:.3f}x numpy's p50{floor}; round p50s "
              f"{', '.join(f'{x:.2f}' for x in s['round_p50s'])})")  # fmt: skip

    # quality: ANN recall and int8 overlap against exact float32
    report = recall_at_k(ann, histories, k=10, sample=recall_users)
    f["recall"] = {"recall@10": report.recall, "p5": report.p5_recall, "min": report.min_recall, "users": report.users}
    print(f"[{items:,}] {report.summary()}")
    a = fp32.rank_batch(histories[:recall_users], k=10)
    b = int8.rank_batch(histories[:recall_users], k=10)
    overlap = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.items.tolist(), b.items.tolist())]))
    f["int8_top10_overlap"] = overlap
    print(f"[{items:,}] int8 vs fp32 exact: top-10 overlap {overlap:.4f} on {recall_users} histories")

    # batch throughput, 2 threads, interleaved with the numpy baseline
    batch = histories[:batch_users]
    rates: dict[str, list] = {}
    fp32_2, int8_2 = (Recommender.load(artifact, variant=v, threads=2) for v in ("fp32", "int8"))
    ann_2 = Recommender.load(artifact, retrieval="ann", threads=2, ef_search=ef)
    users = fp32.embed_batch(batch)
    for _ in range(2):
        for name, fn in (("exact fp32", lambda: fp32_2.rank_batch(batch, k=10)),
                         ("exact int8", lambda: int8_2.rank_batch(batch, k=10)),
                         ("ann", lambda: ann_2.rank_batch(batch, k=10)),
                         ("numpy", lambda: numpy_batch(table, users))):  # fmt: skip
            start = time.perf_counter()
            fn()
            rates.setdefault(name, []).append(len(batch) / (time.perf_counter() - start))
    for name, values in rates.items():
        f[f"batch_{name}"] = max(values)
        print(f"[{items:,}] batch {name:10s} (2 threads): {max(values):,.0f} users/s "
              f"({max(values) / max(rates['numpy']):.2f}x numpy in this loop, "
              f"{max(values) / limits['gemm_users_s']:.2f} of the GEMM limit)")  # fmt: skip

    # s4rec-score, JSONL in and out, 2 threads
    source = workdir / "users.jsonl"
    with open(source, "w") as out:
        for u, h in enumerate(batch):
            out.write(json.dumps({"user": u, "history": h}) + "\n")
    for variant, retrieval in (("int8", "exact"), ("fp32", "exact"), ("fp32", "ann")):
        rec = Recommender.load(artifact, variant=variant, retrieval=retrieval, threads=2)
        in_memory, scored = [], []
        for _ in range(score_rounds):  # alternated, so that the machine's load moves both alike
            start = time.perf_counter()
            rec.rank_batch(batch, k=10)
            in_memory.append(len(batch) / (time.perf_counter() - start))
            scored.append(score_file(rec, source, workdir / "recs.jsonl", k=10, force=True).users_per_second)
        name = f"score_{variant}_{retrieval}"
        f[name], f[f"{name}_in_memory"] = statistics.median(scored), statistics.median(in_memory)
        f[f"{name}_rounds"] = {"score": scored, "in_memory": in_memory}
        print(
            f"[{items:,}] s4rec-score {variant} {retrieval} (2 threads): {f[name]:,.0f} users/s, "
            f"{f[name] / f[name + '_in_memory']:.2f} of rank_batch in memory ({f[name + '_in_memory']:,.0f}; medians "
            f"of {score_rounds} alternated rounds, the first on a fresh recommender; round ratios "
            f"{', '.join(f'{a / b:.2f}' for a, b in zip(scored, in_memory))})"
        )
    f["seconds"] = time.perf_counter() - started
    print(f"[{items:,}] {time.perf_counter() - started:.0f} s; {load_average()}")
    return f


def numpy_batch(table: np.ndarray, users: np.ndarray, k: int = 10, threads: int = 2) -> np.ndarray:
    """Exhaustive scores in slices of users (bounded memory) + argpartition, on ``threads`` Python threads: the
    batch baseline."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty((len(users), k), dtype=np.int64)
    step = max(1, (1 << 22) // len(table))

    def run(start: int) -> None:
        scores = users[start : start + step] @ table.T
        scores[:, 0] = -np.inf
        out[start : start + step] = np.argpartition(-scores, k, axis=1)[:, :k]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(0, len(users), step)))
    return out


if __name__ == "__main__":
    main()
