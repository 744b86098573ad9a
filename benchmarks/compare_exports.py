"""Two checkouts of s4rec export the same checkpoints: are the artifacts byte for byte the same?

    mkdir /tmp/old && git archive <commit> | tar -x -C /tmp/old
    python benchmarks/compare_exports.py /tmp/old . --work /tmp/compare-exports

For a refactoring of the exporter that must not change what it writes. Four exports per tree, each in its
own process (``PYTHONPATH=TREE/sdk:TREE/training:TREE/export``):

* ``format2``: tests/fixtures/known/model.pt with every variant (int8, fp16, mobile);
* ``format3``: the same checkpoint in format 3 (forced) with the int8 table (as tests/fixtures/known/make.py);
* ``format3-ann``: the same with the ANN index too;
* ``format3-grown``: a checkpoint grown from it to 100,001 items (benchmarks/large_checkpoint.py, seed 0),
  one past the size from which format 3 is the default, with int8 and the ANN index.

Two values in an artifact are not functions of the checkpoint: the export's time (``created_at``) and the ANN
index's build time (``build_seconds``). Both are pinned in the export processes (the clock those two read is
replaced by a constant), so every other byte must match, except in the mobile variant: ONNX Runtime's ORT-format
converter does not write the same bytes twice for one input (two conversions of one model.onnx, same tree:
~1,800 of 37,880 bytes differ, same length), and its operator config names the converter's scratch directory in
a comment. Those two files count as equivalent when the ORT files give bitwise the same outputs on random
histories and the configs the same lines but comments. An ONNX file counts as equivalent when its graph is byte
for byte the same and its metadata the same JSON object with the keys in another order (format 3's int8 file
lists the ANN index before its own tables since the index is built with the other sidecar files); the manifest
(``s4rec.json``) when it is the same but for the checksums of files found equivalent. Prints, per export and
file, the SHA-256 of each tree's file and the verdict; exits 1 on any difference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

KNOWN_CHECKPOINT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "known" / "model.pt"
GROWN_ITEMS = 100_001

EXPORT = r"""
import datetime, json, sys, types
from pathlib import Path
import torch
import s4rec.ann
import s4rec_export.metadata
from s4rec_export import export_checkpoint

# The two clocks an artifact records (see the module docstring): pinned, so that the bytes depend on the
# checkpoint and the code alone.
FIXED = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
clock = types.SimpleNamespace(now=lambda tz=None: FIXED)
s4rec_export.metadata.dt = types.SimpleNamespace(datetime=clock, timezone=datetime.timezone)
s4rec.ann.time = types.SimpleNamespace(perf_counter=lambda: 0.0)
torch.manual_seed(0)
checkpoint, output, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
export_checkpoint(checkpoint, output, **options)
"""

CASES = {
    "format2": ("known", dict(top_k=8, quantize="int8", fp16=True, mobile=True)),
    "format3": ("known", dict(top_k=8, large_format=True, quantize="int8")),
    "format3-ann": ("known", dict(top_k=8, large_format=True, quantize="int8", ann=True, ann_threads=1)),
    "format3-grown": ("grown", dict(top_k=20, quantize="int8", ann=True, ann_threads=1)),
}


def tree_env(tree: Path) -> dict:
    paths = [str(tree / "sdk"), str(tree / "training"), str(tree / "export")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def equivalent(file: str, old: Path, new: Path, equivalents: set[str]) -> str | None:
    """Why two files of different bytes are the same artifact (module docstring), or None."""
    if file.endswith(".config"):
        lines = [[line for line in (d / file).read_text().splitlines() if not line.startswith("#")] for d in (old, new)]
        return "same but the comments" if lines[0] == lines[1] else None
    if file.endswith(".ort"):
        return "same outputs" if same_outputs(old / file, new / file) else None
    if file.endswith(".onnx"):
        return same_but_key_order(old / file, new / file)
    if file == "s4rec.json":
        manifests = [json.loads((d / file).read_text()) for d in (old, new)]
        for manifest in manifests:
            for entry in [*manifest.get("variants", {}).values(), *manifest.get("files", {}).values()]:
                if entry.get("file") in equivalents:
                    entry.pop("sha256", None)
        return f"same but the sha256 of {sorted(equivalents)}" if manifests[0] == manifests[1] else None
    return None


def same_but_key_order(a: Path, b: Path) -> str | None:
    """The same graph and the same metadata as JSON objects, written with the keys in another order."""
    import onnx

    models = [onnx.load(str(p), load_external_data=False) for p in (a, b)]
    props = [{p.key: p.value for p in m.metadata_props} for m in models]
    values = [{k: json.loads(v) if k == "s4rec.metadata" else v for k, v in p.items()} for p in props]
    for model in models:
        del model.metadata_props[:]
    if values[0] != values[1] or models[0].SerializeToString() != models[1].SerializeToString():
        return None
    orders = [list(v["s4rec.metadata"].get("sidecars", {})) for v in values]
    detail = f"; sidecars {orders[0]} vs {orders[1]}" if orders[0] != orders[1] else ""
    return f"same graph, same metadata object, keys in another order{detail}"


def same_outputs(a: Path, b: Path) -> bool:
    """Both ranking graphs give bitwise the same outputs on 64 random histories (and exclusions, k = 5)."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (a, b)]
    meta = json.loads(sessions[0].get_modelmeta().custom_metadata_map["s4rec.metadata"])
    rng = np.random.default_rng(0)
    feeds = {
        "history": rng.integers(0, meta["num_items"] + 1, (64, meta["max_len"])),
        "exclude": rng.integers(0, meta["num_items"] + 1, (64, 2)),
        "k": np.array(min(5, meta["top_k"]), dtype=np.int64),
    }
    outputs = [s.run(None, feeds) for s in sessions]
    return all(x.tobytes() == y.tobytes() for x, y in zip(*outputs, strict=True))


def grow(tree: Path, output: Path) -> None:
    """The grown checkpoint, made once by ``tree``'s benchmarks/large_checkpoint.py."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from large_checkpoint import large_checkpoint; "
        "from s4rec_train.checkpoint import save_checkpoint; from pathlib import Path; "
        "save_checkpoint(large_checkpoint(Path(sys.argv[2]), int(sys.argv[3])), sys.argv[4])"
    )
    args = [sys.executable, "-c", code, str(tree / "benchmarks"), str(KNOWN_CHECKPOINT), str(GROWN_ITEMS), str(output)]
    subprocess.run(args, env=tree_env(tree), check=True)


@click.command()
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--work", type=click.Path(path_type=Path), required=True, help="Scratch directory (replaced).")
@click.option("--case", "cases", multiple=True, type=click.Choice(list(CASES)), help="Only these exports.")
def main(old: Path, new: Path, work: Path, cases: tuple[str, ...]) -> None:
    old, new = old.resolve(), new.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    checkpoints = {"known": KNOWN_CHECKPOINT}
    selected = cases or tuple(CASES)
    if any(CASES[case][0] == "grown" for case in selected):
        checkpoints["grown"] = work / "grown.pt"
        grow(new, checkpoints["grown"])
    load = os.getloadavg()
    differences = 0
    for case in selected:
        source, options = CASES[case]
        outputs = {}
        for name, tree in (("old", old), ("new", new)):
            outputs[name] = work / name / case
            args = [sys.executable, "-c", EXPORT, str(checkpoints[source]), str(outputs[name]), json.dumps(options)]
            subprocess.run(args, env=tree_env(tree), check=True, cwd=tree)
        # the manifest last: its verdict depends on which files were found equivalent
        files = sorted({p.name for d in outputs.values() for p in d.iterdir()}, key=lambda f: (f == "s4rec.json", f))
        click.echo(f"{case}: {checkpoints[source].name} {json.dumps(options)}")
        equivalents: set[str] = set()
        for file in files:
            hashes = [sha256(d / file) if (d / file).exists() else "(missing)" for d in outputs.values()]
            verdict = "same" if hashes[0] == hashes[1] else None
            if verdict is None and "(missing)" not in hashes:
                reason = equivalent(file, outputs["old"], outputs["new"], equivalents)
                if reason is not None:
                    verdict = f"equivalent ({reason})"
                    equivalents.add(file)
            differences += verdict is None
            size = (outputs["new"] / file).stat().st_size if (outputs["new"] / file).exists() else 0
            shown = hashes[0][:16] if hashes[0] == hashes[1] else f"{hashes[0][:16]} vs {hashes[1][:16]}"
            click.echo(f"  {file:32s} {size:>11,} bytes  {verdict or 'DIFFERENT'}  {shown}")
    click.echo(f"load average before the exports: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    click.echo(f"command: python benchmarks/compare_exports.py {old} {new} --work {work}")
    if differences:
        click.echo(f"{differences} file(s) differ")
        sys.exit(1)
    click.echo("every file is byte-identical or equivalent as stated")


if __name__ == "__main__":
    main()
