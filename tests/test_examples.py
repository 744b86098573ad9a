"""The examples as a user runs them, on tiny data: HTTP service, Beauty-style batch scoring, quickstart."""

import http.client
import importlib.util
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import TINY_MODEL
from score_helpers import read_jsonl, score_inputs

from s4rec import Recommender
from s4rec_train.data import synthetic_interactions, write_sequences

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(plain_artifact, tmp_path_factory):
    return score_inputs(plain_artifact[0], tmp_path_factory)


@pytest.fixture(scope="module")
def service(tiny):
    recommender = Recommender.load(tiny / "artifact")
    server = load_example("http_service").make_server(recommender, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recommender, server.server_port
    server.shutdown()
    server.server_close()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body, headers or {})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload


def test_http_service_recommends_like_the_sdk(service):
    recommender, port = service
    status, payload = request(port, "POST", "/recommend", json.dumps({"history": [1, 2, 3], "k": 4}))
    assert status == 200
    expected = recommender.recommend([1, 2, 3], k=4)
    assert payload["items"] == [item for item, _ in expected]
    assert payload["scores"] == pytest.approx([s for _, s in expected])
    status, payload = request(port, "POST", "/recommend", json.dumps({"history": [1], "exclude": [2], "k": 3}))
    assert status == 200 and 2 not in payload["items"] and 1 not in payload["items"]
    status, payload = request(port, "GET", "/health")
    assert status == 200 and payload["status"] == "ok" and payload["num_items"] == 40


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"k": 3}', '"history" is missing'),
        (b'{"history": "1 2"}', '"history" must be a list of item ids'),
        (b'{"history": [1, null]}', '"history" must be a list of item ids'),
        (b'{"history": [1], "k": 0}', '"k" must be an integer from 1'),
        (b'{"history": [1], "k": 10000}', '"k" must be an integer from 1'),
        (b'{"history": [1], "k": 50}', "k must be in 1..40"),  # the SDK's own check: the artifact's top_k
        (b'{"history": [1], "exclude_seen": "yes"}', '"exclude_seen" must be true or false'),
        (b'{"history": [1], "user": 7}', "unknown field(s) ['user']"),
    ],
)
def test_http_service_answers_bad_requests_400_with_a_clear_message(service, body, message):
    status, payload = request(service[1], "POST", "/recommend", body)
    assert status == 400 and message in payload["error"], payload


def test_http_service_unknown_path_is_404_and_keeps_serving(service):
    assert request(service[1], "POST", "/nope", b"{}")[0] == 404
    assert request(service[1], "GET", "/nope")[0] == 404
    assert request(service[1], "POST", "/recommend", b'{"history": []}')[0] == 200


@pytest.mark.slow  # trains, exports and scores
def test_batch_beauty_example_trains_exports_and_scores(tiny, tmp_path):
    result = CliRunner().invoke(
        load_example("batch_beauty").main,
        ["--data", str(tiny / "users.txt"), "--epochs", "1", "--workdir", str(tmp_path), "--threads", "1",
         "--model", json.dumps(TINY_MODEL), "--k", "5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scored 120 users" in result.output and "user 0: [" in result.output
    rows = read_jsonl(tmp_path / "recs.jsonl")
    assert len(rows) == 120 and all(len(r["items"]) == 5 for r in rows)
    assert (tmp_path / "artifact" / "model.onnx").exists()


@pytest.mark.slow  # trains, exports and scores
def test_quickstart_trains_exports_scores_and_prints_recommendations(tmp_path):
    data = tmp_path / "data.txt"
    write_sequences(synthetic_interactions(num_users=150, num_items=30, seed=2), data)
    result = CliRunner().invoke(
        load_example("quickstart").main,
        ["--data", str(data), "--epochs", "1", "--workdir", str(tmp_path / "run"), "--users", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "2/3 exporting" in result.output and "scored 150 users" in result.output
    assert result.output.count(": history ...") == 2 and len(read_jsonl(tmp_path / "run" / "recs.jsonl")) == 150
    artifact = str((tmp_path / "run" / "artifact").resolve())
    assert f'Recommender.load("{artifact}")' in result.output and "main intent" in result.output


def test_http_service_answers_every_call_with_its_version(artifact):
    recommender = Recommender.load(artifact[0])
    server = load_example("http_service").make_server(recommender, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    try:
        body = {"history": [1, 2, 3], "k": 4, "candidates": list(range(10, 30)), "per_intent": 1}
        status, payload = request(port, "POST", "/recommend", json.dumps(body))
        want = recommender.recommend([1, 2, 3], k=4, candidates=list(range(10, 30)), per_intent=1)
        assert status == 200 and payload["items"] == want.item_ids() and payload["version"] == recommender.version
        status, payload = request(port, "POST", "/similar", json.dumps({"items": [5], "k": 3, "exclude": [6]}))
        assert status == 200 and payload["items"] == recommender.similar_items(5, k=3, exclude=[6]).item_ids()
        status, payload = request(port, "POST", "/score", json.dumps({"history": [1, 2], "items": [3, "x", 4]}))
        assert status == 200 and payload["scores"][1] is None
        assert payload["scores"][0] == pytest.approx(recommender.score([1, 2], [3])[0])
        status, payload = request(port, "GET", "/health")
        assert payload["version"] == recommender.version and payload["swaps"] == 0
        status, payload = request(port, "POST", "/similar", json.dumps({"items": ["nope"]}))
        assert status == 400 and "no item of the query is known" in payload["error"]
        status, payload = request(port, "POST", "/recommend", json.dumps({"history": [1], "per_intent": 0}))
        assert status == 400 and '"per_intent" must be an integer >= 1' in payload["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_http_service_swaps_models_without_a_failed_or_mixed_request(artifact, plain_artifact, tmp_path):
    """Requests run while the published artifact is replaced (the atomic swap s4rec-export --force does) and
    reloaded: every answer is 200 and is exactly what the model its version names gives."""
    import shutil

    from s4rec.files import publish_directory

    example = load_example("http_service")
    sources = [artifact[0], plain_artifact[0]]
    expected = {}
    histories = [[1, 2, 3], [4], [5, 6, 7, 8], [9, 10], []]
    for source in sources:
        rec = Recommender.load(source)
        expected[rec.version] = [rec.recommend(h, k=5).item_ids() for h in histories]
    assert len(expected) == 2
    published = tmp_path / "current"
    shutil.copytree(sources[0], published)
    models = example.Models(published)
    server = example.make_server(models, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers, stop = [], threading.Event()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        i = offset
        while not stop.is_set():
            h = i % len(histories)
            conn.request("POST", "/recommend", json.dumps({"history": histories[h], "k": 5}))
            response = conn.getresponse()
            answers.append((response.status, h, json.loads(response.read())))
            i += 1
        conn.close()

    clients = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for c in clients:
        c.start()
    try:
        for swap in range(6):
            work = tmp_path / f"next-{swap}"
            shutil.copytree(sources[(swap + 1) % 2], work)
            publish_directory(work, published)
            assert models.reload()
            assert not models.reload()  # unchanged since: nothing loaded
    finally:
        stop.set()
        for c in clients:
            c.join()
        server.shutdown()
        server.server_close()
    versions = {payload["version"] for _, _, payload in answers}
    assert models.swaps == 6 and versions == set(expected)
    assert all(status == 200 for status, _, _ in answers)
    assert all(payload["items"] == expected[payload["version"]][h] for _, h, payload in answers)
