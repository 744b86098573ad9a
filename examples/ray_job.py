"""Batch scoring on Ray Data: read histories, recommend with one artifact load per actor, write JSON files.

    pip install "s4rec[ray]"
    python examples/ray_job.py ARTIFACT --input users.jsonl --output recs/ [--concurrency 2] [--k 10]

``--input`` is a JSONL file or directory of them (``{"user": ..., "history": [...]}``), benchmark text files
with ``--format text``, or a CSV interaction log with ``--format log``; ``--output`` is a directory that gets
one JSON-lines file per block (``{"user": ..., "items": [...], "scores": [...]}``). Connects to the Ray
cluster in ``RAY_ADDRESS`` if set, else starts a local one. See docs/batch.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command()
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option("--input", "-i", "input_path", required=True, help="File or directory (local path or URI).")
@click.option("--output", "-o", "output_path", required=True, help="Output directory (local path or URI).")
@click.option("--format", "input_format", type=click.Choice(["jsonl", "text", "log"]), default="jsonl")
@click.option("--k", default=10, show_default=True)
@click.option("--exclude-seen/--no-exclude-seen", default=True, show_default=True)
@click.option(
    "--concurrency", type=int, default=None,
    help="Actors, each loading the artifact once [default: the cluster's CPUs / threads, less one CPU for reading].",
)  # fmt: skip
@click.option("--threads", default=1, show_default=True, help="ONNX Runtime threads per actor.")
@click.option("--partitions", type=int, default=None, help="Log: shuffle partitions of the group-by [Ray's default].")
@click.option("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance [default: all].")
def main(artifact, input_path, output_path, input_format, k, exclude_seen, concurrency, threads, partitions, num_cpus):
    import ray

    from s4rec.ray import histories_from_log, read_histories, recommend_dataset

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
    if concurrency is None:  # actors hold their CPUs: leave one for the tasks that read the input
        concurrency = max(1, (int(ray.cluster_resources().get("CPU", 2)) - 1) // threads)
    started = time.perf_counter()
    if input_format == "log":
        histories = histories_from_log(ray.data.read_csv(input_path), num_partitions=partitions)
    else:
        histories = read_histories(input_path, format=input_format)
    recs = recommend_dataset(
        histories, str(artifact.resolve()), k=k, exclude_seen=exclude_seen, concurrency=concurrency, threads=threads
    )
    recs.write_json(output_path)
    users = ray.data.read_json(output_path).count()
    click.echo(
        f"scored {users} users with {concurrency} actor(s) in {time.perf_counter() - started:.1f}s -> {output_path}"
    )


if __name__ == "__main__":
    main()
