"""Node and the JavaScript package's dependencies for tests/test_js.py and tests/test_web.py.

These tests fail (they do not skip) when node or the npm dependencies are missing, with the commands that
install them: a skipped JavaScript SDK test would let a broken JavaScript SDK pass CI unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "js"
INSTALL_HINT = (
    "Install node and npm (Debian: apt-get install -y nodejs npm), then the JavaScript dependencies with "
    "`ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix js` (the variable skips onnxruntime-node's download of "
    "CUDA binaries; its CPU binaries are in the package)."
)


def js_env() -> dict[str, str]:
    """The environment for npm and node: onnxruntime-node's install script must not download anything."""
    return {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}


def node_executable() -> str:
    """Path of node, with js/node_modules installed (by `npm ci` when absent); pytest.fail with how to."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed. {INSTALL_HINT}", pytrace=False)
    if not (JS / "node_modules" / "onnxruntime-node").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"js/node_modules is missing and npm is not installed. {INSTALL_HINT}", pytrace=False)
        done = subprocess.run(
            [npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"],
            env=js_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"`npm ci --prefix js` failed:\n{done.stdout}\n{done.stderr}\n{INSTALL_HINT}", pytrace=False)
    return node
