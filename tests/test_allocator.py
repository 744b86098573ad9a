"""The training commands' allocator setting (s4rec_train.allocator): it stops the per-step page faults, changes no
weight, and an import of s4rec_train alone leaves the allocator as it was.

Each case runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / "sdk"), str(ROOT / "training"), str(ROOT / "export")]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def run_python(code: str) -> str:
    env_path = ":".join(PATHS)
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {PATHS!r}\n{code}"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_path}, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


FAULTS = """
import resource, torch
from s4rec_train import allocator
tuned = allocator.keep_freed_memory() if {tune} else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # blocks of 64, 32 and 85 MB, as a training step's logits blocks and their gradients
    x = torch.ones(16 * 2**20); y = torch.ones(8 * 2**20); del x; z = torch.ones(21 * 2**20); del y, z
for _ in range(10):  # the heap grows to its steady state (measured: 6 steps)
    step()
before = faults()
for _ in range(10):
    step()
print(tuned, allocator.is_tuned(), (faults() - before) / 10)
"""


@pytest.mark.slow  # two training processes over a 30,000-item catalogue
@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's; other C libraries are left alone")
def test_freed_blocks_are_reused_without_page_faults():
    tuned, _, per_block = run_python(FAULTS.format(tune=True)).split()
    untuned, still_default, per_block_default = run_python(FAULTS.format(tune=False)).split()
    assert tuned == "True" and untuned == "False" and still_default == "False"
    # Fresh mappings of 181 MB fault in ~46,000 pages a step (measured); reused heap memory (almost) none.
    assert float(per_block_default) > 20_000, per_block_default
    assert float(per_block) < 200, per_block


def test_importing_the_library_leaves_the_allocator_alone():
    code = (
        "import s4rec_train, s4rec_train.train, s4rec_train.checkpoint, s4rec_train.allocator as a\nprint(a.is_tuned())"
    )
    assert run_python(code) == "False"


def test_opt_out_by_environment(monkeypatch):
    from s4rec_train import allocator

    monkeypatch.setenv(allocator.OPT_OUT, "default")
    monkeypatch.setattr(allocator, "_tuned", False)
    assert allocator.keep_freed_memory() is False


TRAIN = """
import hashlib, json, torch
from s4rec_train import allocator
if {tune}:
    assert allocator.keep_freed_memory()
from s4rec_train.data import synthetic_interactions
from s4rec_train.objectives import ObjectiveConfig
from s4rec_train.train import TrainConfig, train
torch.set_num_threads(1)
# 30,000 items: each step's (positions x items) logits block is tens of MB, above glibc's mmap threshold.
data = synthetic_interactions(num_users=400, num_items=30_000, mean_length=12, seed=0)
config = TrainConfig(epochs=2, batch_size=128, seed=0, threads=1, loss="softmax", eval_batch_size=256)
model = {{"max_len": 20, "dim": 16, "layers": 1, "heads": 2}}
ckpt = train(data, model, config, log=lambda _: None, objectives=ObjectiveConfig(num_intents=8))
digest = hashlib.sha256()
for name, tensor in sorted(ckpt["state_dict"].items()):
    digest.update(name.encode()); digest.update(tensor.numpy().tobytes())
print(json.dumps([digest.hexdigest(), ckpt["metrics"]["test"]["overall"]["NDCG@20"]]))
"""


@pytest.mark.slow  # two trainings of 2 epochs in fresh processes
@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's; other C libraries are left alone")
def test_weights_are_bit_identical_with_the_setting():
    tuned = json.loads(run_python(TRAIN.format(tune=True)))
    default = json.loads(run_python(TRAIN.format(tune=False)))
    assert tuned == default
