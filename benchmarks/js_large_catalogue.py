"""The JavaScript SDK on a format 3 artifact in Node: RSS and time of the load, of one ``recommend`` and of a small
``recommendBatch``, against the item table's own bytes and against the Python SDK on the same artifact, same run.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export:benchmarks python benchmarks/js_large_catalogue.py \\
        --artifact /tmp/large_bench/artifact_100000 --data ../shared/data/beauty.txt

``--artifact``: a format 3 directory (``benchmarks/large_catalogue.py --sizes 100000`` writes one, with int8).
Each probe is a fresh process (Node: ``js/src/node.js`` on onnxruntime-node; Python: ``s4rec`` on onnxruntime, both
1 thread) that reads its RSS (Linux ``/proc/self/status``: VmRSS, and VmHWM for the peak) after importing its
runtime (the baseline: onnxruntime's own code and heap before any model), after ``load``, after one
``recommend(history, k 10)``, after ``recommendBatch`` / ``recommend_batch`` of ``--batch`` histories and after
the first ``score`` (the first call that needs the item table in the SDK's own language) (Node
twice: as it loads in Node, onnxruntime-node reading the tables from the directory, and "node-bytes", the tables
handed to ONNX Runtime as bytes, the path of browsers and React Native); times
are wall clock (the first ``recommend`` is reported apart from the p50 of ``--calls`` more). Every variant is
probed ``--repeats`` times, the probes interleaved (each repeat runs every probe once, so that the machine's load
moves them alike), and the median is printed. "over the runtime" is RSS after load minus RSS after the import,
printed as a multiple of the table's bytes (fp32: ``item_table.npy``; int8: ``item_table.int8.npy`` + scales,
which the int8 graph reads besides the fp32 table its encoder looks users up in). Prints the load average.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent

NODE_PROBE = """
const status = (key) => {
  const line = require("node:fs").readFileSync("/proc/self/status", "utf8").split("\\n").find((l) => l.startsWith(key));
  return Number(line.split(/\\s+/)[1]) / 1024;
};
const main = async () => {
  const [sdk, artifact, variant, historiesFile, calls, how] = process.argv.slice(1);
  const histories = JSON.parse(require("node:fs").readFileSync(historiesFile, "utf8"));
  let t = performance.now();
  const { Tensor, InferenceSession } = await import("onnxruntime-node");
  const { Recommender } = await import(sdk);
  const out = { import_s: (performance.now() - t) / 1000, rss_import_mb: status("VmRSS:") };
  // "bytes": the runtime without its env (no env.versions.node), so the SDK hands the tables over as bytes,
  // the browsers' and React Native's path
  const ort = how === "bytes" ? { Tensor, InferenceSession } : undefined;
  t = performance.now();
  const rec = await Recommender.load(artifact, { variant, ort });
  out.load_s = (performance.now() - t) / 1000;
  out.rss_load_mb = status("VmRSS:");
  t = performance.now();
  await rec.recommend(histories[0], { k: 10 });
  out.first_ms = performance.now() - t;
  out.rss_call_mb = status("VmRSS:");
  const times = [];
  for (const h of histories.slice(1, 1 + Number(calls))) {
    t = performance.now();
    await rec.recommend(h, { k: 10 });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  out.p50_ms = times[Math.floor(times.length / 2)];
  const batch = histories.slice(-BATCH);
  t = performance.now();
  await rec.recommendBatch(batch, { k: 10 });
  out.batch_ms = performance.now() - t;
  out.rss_batch_mb = status("VmRSS:");
  t = performance.now();
  await rec.score(histories[0], histories[1]); // the first call that reads the item table in JavaScript
  out.score_ms = performance.now() - t;
  out.rss_score_mb = status("VmRSS:");
  out.peak_mb = status("VmHWM:");
  console.log(JSON.stringify(out));
};
main().catch((e) => { console.error(e); process.exit(1); });
"""

PYTHON_PROBE = """
import json, sys, time
artifact, variant, histories_file, calls, batch = sys.argv[1:]
histories = json.load(open(histories_file))
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024
t = time.perf_counter()
import onnxruntime, numpy
from s4rec import Recommender
out = {"import_s": time.perf_counter() - t, "rss_import_mb": status("VmRSS:")}
t = time.perf_counter()
rec = Recommender.load(artifact, variant=variant)
out["load_s"] = time.perf_counter() - t
out["rss_load_mb"] = status("VmRSS:")
t = time.perf_counter()
rec.recommend(histories[0], k=10)
out["first_ms"] = (time.perf_counter() - t) * 1e3
out["rss_call_mb"] = status("VmRSS:")
times = []
for h in histories[1 : 1 + int(calls)]:
    t = time.perf_counter()
    rec.recommend(h, k=10)
    times.append((time.perf_counter() - t) * 1e3)
out["p50_ms"] = sorted(times)[len(times) // 2]
t = time.perf_counter()
rec.recommend_batch(histories[-int(batch):], k=10)
out["batch_ms"] = (time.perf_counter() - t) * 1e3
out["rss_batch_mb"] = status("VmRSS:")
t = time.perf_counter()
rec.score(histories[0], histories[1])
out["score_ms"] = (time.perf_counter() - t) * 1e3
out["rss_score_mb"] = status("VmRSS:")
out["peak_mb"] = status("VmHWM:")
print(json.dumps(out))
"""


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def histories_of(data: Path, ids: set, count: int) -> list[list]:
    """The test inputs (every item but the last) of the first users of ``data`` whose items the artifact knows."""
    out = []
    with open(data) as lines:
        for line in lines:
            items = [int(t) if t.lstrip("-").isdigit() else t for t in line.split()[1:-1]]
            if items and all(i in ids for i in items):
                out.append(items)
                if len(out) == count:
                    break
    return out


def probe(language: str, artifact: Path, variant: str, histories: Path, calls: int, batch: int) -> dict:
    """One fresh process; ``language`` "node" (the tables read by onnxruntime-node from the directory), "node-bytes"
    (handed over as bytes, as in browsers) or "python"."""
    if language.startswith("node"):
        sdk = (ROOT / "js" / "src" / "node.js").as_uri()
        code = NODE_PROBE.replace("BATCH", str(batch))
        how = "bytes" if language == "node-bytes" else "directory"
        command = ["node", "-e", code, sdk, str(artifact), variant, str(histories), str(calls), how]
        env, cwd = dict(os.environ), ROOT / "js"  # onnxruntime-node resolves from the SDK's own node_modules
    else:
        command = [sys.executable, "-c", PYTHON_PROBE, str(artifact), variant, str(histories), str(calls), str(batch)]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
        cwd = ROOT
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if done.returncode:
        raise SystemExit(f"{language} {variant} probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--artifact", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True, help="Histories to run.")
@click.option("--repeats", default=3, show_default=True, help="Fresh processes per probe (median printed).")
@click.option("--calls", default=100, show_default=True, help="recommend calls timed after the first.")
@click.option("--batch", default=32, show_default=True, help="Histories in the recommendBatch call.")
@click.option("--json-out", type=click.Path(path_type=Path))
def main(artifact, data, repeats, calls, batch, json_out):
    import numpy as np

    files = {p.name: p.stat().st_size for p in artifact.iterdir()}
    ids = set(np.load(artifact / "items.npy").tolist()) if "items.npy" in files else set()
    histories = histories_of(data, ids, 1 + calls + batch)
    tables = {
        "fp32": files["item_table.npy"],
        "int8": files.get("item_table.int8.npy", 0) + files.get("item_table.scales.npy", 0),
    }
    variants = ["fp32"] + (["int8"] if tables["int8"] else [])
    print(f"{artifact}: {len(ids):,} items; item_table.npy {tables['fp32'] / 1e6:.1f} MB"
          + (f", int8 table + scales {tables['int8'] / 1e6:.1f} MB" if tables["int8"] else "")
          + f"; {len(histories)} histories; {load_average()}")  # fmt: skip
    runs: dict[tuple, list] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(histories, file)
        file.flush()
        for _ in range(repeats):
            for variant in variants:
                for language in ("node", "node-bytes", "python"):
                    runs.setdefault((language, variant), []).append(
                        probe(language, artifact, variant, Path(file.name), calls, batch)
                    )
    figures = {}
    for (language, variant), values in runs.items():
        f = {key: statistics.median(v[key] for v in values) for key in values[0]}
        f["over_runtime_mb"] = f["rss_load_mb"] - f["rss_import_mb"]
        figures[f"{language}_{variant}"] = f
        table_mb = tables[variant] / 2**20
        print(
            f"{language:10s} {variant}: load {f['load_s']:.2f} s, RSS {f['rss_import_mb']:.0f} MB after import, "
            f"{f['rss_load_mb']:.0f} after load ({f['over_runtime_mb']:.0f} MB over the runtime = "
            f"{f['over_runtime_mb'] / table_mb:.2f}x the table's {table_mb:.0f} MiB), {f['rss_call_mb']:.0f} after "
            f"1 recommend ({f['first_ms']:.1f} ms; p50 of {calls} more {f['p50_ms']:.2f} ms), "
            f"{f['rss_batch_mb']:.0f} after recommendBatch of {batch} ({f['batch_ms']:.0f} ms), "
            f"{f['rss_score_mb']:.0f} after the first score ({f['score_ms']:.1f} ms), peak {f['peak_mb']:.0f}"
        )
    for variant in variants:
        node, python = figures[f"node_{variant}"], figures[f"python_{variant}"]
        bytes_path = figures[f"node-bytes_{variant}"]
        against = {key: node[key] / bytes_path[key] for key in ("over_runtime_mb", "peak_mb", "load_s")}
        print(
            f"node {variant}, tables read from the directory / handed over as bytes: RSS over the runtime "
            f"{against['over_runtime_mb']:.2f}x, peak {against['peak_mb']:.2f}x, load time {against['load_s']:.2f}x"
        )
        ratio = {key: node[key] / max(python[key], 1e-9) for key in ("load_s", "over_runtime_mb", "peak_mb", "p50_ms")}
        print(
            f"node / python {variant}: load time {ratio['load_s']:.2f}x, RSS over the runtime "
            f"{ratio['over_runtime_mb']:.2f}x, peak {ratio['peak_mb']:.2f}x, recommend p50 {ratio['p50_ms']:.2f}x, "
            f"batch {node['batch_ms'] / python['batch_ms']:.2f}x"
        )
    print(load_average())
    path = os.environ.get("PYTHONPATH", "")
    args = " ".join(shlex.quote(a) for a in sys.argv)
    print(f"command (in {os.getcwd()}): flock /tmp/s4rec-cpu.lock env PYTHONPATH={path} python {args}")
    if json_out:
        json_out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
