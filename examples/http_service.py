"""A small HTTP recommendation service: the standard library's http.server plus the s4rec SDK, nothing else.

    python examples/http_service.py ARTIFACT [--host 127.0.0.1] [--port 8000] [--threads 1]

The artifact is loaded once at start; every request thread shares it (ONNX Runtime sessions are safe to run
concurrently). Endpoints:

    GET  /health      -> {"status": "ok", "num_items": ..., "max_len": ...}
    POST /recommend   {"history": [item, ...], "k": 10, "exclude_seen": true, "exclude": [item, ...]}
                      -> {"items": [...], "scores": [...]}

``history`` is the user's own item ids, oldest first; only it is required. A request that is not valid JSON,
misses ``history`` or has a value of the wrong type is answered 400 with {"error": "what is wrong. what to
do."}; an unknown path 404; a body over 1 MB 413. Try it:

    curl -s localhost:8000/recommend -d '{"history": [1, 2, 3], "k": 5}'
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from s4rec import Recommender, S4RecError

MAX_BODY_BYTES = 1 << 20
MAX_K = 1000


class BadRequest(Exception):
    """A request the service cannot answer; the message goes back to the client with the status."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def _is_id(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value != "")


def parse_request(body: bytes) -> dict:
    """Validate a /recommend body and return the keyword arguments for ``Recommender.recommend``."""
    try:
        request = json.loads(body)
    except ValueError as e:
        raise BadRequest(f'the body is not valid JSON ({e}). Send a JSON object like {{"history": [1, 2]}}.') from None
    if not isinstance(request, dict):
        raise BadRequest(f'the body must be a JSON object, got {type(request).__name__}. Send {{"history": [...]}}.')
    unknown = sorted(set(request) - {"history", "k", "exclude_seen", "exclude"})
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}. Use history, k, exclude_seen and exclude.")
    if "history" not in request:
        raise BadRequest('"history" is missing. Send the user\'s item ids, oldest first: {"history": [1, 2]}.')
    history, exclude = request["history"], request.get("exclude", [])
    for name, value in (("history", history), ("exclude", exclude)):
        if not isinstance(value, list) or not all(_is_id(item) for item in value):
            raise BadRequest(f'"{name}" must be a list of item ids (integers or strings), got {value!r:.100}.')
    k = request.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise BadRequest(f'"k" must be an integer from 1 to {MAX_K}, got {k!r}.')
    exclude_seen = request.get("exclude_seen", True)
    if not isinstance(exclude_seen, bool):
        raise BadRequest(f'"exclude_seen" must be true or false, got {exclude_seen!r}.')
    return {"history": history, "k": k, "exclude_seen": exclude_seen, "exclude": exclude}


class RecommendationHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are separate writes; don't let Nagle delay the second
    recommender: Recommender  # set by make_server
    quiet = True

    def _reply(self, status: HTTPStatus, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/health":
            return self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path!r}. Use /recommend."})
        meta = self.recommender.metadata
        self._reply(HTTPStatus.OK, {"status": "ok", "num_items": meta.num_items, "max_len": meta.max_len})

    def do_POST(self) -> None:  # noqa: N802
        try:
            if self.path != "/recommend":
                raise BadRequest(f"no such path {self.path!r}. POST to /recommend.", HTTPStatus.NOT_FOUND)
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise BadRequest(
                    "Content-Length is missing. Send the JSON body with its length.", HTTPStatus.LENGTH_REQUIRED
                )
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True  # the body is not read; the connection cannot be reused
                raise BadRequest(
                    f"the body is {length} bytes, over {MAX_BODY_BYTES}. Send one user's history.",
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                )
            arguments = parse_request(self.rfile.read(int(length)))
            try:
                recommendations = self.recommender.recommend(**arguments)
            except (S4RecError, TypeError, ValueError) as e:
                raise BadRequest(str(e)) from None
        except BadRequest as e:
            return self._reply(e.status, {"error": str(e)})
        self._reply(
            HTTPStatus.OK,
            {"items": [item for item, _ in recommendations], "scores": [float(s) for _, s in recommendations]},
        )

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True):
    """A ThreadingHTTPServer answering with ``recommender`` (port 0 picks a free port: ``server.server_port``)."""
    handler = type("Handler", (RecommendationHandler,), {"recommender": recommender, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", help="artifact directory or .onnx file written by s4rec-export")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per request (default 1)")
    parser.add_argument("--variant", default="fp32", help="fp32, int8 or fp16")
    parser.add_argument("--log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    try:
        recommender = Recommender.load(args.artifact, threads=args.threads, variant=args.variant)
    except S4RecError as e:
        sys.exit(f"error: {e}")
    server = make_server(recommender, args.host, args.port, quiet=not args.log)
    print(f"serving {args.artifact} on http://{args.host}:{server.server_port}/recommend", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
