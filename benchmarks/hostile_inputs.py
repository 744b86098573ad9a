"""Hostile inputs against honest ones (issue 27): wall time and peak RSS of each refusal, same run, same machine.

    python benchmarks/hostile_inputs.py [--record-mb 300] [--unbounded-mb 32] [--sdk DIR]

Each case runs in its own process, so that its peak RSS is its own (``wait4``), next to the honest input's:

* ``size``: ``Recommender.load`` of the committed micro artifact (tests/fixtures/known/artifact, 17 KB) with
  ``max_len`` edited to 10^7 in its metadata, against the artifact as exported;
* ``size-js``: the same in the JavaScript SDK (Node, when ``js/node_modules`` is installed), from the bytes;
* ``ann``: a faiss index of 300 items (as ``s4rec-export --ann`` writes it) whose first list declares 10^8 ids,
  read by faiss itself and by ``s4rec.ann.AnnIndex.load`` (when faiss is installed);
* ``line``: ``s4rec-score`` on a gzip text file of 2,000 users whose line 1,001 inflates to ``--record-mb`` MB
  (default bound, 4 Mi characters), against the same users without it; a history as long as the bound allows
  (scored: the worst a record within the bound costs); and, unbounded
  (``--max-line-length 10**12``, what s4rec-score did before), on a record of ``--unbounded-mb`` MB (the
  unbounded run needs gigabytes for a few hundred MB: 5.7 GB and 81 s at 300 MB, then a MemoryError).

``--sdk DIR`` measures another checkout's Python SDK (its ``sdk/`` directory; the JavaScript rows always measure
this checkout's ``js/``), e.g. the code before this change:
``git archive 5b92726 sdk | tar -x -C /tmp/before && python benchmarks/hostile_inputs.py --sdk /tmp/before/sdk``.
Prints the machine's load average before and after: on a shared machine the seconds vary, the RSS does not.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from s4rec.records import DEFAULT_MAX_LINE_LENGTH

ROOT = Path(__file__).resolve().parents[1]
KNOWN = ROOT / "tests" / "fixtures" / "known" / "artifact"

# Each child reports its own peak RSS (Linux's VmHWM) on stderr: the ru_maxrss of a child includes its parent's
# peak, carried over the spawn, so it would put this script's own RSS under every figure.
PEAK = """
import atexit, sys

def _peak():
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print(f"peak-kb {kb}", file=sys.stderr)
    except OSError:
        pass

atexit.register(_peak)
"""

LOAD = (
    PEAK
    + """
import sys
from s4rec import Recommender
try:
    Recommender.load(sys.argv[1])
    print("loaded")
except BaseException as e:
    print(type(e).__name__ + ": " + str(e)[:110])
"""
)

JS_LOAD = """
import { readFileSync } from "node:fs";
process.on("exit", () => {
  try { console.error("peak-kb " + /VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]); } catch {}
});
import { Recommender } from %s;
let outcome = "loaded";
try { await Recommender.load(new Uint8Array(readFileSync(process.argv[1]))); }
catch (e) { outcome = e.constructor.name + ": " + e.message.slice(0, 110); }
console.log(outcome);
"""

ANN = (
    PEAK
    + """
import json, sys
from pathlib import Path
import numpy as np
table = np.zeros((301, 4), np.float32)
try:
    if sys.argv[2] == "faiss":
        import faiss
        index = faiss.read_index(sys.argv[1])
        print("loaded", index.ntotal, "items")
    else:
        from s4rec.ann import AnnIndex
        AnnIndex.load(Path(sys.argv[1]), json.loads(sys.argv[3]), table, 300, None)
        print("loaded")
except BaseException as e:
    print(type(e).__name__ + ": " + str(e)[:110])
"""
)

SCORE = (
    PEAK
    + """
import runpy, sys
sys.argv = ["s4rec-score", *sys.argv[1:]]
runpy.run_module("s4rec.cli", run_name="__main__")
"""
)


def run(command: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, the child's peak RSS in MB (its ``peak-kb`` line; else ``wait4``'s, which includes this
    process's), and the last line it printed (stdout, else stderr)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = process.stdout.read().decode(errors="replace")
    err = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    peaks = [int(line.split()[1]) for line in err.splitlines() if line.startswith("peak-kb ")]
    rss = peaks[-1] / 1024 if peaks else usage.ru_maxrss / 1024
    # ONNX Runtime logs the probe's one-past-the-last-item run of this older micro graph: not an outcome
    text = out.strip() or "\n".join(line for line in err.splitlines() if not line.startswith("peak-kb "))
    lines = [line for line in text.splitlines() if line.strip() and "onnxruntime" not in line]
    return seconds, rss, lines[-1] if lines else f"exit {process.returncode}"


def edited_artifact(target: Path, max_len: int) -> Path:
    """The micro artifact with ``max_len`` edited (its checksums updated: only the graph can disagree)."""
    import onnx

    shutil.copytree(KNOWN, target)
    model = onnx.load(str(target / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "s4rec.metadata":
            prop.value = json.dumps(dict(json.loads(prop.value), max_len=max_len))
    onnx.save(model, str(target / "model.onnx"))
    data = (target / "model.onnx").read_bytes()
    manifest = json.loads((target / "s4rec.json").read_text())
    manifest["variants"]["fp32"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (target / "s4rec.json").write_text(json.dumps(manifest))
    return target


def inflating_input(path: Path, record_mb: int | None, within: int = 0) -> None:
    """2,000 users of 7 items; line 1,001 a history of ``record_mb`` MB (" 1" repeated), or no such line (None);
    then, with ``within``, a history of ``within`` characters (" 2" repeated)."""
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(b"".join(b"%d 1 2 3 4 5 6 7\n" % u for u in range(1000)))
        if record_mb:
            f.write(b"9999")
            piece = b" 1" * (1 << 19)
            for _ in range(record_mb):
                f.write(piece)
            f.write(b"\n")
        if within:
            f.write(b"9998" + b" 2" * ((within - 4) // 2) + b"\n")
        f.write(b"".join(b"%d 1 2 3 4 5 6 7\n" % u for u in range(1000, 2000)))


def row(case: str, what: str, seconds: float, rss: float, outcome: str, baseline_rss: float | None = None) -> None:
    ratio = f"{rss / baseline_rss:5.2f}x" if baseline_rss else "   -  "
    print(f"{case:<8} {what:<44} {seconds:7.2f} s {rss:8.0f} MB {ratio}  {outcome[:100]}")


def json_rows() -> None:
    """s4rec.untrusted.json_depth against json.loads: a format 2 metadata of 10^5 string ids (each with an
    escaped quote and bracket, the scan's worst case), and 20 MB nested 10^7 deep (json.loads cannot read it)."""
    from s4rec.untrusted import json_depth

    ids = [f'sku-{i:08d}"[\\' for i in range(100_000)]
    metadata = json.dumps({"item_ids": ids, "intent_top_items": [list(range(50))] * 128}, separators=(",", ":"))
    deep = "[" * 10**7 + "]" * 10**7
    for what, text in ((f"metadata of 10^5 ids ({len(metadata) / 1e6:.1f} MB)", metadata), ("20 MB, 10^7 deep", deep)):
        started = time.perf_counter()
        depth = json_depth(text)
        scan = time.perf_counter() - started
        parse = "-"
        if depth <= 32:
            started = time.perf_counter()
            json.loads(text)
            parse = f"json.loads {1000 * (time.perf_counter() - started):.1f} ms"
        print(f"{'json':<8} {what:<44} {scan:7.3f} s {'':>11} {'':>6}  depth {depth:,}; {parse}")


@click.command()
@click.option("--record-mb", default=300, show_default=True, help="Size of the inflating record, bounded run.")
@click.option("--unbounded-mb", default=32, show_default=True, help="Size of the record, unbounded run (0: skip).")
@click.option("--sdk", type=click.Path(exists=True, file_okay=False, path_type=Path), default=ROOT / "sdk")
def main(record_mb: int, unbounded_mb: int, sdk: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sdk), str(ROOT / "training"), str(ROOT / "export")])}
    print(f"load average before: {os.getloadavg()}; SDK: {sdk}")
    print(f"{'case':<8} {'input':<44} {'wall':>9} {'peak RSS':>11} {'ratio':>6}  outcome")
    with tempfile.TemporaryDirectory(prefix="s4rec-hostile-") as scratch:
        scratch = Path(scratch)
        # size: a metadata max_len far beyond the graph's
        edited = edited_artifact(scratch / "edited", 10**7)
        base = run([sys.executable, "-c", LOAD, str(KNOWN)], env)
        row("size", "honest artifact (17 KB)", *base)
        row("size", "max_len 10^7 in its metadata", *run([sys.executable, "-c", LOAD, str(edited)], env), base[1])
        node_modules = ROOT / "js" / "node_modules"
        if shutil.which("node") and node_modules.is_dir():
            entry = json.dumps((ROOT / "js" / "src" / "node.js").as_uri())
            command = ["node", "--input-type=module", "-e", JS_LOAD % entry]
            js_base = run([*command, str(KNOWN / "model.onnx")], env)
            row("size-js", "honest artifact (17 KB), JavaScript", *js_base)
            js = run([*command, str(edited / "model.onnx")], env)
            row("size-js", "max_len 10^7 in its metadata, JavaScript", *js, js_base[1])
        # ann: a forged list count in a faiss index
        try:
            import faiss  # noqa: F401
            import numpy as np
        except ImportError:
            print("ann      (faiss not installed: skipped)")
        else:
            sys.path.insert(0, str(ROOT / "sdk"))
            from s4rec.ann import build_index

            path = scratch / "items.faiss"
            table = np.random.default_rng(0).normal(size=(301, 4)).astype(np.float32)
            entry = json.dumps(build_index(table, path, 300, lists=8, threads=1))
            data = bytearray(path.read_bytes())
            at = 4 + 33 + 16 + 4 + 33  # to the first list's id count: the layout s4rec.ann walks (d 4, 8 lists)
            at += 8 + 4 * struct.unpack_from("<Q", data, at)[0] + 1 + 8 + 33 + 24
            at += 8 + 4 * struct.unpack_from("<Q", data, at)[0] + 4 + 32
            struct.pack_into("<Q", data, at, 10**8)  # 800 MB of ids: not 10^9, on a shared machine
            path.write_bytes(bytes(data))
            ann_base = run([sys.executable, "-c", ANN, str(path), "faiss"], env)
            row("ann", "index of 300 whose first list declares 10^8 ids, read by faiss", *ann_base)
            row("ann", "the same, through s4rec.ann", *run([sys.executable, "-c", ANN, str(path), "s4rec", entry], env))
        # json: the depth bound's cost on an honest metadata, and on a deep document (in this process)
        json_rows()
        # line: one record inflating to hundreds of MB
        honest, hostile = scratch / "honest.txt.gz", scratch / "hostile.txt.gz"
        inflating_input(honest, None)
        inflating_input(hostile, record_mb)
        score = [sys.executable, "-c", SCORE, str(KNOWN), "--k", "5"]
        line_base = run([*score, "-i", str(honest), "-o", str(scratch / "a.jsonl")], env)
        row("line", "2,000 users", *line_base)
        outcome = run([*score, "-i", str(hostile), "-o", str(scratch / "b.jsonl")], env)
        row("line", f"+ a record of {record_mb} MB, default bound", *outcome, line_base[1])
        near = scratch / "near.txt.gz"
        inflating_input(near, None, within=DEFAULT_MAX_LINE_LENGTH)
        outcome = run([*score, "-i", str(near), "-o", str(scratch / "e.jsonl")], env)
        row("line", "+ a record of 4 MiB, at the bound (scored)", *outcome, line_base[1])
        if unbounded_mb:
            small = scratch / "small.txt.gz"
            inflating_input(small, unbounded_mb)
            bounded = run([*score, "-i", str(small), "-o", str(scratch / "c.jsonl")], env)
            row("line", f"+ a record of {unbounded_mb} MB, default bound", *bounded, line_base[1])
            unbounded = ["--max-line-length", str(10**12)]
            outcome = run([*score, *unbounded, "-i", str(small), "-o", str(scratch / "d.jsonl")], env)
            row("line", f"+ a record of {unbounded_mb} MB, unbounded", *outcome, line_base[1])
    print(f"load average after: {os.getloadavg()}")
    print("reproduce: python " + shlex.join([str(Path(__file__).relative_to(ROOT)), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
