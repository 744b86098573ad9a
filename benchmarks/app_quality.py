"""Quality of the item-level calls on Beauty (issue 23): ``similar_items`` against a co-occurrence baseline, and
intent-diverse lists (``per_intent``) against MMR on the item vectors at the same diversity.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export python benchmarks/app_quality.py \\
        --artifact ARTIFACT --data ../shared/data/beauty.txt [--json-out FILE]

ARTIFACT is a format 2 export (with item intents) of an S4Rec checkpoint trained on DATA. Leave-one-out as in
training: per user, validation = (history = every item but the last two, target = the second last), test =
(every item but the last, the last). Choices (the similarity of ``similar_items``, the co-occurrence window and
weighting, MMR's lambda) are made on validation and reported on test.

**Similar items.** The task an item page's "more like this" serves best and one we can measure: from the user's
last item alone, is the next item among the 10 most similar ones (HR@10, NDCG@10; the user's history left out)?
* the model: the cosine of item vectors (what ``similar_items`` does, row "SDK similar_items") and their dot
  product;
* the baseline: items consumed by the same users close in time: for every pair of items at most ``w``
  positions apart in a training sequence (every user's items but the last two), a count; similar = the most
  co-occurring items, by raw count or by count / sqrt(count_i count_j) (window and weighting chosen on
  validation);
* for reference, the model's own next-item ranking from that one item (``recommend([last item])``) and from the
  whole history (``recommend(history)``).
Besides accuracy: catalogue coverage (distinct items shown across users / items) and the median popularity
rank of what is shown (1 = the most popular item).

**Intent-diverse lists.** Test histories, top 10 of ``recommend(history, k=10)``, ``per_intent`` 1, 2 and 3
against MMR over the model's top 100 (relevance: the score, min-max scaled per user; similarity: cosine of item
vectors; lambda chosen on validation so that MMR's intra-list diversity matches the ``per_intent`` list's):
distinct intents in the top 10, intra-list diversity (ILD: the mean of 1 - cosine over the 45 pairs) and NDCG@10.
One trained checkpoint, one seed: differences within ~0.002 NDCG@10 are within what another seed moves.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402

from s4rec import Recommender  # noqa: E402


def reproduce_command() -> str:
    return "command: flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export " + shlex.join(["python", *sys.argv])


def load_users(data: Path) -> list[list]:
    users = []
    with open(data) as f:
        for line in f:
            items = [int(t) if t.isdigit() else t for t in line.split()[1:]]
            if len(items) >= 3:
                users.append(items)
    return users


def rank_metrics(lists: list[list], targets: list, k: int = 10) -> dict[str, float]:
    hits = ndcg = 0.0
    for found, target in zip(lists, targets):
        if target in found[:k]:
            r = found.index(target)
            hits += 1
            ndcg += 1 / np.log2(r + 2)
    return {"HR@10": hits / len(targets), "NDCG@10": ndcg / len(targets)}


class Cooccurrence:
    """Counts of item pairs at most ``window`` positions apart in the same sequence (item indices)."""

    def __init__(self, sequences: list[np.ndarray], num_items: int, window: int) -> None:
        width = num_items + 1
        keys = []
        for seq in sequences:
            for gap in range(1, min(window, len(seq) - 1) + 1):
                a, b = seq[:-gap], seq[gap:]
                keys.append(a * width + b)
                keys.append(b * width + a)
        keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.keys, self.counts = np.unique(keys, return_counts=True)
        self.width = width
        self.item_counts = np.bincount(np.concatenate(sequences), minlength=width).astype(np.float64)

    def similar(self, item: int, k: int, banned: set, weighting: str) -> list[int]:
        lo, hi = np.searchsorted(self.keys, [item * self.width, (item + 1) * self.width])
        others = self.keys[lo:hi] - item * self.width
        weight = self.counts[lo:hi].astype(np.float64)
        if weighting == "cosine":
            weight = weight / np.sqrt(self.item_counts[item] * self.item_counts[others])
        order = np.lexsort((others, -weight))
        return [int(o) for o in others[order] if int(o) not in banned][:k]


def similar_items_study(rec: Recommender, users: list[list], sample: int, seed: int) -> dict:
    v = rec.vocabulary
    table = np.asarray(rec.item_vectors())  # (N, d): item index i is row i - 1
    norms = np.linalg.norm(table, axis=1)
    index_of = v.index_of
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(users), min(sample, len(users)), replace=False)
    train = [np.array([index_of[i] for i in u[:-2]], dtype=np.int64) for u in users]
    counts = np.bincount(np.concatenate(train), minlength=len(table) + 1)
    popularity_rank = np.empty(len(table) + 1, dtype=np.int64)
    popularity_rank[np.argsort(-counts[1:], kind="stable") + 1] = np.arange(1, len(table) + 1)

    def cases(split: str):
        for u in chosen.tolist():
            items = users[u]
            history = items[:-2] if split == "valid" else items[:-1]
            yield [index_of[i] for i in history], index_of[items[-2] if split == "valid" else items[-1]]

    def model_lists(split: str, similarity: str) -> tuple[list, list]:
        lists, targets = [], []
        for history, target in cases(split):
            q = table[history[-1] - 1]
            scores = table @ q if similarity == "dot" else (table @ q) / (norms * np.linalg.norm(q) + 1e-12)
            scores[np.array(history) - 1] = -np.inf
            top = np.argpartition(-scores, 10)[:10]
            lists.append((top[np.argsort(-scores[top], kind="stable")] + 1).tolist())
            targets.append(target)
        return lists, targets

    results, started = {}, time.perf_counter()
    for similarity in ("dot", "cosine"):
        results[f"model, {similarity}"] = {
            split: rank_metrics(*model_lists(split, similarity)) for split in ("valid", "test")
        }
    best_baseline = None
    for window in (1, 2, 3, 5, 10):
        graph = Cooccurrence(train, len(table), window)
        for weighting in ("count", "cosine"):
            name = f"co-occurrence, window {window}, {weighting}"
            row = {}
            for split in ("valid", "test"):
                lists, targets = [], []
                for history, target in cases(split):
                    lists.append(graph.similar(history[-1], 10, set(history), weighting))
                    targets.append(target)
                row[split] = rank_metrics(lists, targets)
                row[split]["lists"] = lists if split == "test" else None
            results[name] = row
            if best_baseline is None or row["valid"]["NDCG@10"] > results[best_baseline]["valid"]["NDCG@10"]:
                best_baseline = name
    ids = v.ids
    for name, call in (
        ("model, recommend([last item])", lambda h: rec.recommend([ids[h[-1]]], k=10, exclude=[ids[i] for i in h])),
        ("model, recommend(history) (reference)", lambda h: rec.recommend([ids[i] for i in h], k=10)),
        ("SDK similar_items(last item)", lambda h: rec.similar_items(ids[h[-1]], k=10, exclude=[ids[i] for i in h])),
    ):
        row = {}
        for split in ("valid", "test"):
            lists, targets = [], []
            for history, target in cases(split):
                lists.append([index_of[i] for i in call(history).item_ids()])
                targets.append(target)
            row[split] = rank_metrics(lists, targets)
            row[split]["lists"] = lists if split == "test" else None
        results[name] = row
    best_model = max(("model, dot", "model, cosine"), key=lambda n: results[n]["valid"]["NDCG@10"])
    for name, row in results.items():
        lists = row["test"].pop("lists", None)
        row["valid"].pop("lists", None)
        if lists is None and name.startswith("model, ") and "recommend" not in name:
            lists, _ = model_lists("test", name.split(", ")[1])
        if lists:
            shown = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if x])
            row["test"]["coverage"] = len(np.unique(shown)) / len(table)
            row["test"]["median popularity rank"] = float(np.median(popularity_rank[shown]))
    print(f"similar items from the last item: {len(chosen):,} users, HR@10 / NDCG@10 of the next item "
          f"(history excluded), {time.perf_counter() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, row in results.items():
        mark = " <- chosen on validation" if name in (best_model, best_baseline) else ""
        test = row["test"]
        extra = (f", coverage {test['coverage']:.3f}, median popularity rank {test['median popularity rank']:,.0f}"
                 if "coverage" in test else "")  # fmt: skip
        print(f"  {name:44s} valid NDCG@10 {row['valid']['NDCG@10']:.4f}   test HR@10 {test['HR@10']:.4f} "
              f"NDCG@10 {test['NDCG@10']:.4f}{extra}{mark}")  # fmt: skip
    return {"users": len(chosen), "results": results, "chosen_model": best_model, "chosen_baseline": best_baseline}


def ild(vectors: np.ndarray) -> float:
    """Intra-list diversity: the mean of 1 - cosine over the pairs of a list's item vectors."""
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
    sims = unit @ unit.T
    n = len(vectors)
    return float((n * n - sims.sum()) / (n * (n - 1))) if n > 1 else 0.0


def mmr(scores: np.ndarray, items: np.ndarray, unit: np.ndarray, lam: float, k: int) -> list[int]:
    """Maximal marginal relevance over a candidate pool (``items`` with their ``scores``)."""
    rel = (scores - scores.min()) / (scores.max() - scores.min() + 1e-12)
    vectors = unit[items - 1]
    sims = vectors @ vectors.T
    chosen = [int(np.argmax(rel))]
    closest = sims[chosen[0]].copy()
    for _ in range(k - 1):
        value = lam * rel - (1 - lam) * closest
        value[chosen] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        closest = np.maximum(closest, sims[best])
    return items[chosen].tolist()


def diversity_study(rec: Recommender, users: list[list], sample: int, seed: int) -> dict:
    v = rec.vocabulary
    index_of = v.index_of
    table = np.asarray(rec.item_vectors())
    unit = table / (np.linalg.norm(table, axis=1, keepdims=True) + 1e-12)
    intents = np.asarray(rec.metadata.item_intents)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(users), min(sample, len(users)), replace=False).tolist()

    def split_cases(split: str):
        histories = [users[u][:-2] if split == "valid" else users[u][:-1] for u in chosen]
        targets = [index_of[users[u][-2] if split == "valid" else users[u][-1]] for u in chosen]
        return histories, targets

    def describe(lists: list[list], targets: list) -> dict:
        metrics = rank_metrics(lists, targets)
        metrics["distinct intents"] = float(np.mean([len(set(intents[np.array(x) - 1].tolist())) for x in lists]))
        metrics["ILD"] = float(np.mean([ild(table[np.array(x) - 1]) for x in lists]))
        return metrics

    started = time.perf_counter()
    out = {}
    pools = {}
    for split in ("valid", "test"):
        histories, targets = split_cases(split)
        ranked = rec.rank_batch(histories, k=100)
        pools[split] = (ranked.scores, ranked.items, targets)
        out.setdefault("plain top 10", {})[split] = describe(ranked.items[:, :10].tolist(), targets)
        for n in (1, 2, 3):
            lists = [[index_of[i] for i in r.item_ids()] for r in rec.recommend_batch(histories, k=10, per_intent=n)]
            out.setdefault(f"per_intent={n}", {})[split] = describe(lists, targets)

    def mmr_lists(split: str, lam: float) -> list[list]:
        scores, items, _ = pools[split]
        return [mmr(s, i, unit, lam, 10) for s, i in zip(scores, items)]

    lambdas = [round(x, 2) for x in np.arange(0.3, 1.0001, 0.05)]
    valid_ild = {}
    for lam in lambdas:
        valid_ild[lam] = describe(mmr_lists("valid", lam), pools["valid"][2])
    for n in (1, 2, 3):
        goal = out[f"per_intent={n}"]["valid"]["ILD"]
        lam = min(lambdas, key=lambda x: abs(valid_ild[x]["ILD"] - goal))
        out[f"MMR, lambda {lam} (ILD of per_intent={n})"] = {
            "valid": valid_ild[lam], "test": describe(mmr_lists("test", lam), pools["test"][2]), "lambda": lam
        }  # fmt: skip
    base = out["plain top 10"]["test"]["NDCG@10"]
    print(f"intent-diverse lists: {len(chosen):,} test users, top 10, {time.perf_counter() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, row in out.items():
        t = row["test"]
        print(f"  {name:40s} distinct intents {t['distinct intents']:.2f}  ILD {t['ILD']:.3f}  NDCG@10 "
              f"{t['NDCG@10']:.4f} ({t['NDCG@10'] / base - 1:+.1%})  HR@10 {t['HR@10']:.4f}  "
              f"[valid ILD {row['valid']['ILD']:.3f}]")  # fmt: skip
    return out


@click.command()
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--users", default=22363, show_default=True, help="Users sampled (all of Beauty's by default).")
@click.option("--seed", default=0, show_default=True)
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
def main(artifact, data, users, seed, json_out):
    rec = Recommender.load(artifact)
    print(f"{rec!r}; checkpoint test metrics {json.dumps(rec.metadata.checkpoint_metrics.get('test', {}))[:200]}")
    all_users = load_users(data)
    out = {"command": reproduce_command(), "artifact": str(artifact), "version": rec.version}
    out["similar_items"] = similar_items_study(rec, all_users, users, seed)
    out["per_intent"] = diversity_study(rec, all_users, users, seed)
    print(out["command"])
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
