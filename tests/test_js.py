"""The JavaScript SDK (js/) on onnxruntime-node gives the Python SDK's results, and type-checks.

Freshly exported artifacts (int ids with intents in fp32, int8 and fp16; int ids without intents; mixed
int and non-ASCII string ids; format 3 exports of a 2,000-item model in fp32 and int8, and of the tiny model
with mixed ids and with string ids) are scored by the Python SDK here, written as JSON, and `node --test`
runs js/tests (its own known-value, bad-input and loading tests, plus js/tests/parity.test.js on that JSON).
"""

from __future__ import annotations

import json
import math
import re
import subprocess

import numpy as np
import pytest
from helpers import GRAPH_MISMATCH_CASES, MIXED_IDS, synthetic_histories, with_edited_metadata
from js_helpers import JS, js_env, node_executable

from s4rec import Recommender, UnknownItemError
from s4rec.errors import ArtifactError

# npm, node and exports for parity: slow (the fast tier, `pytest -m "not slow"`, leaves it out; CONTRIBUTING.md)
pytestmark = pytest.mark.slow

UNKNOWN = [999, "zz"]


@pytest.fixture(scope="module")
def node():
    return node_executable()


@pytest.fixture(scope="module")
def large_string_id_artifacts(tmp_path_factory, tiny_checkpoint):
    """Format 3 exports of the tiny model with helpers.MIXED_IDS (ids of mixed types: items.json) and with
    string ids only, non-ASCII among them (items.utf8 and its offsets)."""
    from s4rec_export import export_checkpoint
    from s4rec_train.checkpoint import save_checkpoint

    out = tmp_path_factory.mktemp("large-ids")
    strings = [f"s{i}-é" if i % 3 else f"日本-{i}" for i in range(1, len(MIXED_IDS) + 1)]
    for name, ids in (("mixed", MIXED_IDS), ("strings", strings)):
        save_checkpoint(dict(tiny_checkpoint[1], item_ids=ids), out / f"{name}.pt")
        export_checkpoint(out / f"{name}.pt", out / name, top_k=10, large_format=True)
    return out / "mixed", out / "strings"


def plain(values) -> list:
    """A list of the SDK's ids or indices (format 3 keeps them in numpy arrays) as JSON can write it."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def as_list(recommendations) -> dict:
    """A Python Recommendations as js/tests/parity.test.js reads it (NaN scores as null)."""
    return {
        "items": recommendations.item_ids(),
        "scores": [None if math.isnan(s) else s for _, s in recommendations],
        "unknownItems": list(recommendations.unknown_items),
        "fallback": recommendations.fallback,
        "unknownCandidates": list(recommendations.unknown_candidates),
    }


def as_scores(scores) -> dict:
    """A Python Scores as js/tests/parity.test.js reads it (NaN as null)."""
    return {
        "scores": [None if math.isnan(s) else s for s in scores],
        "unknownItems": list(scores.unknown_items),
        "unknownHistory": list(scores.unknown_history),
        "fallback": scores.fallback,
    }


def python_options(options: dict) -> dict:
    """JavaScript option names -> the Python SDK's keyword arguments."""
    names = {"excludeSeen": "exclude_seen", "batchSize": "batch_size", "perIntent": "per_intent"}
    return {names.get(key, key): value for key, value in options.items()}


def parity_cases(rec: Recommender, histories: list[list]) -> list[dict]:
    """Calls and the Python SDK's answers: every method, with unknown ids, empty, over-long (max_len is 10,
    histories reach 25) and excluded items."""
    cases = []
    ids = plain(rec.metadata.item_ids)

    def recommend(history, **options):
        expected = as_list(rec.recommend(history, **python_options(options)))
        cases.append({"call": "recommend", "history": history, "options": options, "expected": expected})

    for history in histories:
        recommend(history, k=10)
    for history in histories[:20]:
        recommend(history, k=rec.top_k, excludeSeen=False)
        recommend([*history[:2], *UNKNOWN, *history[2:]], k=5, exclude=[ids[0], ids[3], "not-an-item"])
    recommend([], k=5)
    recommend(UNKNOWN, k=5, exclude=[ids[rec.metadata.popular_items[0] - 1]])
    for options in ({"k": 5}, {"k": 7, "excludeSeen": False, "exclude": [ids[1]], "batchSize": 7}):
        expected = [as_list(r) for r in rec.recommend_batch(histories, **python_options(options))]
        cases.append({"call": "recommendBatch", "histories": histories, "options": options, "expected": expected})
    for history in [*histories, []]:
        cases.append({"call": "embed", "history": history, "expected": rec.embed(history).tolist()})
    if rec.metadata.num_intents:
        for history in [*histories, []]:
            expected = [list(p) for p in rec.intents(history, top=3)]
            cases.append({"call": "intents", "history": history, "options": {"top": 3}, "expected": expected})
        for intent in range(rec.metadata.num_intents):
            expected = rec.items_for_intent(intent, k=5)
            cases.append({"call": "itemsForIntent", "intent": intent, "k": 5, "expected": expected})
    cases.extend(item_call_cases(rec, histories, ids))
    with pytest.raises(UnknownItemError) as caught:
        rec.recommend([ids[0], *UNKNOWN], unknown="error")
    cases.append(
        {
            "call": "recommend",
            "history": [ids[0], *UNKNOWN],
            "options": {"unknown": "error"},
            "error": "UnknownItemError",
            "errorItems": list(caught.value.items),
        }
    )
    return cases


def item_call_cases(rec: Recommender, histories: list[list], ids: list) -> list[dict]:
    """Issue 23's calls and the Python SDK's answers: candidates (unknown ids, duplicates, empty, fewer than k
    left, with an empty history), per_intent (alone, with candidates), score, similar_items, version, and their
    errors."""
    cases = []
    n = len(ids)
    some = [ids[i] for i in range(0, n, max(1, n // 12))][:12]  # a dozen items across the catalogue
    candidates = [*some, some[0], *UNKNOWN]

    def recommend(history, **options):
        expected = as_list(rec.recommend(history, **python_options(options)))
        cases.append({"call": "recommend", "history": history, "options": options, "expected": expected})

    for history in histories[:15]:
        recommend(history, k=5, candidates=candidates)
        recommend(history, k=min(rec.top_k, 20), candidates=[*history[:3], *some[:4]], excludeSeen=True)
        expected = as_scores(rec.score(history, candidates))
        cases.append({"call": "score", "history": history, "items": candidates, "expected": expected})
    recommend(histories[0], k=5, candidates=[])
    recommend([], k=5, candidates=candidates)
    recommend(UNKNOWN, k=3, candidates=some[:5], exclude=[some[0]])
    cases.append({"call": "score", "history": [], "items": some[:3], "expected": as_scores(rec.score([], some[:3]))})
    for query in (ids[0], ids[n // 2], [ids[1], ids[2], UNKNOWN[0]], some[:4]):
        for options in ({"k": 5}, {"k": 4, "exclude": some[:3], "candidates": candidates}):
            got = rec.similar_items(query, **python_options(options))
            cases.append({"call": "similarItems", "items": query, "options": options, "expected": as_list(got)})
    if rec.metadata.num_intents:
        for history in histories[:15]:
            for per_intent in (1, 2):
                recommend(history, k=min(rec.top_k, 10), perIntent=per_intent)
            recommend(history, k=5, perIntent=1, candidates=candidates)
        recommend([], k=5, perIntent=1)
        recommend([], k=4, perIntent=1, candidates=some)
    else:
        options = {"k": 3, "perIntent": 1}
        cases.append({"call": "recommend", "history": histories[0], "options": options, "error": "S4RecError"})
    cases.append({"call": "version", "expected": rec.version})
    missing = ["not-an-item", -5]  # ids no artifact of these tests has
    with pytest.raises(UnknownItemError) as caught:
        rec.similar_items(missing, k=3)
    cases.append(
        {
            "call": "similarItems",
            "items": missing,
            "options": {"k": 3},
            "error": "UnknownItemError",
            "errorItems": list(caught.value.items),
        }
    )
    with pytest.raises(UnknownItemError) as caught:
        rec.recommend(histories[0], k=3, candidates=candidates, unknown="error")
    cases.append(
        {
            "call": "recommend",
            "history": histories[0],
            "options": {"k": 3, "candidates": candidates, "unknown": "error"},
            "error": "UnknownItemError",
            "errorItems": list(caught.value.items),
        }
    )
    return cases


def parity_artifact(name: str, source, variant: str = "fp32", atol: float = 1e-5) -> dict:
    rec = Recommender.load(source, variant=variant)
    m = rec.metadata
    ids = plain(m.item_ids)
    histories = [[ids[i - 1] for i in h] for h in synthetic_histories(num_items=m.num_items, count=40)]
    metadata = {
        "numItems": m.num_items,
        "maxLen": m.max_len,
        "topK": m.top_k,
        "numIntents": m.num_intents,
        "embeddingDim": m.embedding_dim,
        "variant": m.variant,
        "itemIds": ids,
        "itemIdsSha256": m.item_ids_sha256,
        "popularItems": plain(m.popular_items),
        "formatVersion": m.format_version,
    }
    options = {"variant": variant}
    return {"name": name, "source": str(source), "options": options, "atol": atol, "metadata": metadata,
            "cases": parity_cases(rec, histories)}  # fmt: skip


def run_node_tests(node: str, parity_file=None) -> subprocess.CompletedProcess:
    env = js_env()
    if parity_file is not None:
        env["S4REC_PARITY"] = str(parity_file)
    files = sorted(str(p.relative_to(JS)) for p in (JS / "tests").glob("*.test.js"))
    return subprocess.run([node, "--test", *files], cwd=JS, env=env, capture_output=True, text=True, timeout=300)


def test_node_tests_give_the_python_sdks_results(
    node, artifact, plain_artifact, mixed_id_artifact, large_artifacts, large_string_id_artifacts, tmp_path
):
    directory = artifact[0]
    large = large_artifacts[1]
    parity = {
        "artifacts": [
            parity_artifact("intents fp32", directory),
            parity_artifact("intents fp16", directory, "fp16", atol=1e-4),
            # int8 quantizes activations per batch on the fly; both runtimes do it the same way.
            parity_artifact("intents int8", directory, "int8", atol=1e-4),
            # ORT format: onnxruntime-node runs it; its metadata and item vectors are model.onnx's.
            parity_artifact("intents mobile (ORT format)", directory, "mobile"),
            parity_artifact("int ids, no intents, a single file", plain_artifact[0] / "model.onnx"),
            parity_artifact("mixed int and string ids", mixed_id_artifact),
            parity_artifact("format 3, 2,000 items, fp32", large),
            parity_artifact("format 3, 2,000 items, int8", large, "int8", atol=1e-4),
            parity_artifact("format 3, mixed ids (items.json)", large_string_id_artifacts[0]),
            parity_artifact("format 3, string ids (items.utf8)", large_string_id_artifacts[1]),
        ],
        "refused": [
            # The faiss index the Python SDK reads with retrieval="ann" (large has one): exact scoring only.
            {
                "source": str(large),
                "options": {"retrieval": "ann"},
                "error": "RangeError",
                "message": "available in the Python SDK only",
            },
        ],  # fmt: skip
    }
    # Metadata that disagrees with its graph: refused at load with the Python SDK's own words.
    for case, (_, changes, _) in enumerate(GRAPH_MISMATCH_CASES):
        edited = with_edited_metadata(plain_artifact[0], tmp_path / f"edited{case}", **changes)
        with pytest.raises(ArtifactError) as caught:
            Recommender.load(edited)
        words = str(caught.value).split(": ", 1)[1]  # after the file's name
        assert words.startswith("the metadata does not match the graph: "), words
        parity["refused"].append({"source": str(edited), "error": "ArtifactError", "message": words})
    parity_file = tmp_path / "parity.json"
    parity_file.write_text(json.dumps(parity, allow_nan=False, ensure_ascii=False), encoding="utf-8")
    done = run_node_tests(node, parity_file)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", done.stdout, re.MULTILINE))
    assert counts.get("fail") == "0" and counts.get("skipped") == "0" and counts.get("cancelled") == "0", counts
    assert re.search(r"^ok \d+ - parity with the Python SDK$", done.stdout, re.MULTILINE), output[-5000:]
    for entry in [*parity["artifacts"], *parity["refused"]]:
        name = entry.get("name") or f"refused: {entry['source']}"
        assert re.search(rf"^ +ok \d+ - {re.escape(name)}", done.stdout, re.MULTILINE), f"{name} did not pass"


def test_the_javascript_sources_type_check(node):
    """tsc --noEmit with checkJs and strict over js/src and js/tests (their JSDoc types)."""
    done = subprocess.run(
        [node, str(JS / "node_modules" / "typescript" / "bin" / "tsc"), "-p", str(JS)],
        cwd=JS,
        env=js_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
