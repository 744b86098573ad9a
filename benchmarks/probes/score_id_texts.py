"""Why ``s4rec-score`` with ANN ran at 0.6-0.7x the in-memory rate at 10^6 items: the writer encoded every item id
of the catalogue as JSON on its first chunk. Same run, same inputs: that former encoding against the one the
writer does now (each id the first time a chunk writes it).

    env PYTHONPATH=sdk:training:export:benchmarks python benchmarks/probes/score_id_texts.py \\
        --artifact /tmp/large_bench/artifact_1000000 --base /tmp/large_bench/large_1000000.pt \\
        --data ../shared/data/beauty.txt

For ``--rounds`` rounds, each encoding in turn: a freshly loaded recommender (``retrieval="ann"``, 2 threads, as
benchmarks/large_catalogue.py loads it), ``rank_batch`` of ``--users`` test histories in memory, then
``score_file`` of the same histories (JSONL in and out): the ratio of their times, the median printed, with the
load average before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402
from large_catalogue import load_average, test_histories  # noqa: E402 (benchmarks/ is on PYTHONPATH)

from s4rec import Recommender, writers  # noqa: E402
from s4rec.batch import score_file  # noqa: E402

LAZY = writers._IdTexts.of


def eager(self, items):
    """The former ``_encoded_ids``, verbatim: every id of the catalogue encoded on first use."""
    if not self.done.all():
        item_ids = self.ids[1:].tolist()
        plain = set(map(type, item_ids)) <= writers._INT
        texts = list(map(str, item_ids)) if plain else list(map(self.encode, item_ids))
        self.texts = np.array(["null", *texts], dtype=object)
        self.done[:] = True
    return self.texts


@click.command()
@click.option("--artifact", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--base", type=click.Path(exists=True, path_type=Path), required=True, help="Its checkpoint (ids).")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--users", default=3000, show_default=True)
@click.option("--rounds", default=4, show_default=True)
def main(artifact, base, data, users, rounds):
    histories = test_histories(data, base, users)
    ratios: dict[str, list] = {"all ids up front (former)": [], "ids as written (now)": []}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "users.jsonl"
        source.write_text("".join(json.dumps({"user": u, "history": h}) + "\n" for u, h in enumerate(histories)))
        print(f"{len(histories)} histories; {load_average()}")
        for _ in range(rounds):
            for name, of in zip(ratios, (eager, LAZY)):
                writers._IdTexts.of = of
                rec = Recommender.load(artifact, retrieval="ann", threads=2)
                start = time.perf_counter()
                rec.rank_batch(histories, k=10)
                in_memory = time.perf_counter() - start
                start = time.perf_counter()
                score_file(rec, source, Path(tmp) / "out.jsonl", k=10, force=True)
                ratios[name].append(in_memory / (time.perf_counter() - start))
    writers._IdTexts.of = LAZY
    for name, values in ratios.items():
        print(f"{name:26s}: s4rec-score at {statistics.median(values):.2f}x rank_batch's rate (median of "
              f"{rounds}; rounds {', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    print(load_average())


if __name__ == "__main__":
    main()
