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
