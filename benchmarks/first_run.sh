#!/usr/bin/env bash
# A newcomer's first run, timed: clone this checkout's HEAD into a temporary directory and run one of the README's
# two commands there verbatim. Command 1 (the default: fresh venv, installs, examples/quickstart.py): prints the
# quickstart's own time (its "done in N s" line), its epoch times and test figures. Command 2 (scripts/test.sh:
# system packages where missing, venv, installs, the whole test suite): prints which of Node.js, Chromium and g++
# the machine had before, and pytest's last line. Both print the wall time of the whole command and the load
# average before and after (other jobs on the machine slow every figure).
#
#     bash benchmarks/first_run.sh [1|2] [WORKDIR]      # default: command 1, a new temporary directory
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
number=1
if [[ "${1:-}" =~ ^[12]$ ]]; then
  number="$1"
  shift
fi
work="${1:-$(mktemp -d)}"
rm -rf "$work/clone" && git clone -q "$repo" "$work/clone"
cd "$work/clone"
cmd="$(sed -n "/^# $number\./{n;p;}" README.md)"
[ -n "$cmd" ] || { echo "README.md has no '# $number.' command line" >&2; exit 1; }
echo "command $number: $cmd"
if [ "$number" = 2 ]; then
  for tool in node npm chromium g++; do
    echo "before: $tool $(command -v "$tool" >/dev/null && echo present || echo absent)"
  done
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
rc=0
bash -c "$cmd" > "$work/first_run.log" 2>&1 || rc=$?
end=$(date +%s.%N)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$number" = 1 ]; then
  grep -E '^epoch |^test overall|^done in ' "$work/first_run.log" || true
else
  grep -E '^== installing' "$work/first_run.log" || true
  tail -n 1 "$work/first_run.log"
fi
python3 -c "import sys; print(f'exit {sys.argv[1]}, wall {float(sys.argv[3]) - float(sys.argv[2]):.1f} s (command {sys.argv[4]}, installs included)')" \
    "$rc" "$start" "$end" "$number"
echo "log: $work/first_run.log; reproduce: bash benchmarks/first_run.sh $number"
exit "$rc"
