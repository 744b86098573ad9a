"""Live model swap under load: examples/http_service.py answers concurrent requests while a new artifact is published
and swapped in, again and again; no request may fail or mix two models.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export python benchmarks/http_swap.py ARTIFACT_A ARTIFACT_B \\
        --data ../shared/data/beauty.txt --swaps 10 [--watch 0.2]

ARTIFACT_A and ARTIFACT_B are two artifacts of one catalogue with different versions (e.g. two checkpoints of a
training run, or one checkpoint exported with two top_k). A copy of A is published at WORKDIR/current and served
by the example as a subprocess on 127.0.0.1 (nothing else is ever contacted). ``--clients`` processes keep
``--connections`` persistent connections each busy in a closed loop, POSTing /recommend with real histories
(``--data``, the first ``--requests-from`` users, k=10). Meanwhile the main process publishes B, then A, ...
(``--swaps`` times, every ``--interval`` seconds): it copies the artifact beside WORKDIR/current and swaps it in
with :func:`s4rec.files.publish_directory` (one atomic rename, as ``s4rec-export --force``), then sends the
service SIGHUP (or, with ``--watch S``, lets it find the new artifact by polling every S seconds) and waits until
/health reports the swap.

Checked for every answer: HTTP 200, a version that is A's or B's, and exactly the items that version's
recommender gives that history (computed beforehand in this process): an answer from one model labelled
with the other, or a request answered half by each, would differ. Prints the requests, failed, mixed, the
answers per version, client-side latency p50/p99 over the run, each swap's time from publication to the
service answering with the new version, the load average, and the exact command.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np
from http_load import start_server  # this script's folder is on sys.path when it runs

from s4rec import Recommender
from s4rec.files import publish_directory

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only, by construction


def client(port: int, bodies: list[bytes], connections: int, seed: int, stop, queue) -> None:
    """One client process: ``connections`` threads, each a closed loop on one persistent connection, until
    ``stop``; puts ``[(body index, status, version, items, seconds)]`` on ``queue``."""
    answers = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        rng = np.random.default_rng(seed * 1000 + index)
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        mine = []
        while not stop.is_set():
            b = int(rng.integers(len(bodies)))
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/recommend", bodies[b], {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = json.loads(response.read())
                seconds = time.perf_counter() - t0
                mine.append((b, response.status, payload.get("version"), payload.get("items"), seconds))
            except (OSError, http.client.HTTPException, ValueError) as e:
                mine.append((b, -1, None, repr(e), time.perf_counter() - t0))
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
        conn.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(answers)


def health(port: int) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.request("GET", "/health")
    payload = json.loads(conn.getresponse().read())
    conn.close()
    return payload


@click.command()
@click.argument("artifact_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("artifact_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("../shared/data/beauty.txt"))
@click.option("--swaps", default=10, show_default=True)
@click.option("--interval", default=1.0, show_default=True, help="Seconds between publications.")
@click.option("--clients", default=2, show_default=True, help="Client processes.")
@click.option("--connections", default=4, show_default=True, help="Persistent connections per client process.")
@click.option("--requests-from", default=2000, show_default=True, help="Distinct histories used as request bodies.")
@click.option("--watch", type=float, default=None, help="Let the service poll every S seconds instead of SIGHUP.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None)
def main(artifact_a, artifact_b, data, swaps, interval, clients, connections, requests_from, watch, workdir):
    histories = []
    with open(data) as f:
        for line in f:
            histories.append([int(t) if t.isdigit() else t for t in line.split()[1:-1]])
            if len(histories) == requests_from:
                break
    bodies = [json.dumps({"history": h, "k": 10}).encode() for h in histories]
    expected = {}
    for artifact in (artifact_a, artifact_b):
        rec = Recommender.load(artifact)
        expected[rec.version] = [rec.recommend(h, k=10).item_ids() for h in histories]
    versions = list(expected)
    if len(versions) != 2:
        raise click.BadParameter("the two artifacts have the same version: export two different ones.")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="s4rec-http-swap-"))
    current = workdir / "current"
    shutil.rmtree(current, ignore_errors=True)
    shutil.copytree(artifact_a, current)
    server, port = start_server(current, *([] if watch is None else ["--watch", str(watch)]))
    context = mp.get_context("fork")
    stop, queue = context.Event(), context.Queue()
    workers = [context.Process(target=client, args=(port, bodies, connections, i, stop, queue)) for i in range(clients)]
    load_start = os.getloadavg()
    started = time.perf_counter()
    swap_seconds = []
    try:
        for w in workers:
            w.start()
        time.sleep(interval)
        for swap in range(swaps):
            source = (artifact_b, artifact_a)[swap % 2]
            before = health(port)["swaps"]
            work = workdir / f"next-{swap}"
            shutil.copytree(source, work)
            t0 = time.perf_counter()
            publish_directory(work, current)
            if watch is None:
                os.kill(server.pid, signal.SIGHUP)
            while health(port)["swaps"] == before:
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"swap {swap + 1}: the service did not swap within 60 s.")
                time.sleep(0.005)
            swap_seconds.append(time.perf_counter() - t0)
            time.sleep(interval)
        stop.set()
        collected = [queue.get(timeout=120) for _ in workers]
        for w in workers:
            w.join(timeout=30)
    finally:
        stop.set()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    seconds = time.perf_counter() - started
    answers = [a for chunk in collected for a in chunk]
    failed = [a for a in answers if a[1] != 200]
    unknown_version = [a for a in answers if a[1] == 200 and a[2] not in expected]
    mixed = [a for a in answers if a[1] == 200 and a[2] in expected and a[3] != expected[a[2]][a[0]]]
    per_version = {v: sum(1 for a in answers if a[2] == v) for v in versions}
    latency = np.array([a[4] for a in answers]) * 1000
    how = f"polling every {watch} s" if watch else "SIGHUP"
    loads = " ".join(f"{x:.2f}" for x in load_start), " ".join(f"{x:.2f}" for x in os.getloadavg())
    click.echo(f"{len(answers):,} requests in {seconds:.1f} s over {clients} x {connections} connections, {swaps} "
               f"swaps ({how}); {os.cpu_count()} cores shared with the clients; load average {loads[0]} at start, "
               f"{loads[1]} at end")  # fmt: skip
    click.echo(f"failed {len(failed)}, mixed {len(mixed)}, unknown version {len(unknown_version)}; answers per version "
               + ", ".join(f"{v} {n:,}" for v, n in per_version.items()))  # fmt: skip
    click.echo(f"latency ms p50 {np.percentile(latency, 50):.2f} p99 {np.percentile(latency, 99):.2f} max "
               f"{latency.max():.2f}; swap (published -> answering with it) s: median "
               f"{np.median(swap_seconds):.3f}, max {max(swap_seconds):.3f}")  # fmt: skip
    if failed:
        click.echo(f"first failures: {failed[:3]}")
    click.echo("command: PYTHONPATH=sdk:training:export " + shlex.join(["python", *sys.argv]))
    shutil.rmtree(workdir, ignore_errors=True)
    if failed or mixed or unknown_version or len(answers) < 2000:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
