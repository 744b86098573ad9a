"""The example web page (examples/web) in headless Chromium gives the Python SDK's results.

The page, the JavaScript SDK, onnxruntime-web (WASM) and the artifact are served by examples/web/serve.py on
127.0.0.1 with the COOP/COEP headers; Chromium is driven over its DevTools pipe (examples/web/headless.py)
and reaches nothing but 127.0.0.1. Correctness only: benchmarks/web_latency.py measures speed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
from helpers import synthetic_histories
from js_helpers import node_executable

from s4rec import Recommender

WEB = Path(__file__).resolve().parents[1] / "examples" / "web"
pytestmark = pytest.mark.slow  # headless Chromium (CONTRIBUTING.md: the test tiers)


def load_module(name: str):
    spec = importlib.util.spec_from_file_location(f"web_{name}", WEB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = load_module("serve")
headless = load_module("headless")


@pytest.fixture(scope="module")
def browser():
    node_executable()  # js/node_modules (onnxruntime-web) installed, or fail saying how
    if headless.find_chromium() is None:
        pytest.fail(f"Chromium is not installed. {headless.INSTALL_HINT}", pytrace=False)
    with headless.Chromium() as chromium:
        yield chromium


@pytest.fixture
def served(request):
    """serve(artifact_dir) -> the page's URL; the servers stop after the test."""
    servers = []

    def start(artifact: Path) -> str:
        server = serve.make_server(artifact).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def open_page(browser, url: str):
    page = browser.open(url)
    status = page.evaluate("window.s4recDemo.ready.then(() => 'ready', e => e.name + ': ' + e.message)")
    assert status == "ready", f"{status}; console: {browser.console()}"
    page.evaluate("window.s4recDemo.pending")
    return page


def typed_recommendations(page, history_text: str, k: int) -> tuple[list[tuple], str]:
    """Type a history and k into the form, press the button, read the list and the report off the page."""
    page.type_text("#history", history_text)
    page.type_text("#k", str(k))
    return page.evaluate(
        """document.querySelector("#recommend").click(),
        window.s4recDemo.pending.then(() => [
          [...document.querySelectorAll("#results li")]
            .map(li => [JSON.parse(li.dataset.item), Number(li.dataset.score)]),
          document.querySelector("#report").textContent,
        ])"""
    )


def assert_same(got: list, want, what: str = "", atol: float = 1e-5) -> None:
    """Items equal, scores within ``atol``; the page's NaN scores (the popular fallback) arrive as JSON null."""
    assert [item for item, _ in got] == want.item_ids(), what
    scores = [math.nan if s is None else s for _, s in got]
    assert scores == pytest.approx([s for _, s in want], abs=atol, nan_ok=True), what


def test_page_recommends_as_the_python_sdk_for_a_typed_history(browser, served, artifact):
    directory = artifact[0]
    page = open_page(browser, served(directory))
    assert page.evaluate("window.crossOriginIsolated") is True  # the COOP/COEP headers arrived
    assert "40 items, fp32" in page.evaluate("document.querySelector('#status').textContent")
    rec = Recommender.load(directory)
    got, report = typed_recommendations(page, "3, 4 999 5", 7)
    assert_same(got, rec.recommend([3, 4, 999, 5], k=7))
    assert report == "Ignored unknown ids: 999."
    got, report = typed_recommendations(page, "", 4)
    assert_same(got, rec.recommend([], k=4))
    assert report == "No known item in this history: the most popular items."
    got, report = typed_recommendations(page, "[1, true]", 3)
    assert got == [] and report == "TypeError: item ids must be integers or strings, got boolean true."


SCORE_MANY = """window.s4recDemo.ready.then(async rec => {
  const out = [];
  for (const h of HISTORIES) out.push({
    top: (await rec.recommend(h, { k: 10 })).map(r => [r.item, r.score]),
    unseen: (await rec.recommend(h, { k: 5, excludeSeen: false, exclude: [h[0] ?? 1, 7] })).map(r => [r.item, r.score]),
    embedding: Array.from(await rec.embed(h)),
    intents: (await rec.intents(h, { top: 3 })).map(i => [i.intent, i.probability]),
  });
  return out;
})"""


def test_page_scores_many_histories_as_the_python_sdk(browser, served, artifact):
    """fp32 on WASM: recommend (incl. over-long histories and exclusions), embed and intents equal Python's."""
    histories = synthetic_histories(count=30)
    rec = Recommender.load(artifact[0])
    page = open_page(browser, served(artifact[0]))
    got = page.evaluate(SCORE_MANY.replace("HISTORIES", json.dumps(histories)))
    for history, result in zip(histories, got):
        assert_same(result["top"], rec.recommend(history, k=10), str(history))
        unseen = rec.recommend(history, k=5, exclude_seen=False, exclude=[(history or [1])[0], 7])
        assert_same(result["unseen"], unseen, str(history))
        assert result["embedding"] == pytest.approx(rec.embed(history).tolist(), abs=1e-5), history
        want = rec.intents(history, top=3)
        assert [i for i, _ in result["intents"]] == [i for i, _ in want], history
        assert [p for _, p in result["intents"]] == pytest.approx([p for _, p in want], abs=1e-5), history


def test_page_int8_stays_close_to_the_python_sdks_int8(browser, served, artifact):
    """int8 on WASM is not bit-identical: onnxruntime-web's integer kernels round differently from the x86
    ones (onnxruntime-node matches Python exactly, tests/test_js.py). Measured on this model: 54 of 60 top-10
    lists identical, scores within 0.01. Here: mean top-10 overlap >= 0.9, scores of shared items within 0.03."""
    histories = [h for h in synthetic_histories(count=30) if h]
    rec = Recommender.load(artifact[0], variant="int8")
    page = open_page(browser, served(artifact[0]) + "?variant=int8")
    assert "int8" in page.evaluate("document.querySelector('#status').textContent")
    got = page.evaluate(SCORE_MANY.replace("HISTORIES", json.dumps(histories)))
    overlaps = []
    for history, result in zip(histories, got):
        want = dict(rec.recommend(history, k=10))
        overlaps.append(len(want.keys() & {item for item, _ in result["top"]}) / 10)
        for item, score in result["top"]:
            if item in want:
                assert score == pytest.approx(want[item], abs=0.03), (history, item)
    assert sum(overlaps) / len(overlaps) >= 0.9, overlaps


def test_page_reads_a_format_3_artifact_as_the_python_sdk(browser, served, large_artifacts):
    """Format 3 on WASM: the lists from the sidecar files (fetched next to the model), the item tables given
    to onnxruntime-web as external data, embed and intents from the encoder graph. fp32 equals the Python
    SDK's exact scoring; int8 loads (its WASM kernels round differently, as for format 2)."""
    directory = large_artifacts[1]
    rec = Recommender.load(directory)
    ids = rec.metadata.item_ids.tolist()
    histories = [[ids[i - 1] for i in h] for h in synthetic_histories(num_items=rec.metadata.num_items, count=20)]
    page = open_page(browser, served(directory))
    assert "2,000 items, fp32" in page.evaluate("document.querySelector('#status').textContent")
    got = page.evaluate(SCORE_MANY.replace("HISTORIES", json.dumps(histories)))
    for history, result in zip(histories, got):
        assert_same(result["top"], rec.recommend(history, k=10), str(history))
        unseen = rec.recommend(history, k=5, exclude_seen=False, exclude=[(history or [1])[0], 7])
        assert_same(result["unseen"], unseen, str(history))
        assert result["embedding"] == pytest.approx(rec.embed(history).tolist(), abs=1e-5), history
        want = rec.intents(history, top=3)
        assert [i for i, _ in result["intents"]] == [i for i, _ in want], history
    # The showcase's panels on format 3: the item vectors and intents from item_table.npy and item_intents.npy.
    shown = page.evaluate(READ_PANELS)
    first = ids[:3]
    assert_same(shown["diverse"], rec.recommend(first, k=10, per_intent=2), "format 3 diverse")
    assert_same(shown["similar"], rec.similar_items(first[-1], k=5, exclude=first), "format 3 similar")
    int8 = open_page(browser, served(directory) + "?variant=int8")
    assert "2,000 items, int8" in int8.evaluate("document.querySelector('#status').textContent")


def test_page_reads_string_ids_and_checks_their_checksum(browser, served, mixed_id_artifact):
    """Non-ASCII ids pass the item-vocabulary checksum in the browser (WebCrypto) and are typed as JSON."""
    page = open_page(browser, served(mixed_id_artifact))
    rec = Recommender.load(mixed_id_artifact)
    history = ["café", "😀", 5, "5", "日本", "missing"]
    got, report = typed_recommendations(page, json.dumps(history, ensure_ascii=False), 6)
    assert_same(got, rec.recommend(history, k=6))
    assert report == 'Ignored unknown ids: "missing".'


def test_page_reports_a_tampered_artifact(browser, served, plain_artifact, tmp_path):
    broken = tmp_path / "artifact"
    shutil.copytree(plain_artifact[0], broken)
    with open(broken / "model.onnx", "ab") as f:
        f.write(b"\0")
    page = browser.open(served(broken))
    status = page.evaluate("window.s4recDemo.ready.then(() => 'loaded', e => e.name + ': ' + e.message)")
    assert status.startswith("ChecksumError: ") and "does not match the manifest" in status
    assert page.evaluate("document.querySelector('#status').textContent") == status


READ_PANELS = """window.s4recDemo.pending.then(() => {
  const list = id => [...document.querySelectorAll(`#${id} li`)]
    .map(li => [JSON.parse(li.dataset.item), Number(li.dataset.score)]);
  const intentsOf = id => [...document.querySelectorAll(`#${id} li`)].map(li => Number(li.dataset.intent));
  const text = id => document.querySelector(`#${id}`).textContent;
  return {
    results: list("results"), diverse: list("diverse"), similar: list("similar"),
    diverseIntents: intentsOf("diverse"),
    intents: [...document.querySelectorAll("#intents li")]
      .map(li => [Number(li.dataset.intent), Number(li.dataset.probability)]),
    timings: window.s4recDemo.timings, timingsText: text("timings"), report: text("report"),
    similarTitle: text("similar-title"), history: document.querySelector("#history").value,
  };
})"""


def test_page_showcase_plays_as_the_python_sdk(browser, served, artifact, tmp_path):
    """The showcase a person plays with: the plain and the intent-diverse list, the history's top intents,
    "because you viewed X" for a clicked item, a candidates box and each call's time; clicking an item appends
    it to the history and re-ranks. Every panel equals the Python SDK's call; a screenshot of the page after
    a click and a candidates set is written to the test's output folder (pytest's tmp_path, printed)."""
    directory = artifact[0]
    rec = Recommender.load(directory)
    page = open_page(browser, served(directory) + "?history=3,4,5")
    history = [3, 4, 5]
    state = page.evaluate(READ_PANELS)
    assert state["history"] == "3,4,5"  # as the query parameter gave it
    assert_same(state["results"], rec.recommend(history, k=10), "plain")
    assert_same(state["diverse"], rec.recommend(history, k=10, per_intent=2), "diverse")
    assert max(state["diverseIntents"].count(i) for i in state["diverseIntents"]) <= 2
    want = rec.intents(history, top=3)
    assert [i for i, _ in state["intents"]] == [i for i, _ in want]
    assert [p for _, p in state["intents"]] == pytest.approx([p for _, p in want], abs=1e-5)
    assert state["similarTitle"] == "Because you viewed 5"
    assert_same(state["similar"], rec.similar_items(5, k=5, exclude=history), "similar")
    assert set(state["timings"]) == {"recommend", "diverse", "intents", "similar"}
    assert all(ms >= 0 for ms in state["timings"].values())
    assert "recommend " in state["timingsText"] and " ms" in state["timingsText"]

    # Click the second recommended item: it joins the history, the lists re-rank, its similar items show.
    clicked = state["results"][1][0]
    page.evaluate('document.querySelectorAll("#results li")[1].click()')
    state = page.evaluate(READ_PANELS)
    history.append(clicked)
    assert state["history"] == ", ".join(map(str, history))
    assert_same(state["results"], rec.recommend(history, k=10), "plain after the click")
    assert_same(state["diverse"], rec.recommend(history, k=10, per_intent=2), "diverse after the click")
    assert state["similarTitle"] == f"Because you viewed {clicked}"
    assert_same(state["similar"], rec.similar_items(clicked, k=5, exclude=history), "similar after the click")

    # A candidates box: both lists rank only those ids (an unknown one is reported).
    candidates = [1, 2, 6, 7, 8, 9, 10, 11, 12, 999]
    page.type_text("#candidates", ", ".join(map(str, candidates)))
    page.evaluate('document.querySelector("#recommend").click()')
    state = page.evaluate(READ_PANELS)
    assert_same(state["results"], rec.recommend(history, k=10, candidates=candidates), "candidates")
    want = rec.recommend(history, k=10, candidates=candidates, per_intent=2)
    assert_same(state["diverse"], want, "diverse candidates")
    assert state["report"] == "Ignored unknown candidates: 999."
    shot = page.screenshot(tmp_path / "showcase.png")
    print(f"screenshot: {shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_page_loads_the_mobile_variant(browser, served, artifact):
    """onnxruntime-web runs the ORT-format file (the mobile variant); its metadata and item vectors are the
    fp32 model.onnx's (js/src/sources.js)."""
    directory = artifact[0]
    rec = Recommender.load(directory, variant="mobile")
    page = open_page(browser, served(directory) + "?variant=mobile&history=3,4,5")
    state = page.evaluate(READ_PANELS)
    assert_same(state["results"], rec.recommend([3, 4, 5], k=10), "mobile")
    assert_same(state["similar"], rec.similar_items(5, k=5, exclude=[3, 4, 5]), "mobile similar")
