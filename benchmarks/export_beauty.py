"""Export a Beauty checkpoint with every variant and print: export time, sizes, parity, test NDCG@20 per variant.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export \
        python benchmarks/export_beauty.py --checkpoint /tmp/beauty_backbone.pt --data ../shared/data/beauty.txt

Test NDCG@20 / HR@20 are computed through ONNX Runtime with the SDK's ``recommend_batch`` on the checkpoint's
leave-one-out test split (history = the most recent max_len items before the target, those items excluded),
which is the protocol of ``s4rec_train.evaluation``: the ``top_k`` = 100 candidates of the graph hold the
top 20 after removing at most max_len seen items, so the figures are exact (ties aside).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

from s4rec import Recommender
from s4rec.artifact import VARIANT_FILES
from s4rec_export import export_checkpoint
from s4rec_train.checkpoint import checkpoint_metrics, item_ids, load_checkpoint
from s4rec_train.data import leave_one_out, read_sequences, remap_to_vocabulary
from s4rec_train.evaluation import metrics_from_ranks


def reproduce_command() -> str:
    """The command line that reproduces this run, from the directory it ran in."""
    args = " ".join(shlex.quote(a) for a in sys.argv)
    path = os.environ.get("PYTHONPATH", "")
    return f"command (in {os.getcwd()}): flock /tmp/s4rec-cpu.lock env PYTHONPATH={path} python {args}"


def test_metrics(rec: Recommender, histories: list[list], targets: list, k: int = 20) -> dict:
    """HR@k / NDCG@k of the test targets from the SDK's ranked lists (history excluded)."""
    results = rec.recommend_batch(histories, k=k, exclude_seen=True)
    ranks = np.full(len(targets), k, dtype=np.int64)  # k = "not in the top k"
    for row, (result, target) in enumerate(zip(results, targets)):
        items = result.item_ids()
        if target in items:
            ranks[row] = items.index(target)
    m = metrics_from_ranks(ranks, ks=(10, k))
    return {f"HR@{k}": m[f"HR@{k}"], f"NDCG@{k}": m[f"NDCG@{k}"], "NDCG@10": m["NDCG@10"]}


@click.command()
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), default=Path("/tmp/beauty_backbone.pt"))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--output", type=click.Path(path_type=Path), help="Artifact directory (default: a temporary one).")
@click.option("--threads", default=2, show_default=True, help="torch and ONNX Runtime threads.")
@click.option("--json-out", type=click.Path(path_type=Path), help="Also write the figures as JSON.")
def main(checkpoint, data, output, threads, json_out):
    torch.set_num_threads(threads)
    output = output or Path(tempfile.mkdtemp(prefix="s4rec-export-bench-")) / "artifact"
    started = time.perf_counter()
    report = export_checkpoint(checkpoint, output, quantize="int8", fp16=True, mobile=True, force=True)
    wall = time.perf_counter() - started
    print("\n".join(report.lines()))
    seconds = report.seconds
    fp32_only = sum(seconds[s] for s in ("load", "export", "verify"))
    print(f"export + verification: fp32 {fp32_only:.1f} s; with int8, fp16 and mobile variants {wall:.1f} s wall")

    ckpt = load_checkpoint(checkpoint)
    max_len = report.metadata["max_len"]
    vocabulary = item_ids(ckpt)
    interactions = remap_to_vocabulary(read_sequences(data), vocabulary)
    split = leave_one_out(interactions, max_len)
    ids = np.array([None, *vocabulary], dtype=object)
    histories = [[ids[i] for i in row[row > 0]] for row in split.test_history]
    targets = ids[split.test_target].tolist()
    stored = checkpoint_metrics(ckpt).get("test", {}).get("overall", {})
    figures = {"export_seconds_fp32": fp32_only, "export_seconds_all": wall, "sizes": report.sizes}
    figures["parity_max_abs_diff"] = report.parity.max_abs_diff
    figures["agreement"] = report.agreement
    torch_ndcg = stored.get("NDCG@20", float("nan"))
    print(f"\ntest split: {len(histories)} users; the checkpoint's own (torch) test NDCG@20 {torch_ndcg:.4f}")
    print(f"{'variant':8s} {'bytes':>11s} {'HR@20':>8s} {'NDCG@20':>8s} {'vs fp32':>8s} {'seconds':>8s}")
    fp32_ndcg = None
    figures["test"] = {}
    for variant in ("fp32", "int8", "fp16", "mobile"):
        rec = Recommender.load(output, variant=variant, threads=threads)
        t = time.perf_counter()
        m = test_metrics(rec, histories, targets)
        elapsed = time.perf_counter() - t
        fp32_ndcg = fp32_ndcg or m["NDCG@20"]
        relative = m["NDCG@20"] / fp32_ndcg - 1
        size = report.sizes[VARIANT_FILES[variant]]
        figures["test"][variant] = dict(m, relative_to_fp32=relative, bytes=size)
        print(f"{variant:8s} {size:>11,} {m['HR@20']:8.4f} {m['NDCG@20']:8.4f} {relative:+8.2%} {elapsed:8.2f}")
    fp32_size, sizes = report.sizes[VARIANT_FILES["fp32"]], report.sizes
    print(
        f"\nfp32 size / (4 x {report.parameters:,} parameters) = {fp32_size / (4 * report.parameters):.3f}; "
        f"int8 / fp32 = {sizes[VARIANT_FILES['int8']] / fp32_size:.3f}; "
        f"fp16 / fp32 = {sizes[VARIANT_FILES['fp16']] / fp32_size:.3f}"
    )
    print(reproduce_command())
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
