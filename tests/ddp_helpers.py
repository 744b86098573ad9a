"""Two-process (gloo) test groups: a rendezvous through a file, not a TCP port.

A free port picked by binding to port 0 is released before the workers bind it, so another process may take it in
between; the full suite once failed a two-process test for a cause that was not captured. A ``file://``
rendezvous in the test's own directory has no such window. The workers still get torchrun's variables (RANK,
WORLD_SIZE, LOCAL_RANK): the code under test reads them; ``init_from_environment`` finds the group joined.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp


def join(rank: int, world: int, directory: str | Path) -> None:
    """Join the test's process group as ``rank`` of ``world``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    init = f"file://{Path(directory).resolve() / 'rendezvous'}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)


def spawn(worker, world: int, directory: str | Path, *args) -> None:
    """Run ``worker(rank, directory, *args)`` in ``world`` processes; a worker's exception is re-raised here
    with its traceback (mp.spawn's own message), and also written to ``directory/errorRANK.txt``."""
    mp.spawn(_guarded, args=(worker, world, str(directory), args), nprocs=world, join=True)


def _guarded(rank: int, worker, world: int, directory: str, args: tuple) -> None:
    try:
        join(rank, world, directory)
        worker(rank, directory, *args)
    except BaseException:
        Path(directory, f"error{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
