"""A small HTTP recommendation service: the standard library's http.server plus the s4rec SDK, nothing else.

    python examples/http_service.py ARTIFACT [--host 127.0.0.1] [--port 8000] [--threads 1] [--watch SECONDS]

The artifact is loaded once at start; every request thread shares it (ONNX Runtime sessions are safe to run
concurrently). Endpoints (every answer names the artifact ``version`` it came from):

    GET  /health      -> {"status": "ok", "version": ..., "num_items": ..., "max_len": ..., "swaps": ...}
    POST /recommend   {"history": [item, ...], "k": 10, "exclude_seen": true, "exclude": [item, ...],
                       "candidates": [item, ...], "per_intent": 2}
                      -> {"items": [...], "scores": [...], "version": ...}
    POST /similar     {"items": [item, ...], "k": 10, "exclude": [...], "candidates": [...]}
                      -> {"items": [...], "scores": [...], "version": ...}
    POST /score       {"history": [item, ...], "items": [item, ...]}
                      -> {"scores": [..., null for an unknown item], "version": ...}

``history`` is the user's own item ids, oldest first; only it (``items`` for /similar and /score) is required.
A request that is not valid JSON, misses a required field or has a value of the wrong type is answered 400
with {"error": "what is wrong. what to do."}; an unknown path 404; a body over 1 MB 413. Try it:

    curl -s localhost:8000/recommend -d '{"history": [1, 2, 3], "k": 5}'

**Live model swap.** Publish a new artifact at ARTIFACT's path (``s4rec-export model.pt -o ARTIFACT --force``
writes it beside and swaps it in with one atomic rename), then send the service ``SIGHUP`` (``kill -HUP PID``),
or start it with ``--watch SECONDS`` to look for a new artifact that often. The new artifact is loaded and
checked in a background thread while requests go on being answered by the old one; then one assignment makes
it the current one. Each request takes the current recommender once and answers entirely from it, so no
request fails or mixes two models, and its ``version`` says which one answered. A load that fails (a
half-copied directory, a damaged file) leaves the old model serving and is tried again at the next signal or
poll. ``benchmarks/http_swap.py`` measures it under load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


FIELDS = {
    "/recommend": ("history", {"history", "k", "exclude_seen", "exclude", "candidates", "per_intent"}),
    "/similar": ("items", {"items", "k", "exclude", "candidates"}),
    "/score": ("history", {"history", "items"}),
}


def parse_request(body: bytes, path: str = "/recommend") -> dict:
    """Validate a request body for ``path`` and return the keyword arguments of the SDK call."""
    try:
        request = json.loads(body)
    except ValueError as e:
        raise BadRequest(f'the body is not valid JSON ({e}). Send a JSON object like {{"history": [1, 2]}}.') from None
    if not isinstance(request, dict):
        raise BadRequest(f'the body must be a JSON object, got {type(request).__name__}. Send {{"history": [...]}}.')
    required, allowed = FIELDS[path]
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}. Use {', '.join(sorted(allowed))}.")
    for name in (required, "items") if path == "/score" else (required,):
        if name not in request:
            raise BadRequest(f'"{name}" is missing. Send item ids, oldest first: {{"{name}": [1, 2]}}.')
    for name in ("history", "exclude", "candidates", "items"):
        value = request.get(name)
        if name in request and (not isinstance(value, list) or not all(_is_id(item) for item in value)):
            if not (name == "candidates" and value is None):
                raise BadRequest(f'"{name}" must be a list of item ids (integers or strings), got {value!r:.100}.')
    k = request.get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise BadRequest(f'"k" must be an integer from 1 to {MAX_K}, got {k!r}.')
    exclude_seen = request.get("exclude_seen", True)
    if not isinstance(exclude_seen, bool):
        raise BadRequest(f'"exclude_seen" must be true or false, got {exclude_seen!r}.')
    per_intent = request.get("per_intent")
    if per_intent is not None and (not isinstance(per_intent, int) or isinstance(per_intent, bool) or per_intent < 1):
        raise BadRequest(f'"per_intent" must be an integer >= 1 (or null), got {per_intent!r}.')
    if path == "/score":
        return {"history": request["history"], "items": request["items"]}
    if path == "/similar":
        return {"items": request["items"], "k": k, "exclude": request.get("exclude", []),
                "candidates": request.get("candidates")}  # fmt: skip
    return {
        "history": request["history"], "k": k, "exclude_seen": exclude_seen, "exclude": request.get("exclude", []),
        "candidates": request.get("candidates"), "per_intent": per_intent,
    }  # fmt: skip


class Models:
    """The recommender the service answers with, and its replacement by a newly published artifact.

    ``current`` is read once per request; :meth:`reload` loads the artifact at ``path`` (in the calling thread,
    while ``current`` keeps answering) and makes it ``current`` with one assignment, which Python makes atomic
    for every reader. Reloads are serialised; one whose artifact has not changed since the last load (its
    manifest's bytes, or the file's size and time) loads nothing."""

    def __init__(self, path: str | Path, load_options: dict | None = None, log=lambda message: None) -> None:
        self.path, self.options, self.log = Path(path), dict(load_options or {}), log
        self._lock = threading.Lock()
        self.swaps = 0
        self.signature = self._signature()
        self.current = Recommender.load(self.path, **self.options)

    def _signature(self) -> str | None:
        """What identifies the published artifact (None while the path is missing, e.g. mid-swap)."""
        try:
            if self.path.is_dir():
                return hashlib.sha256((self.path / "s4rec.json").read_bytes()).hexdigest()
            stat = self.path.stat()
            return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            return None

    @classmethod
    def fixed(cls, recommender: Recommender) -> Models:
        """One recommender, never reloaded (``make_server`` with a Recommender)."""
        models = cls.__new__(cls)
        models.path, models.options, models.log = recommender.path, {}, lambda message: None
        models._lock, models.swaps, models.signature, models.current = threading.Lock(), 0, None, recommender
        return models

    def reload(self) -> bool:
        """Load the artifact now at ``path`` and swap it in; False when it is unchanged or cannot be loaded (the
        current model keeps serving; the reason is logged)."""
        with self._lock:
            signature = self._signature()
            if signature is None or signature == self.signature:
                return False
            try:
                new = Recommender.load(self.path, **self.options)
            except (S4RecError, OSError) as e:
                self.log(f"reload of {self.path} failed, still serving version {self.current.version}: {e}")
                return False
            old, self.current, self.signature = self.current, new, signature
            self.swaps += 1
            self.log(f"now serving version {new.version} (was {old.version})")
            return True

    def watch(self, every: float, stop: threading.Event, wake: threading.Event) -> None:
        """Reload every ``every`` seconds (None: only when ``wake`` is set, by SIGHUP) until ``stop``."""
        while not stop.is_set():
            wake.wait(every)
            if stop.is_set():
                return
            wake.clear()
            self.reload()


class RecommendationHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are separate writes; don't let Nagle delay the second
    models: Models  # set by make_server
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
        recommender = self.models.current
        meta = recommender.metadata
        self._reply(HTTPStatus.OK, {"status": "ok", "version": recommender.version, "num_items": meta.num_items,
                                    "max_len": meta.max_len, "swaps": self.models.swaps})  # fmt: skip

    def do_POST(self) -> None:  # noqa: N802
        recommender = self.models.current  # once: the whole request is answered by this model
        try:
            if self.path not in FIELDS:
                raise BadRequest(f"no such path {self.path!r}. POST to {', '.join(FIELDS)}.", HTTPStatus.NOT_FOUND)
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
            arguments = parse_request(self.rfile.read(int(length)), self.path)
            try:
                payload = answer(recommender, self.path, arguments)
            except (S4RecError, TypeError, ValueError) as e:
                raise BadRequest(str(e)) from None
        except BadRequest as e:
            return self._reply(e.status, {"error": str(e), "version": recommender.version})
        self._reply(HTTPStatus.OK, payload)

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def answer(recommender: Recommender, path: str, arguments: dict) -> dict:
    """The JSON answer of one request, from one recommender."""
    if path == "/score":
        scores = recommender.score(**arguments)
        return {"scores": [None if s != s else float(s) for s in scores], "version": recommender.version}
    if path == "/similar":
        found = recommender.similar_items(**arguments)
    else:
        found = recommender.recommend(**arguments)
    scores = [None if s != s else float(s) for _, s in found]  # NaN: the popular-items fallback has no score
    return {"items": found.item_ids(), "scores": scores, "version": recommender.version}


def make_server(models: Models | Recommender, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True):
    """A ThreadingHTTPServer answering with ``models`` (a :class:`Models`, or one fixed recommender; port 0 picks a
    free port: ``server.server_port``)."""
    if isinstance(models, Recommender):
        models = Models.fixed(models)
    handler = type("Handler", (RecommendationHandler,), {"models": models, "quiet": quiet})
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
    parser.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                        help="look for a newly published artifact this often (default: only on SIGHUP)")  # fmt: skip
    parser.add_argument("--log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        models = Models(args.artifact, {"threads": args.threads, "variant": args.variant}, log=log)
    except S4RecError as e:
        sys.exit(f"error: {e}")
    stop, wake = threading.Event(), threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: wake.set())
    watcher = threading.Thread(target=models.watch, args=(args.watch, stop, wake), name="reload", daemon=True)
    watcher.start()
    server = make_server(models, args.host, args.port, quiet=not args.log)
    print(f"serving {args.artifact} (version {models.current.version}) on http://{args.host}:{server.server_port}"
          "/recommend", flush=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        wake.set()
        server.server_close()


if __name__ == "__main__":
    main()
