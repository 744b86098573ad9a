"""Two checkouts of s4rec side by side on one artifact: identical recommendations, and single-user p50.

    git worktree add /tmp/old <commit>
    python benchmarks/probes/compare_trees.py /tmp/old . --artifact ARTIFACT --data ../shared/data/beauty.txt

Each tree's SDK runs in its own process (PYTHONPATH=TREE/sdk), alternating ``--alternations`` times; each
process times ``recommend(history, k=10)`` on the first ``--users`` histories (all but each user's last item)
over ``--rounds`` rounds on 1 thread and prints the p50 of each round; the recommendations of both trees are
compared list for list. The figure is the minimum of the round p50s (the least disturbed round).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

PROBE = r"""
import json, sys, time
import numpy as np
from s4rec import Recommender
artifact, data, users, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rec = Recommender.load(artifact)
lines = [line.split()[1:] for _, line in zip(range(users), open(data))]
histories = [h[:-1] for h in lines if len(h) > 1]
items = [[str(i) for i in rec.recommend(h, k=10).item_ids()] for h in histories]
for h in histories[:200]:
    rec.recommend(h, k=10)
p50 = []
for _ in range(rounds):
    times = []
    for h in histories:
        t = time.perf_counter(); rec.recommend(h, k=10); times.append(time.perf_counter() - t)
    p50.append(float(np.median(times)) * 1e3)
print(json.dumps({"p50_ms": p50, "items": items}))
"""


def probe(tree: Path, artifact: Path, data: Path, users: int, rounds: int) -> dict:
    env = {"PYTHONPATH": str(tree / "sdk"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", PROBE, str(artifact), str(data), str(users), str(rounds)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)


@click.command()
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--users", default=3000, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@click.option("--alternations", default=3, show_default=True)
def main(old, new, artifact, data, users, rounds, alternations):
    best = {"old": [], "new": []}
    same = True
    for _ in range(alternations):
        results = {
            name: probe(tree.resolve(), artifact, data, users, rounds) for name, tree in (("old", old), ("new", new))
        }
        same &= results["old"]["items"] == results["new"]["items"]
        for name, r in results.items():
            best[name].append(min(r["p50_ms"]))
            click.echo(f"{name}: round p50s " + ", ".join(f"{x:.3f}" for x in r["p50_ms"]) + " ms")
    count = len(results["old"]["items"])
    click.echo(f"identical top 10 for all {count} histories: {same}")
    for name in ("old", "new"):
        click.echo(
            f"{name} ({locals()[name]}): min-of-rounds p50 per alternation "
            + ", ".join(f"{x:.3f}" for x in best[name])
            + " ms"
        )
    ratio = sorted(b / a for a, b in zip(best["old"], best["new"]))[len(best["old"]) // 2]
    click.echo(f"new/old p50, median over alternations: {ratio:.2f}")
    click.echo("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
