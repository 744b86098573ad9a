"""Where `--loss auto` switches from full softmax to sampled softmax: step time and memory against catalogue size.

One training step (encoder forward, next-item loss, backward, Adam) on a Beauty-like `tokens` batch (256
users x 9 positions = 2,304 positions, d 64, 2 blocks) for each catalogue size, with full-softmax
cross-entropy and with sampled softmax (1,024 uniform + up to 1,024 in-batch negatives, logQ-corrected),
the latter with a dense Adam over the whole item table and with ``sparse_items`` (SparseAdam on its rows).
Each (size, loss) runs in its own process, so its peak RSS is its own; the full-softmax logits block
(positions x items x 4 bytes, once more for its gradient) is printed too, and sizes whose block would not
fit in this machine's memory are computed, not run.

    python benchmarks/softmax_threshold.py [--sizes 1e4,3e4,1e5,3e5,1e6] [--steps 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

POSITIONS_PER_USER, USERS, DIM = 9, 256, 64
RUN_FULL_UP_TO_BYTES = 4 * 2**30  # logits block + its gradient must stay well inside a shared 23 GB machine


def child(num_items: int, loss: str, steps: int, threads: int) -> None:
    import numpy as np
    import torch

    from s4rec_train.batching import Batch
    from s4rec_train.losses import next_item_loss
    from s4rec_train.model import ModelConfig, SASRec
    from s4rec_train.sampled import NegativeSampler

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=num_items, max_len=50, dim=DIM, dropout=0.5))
    table = model.item_embedding.weight
    if loss == "sparse":  # sampled softmax with TrainConfig.sparse_items: SparseAdam on the item table
        model.item_embedding.sparse = True
        dense = [p for p in model.parameters() if p is not table]
        optimizers = [torch.optim.Adam(dense, lr=1e-3), torch.optim.SparseAdam([table], lr=1e-3)]
        loss = "sampled"
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=1e-3)]
    rng = np.random.default_rng(0)
    counts = np.concatenate([[0], rng.zipf(1.2, num_items).clip(max=10**6)])  # target popularity
    sampler = NegativeSampler(counts, 1024, "uniform", generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(steps + 2):
        items = torch.from_numpy(rng.integers(1, num_items + 1, (USERS, POSITIONS_PER_USER + 1)))
        history, target = items[:, :-1], items[:, 1:]
        positions = torch.arange(USERS * POSITIONS_PER_USER)
        in_batch = target.reshape(-1)[torch.randperm(positions.numel())[:1024]]
        batch = Batch(torch.arange(USERS), history, target, positions, in_batch=in_batch)
        started = time.perf_counter()
        value = next_item_loss(model, model(history), batch, loss, sampler=sampler)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        value.backward()
        for optimizer in optimizers:
            optimizer.step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{sorted(times[2:])[len(times[2:]) // 2]:.3f} {peak:.0f}")


def main() -> None:
    from s4rec_train.allocator import keep_freed_memory

    keep_freed_memory()  # a training process: reuse large freed blocks (s4rec_train/allocator.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,3e4,1e5,3e5,1e6")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(int(args.child[0]), args.child[1], args.steps, args.threads)
    print("command:", " ".join(["python", *sys.argv]))
    print(f"load average before: {os.getloadavg()}; cores {os.cpu_count()}, torch threads {args.threads}")
    positions = USERS * POSITIONS_PER_USER
    print(f"{'':24s}{'full softmax':>22s}{'sampled, dense Adam':>24s}{'sampled, sparse items':>24s}")
    print(f"{'items':>9} {'logits block':>13}" + f"{'s/step':>12} {'peak RSS':>9}" * 3)
    for size in (int(float(s)) for s in args.sizes.split(",")):
        block = positions * size * 4
        row = {}
        for loss in ("softmax", "sampled", "sparse"):
            if loss == "softmax" and 2 * block > RUN_FULL_UP_TO_BYTES:
                row[loss] = ("not run", "")
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(size), loss, "--steps", str(args.steps), "--threads",
                 str(args.threads)], capture_output=True, text=True, check=True,
            )  # fmt: skip
            seconds, peak = out.stdout.split()
            row[loss] = (f"{float(seconds):.3f}", f"{float(peak) / 1024:.2f} GB")
        cells = "".join(f"{row[loss][0]:>12} {row[loss][1]:>9}" for loss in ("softmax", "sampled", "sparse"))
        print(f"{size:>9,} {block / 2**20:>10,.0f} MB{cells}  load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
