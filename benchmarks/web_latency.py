"""The JavaScript SDK in the browser (onnxruntime-web, WASM, headless Chromium) on a Beauty-sized artifact:
single-user latency next to the Python SDK's in the same run, time to first recommendation, and the bytes a
page downloads, for fp32 and int8.

    flock /tmp/s4rec-cpu.lock env PYTHONPATH=sdk:training:export python benchmarks/web_latency.py \\
        [--artifact ARTIFACT_DIR | --checkpoint CHECKPOINT.pt]

ARTIFACT_DIR needs the fp32 and int8 variants (`s4rec-export CHECKPOINT.pt -o DIR --quantize int8`). Without
either option a synthetic checkpoint of Beauty's shape (12,101 items, d 64, 2 blocks, max_len 50, random
weights: a forward pass costs the same trained or not) is built and exported to a temporary directory.
Needs `ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix js` and Chromium (`apt-get install -y chromium`).

* latency: the example page (examples/web) served on 127.0.0.1 with COOP/COEP, one onnxruntime-web WASM
  thread (--threads); in the page, `await rec.recommend(history, {k: 10})` per Beauty test history (all but
  the last item of a user), --calls of them after --warmup others, timed with performance.now() (5 us
  resolution in a cross-origin isolated page), and the Python SDK's `recommend(history, k=10)` on the same
  histories, 1 thread, in this process: the two alternate every --chunk calls, --rounds passes, so that a
  busy machine slows both alike; the ratio is also given as the median of the chunks' ratios.
* first recommendation: a fresh Chromium (empty profile: no HTTP or compiled-code cache) opens the page; ms
  from navigation start to the first list on screen (the page's own clock), median of --cold runs. Served from
  this machine, so it is download-free: compile the WASM, fetch and check the artifact, build the session, rank.
* bytes: the files that page fetched (DevTools network events), raw and gzip -9, by group.
* agreement: the page's top 10 against the Python SDK's for --agreement histories (identical lists, overlap).
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "web"))

from headless import Chromium  # noqa: E402
from serve import local_path, make_server  # noqa: E402

from s4rec import Recommender  # noqa: E402

VARIANTS = ("fp32", "int8")


def reproduce_command() -> str:
    args = " ".join(shlex.quote(a) for a in sys.argv)
    path = os.environ.get("PYTHONPATH", "")
    return f"command (in {os.getcwd()}): flock /tmp/s4rec-cpu.lock env PYTHONPATH={path} python {args}"


def synthetic_artifact(directory: Path) -> Path:
    """A Beauty-shaped checkpoint with random weights, exported with --quantize int8 (needs the [export] extra)."""
    import torch

    from s4rec_export import export_checkpoint
    from s4rec_train.checkpoint import new_checkpoint, save_checkpoint, with_weights
    from s4rec_train.model import ModelConfig, SASRec

    torch.manual_seed(0)
    config = ModelConfig(num_items=12_101, max_len=50, dim=64, layers=2, heads=2)
    item_ids = list(range(1, config.num_items + 1))  # Beauty's own ids are 1..12,101
    counts = np.r_[0, np.random.default_rng(0).integers(1, 100, config.num_items)]
    training = {"note": "synthetic Beauty-shaped checkpoint, benchmarks/web_latency.py"}
    checkpoint = with_weights(new_checkpoint(config, item_ids, counts, training), SASRec(config).state_dict())
    save_checkpoint(checkpoint, directory / "synthetic.pt")
    export_checkpoint(directory / "synthetic.pt", directory / "artifact", quantize="int8")
    return directory / "artifact"


def test_histories(data: Path, count: int, known: set) -> list[list]:
    """``count`` random Beauty test inputs (all but the last item of a user), seed 0, in the artifact's ids."""
    from s4rec_train.data import read_sequences

    interactions = read_sequences(data)
    ids = interactions.item_ids
    histories = [[ids[i - 1] for i in seq[:-1]] for seq in interactions.sequences]
    histories = [h for h in histories if any(item in known for item in h)]
    chosen = np.random.default_rng(0).choice(len(histories), size=min(count, len(histories)), replace=False)
    return [histories[i] for i in chosen]


def page_url(server, variant: str, threads: int) -> str:
    return f"{server.url}?variant={variant}&threads={threads}"


def browser_times(page, histories: list, warmup: list = ()) -> list[float]:
    """Per-call ms of ``await rec.recommend(h, {k: 10})`` in the page, after the warm-up calls."""
    script = """window.s4recDemo.ready.then(async rec => {
      const histories = HISTORIES, warmup = WARMUP;
      for (const h of warmup) await rec.recommend(h, { k: 10 });
      const times = new Float64Array(histories.length);
      for (let i = 0; i < histories.length; i++) {
        const start = performance.now();
        await rec.recommend(histories[i], { k: 10 });
        times[i] = performance.now() - start;
      }
      return Array.from(times);
    })"""
    script = script.replace("HISTORIES", json.dumps(histories)).replace("WARMUP", json.dumps(list(warmup)))
    return page.evaluate(script, timeout=600)


def python_times(rec: Recommender, histories: list, warmup: list = ()) -> list[float]:
    for h in warmup:
        rec.recommend(h, k=10)
    out = []
    for h in histories:
        start = time.perf_counter_ns()
        rec.recommend(h, k=10)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def interleaved(page, rec: Recommender, histories: list, warmup: list, rounds: int, chunk: int) -> dict:
    """Browser and Python timed on the same histories, alternating every ``chunk`` calls, so that the load of
    a shared machine hits both alike; the ratio is the median of the chunks' mean ratios."""
    browser_times(page, [], warmup)
    python_times(rec, [], warmup)
    web, python, ratios = [], [], []
    for _ in range(rounds):
        for start in range(0, len(histories), chunk):
            part = histories[start : start + chunk]
            web_part, python_part = browser_times(page, part), python_times(rec, part)
            web += web_part
            python += python_part
            ratios.append(float(np.mean(web_part) / np.mean(python_part)))
    return {
        "web_mean": float(np.mean(web)), "web_p50": float(np.median(web)),
        "python_mean": float(np.mean(python)), "python_p50": float(np.median(python)),
        "ratio_mean": float(np.mean(web) / np.mean(python)), "ratio_median_of_chunks": statistics.median(ratios),
        "ratio_p50": float(np.median(web) / np.median(python)), "chunk_ratios": ratios, "calls": len(web),
    }  # fmt: skip


def cold_start(server, variant: str, threads: int) -> tuple[float, float, dict[str, int]]:
    """ms from navigation start to the recommender loaded and to the first recommendations on screen, in a
    fresh browser, and the URLs it fetched."""
    with Chromium() as browser:
        page = browser.open(page_url(server, variant, threads), network=True)
        loaded, first = page.evaluate(
            "window.s4recDemo.ready.then(() => window.s4recDemo.pending)"
            ".then(() => [window.s4recDemo.loadedMs, window.s4recDemo.firstRecommendationMs])"
        )
        return loaded, first, page.requests()


def download_sizes(server, fetched: dict[str, int]) -> dict[str, dict]:
    """Raw and gzip -9 bytes of the files the page fetched (found ones only), by group."""
    groups: dict[str, dict] = {}
    for url in fetched:
        path = urlsplit(url).path
        local = local_path(server.mounts, path)
        if local.is_dir():
            local = local / "index.html"
        if not local.is_file():
            continue  # the sidecar probe (404)
        group = "onnxruntime-web" if path.startswith("/ort/") else "s4rec SDK" if path.startswith("/s4rec/") else (
            "artifact" if path.startswith("/artifact/") else "page")  # fmt: skip
        data = local.read_bytes()
        entry = groups.setdefault(group, {"files": {}, "raw": 0, "gzip": 0})
        packed = len(gzip.compress(data, compresslevel=9, mtime=0))
        entry["files"][path] = {"raw": len(data), "gzip": packed}
        entry["raw"] += len(data)
        entry["gzip"] += packed
    return groups


def agreement(page, rec: Recommender, histories: list) -> dict:
    got = page.evaluate(
        "window.s4recDemo.ready.then(async rec => { const out = []; for (const h of HISTORIES) "
        "out.push((await rec.recommend(h, { k: 10 })).itemIds()); return out; })".replace(
            "HISTORIES", json.dumps(histories)
        ),
        timeout=600,
    )
    want = [rec.recommend(h, k=10).item_ids() for h in histories]
    identical = float(np.mean([g == w for g, w in zip(got, want)]))
    overlap = float(np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)]))
    return {"identical_top10": identical, "overlap_at_10": overlap, "histories": len(histories)}


def report_cold_start(server, variant: str, threads: int, cold: int) -> dict:
    """Time to first recommendation (median of ``cold`` fresh browsers) and download sizes, printed."""
    loaded, first, fetched = [], [], {}
    for _ in range(cold):
        loaded_ms, first_ms, fetched = cold_start(server, variant, threads)
        loaded.append(loaded_ms)
        first.append(first_ms)
    sizes = download_sizes(server, fetched)
    total = {"raw": sum(g["raw"] for g in sizes.values()), "gzip": sum(g["gzip"] for g in sizes.values())}
    print(
        f"\n{variant}: time to first recommendation (fresh headless Chromium, page served from this machine): "
        f"median {statistics.median(first):.0f} ms of {', '.join(f'{x:.0f}' for x in first)} "
        f"(recommender loaded at {statistics.median(loaded):.0f} ms)"
    )
    print(f"{variant}: bytes the page downloads: {total['raw']:,} raw, {total['gzip']:,} gzip -9")
    for group, entry in sizes.items():
        names = (f"{Path(p).name or 'index.html'} {f['raw']:,} ({f['gzip']:,} gz)" for p, f in entry["files"].items())
        files = f"{len(entry['files'])} ES modules" if group == "s4rec SDK" else ", ".join(names)
        print(f"  {group}: {entry['raw']:,} raw, {entry['gzip']:,} gzip: {files}")
    return {
        "first_recommendation_ms": statistics.median(first), "first_recommendation_ms_runs": first,
        "loaded_ms": statistics.median(loaded), "download": sizes, "download_total": total,
    }  # fmt: skip


def report_latency(
    page, recs: dict, variant: str, timed: list, warm: list, rounds: int, chunk: int, count: int
) -> dict:
    """Browser vs Python latency and top-10 agreement on ``count`` histories, printed."""
    rec = recs[variant]
    figures = interleaved(page, rec, timed, warm, rounds, chunk)
    spread = f"{min(figures['chunk_ratios']):.2f}-{max(figures['chunk_ratios']):.2f}x"
    print(
        f"\n{variant}: browser recommend(k=10) mean {figures['web_mean']:.3f} ms, p50 {figures['web_p50']:.3f} ms; "
        f"Python SDK recommend(k=10) mean {figures['python_mean']:.3f} ms, p50 {figures['python_p50']:.3f} ms "
        f"({figures['calls']} calls each, alternating every {chunk}); browser/Python: mean "
        f"{figures['ratio_mean']:.2f}x, p50 {figures['ratio_p50']:.2f}x, median of chunk ratios "
        f"{figures['ratio_median_of_chunks']:.2f}x ({spread})"
    )
    a = figures["agreement"] = agreement(page, rec, timed[:count])
    print(
        f"{variant}: top 10 identical to the Python SDK's for {a['identical_top10']:.1%} of {a['histories']} "
        f"histories, overlap@10 {a['overlap_at_10']:.3f}"
    )
    if variant != "fp32":
        b = figures["agreement_with_python_fp32"] = agreement(page, recs["fp32"], timed[:count])
        same = [rec.recommend(h, k=10).item_ids() == recs["fp32"].recommend(h, k=10).item_ids() for h in timed[:count]]
        figures["python_identical_to_fp32"] = python_same = float(np.mean(same))
        print(
            f"{variant}: browser {variant} vs Python fp32: identical {b['identical_top10']:.1%}, overlap@10 "
            f"{b['overlap_at_10']:.3f} (Python {variant} vs Python fp32: identical {python_same:.1%})"
        )
    return figures


@click.command()
@click.option("--artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="export this one")
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=ROOT / "examples/data/beauty.txt.gz")
@click.option("--calls", default=3000, show_default=True, help="timed recommend calls per round")
@click.option("--warmup", default=300, show_default=True, help="untimed calls before them")
@click.option("--rounds", default=2, show_default=True, help="passes over the timed histories")
@click.option("--chunk", default=250, show_default=True, help="calls before switching between browser and Python")
@click.option("--cold", default=3, show_default=True, help="fresh browsers for the time to first recommendation")
@click.option("--agreement", "agree_count", default=1000, show_default=True, help="histories for top-10 agreement")
@click.option("--threads", default=1, show_default=True, help="onnxruntime-web WASM threads")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path))
def main(artifact, checkpoint, json_out, **settings):
    """Browser latency, time to first recommendation and download size of the JavaScript SDK."""
    with tempfile.TemporaryDirectory(prefix="s4rec-web-") as scratch:  # an export made here is removed after
        source = "given"
        if artifact is None and checkpoint is not None:
            from s4rec_export import export_checkpoint

            artifact, source = Path(scratch) / "artifact", f"export of {checkpoint}"
            export_checkpoint(checkpoint, artifact, quantize="int8")
        elif artifact is None:
            artifact = synthetic_artifact(Path(scratch))
            source = "synthetic Beauty-shaped checkpoint (random weights)"
        figures = measure(artifact, source, **settings)
    print(reproduce_command())
    if json_out:
        json_out.write_text(json.dumps(figures, indent=1) + "\n")


def measure(artifact, source, data, calls, warmup, rounds, chunk, cold, agree_count, threads) -> dict:
    recs = {v: Recommender.load(artifact, variant=v) for v in VARIANTS}
    sample = test_histories(data, calls + warmup, set(recs["fp32"].metadata.item_ids))
    timed, warm = sample[:calls], sample[calls:]
    lengths = [len(h) for h in timed]
    print(f"artifact {artifact} ({source}): {recs['fp32'].metadata.num_items} items, max_len {recs['fp32'].max_len}")
    print(
        f"{len(timed)} timed test histories of {data.name} (mean length {np.mean(lengths):.1f}), "
        f"{len(warm)} more to warm up"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    figures: dict = {"artifact": str(artifact), "source": source, "calls": len(timed), "threads": threads}
    server = make_server(artifact).start()
    try:
        for variant in VARIANTS:
            figures[f"cold_{variant}"] = report_cold_start(server, variant, threads, cold)
        with Chromium() as browser:
            for variant in VARIANTS:
                page = browser.open(page_url(server, variant, threads))
                figures[f"latency_{variant}"] = report_latency(
                    page, recs, variant, timed, warm, rounds, chunk, agree_count
                )
                page.send("Page.close")
    finally:
        server.shutdown()
        server.server_close()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return figures


if __name__ == "__main__":
    main()
