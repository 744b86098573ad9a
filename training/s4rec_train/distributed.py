"""Training on several processes (torchrun) with DistributedDataParallel: who this process is, and the few
collectives training needs besides DDP's gradient all-reduce.

``torchrun --nproc-per-node N -m s4rec_train DATA -o model.pt`` starts N copies of the command line; each
finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the
process group (:func:`init_from_environment`: NCCL on GPUs, one GPU per process; gloo on CPUs). Every
process reads the data, computes the same global batches from the same seed and trains on every N-th
sequence of each (:func:`s4rec_train.batching.iterate_batches`); DDP averages the gradients; rank 0 alone
logs and writes the checkpoint.

S4Rec's batch-level terms see the global batch, as they would in one process (:class:`BatchGroup`):

* the Sinkhorn targets all-reduce their sums (the shift, the total mass, the prototype columns), as SwAV's
  distributed Sinkhorn does, so the equal partition holds over the global batch: per process, each prototype
  would get 1/K of a few hundred users, a much weaker constraint than 1/K of the global batch, and the result
  would change with the number of processes;
* the contrastive term's in-batch negatives are gathered from every process with gradients
  (``torch.distributed.nn.functional.all_gather``), so each user has the 2B - 2 negatives of the global batch
  (not 2B/N - 2) and the gradient is that of the one-process loss.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    def all_reduce(self, tensor: torch.Tensor, op=None) -> torch.Tensor:
        """``tensor`` summed (or ``op``) over the processes, on the backend's device, returned where it was."""
        if not self.enabled:
            return tensor
        device = tensor.device
        work = tensor.to(_collective_device())
        dist.all_reduce(work, op=op or dist.ReduceOp.SUM)
        return work.to(device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _collective_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def current() -> Distributed:
    """The process group this process belongs to (rank 0 of 1 when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Distributed(dist.get_rank(), dist.get_world_size(), local)


def init_from_environment(device: str = "auto") -> Distributed:
    """Join the process group torchrun describes in the environment (none: one process, nothing to join).

    The backend follows the device: NCCL when training runs on CUDA (each process on GPU ``LOCAL_RANK``),
    gloo on CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class BatchGroup:
    """This process's share of a global batch of sequences, for terms computed over the whole batch."""

    rank: int
    sizes: tuple[int, ...]  # sequences of each process in this global batch

    @property
    def offset(self) -> int:
        """Where this process's sequences start in the gathered batch."""
        return sum(self.sizes[: self.rank])

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def all_reduce(self, tensor: torch.Tensor, op=None) -> torch.Tensor:
        """In place, without gradient: the sum (or ``op``) over the processes."""
        dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
        return tensor

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's ``rows`` (its sequences of this batch) stacked in rank order, with gradients
        flowing back to the process that owns each row. Shards differ by a row at most, so each is padded to
        the longest for the collective and cut back after (sizes are known to every process: no sync)."""
        from torch.distributed.nn.functional import all_gather

        longest = max(self.sizes)
        padded = torch.nn.functional.pad(rows, (0, 0, 0, longest - rows.shape[0]))
        with warnings.catch_warnings():  # torch 2.13 points to a private replacement; this one has autograd
            warnings.simplefilter("ignore", FutureWarning)
            parts = all_gather(padded)
        return torch.cat([part[:size] for part, size in zip(parts, self.sizes)])
