"""Latency of the calls an app shows (issue 23), each as a ratio to the unrestricted ``recommend`` in the same run.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export:benchmarks python benchmarks/app_features.py \\
        --artifact /tmp/i23/beauty_art --data ../shared/data/beauty.txt [--sweep] [--large /tmp/i23/large]

Beauty (``--artifact``, a format 2 export of a Beauty checkpoint): Beauty test-protocol histories (all but the
last item), 1 thread. Each round times, in blocks of 100 users with every method over each block in turn (so that
the machine's load moves every method alike), the unrestricted ``recommend(history, k=10)`` (the baseline) and:

* ``candidates=100``: ``recommend(history, k=10, candidates=C)``, C 100 random catalogue items drawn per user;
* ``score 50``: ``score(history, items)`` of 50 random items;
* ``similar_items``: ``similar_items(the history's last item, k=10)``;
* ``per_intent=2``: ``recommend(history, k=10, per_intent=2)``;
* the same candidate call with format 2's encoder-only graph switched off (``rec.encoder = None``: the user
  vector from the full graph, as artifacts exported before it), for what the encoder graph buys.

Per method: p50 and p99 per round, the median of rounds, and the ratio of its p50 to the baseline's in the
same round (median of rounds). ``--sweep``: the candidate-set size where scoring the rows (``table[C] @ user``)
stops being cheaper than the graph with every other item excluded (the switch ``s4rec.selection.ROWS_SHARE``).

``--large WORKDIR``: the 10^6-item format 3 artifact of ``benchmarks/large_catalogue.py`` (``artifact_1000000``
in WORKDIR, made there by its ``prepare``: a checkpoint grown from ``--checkpoint``, exported with int8 and the
ANN index), with an allow-list of 10% of the catalogue: single p50 of the exact unrestricted call vs the same
call with ``candidates`` and through a ``restricted_to`` view; the ANN index's filtered query (over-fetch and
exact re-rank) against exact filtered ranking: recall@10 and p50; and the rows/mask sweep at 10^6.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

# numpy's BLAS on one thread, as ONNX Runtime's single calls (a spinning OpenBLAS pool distorts a busy machine)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402
from large_catalogue import load_average, reproduce_command  # noqa: E402 (this script's folder is on sys.path)

from s4rec import Recommender, selection  # noqa: E402


def test_histories(data: Path) -> tuple[list[list], list]:
    """The test protocol's inputs (every item but the last) and targets, in file order."""
    histories, targets = [], []
    with open(data) as f:
        for line in f:
            items = [int(t) if t.isdigit() else t for t in line.split()[1:]]
            if len(items) >= 3:
                histories.append(items[:-1])
                targets.append(items[-1])
    return histories, targets


def interleaved(methods: dict, users: int, rounds: int, warmup: int = 100, block: int = 100) -> dict[str, dict]:
    """Per method ``{"p50": [per round], "p99": [...], "ratio": [p50 / the first method's p50, per round]}``
    (ms); ``methods``: name -> fn(user index). Each round runs the users in blocks of ``block``, every method
    over the block in turn: the methods share the machine's load (which moves within seconds here), and each
    runs on the caches it would have serving one kind of call (alternating every call instead left each one
    the previous method's cache contents, which penalised whichever read other memory)."""
    names = list(methods)
    for u in range(min(warmup, users)):
        for name in names:
            methods[name](u)
    out = {name: {"p50": [], "p99": [], "ratio": []} for name in names}
    for _ in range(rounds):
        times = {name: np.empty(users) for name in names}
        for start_user in range(0, users, block):
            for name in names:
                fn, samples = methods[name], times[name]
                for u in range(start_user, min(start_user + block, users)):
                    start = time.perf_counter_ns()
                    fn(u)
                    samples[u] = time.perf_counter_ns() - start
        base = float(np.percentile(times[names[0]], 50))
        for name in names:
            p50, p99 = (float(x) for x in np.percentile(times[name], [50, 99]))
            out[name]["p50"].append(p50 / 1e6)
            out[name]["p99"].append(p99 / 1e6)
            out[name]["ratio"].append(p50 / base)
    return out


def report(results: dict[str, dict], targets: dict[str, float]) -> list[str]:
    lines = []
    for name, r in results.items():
        ratio = statistics.median(r["ratio"])
        target = targets.get(name)
        verdict = "" if target is None else f" (target <= {target:.2f}: {'met' if ratio <= target else 'MISSED'})"
        rounds = " ".join(f"{x:.3f}" for x in r["p50"])
        lines.append(
            f"  {name:34s} p50 {statistics.median(r['p50']):.3f} ms  p99 {statistics.median(r['p99']):.3f} ms  "
            f"ratio {ratio:.3f}{verdict}  [round p50s {rounds}]"
        )
    return lines


def beauty(artifact: Path, data: Path, users: int, rounds: int, seed: int) -> dict:
    rec = Recommender.load(artifact)
    legacy = Recommender.load(artifact)
    legacy.encoder = None  # user vectors from the full graph, as for artifacts exported before encoder.onnx
    histories, _ = test_histories(data)
    rng = np.random.default_rng(seed)
    sample = [histories[i] for i in rng.choice(len(histories), users, replace=False)]
    ids = list(rec.vocabulary.item_ids)
    candidates = [[ids[i] for i in rng.choice(len(ids), 100, replace=False)] for _ in range(users)]
    scored = [[ids[i] for i in rng.choice(len(ids), 50, replace=False)] for _ in range(users)]
    methods = {
        "recommend (baseline)": lambda u: rec.recommend(sample[u], k=10),
        "recommend, candidates=100": lambda u: rec.recommend(sample[u], k=10, candidates=candidates[u]),
        "score, 50 items": lambda u: rec.score(sample[u], scored[u]),
        "similar_items (last item)": lambda u: rec.similar_items(sample[u][-1], k=10),
        "recommend, per_intent=2": lambda u: rec.recommend(sample[u], k=10, per_intent=2),
        "candidates=100, no encoder graph": lambda u: legacy.recommend(sample[u], k=10, candidates=candidates[u]),
    }
    started = os.getloadavg()
    results = interleaved(methods, users, rounds)
    targets = {
        "recommend, candidates=100": 1.0,
        "score, 50 items": 1.0,
        "similar_items (last item)": 1.0,  # vs recommend, the baseline
        "recommend, per_intent=2": 1.2,
    }
    print(f"Beauty, {rec!r}: {users:,} test histories x {rounds} rounds, 1 thread, methods interleaved in blocks "
          f"of 100 users; {load_average()} (at start {started[0]:.2f})")  # fmt: skip
    for line in report(results, targets):
        print(line)
    diverse = [rec.recommend(h, k=10, per_intent=2) for h in sample[:500]]
    intents = np.asarray(rec.metadata.item_intents)
    counts = [np.bincount(intents[[rec.vocabulary.index_of[i] - 1 for i in r.item_ids()]]).max() for r in diverse]
    print(f"  per_intent=2 check: most items of one intent in a list {max(counts)} (500 users)")
    return {"users": users, "rounds": rounds, "results": results, "load_average": os.getloadavg()}


def sweep(rec: Recommender, histories: list, sizes: list[int], users: int, rounds: int, seed: int) -> list[dict]:
    """p50 of ``recommend(candidates=C)`` scored row by row and through the graph (mask), per |C|."""
    rng = np.random.default_rng(seed)
    n = rec.metadata.num_items
    ids = rec.vocabulary.ids_array
    rows = []
    for size in sizes:
        sets = [ids[rng.choice(n, size, replace=False) + 1].tolist() for _ in range(min(users, 20))]
        sample = [histories[i] for i in rng.choice(len(histories), users, replace=False)]

        def call(u: int, as_rows: bool, sets=sets, sample=sample) -> None:
            selection.ROWS_MIN, selection.ROWS_SHARE = (n, 1.0) if as_rows else (0, 0.0)
            rec.recommend(sample[u], k=10, candidates=sets[u % len(sets)])

        saved = selection.ROWS_MIN, selection.ROWS_SHARE
        try:
            result = interleaved(
                {"rows": lambda u, call=call: call(u, True), "mask": lambda u, call=call: call(u, False)},
                users, rounds, warmup=10,
            )  # fmt: skip
        finally:
            selection.ROWS_MIN, selection.ROWS_SHARE = saved
        row = {"size": size, "share": size / n, "rows_ms": statistics.median(result["rows"]["p50"]),
               "mask_ms": statistics.median(result["mask"]["p50"])}  # fmt: skip
        rows.append(row)
        print(f"  |C| {size:>9,} ({size / n:6.1%}): rows p50 {row['rows_ms']:.3f} ms, mask {row['mask_ms']:.3f} ms "
              f"-> {'rows' if row['rows_ms'] <= row['mask_ms'] else 'mask'}; {load_average()}", flush=True)  # fmt: skip
    return rows


def large(workdir: Path, data: Path, users: int, rounds: int, seed: int, share: float) -> dict:
    from s4rec.recall import exact_top_k

    artifact = workdir / "artifact_1000000"
    exact = Recommender.load(artifact)
    int8 = Recommender.load(artifact, variant="int8")
    n = exact.metadata.num_items
    histories, _ = test_histories(data)
    rng = np.random.default_rng(seed)
    sample = [histories[i] for i in rng.choice(len(histories), users, replace=False)]
    ids = exact.vocabulary.ids_array
    allowed = ids[np.sort(rng.choice(n, int(share * n), replace=False)) + 1].tolist()
    view = exact.restricted_to(allowed)
    t0 = time.perf_counter()
    exact.restricted_to(allowed)
    view_seconds = time.perf_counter() - t0
    methods = {
        "exact fp32 recommend (baseline)": lambda u: exact.recommend(sample[u], k=10),
        f"exact, candidates={share:.0%} of items": lambda u: exact.recommend(sample[u], k=10, candidates=allowed),
        f"exact, restricted_to({share:.0%}) view": lambda u: view.recommend(sample[u], k=10),
        "exact int8 recommend": lambda u: int8.recommend(sample[u], k=10),
    }
    started = os.getloadavg()
    results = interleaved(methods, users, rounds, warmup=10)
    print(f"10^6 items ({exact!r}): {users} Beauty test histories x {rounds} rounds, 1 thread; {load_average()} "
          f"(at start {started[0]:.2f}); restricted_to({len(allowed):,} ids) built in "
          f"{view_seconds * 1000:.1f} ms")  # fmt: skip
    for line in report(results, {f"exact, candidates={share:.0%} of items": 0.5,
                                 f"exact, restricted_to({share:.0%}) view": 0.5}):  # fmt: skip
        print(line)
    out = {"users": users, "rounds": rounds, "share": share, "results": results, "view_ms": view_seconds * 1000}
    try:
        ann = Recommender.load(artifact, retrieval="ann")
    except Exception as e:  # noqa: BLE001 - no index or no hnswlib: report and go on
        print(f"  ANN: not measured ({e})")
        return out
    allowed_indices = np.sort(exact.vocabulary.item_set(allowed)[0])
    ann_view = ann.restricted_to(allowed)
    recalls, ann_times, exact_times = [], [], []
    for history in sample:
        indices = [exact.vocabulary.index_of.get(i) for i in history if exact.vocabulary.index_of.get(i)]
        t0 = time.perf_counter_ns()
        got = ann_view.recommend(history, k=10)
        ann_times.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        want = view.recommend(history, k=10)
        exact_times.append(time.perf_counter_ns() - t0)
        user = exact.embed(history)
        banned = np.setdiff1d(np.arange(n + 1), allowed_indices)
        brute = exact_top_k(ann.ann.table, user[None, :], 10, [np.union1d(banned, indices)])[0]
        assert set(exact.vocabulary.ids_array[brute].tolist()) == set(want.item_ids()), "exact path disagrees"
        recalls.append(len(set(got.item_ids()) & set(want.item_ids())) / max(1, len(want)))
    recall = float(np.mean(recalls))
    print(f"  ANN filtered query ({share:.0%} allowed, over-fetch x{selection_overfetch()} + exact re-rank): "
          f"recall@10 {recall:.4f} against exact filtered ranking (worst user {min(recalls):.2f}, target >= 0.95: "
          f"{'met' if recall >= 0.95 else 'MISSED'}); p50 {np.median(ann_times) / 1e6:.3f} ms vs exact filtered "
          f"{np.median(exact_times) / 1e6:.3f} ms; {load_average()}")  # fmt: skip
    out.update(ann_recall=recall, ann_min_recall=min(recalls), ann_p50_ms=float(np.median(ann_times) / 1e6))
    out["exact_filtered_p50_ms"] = float(np.median(exact_times) / 1e6)
    return out


def selection_overfetch() -> float:
    from s4rec import ann

    return ann.OVERFETCH


@click.command()
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), help="Beauty artifact (format 2).")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--users", default=3000, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--sweep/--no-sweep", "do_sweep", default=False, help="Rows vs mask per candidate-set size.")
@click.option("--large", "large_dir", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--large-users", default=200, show_default=True)
@click.option("--share", default=0.1, show_default=True, help="--large: the allow-list's share of the catalogue.")
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
def main(artifact, data, users, rounds, seed, do_sweep, large_dir, large_users, share, json_out):
    sys.stdout.reconfigure(line_buffering=True)  # each figure as soon as it is measured (runs take minutes)
    out = {"command": reproduce_command()}
    if artifact is not None:
        out["beauty"] = beauty(artifact, data, users, rounds, seed)
        if do_sweep:
            rec = Recommender.load(artifact)
            histories, _ = test_histories(data)
            print("rows vs mask, Beauty:")
            sizes = [100, 500, 1000, 2000, 3000, 4000, 6000, 9000, 12000]
            out["beauty_sweep"] = sweep(rec, histories, sizes, 1000, 3, seed)
    if large_dir is not None:
        out["large"] = large(large_dir, data, large_users, rounds, seed, share)
        if do_sweep:
            rec = Recommender.load(large_dir / "artifact_1000000")
            histories, _ = test_histories(data)
            print("rows vs mask, 10^6 items:")
            sizes = [2_000, 10_000, 30_000, 100_000, 250_000, 500_000]
            out["large_sweep"] = sweep(rec, histories, sizes, 20, 2, seed)
    print(out["command"])
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
