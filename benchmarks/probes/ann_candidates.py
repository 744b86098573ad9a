"""Which approximate index keeps its recall on a trained table? Candidates side by side on one grown table.

The table is grown from a trained checkpoint exactly as benchmarks/large_checkpoint.py grows it (its
``grown_table``, seed 0), and the user vectors are the trained encoder's for the base data's test histories (all
but the last item), so "a reasonable user vector" is what the growth procedure makes of real users. For each
candidate: build seconds, index bytes (against the float32 table's), recall@10 against exact retrieval with the
history excluded (mean, 5th percentile, worst user), and p50 / p99 of one query on one thread (candidates found,
the excluded ones dropped, the rest scored exactly from the float32 table and the best 10 kept, as the SDK does).
The same run times an exhaustive numpy GEMV of one user over the table: every latency is also printed as a
fraction of it, and the load average is printed.

    env PYTHONPATH=sdk:training:export:benchmarks OPENBLAS_NUM_THREADS=1 python benchmarks/probes/ann_candidates.py \\
        --base /tmp/beauty.pt --data ../shared/data/beauty.txt --items 100000 --candidates all

Candidates (``--candidates``, comma-separated): ``hnsw-ip`` (hnswlib, inner product, the old default),
``hnsw-l2`` (hnswlib, L2 over the MIPS-to-L2 reduction: one extra coordinate sqrt(M^2 - |x|^2)),
``faiss-ivf-sq8`` (faiss IVF, 8-bit scalar codes, inner product, then an exact re-rank of 4x the candidates),
``ivf`` (numpy: k-means lists over the table, the lists of the largest centroid dot products scored exactly
from the float32 table; what s4rec.ann became).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

K = 10


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def base_vectors(base: Path, data: Path, users: int, seed: int = 0):
    """(base table, base counts, user vectors (n, d), each user's history as item indices)."""
    import torch

    from s4rec.windows import left_pad
    from s4rec_train.checkpoint import item_ids, item_popularity, load_checkpoint, model_from_checkpoint
    from s4rec_train.data import read_sequences

    checkpoint = load_checkpoint(base)
    model = model_from_checkpoint(checkpoint).eval()
    index_of = {item: i + 1 for i, item in enumerate(item_ids(checkpoint))}
    interactions = read_sequences(data)
    ids = interactions.item_ids
    histories = [[index_of[ids[i - 1]] for i in seq[:-1]] for seq in interactions.sequences if len(seq) > 1]
    rng = np.random.default_rng(seed)
    histories = [histories[i] for i in rng.choice(len(histories), size=min(users, len(histories)), replace=False)]
    max_len = checkpoint["config"]["max_len"] if isinstance(checkpoint["config"], dict) else model.config.max_len
    vectors = []
    with torch.no_grad():
        for start in range(0, len(histories), 512):
            window = left_pad([h[-max_len:] for h in histories[start : start + 512]], max_len)
            vectors.append(model.user_embedding(torch.from_numpy(window)).numpy())
    table = model.item_table.detach().numpy().copy()
    return table, item_popularity(checkpoint), np.concatenate(vectors).astype(np.float32), histories


def exact_top(table: np.ndarray, users: np.ndarray, banned: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(users), K), dtype=np.int64)
    for start in range(0, len(users), 64):
        scores = users[start : start + 64] @ table.T
        scores[:, 0] = -np.inf
        for row in range(len(scores)):
            scores[row, banned[start + row]] = -np.inf
            best = np.argpartition(-scores[row], K)[:K]
            out[start + row] = best[np.argsort(-scores[row, best])]
    return out


def rerank(table, user, labels, banned, k=K):
    labels = labels[labels > 0]
    if len(banned):
        labels = labels[~np.isin(labels, banned)]
    exact = table[labels] @ user
    best = np.argpartition(-exact, k)[:k] if len(labels) > k else np.arange(len(labels))
    return labels[best[np.argsort(-exact[best])]]


# --- the candidates: build(table, threads) -> (searcher(user, fetch, ef) -> labels, bytes, build seconds) ----------


def build_hnsw(table, threads, space, m, ef_construction):
    import hnswlib

    n = len(table) - 1
    data = table[1:]
    if space == "l2":
        norms = np.linalg.norm(data, axis=1)
        extra = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0))[:, None]
        data = np.hstack([data, extra]).astype(np.float32)
    started = time.perf_counter()
    index = hnswlib.Index(space=space, dim=data.shape[1])
    index.init_index(max_elements=n, ef_construction=ef_construction, M=m, random_seed=0)
    index.set_num_threads(threads)
    index.add_items(data, np.arange(1, n + 1))
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        index.save_index(f"{tmp}/x")
        size = os.path.getsize(f"{tmp}/x")
    index.set_num_threads(1)
    pad = [0.0] if space == "l2" else []

    def search(user, fetch, ef):
        index.set_ef(max(ef, fetch))
        q = np.array([[*user, *pad]], dtype=np.float32)
        return index.knn_query(q, k=fetch, num_threads=1)[0][0].astype(np.int64)

    return search, size, seconds


def build_faiss_ivf_sq8(table, threads, nlist):
    import faiss

    faiss.omp_set_num_threads(threads)
    data = np.ascontiguousarray(table[1:])
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(data.shape[1])
    index = faiss.IndexIVFScalarQuantizer(quantizer, data.shape[1], nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 64 * nlist), replace=False)]
    index.train(sample)
    index.add_with_ids(data, np.arange(1, len(data) + 1))
    seconds = time.perf_counter() - started
    size = len(faiss.serialize_index(index))
    faiss.omp_set_num_threads(1)

    def search(user, fetch, nprobe):
        index.nprobe = nprobe
        return index.search(user[None, :], 4 * fetch)[1][0]

    return search, size, seconds


def build_faiss_ivf_pq(table, threads, nlist, rerank=200):
    import faiss

    faiss.omp_set_num_threads(threads)
    data = np.ascontiguousarray(table[1:])
    started = time.perf_counter()
    index = faiss.index_factory(data.shape[1], f"IVF{nlist},PQ32x4fs", faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = 64
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 64 * nlist), replace=False)]
    index.train(sample)
    index.add_with_ids(data, np.arange(1, len(data) + 1))
    seconds = time.perf_counter() - started
    size = len(faiss.serialize_index(index))
    faiss.omp_set_num_threads(1)

    def search(user, fetch, nprobe):
        index.nprobe = nprobe
        return index.search(user[None, :], max(rerank, 4 * fetch))[1][0]

    return search, size, seconds


def build_faiss_hnsw_sq8(table, threads, m, ef_construction):
    import faiss

    faiss.omp_set_num_threads(threads)
    data = np.ascontiguousarray(table[1:])
    started = time.perf_counter()
    index = faiss.IndexHNSWSQ(data.shape[1], faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.train(data[np.random.default_rng(0).choice(len(data), min(len(data), 1 << 16), replace=False)])
    index.add(data)
    seconds = time.perf_counter() - started
    size = len(faiss.serialize_index(index))
    faiss.omp_set_num_threads(1)

    def search(user, fetch, ef):
        index.hnsw.efSearch = max(ef, fetch)
        return index.search(user[None, :], fetch)[1][0].astype(np.int64) + 1

    return search, size, seconds


def build_usearch(table, threads, dtype, connectivity, expansion_add):
    from usearch.index import Index

    data = table[1:]
    started = time.perf_counter()
    index = Index(ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=connectivity,
                  expansion_add=expansion_add)  # fmt: skip
    index.add(np.arange(1, len(data) + 1), data, threads=threads)
    seconds = time.perf_counter() - started
    size = index.serialized_length

    def search(user, fetch, ef):
        index.expansion_search = max(ef, fetch)
        return np.asarray(index.search(user, fetch, threads=1).keys, dtype=np.int64)

    return search, size, seconds


def build_ivf_pq_fastscan(table, threads, lists, subquantizers=32, width=0.5, rerank=200):
    """IVF over L2 k-means lists, 4-bit PQ fast-scan codes (inner product), lists probed in the order of
    ``c . q + width |q| r`` (``r``: the list's mean distance to its centroid) until ``share`` of the items."""
    import faiss

    faiss.omp_set_num_threads(threads)
    data = np.ascontiguousarray(table[1:])
    started = time.perf_counter()
    d = data.shape[1]
    kmeans = faiss.Kmeans(d, lists, niter=10, seed=0, max_points_per_centroid=64)
    kmeans.train(data)
    quantizer = faiss.IndexFlatL2(d)
    quantizer.add(kmeans.centroids)
    index = faiss.IndexIVFPQFastScan(quantizer, d, lists, subquantizers, 4, faiss.METRIC_INNER_PRODUCT)
    sample = data[np.random.default_rng(0).choice(len(data), min(len(data), 1 << 16), replace=False)]
    index.train(sample)
    index.add(data)  # lists by the L2 quantizer
    _, assign = quantizer.search(data, 1)
    assign = assign[:, 0]
    centroids = kmeans.centroids
    counts = np.bincount(assign, minlength=lists)
    radius = np.bincount(assign, weights=np.linalg.norm(data - centroids[assign], axis=1), minlength=lists)
    radius = (radius / np.maximum(counts, 1)).astype(np.float32)
    seconds = time.perf_counter() - started
    size = len(faiss.serialize_index(index)) + centroids.nbytes + radius.nbytes
    faiss.omp_set_num_threads(1)
    total = len(data)

    def search(user, fetch, share_pct):
        coarse = centroids @ user
        order = np.argsort(-(coarse + width * float(np.linalg.norm(user)) * radius))
        probe = int(np.searchsorted(np.cumsum(counts[order]), share_pct / 100 * total)) + 1
        keys = order[None, :probe].astype(np.int64)
        dis = coarse[keys]  # the residual codes' scores need c . q added
        index.nprobe = probe
        _, labels = index.search_preassigned(user[None, :], max(rerank, 4 * fetch), keys, dis)
        return labels[0] + 1

    return search, size, seconds


def kmeans(data: np.ndarray, lists: int, iterations: int = 10, sample: int = 64, seed: int = 0) -> np.ndarray:
    """Plain Lloyd iterations on a sample of ``sample`` rows per list (numpy, BLAS): centroids (lists, d)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data), min(len(data), sample * lists), replace=False)
    points = np.ascontiguousarray(data[pick], dtype=np.float32)
    centroids = points[rng.choice(len(points), lists, replace=False)].copy()
    for _ in range(iterations):
        assign = nearest(points, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, points)
        counts = np.bincount(assign, minlength=lists)
        empty = counts == 0
        centroids[~empty] = sums[~empty] / counts[~empty, None]
        centroids[empty] = points[rng.choice(len(points), int(empty.sum()), replace=False)]
    return centroids


def nearest(points: np.ndarray, centroids: np.ndarray, step: int = 1 << 14) -> np.ndarray:
    half = 0.5 * (centroids**2).sum(1)
    out = np.empty(len(points), dtype=np.int64)
    for a in range(0, len(points), step):
        out[a : a + step] = np.argmax(points[a : a + step] @ centroids.T - half, axis=1)
    return out


def build_ivf(table, threads, lists):
    data = table[1:]
    started = time.perf_counter()
    centroids = kmeans(data, lists)
    assign = nearest(data, centroids)
    order = np.argsort(assign, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=lists))])
    members = (order + 1).astype(np.int32)
    seconds = time.perf_counter() - started
    size = centroids.nbytes + offsets.astype(np.int64).nbytes + members.nbytes

    def search(user, fetch, nprobe):
        best = np.argpartition(-(centroids @ user), nprobe)[:nprobe]
        return np.concatenate([members[offsets[b] : offsets[b + 1]] for b in best.tolist()]).astype(np.int64)

    return search, size, seconds


CANDIDATES = {
    "hnsw-ip": (lambda t, th: build_hnsw(t, th, "ip", 32, 200), [64, 128, 256, 512]),
    "hnsw-ip-16": (lambda t, th: build_hnsw(t, th, "ip", 16, 100), [128, 256, 512]),
    "hnsw-l2": (lambda t, th: build_hnsw(t, th, "l2", 16, 100), [64, 128, 256]),
    "faiss-ivf-sq8": (lambda t, th: build_faiss_ivf_sq8(t, th, int(4 * np.sqrt(len(t)))), [16, 32, 64]),
    "faiss-ivf-pq": (lambda t, th: build_faiss_ivf_pq(t, th, int(4 * np.sqrt(len(t)))), [64, 128, 256, 512]),
    "faiss-hnsw-sq8": (lambda t, th: build_faiss_hnsw_sq8(t, th, 16, 100), [64, 128, 256, 512]),
    "faiss-hnsw-sq8-32": (lambda t, th: build_faiss_hnsw_sq8(t, th, 32, 100), [128, 256, 512]),
    "faiss-hnsw-sq8-24": (lambda t, th: build_faiss_hnsw_sq8(t, th, 24, 100), [128, 256, 512]),
    "usearch-f16": (lambda t, th: build_usearch(t, th, "f16", 16, 128), [64, 128, 256, 512]),
    "usearch-f16-12": (lambda t, th: build_usearch(t, th, "f16", 12, 64), [64, 128, 256, 512]),
    "ivf-pq-fs": (lambda t, th: build_ivf_pq_fastscan(t, th, int(4 * np.sqrt(len(t)))), [2, 5, 10]),
    "ivf-pq-fs-r1000": (
        lambda t, th: build_ivf_pq_fastscan(t, th, int(4 * np.sqrt(len(t))), rerank=1000),
        [10, 20, 30],
    ),
    "ivf-pq64-fs-r500": (
        lambda t, th: build_ivf_pq_fastscan(t, th, int(4 * np.sqrt(len(t))), subquantizers=64, rerank=500),
        [5, 10, 20, 30],
    ),
    "ivf": (lambda t, th: build_ivf(t, th, int(4 * np.sqrt(len(t)))), [16, 32, 64, 128]),
}


@click.command()
@click.option("--base", type=click.Path(exists=True, path_type=Path), required=True, help="Trained checkpoint.")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True, help="Its data.")
@click.option("--items", default=100_000, show_default=True)
@click.option("--users", default=1000, show_default=True)
@click.option("--candidates", default="all", show_default=True)
@click.option("--threads", default=2, show_default=True, help="Build threads.")
@click.option("--json-out", type=click.Path(path_type=Path))
def main(base, data, items, users, candidates, threads, json_out):
    from large_checkpoint import grown_table

    print(f"{load_average()}; base {base}, {items:,} items, {users} users")
    base_table, counts, vectors, histories = base_vectors(base, data, users)
    started = time.perf_counter()
    table = grown_table(base_table, counts, items, 0.5, 0)  # as large_checkpoint(base, items): spread 0.5, seed 0
    print(f"table grown in {time.perf_counter() - started:.1f} s: {table.shape}, {table[1:].nbytes / 1e6:.1f} MB fp32")
    banned = [np.unique(np.array(h, dtype=np.int64)) for h in histories]
    exact = exact_top(table, vectors, banned)
    # same-run limit: one exhaustive GEMV + argpartition over the table (the exact job), 1 thread
    times = []
    for u in vectors[:50]:
        t = time.perf_counter_ns()
        s = table @ u
        np.argpartition(-s, K)
        times.append((time.perf_counter_ns() - t) / 1e6)
    gemv = float(np.median(times))
    print(f"limit: exhaustive numpy scoring of one user, p50 {gemv:.3f} ms (1 thread); {load_average()}")
    results = {"items": items, "users": len(vectors), "gemv_p50_ms": gemv, "table_bytes": table[1:].nbytes}
    names = list(CANDIDATES) if candidates == "all" else candidates.split(",")
    for name in names:
        build, settings = CANDIDATES[name]
        search, size, seconds = build(table, threads)
        print(f"{name}: built in {seconds:.1f} s on {threads} threads, {size / 1e6:.1f} MB "
              f"({size / table[1:].nbytes:.2f}x the fp32 table); {load_average()}")  # fmt: skip
        for setting in settings:
            recalls, times = [], []
            for user, ban, want in zip(vectors, banned, exact):
                fetch = K + len(ban)
                t = time.perf_counter_ns()
                got = rerank(table, user, search(user, fetch, setting), ban)
                times.append((time.perf_counter_ns() - t) / 1e6)
                recalls.append(len(set(got.tolist()) & set(want.tolist())) / K)
            r = np.array(recalls)
            row = {"build_s": seconds, "bytes": size, "mean": r.mean(), "p5": np.percentile(r, 5), "min": r.min(),
                   "p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))}  # fmt: skip
            results[f"{name}@{setting}"] = row
            print(f"  {name} @ {setting:4d}: recall@10 mean {row['mean']:.4f}, p5 {row['p5']:.2f}, worst "
                  f"{row['min']:.2f}; p50 {row['p50_ms']:.3f} ms ({row['p50_ms'] / gemv:.3f}x exhaustive), "
                  f"p99 {row['p99_ms']:.3f} ms")  # fmt: skip
    print(f"{load_average()}")
    path = os.environ.get("PYTHONPATH", "")
    print(f"command: env PYTHONPATH={path} python " + " ".join(map(shlex.quote, sys.argv)))
    if json_out:
        json_out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
