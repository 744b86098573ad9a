"""Serve the example page, the JavaScript SDK, onnxruntime-web and an artifact on 127.0.0.1.

    python examples/web/serve.py ARTIFACT_DIR [--port 8000]      # then open http://127.0.0.1:8000/

No build step: the page's import map points at the files as they are in the repository.

    /            examples/web/ (index.html, app.js)
    /s4rec/      js/src/ (the SDK's ES modules)
    /ort/        js/node_modules/onnxruntime-web/dist/ (`ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix js`)
    /artifact/   ARTIFACT_DIR (written by `s4rec-export model.pt -o ARTIFACT_DIR`)

Every response carries Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy:
require-corp, which make the page cross-origin isolated: onnxruntime-web needs that (SharedArrayBuffer) to
run on more than one WASM thread. tests/test_web.py and benchmarks/web_latency.py use :func:`make_server`.
"""

from __future__ import annotations

import argparse
import functools
import posixpath
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ORT_DIST = ROOT / "js" / "node_modules" / "onnxruntime-web" / "dist"
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}


def local_path(mounts: dict[str, Path], url_path: str) -> Path:
    """The file a URL path names: the longest matching mount prefix, nothing above it ("/a/../../b" is "/b")."""
    path = posixpath.normpath(unquote(urlsplit(url_path).path))
    for prefix, directory in sorted(mounts.items(), key=lambda mount: -len(mount[0])):
        mount = prefix.rstrip("/")  # "" for "/", which takes every path
        if path == mount or path.startswith(mount + "/"):
            return directory.joinpath(path[len(mount) :].lstrip("/"))
    raise ValueError(f"no mount for {url_path!r} (the mounts must include '/')")


class Handler(SimpleHTTPRequestHandler):
    """Files from the server's mounted directories, with the isolation headers."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path: str) -> str:
        return str(local_path(self.server.mounts, path))

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    """``mounts``: URL prefix -> directory."""

    daemon_threads = True
    verbose = False
    mounts: dict[str, Path] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> Server:
        """Serve in a background thread (stop with :meth:`shutdown` and :meth:`server_close`)."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def make_server(artifact: str | Path, port: int = 0, host: str = "127.0.0.1") -> Server:
    """A server for the page and ``artifact`` on ``host`` (loopback only by default; port 0: any free one)."""
    if not (ORT_DIST / "ort.wasm.min.mjs").is_file():
        raise FileNotFoundError(
            f"{ORT_DIST}: onnxruntime-web is not installed. Run `ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix js`."
        )
    server = Server((host, port), functools.partial(Handler, directory=str(HERE)))
    server.mounts = {
        "/artifact/": Path(artifact).resolve(),
        "/s4rec/": ROOT / "js" / "src",
        "/ort/": ORT_DIST,
        "/": HERE,
    }
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", help="an artifact directory written by s4rec-export")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    args = parser.parse_args()
    server = make_server(args.artifact, args.port, args.host)
    server.verbose = True
    print(f"serving {server.url} (artifact {args.artifact}); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
