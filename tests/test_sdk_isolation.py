"""The SDK never needs torch or onnx: proven in a subprocess, in the source, and by a clean install."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KNOWN_ARTIFACT = ROOT / "tests" / "fixtures" / "known" / "artifact"
FORBIDDEN = {"torch", "onnx", "onnxscript", "s4rec_train", "s4rec_export"}

SCRIPT = f"""
import sys
from s4rec import Recommender
rec = Recommender.load({str(KNOWN_ARTIFACT)!r})
assert rec.recommend([1, 2, 3], k=3) and rec.recommend_batch([[1], [], [2, 3]], k=2)
assert rec.embed([4]).shape == (8,) and rec.intents([4], top=2)
loaded = sorted(name for name in {sorted(FORBIDDEN)!r} if name in sys.modules)
print("loaded:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_sdk_source_imports_no_torch_or_onnx():
    for path in (ROOT / "sdk" / "s4rec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_recommend_in_a_subprocess_loads_neither_torch_nor_onnx():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sdk"))
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded: []" in result.stdout


@pytest.mark.slow
@pytest.mark.venv
def test_sdk_alone_installs_into_a_fresh_venv_and_recommends(tmp_path):
    """``pip install <repo>`` into a clean venv (no system site-packages): no torch, and recommendations work."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, env=env).stdout
    assert "torch" not in listed.lower() and "onnx " not in listed.lower()
    result = subprocess.run(
        [str(python), "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded: []" in result.stdout
    missing = subprocess.run(
        [str(env_dir / "bin" / "s4rec-export"), "model.pt", "-o", "out"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 1 and "pip install '/path/to/s4rec[export]' (this repository)" in missing.stderr
