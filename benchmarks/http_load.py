"""A bounded load test of examples/http_service.py on loopback: requests/s and latency percentiles.

    PYTHONPATH=sdk:training:export python benchmarks/http_load.py ARTIFACT \\
        --data /work/shared/data/beauty.txt --duration 10 --clients 2 --connections 2

Starts the service as a subprocess on 127.0.0.1 (a free port; nothing else is ever contacted), then runs
``--clients`` client processes, each keeping ``--connections`` persistent HTTP/1.1 connections busy in a
closed loop (a new request as soon as the previous answer arrived) for ``--duration`` seconds after a one
second warm-up, and stops the service. Request bodies are real histories from ``--data`` (the user's whole
sequence, k=10). Prints requests/s, p50/p90/p99/max latency (client-side, request sent to body read), errors,
and the exact command. Clients and server share the same cores, so the figures are a floor for the server.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only, by construction
MAX_DURATION = 60.0


def client(port: int, bodies: list[bytes], connections: int, warmup: float, duration: float, seed: int, queue) -> None:
    """One client process: ``connections`` threads, each a closed loop on one persistent connection."""
    results = []
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration

    def loop(index: int) -> None:
        rng = np.random.default_rng(seed * 1000 + index)
        latencies, errors = [], 0
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        headers = {"Content-Type": "application/json"}
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            body = bodies[int(rng.integers(len(bodies)))]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/recommend", body, headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
            t1 = time.perf_counter()
            if t0 >= start_at:  # count only requests started after the warm-up
                latencies.append(t1 - t0)
                errors += not ok
        conn.close()
        results.append((latencies, errors))

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(([x for lat, _ in results for x in lat], sum(e for _, e in results)))


def start_server(artifact: Path, *options: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("sdk", "training", "export"))}
    command = [sys.executable, str(ROOT / "examples" / "http_service.py"), str(artifact), "--host", HOST,
               "--port", "0", *options]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/recommend"
    if not line.startswith("serving"):
        server.kill()
        raise SystemExit(f"the service did not start (said {line!r}).")
    return server, int(line.rsplit(":", 1)[1].split("/")[0])


@click.command()
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=Path("/work/shared/data/beauty.txt"))
@click.option("--duration", default=10.0, show_default=True, help=f"Seconds measured (at most {MAX_DURATION:.0f}).")
@click.option("--clients", default=2, show_default=True, help="Client processes.")
@click.option("--connections", default=2, show_default=True, help="Persistent connections per client process.")
@click.option("--server-threads", default=1, show_default=True, help="ONNX Runtime threads in the service.")
@click.option("--requests-from", default=2000, show_default=True, help="Distinct histories used as request bodies.")
def main(artifact, data, duration, clients, connections, server_threads, requests_from):
    if not 0 < duration <= MAX_DURATION:
        raise click.BadParameter(f"must be in (0, {MAX_DURATION:.0f}], got {duration}.", param_hint="--duration")
    bodies = []
    with open(data) as f:
        for line in f:
            history = [int(t) if t.isdigit() else t for t in line.split()[1:]]
            bodies.append(json.dumps({"history": history, "k": 10}).encode())
            if len(bodies) == requests_from:
                break
    server, port = start_server(artifact, "--threads", str(server_threads))
    try:
        context = mp.get_context("fork")
        queue = context.Queue()
        workers = [context.Process(target=client, args=(port, bodies, connections, 1.0, duration, i, queue))
                   for i in range(clients)]  # fmt: skip
        for w in workers:
            w.start()
        collected = [queue.get(timeout=duration + 30) for _ in workers]
        for w in workers:
            w.join(timeout=10)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = np.array([x for lat, _ in collected for x in lat]) * 1000
    errors = sum(e for _, e in collected)
    if len(latencies) == 0:
        raise SystemExit("no request completed.")
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    click.echo(f"{len(latencies):,} requests in {duration:.0f}s over {clients} x {connections} connections "
               f"(service: ORT threads {server_threads}, {os.cpu_count()} cores shared with clients)")  # fmt: skip
    click.echo(f"throughput {len(latencies) / duration:,.0f} requests/s (target >= 1,000); latency ms p50 {p50:.2f} "
               f"p90 {p90:.2f} p99 {p99:.2f} (target <= 10) max {latencies.max():.2f}; errors {errors}")  # fmt: skip
    click.echo("command: PYTHONPATH=sdk:training:export " + shlex.join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
