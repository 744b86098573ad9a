"""Which experiment tracker `s4rec-train --track` writes to: MLflow's local store or TensorBoard event files.

For each candidate this script makes a fresh virtual environment (``--system-site-packages`` off, so each holds
exactly the candidate and what it pulls in), installs it with pip from the configured index, and measures

* installed size: the venv's site-packages after the install minus an empty venv's;
* import time: ``python -c "import X"`` in a fresh process, the median of 5 (cold disk cache on the first);
* time per logged epoch: one run that logs 20 settings, then per epoch 12 scalars (loss, 4 terms, HR/NDCG/MRR,
  coverage, seconds), 200 epochs, then a 3 MB file (a Beauty-sized checkpoint) as an artifact; the median
  seconds of an epoch's logging, and the whole run's seconds.

numpy is installed beside each so that what the candidates share with s4rec's own dependencies is not
counted against them twice (s4rec needs numpy anyway; torch is left out: ``torch.utils.tensorboard`` is only a
writer over the ``tensorboard`` package's protobufs, which is what is measured here).

    python benchmarks/tracking_backends.py [--keep /tmp/trackers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true ("maintenance mode"; its local default is
# now a SQLite database, which mlflow-skinny cannot open: the full package's SQLAlchemy store is needed).
CANDIDATES = {
    "mlflow-skinny": {"packages": ["mlflow-skinny"], "module": "mlflow", "uri": "file:mlruns"},
    "mlflow": {"packages": ["mlflow"], "module": "mlflow", "uri": "sqlite:///mlflow.db"},
    "tensorboard": {"packages": ["tensorboard"], "module": "tensorboard.summary"},
    "tensorboardX": {"packages": ["tensorboardX"], "module": "tensorboardX"},
}

LOG_MLFLOW = """
import os, sys, time, json
import mlflow
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
mlflow.set_tracking_uri(sys.argv[1])
start = time.perf_counter()
times = []
with mlflow.start_run():
    mlflow.log_params({f"setting_{i}": i for i in range(20)})
    for epoch in range(200):
        t = time.perf_counter()
        mlflow.log_metrics({f"metric_{i}": epoch * 0.01 + i for i in range(12)}, step=epoch)
        times.append(time.perf_counter() - t)
    with open("model.pt", "wb") as f:
        f.write(os.urandom(3 * 2**20))
    mlflow.log_artifact("model.pt")
print(json.dumps({"epoch_median_ms": 1000 * sorted(times)[100], "run_s": time.perf_counter() - start}))
"""

LOG_TB = """
import os, time, json
from {module} import SummaryWriter
start = time.perf_counter()
times = []
w = SummaryWriter("runs/one")
w.add_text("settings", json.dumps({{f"setting_{{i}}": i for i in range(20)}}))
for epoch in range(200):
    t = time.perf_counter()
    for i in range(12):
        w.add_scalar(f"metric_{{i}}", epoch * 0.01 + i, epoch)
    w.flush()
    times.append(time.perf_counter() - t)
w.close()
print(json.dumps({{"epoch_median_ms": 1000 * sorted(times)[100], "run_s": time.perf_counter() - start}}))
"""

LOG_TB_PLAIN = """
import os, time, json
from tensorboard.summary import Writer
start = time.perf_counter()
times = []
w = Writer("runs/one")
for epoch in range(200):
    t = time.perf_counter()
    for i in range(12):
        w.add_scalar(f"metric_{i}", epoch * 0.01 + i, epoch)
    w.flush()
    times.append(time.perf_counter() - t)
w.close()
print(json.dumps({"epoch_median_ms": 1000 * sorted(times)[100], "run_s": time.perf_counter() - start}))
"""


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="make the venvs here and keep them (default: a temporary dir)")
    parser.add_argument("--only", help="comma-separated candidates")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="s4rec-trackers-"))
    root.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(CANDIDATES)
    base = root / "base"
    if not base.exists():
        run([sys.executable, "-m", "venv", str(base)])
        run([str(base / "bin/pip"), "install", "-q", "numpy"])
    base_mb = size_mb(site_packages(base))
    results = {}
    for name in names:
        spec = CANDIDATES[name]
        venv = root / name
        if not venv.exists():
            run([sys.executable, "-m", "venv", str(venv)])
            started = time.perf_counter()
            run([str(venv / "bin/pip"), "install", "-q", "numpy", *spec["packages"]])
            install_s = time.perf_counter() - started
        else:
            install_s = float("nan")
        python = str(venv / "bin/python")
        version = run([str(venv / "bin/pip"), "show", spec["packages"][0]]).stdout.split("Version: ")[1].split()[0]
        packages = len(json.loads(run([str(venv / "bin/pip"), "list", "--format=json"]).stdout))
        imports = []
        for _ in range(5):
            started = time.perf_counter()
            run([python, "-c", f"import {spec['module']}"])
            imports.append(time.perf_counter() - started)
        work = Path(tempfile.mkdtemp(dir=root))
        if name.startswith("mlflow"):
            script = LOG_MLFLOW
        elif name == "tensorboardX":
            script = LOG_TB.format(module="tensorboardX")
        else:
            script = LOG_TB_PLAIN
        extra = [spec["uri"]] if "uri" in spec else []
        logged = json.loads(run([python, "-c", script, *extra], cwd=work).stdout.strip().splitlines()[-1])
        shutil.rmtree(work)
        results[name] = {
            "version": version,
            "installed_mb": round(size_mb(site_packages(venv)) - base_mb, 1),
            "packages": packages,
            "install_s": round(install_s, 1),
            "import_s_median": round(statistics.median(imports), 3),
            "epoch_log_ms_median": round(logged["epoch_median_ms"], 2),
            "run_200_epochs_s": round(logged["run_s"], 2),
        }
        print(name, json.dumps(results[name]), flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    print(json.dumps(results, indent=2))
    print("command: python benchmarks/tracking_backends.py")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
