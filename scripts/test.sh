#!/usr/bin/env bash
# The whole test suite from nothing. README command 2 and CI (.ci/run) both run this script, so the two cannot
# drift. Each step is skipped where it is already done, so a rerun goes straight to the tests.
#
#     bash scripts/test.sh                  # set up what is missing, then every test (~10 min on 2 cores)
#     bash scripts/test.sh -m "not slow"    # the same set-up, then pytest with these arguments
#
# 1. System packages the tests need, where missing (Debian's, with apt-get, as root or through sudo): Node.js
#    >= 18 with npm and Chromium for the JavaScript SDK's tests (tests/test_js.py, tests/test_web.py fail, not
#    skip, without them), python3-venv where the interpreter cannot make a virtual environment.
# 2. A virtual environment: $S4REC_VENV, default .venv in the repository root.
# 3. torch==2.13.0 first (pip would otherwise pick a multi-GB CUDA build on its own), unless torch >= 2.4 is
#    already there; then the project, editable, with every extra.
# 4. js/'s npm dependencies, unless installed from the current js/package-lock.json.
# 5. python -m pytest "$@".
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }
die() {
  printf 'scripts/test.sh: %s\n' "$*" >&2
  exit 1
}

venv="${S4REC_VENV:-.venv}"
BROWSERS=(chromium chromium-browser google-chrome) # the names examples/web/headless.py looks for

node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge 18 ]
}
chromium_ok() {
  local name
  for name in "${BROWSERS[@]}"; do command -v "$name" >/dev/null && return 0; done
  return 1
}
venv_ok() { [ -x "$venv/bin/python" ] || python3 -c 'import ensurepip, venv' 2>/dev/null; }

missing_packages() {
  local packages=()
  node_ok || packages+=(nodejs npm)
  chromium_ok || packages+=(chromium)
  venv_ok || packages+=(python3-venv)
  echo "${packages[@]}"
}

# --- 1. system packages -------------------------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is not on PATH. Install Python >= 3.10 and rerun."
missing="$(missing_packages)"
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    die "missing system packages: $missing. Install them (Debian: sudo apt-get install -y $missing) or run this script as root."
  fi
  command -v apt-get >/dev/null ||
    die "missing system packages: $missing, and this machine has no apt-get. Install them with its package manager and rerun."
  say "installing system packages: $missing"
  "${as_root[@]}" apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  still="$(missing_packages)"
  [ -z "$still" ] || die "still missing after apt-get install: $still (node -v: $(node -v 2>/dev/null || echo none); Node.js >= 18 is needed). Install them by hand and rerun."
fi

# --- 2. virtual environment ---------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtual environment $venv"
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

# --- 3. Python packages -------------------------------------------------------------------------------------
python -m pip install -q --upgrade pip
if ! python -c 'import importlib.metadata as m, sys; v = m.version("torch").split("+")[0].split("."); sys.exit(tuple(map(int, v[:2])) < (2, 4))' 2>/dev/null; then
  say "installing torch==2.13.0"
  pip install -q torch==2.13.0
fi
say "installing the project with its extras"
pip install -q -e ".[train,export,ray,ann,dev]"

# --- 4. npm dependencies ------------------------------------------------------------------------------------
# ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's install script would download CUDA binaries (and fail
# without internet); its CPU binaries are in the package. npm writes node_modules/.package-lock.json on install.
if [ ! js/node_modules/.package-lock.json -nt js/package-lock.json ]; then
  say "installing js/'s npm dependencies"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix js --no-audit --no-fund
fi

# --- 5. the tests -------------------------------------------------------------------------------------------
say "python -m pytest $*"
exec python -m pytest "$@"
