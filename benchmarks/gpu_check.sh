#!/usr/bin/env bash
# The GPU path of s4rec-train, as one command for a person with a CUDA machine (none was available when this
# was written; the CPU-side checks are tests/test_sampled.py's meta-device step and tests/test_distributed.py):
#
#     bash benchmarks/gpu_check.sh [BEAUTY_TXT] [WORKDIR]      # from the repository root, [train] installed
#
# 1. Beauty (12k items: full softmax), S4Rec defaults, bf16 autocast, 3 epochs on cuda:0;
# 2. a synthetic log of 10^7 events, 10^6 users, 10^6 items (benchmarks/synthetic_log.py --cover; read from
#    Parquet without a k-core), so `--loss auto` picks sampled softmax (1,024 uniform + 1,024 in-batch
#    negatives, bf16 logits), 2 epochs;
# 3. with two or more GPUs, Beauty again under torchrun (NCCL DDP, one process per GPU).
# Each prints its epoch lines; the end prints seconds per training epoch (evaluation excluded) per run.
set -euo pipefail
BEAUTY=${1:-../shared/data/beauty.txt}
WORK=${2:-/tmp/s4rec_gpu_check}
mkdir -p "$WORK"
export PYTHONPATH="${PYTHONPATH:-}:sdk:training"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch: this check needs a GPU"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0), "x", torch.cuda.device_count())
PY
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true

run() {  # run NAME COMMAND...: tee the log, keep the epoch lines
  local name=$1; shift
  echo "== $name: $*"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" 2> "$WORK/$name.time" | tee "$WORK/$name.log"
  else
    "$@" | tee "$WORK/$name.log"
  fi
}

run beauty python -m s4rec_train "$BEAUTY" -o "$WORK/beauty.pt" --device cuda --bf16 --epochs 3 --patience 99 --quiet
python benchmarks/synthetic_log.py --events 1e7 --users 1e6 --items 1e6 --cover --formats parquet --out "$WORK"
run large python -m s4rec_train "$WORK/log.parquet" --min-count 1 -o "$WORK/large.pt" --device cuda --bf16 \
  --epochs 2 --patience 99 --quiet
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  run beauty_ddp python -m torch.distributed.run --nproc-per-node "$GPUS" -m s4rec_train "$BEAUTY" \
    -o "$WORK/beauty_ddp.pt" --device cuda --bf16 --epochs 3 --patience 99 --quiet
fi

echo
echo "seconds per training epoch (evaluation excluded), peak host RSS:"
for log in "$WORK"/*.log; do
  name=$(basename "$log" .log)
  epochs=$(grep -oE "train [0-9.]+s" "$log" | grep -oE "[0-9.]+" | paste -sd' ' -)
  loss=$(grep -m1 "next-item loss" "$log" || true)
  rss=$(grep -s "Maximum resident" "$WORK/$name.time" | grep -oE "[0-9]+$" || echo 0)
  echo "$name: ${epochs:-none} s/epoch; peak RSS $((rss / 1024)) MB; $loss"
done
