#!/usr/bin/env bash
# A newcomer's first run, timed: clone this checkout's HEAD into a temporary directory and run the README's first
# command there verbatim (fresh venv, installs, examples/quickstart.py). Prints the wall time of the whole command,
# the quickstart's own time (its "done in N s" line), its epoch times and test figures, and the load average
# before and after (other jobs on the machine slow every figure).
#
#     bash benchmarks/first_run.sh [WORKDIR]      # default: a new temporary directory
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
rm -rf "$work/clone" && git clone -q "$repo" "$work/clone"
cd "$work/clone"
cmd="$(sed -n '/^# 1\./{n;p;}' README.md)"
[ -n "$cmd" ] || { echo "README.md has no '# 1.' command line" >&2; exit 1; }
echo "command: $cmd"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
rc=0
bash -c "$cmd" > "$work/first_run.log" 2>&1 || rc=$?
end=$(date +%s.%N)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^epoch |^test overall|^done in ' "$work/first_run.log" || true
python3 -c "import sys; print(f'exit {sys.argv[1]}, wall {float(sys.argv[3]) - float(sys.argv[2]):.1f} s (installs + quickstart)')" \
    "$rc" "$start" "$end"
echo "log: $work/first_run.log; reproduce: bash benchmarks/first_run.sh"
exit "$rc"
