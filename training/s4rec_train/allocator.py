"""glibc's allocator set up for training: large blocks stay on the heap and are reused from step to step.

Every CPU training step allocates tensors of tens to hundreds of MB (the (positions x items) logits block and
its gradient, the evaluation's score blocks). glibc serves each block above its mmap threshold (128 KB at
start, adapting up to 32 MB) with a fresh ``mmap`` and gives it back with ``munmap`` when torch frees it, so
every step faults in fresh zeroed pages: on this project's 2-core VM a third of each epoch was system time
(Beauty, 8,000 users, 2 epochs, 1 thread: 28.3 s wall, 11.1 s system, 6.2 million minor faults). With the
thresholds below, freed blocks stay on the heap and the next step reuses them: 19.8 s wall, 2.8 s system
(mostly the first touch of the heap as it grows), 0.4 million faults, bit-identical weights
(``benchmarks/train_throughput.py`` measures it on the whole of Beauty).

Why this mechanism: it is two ``mallopt`` calls at start-up, changes no arithmetic (so no result), and
needs nothing installed. Chunking the loss blocks below the threshold would change the summation order of
the loss, and another allocator (jemalloc, tcmalloc) needs ``LD_PRELOAD`` before the process starts. The
cost: memory freed by training is kept by the process until it exits (peak RSS is unchanged; the process
does not shrink between steps), which is why only the training commands and benchmark scripts turn it on,
never an import of :mod:`s4rec_train`. A library user opts in with :func:`keep_freed_memory`.

``S4REC_MALLOC=default`` in the environment leaves glibc's defaults alone (e.g. to compare).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["keep_freed_memory", "is_tuned"]

# mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below 1 GiB come from the heap: the largest per-step block on a 12k-item catalogue is ~90 MB, on
# 10^6 items with the sampled loss far less (the full softmax is not used there). A block above this is still
# mapped on its own (and unmapped when freed), so a huge one-off allocation does not stay on the heap forever.
MMAP_THRESHOLD = 1 << 30
# The heap's free top is returned to the system only above ~2 GiB (glibc's default 128 KB returns it after
# nearly every step, and the next step faults the pages back in).
TRIM_THRESHOLD = (2 << 30) - 1  # mallopt takes an int
OPT_OUT = "S4REC_MALLOC"

_tuned = False


def is_tuned() -> bool:
    """Whether :func:`keep_freed_memory` changed this process's allocator."""
    return _tuned


def keep_freed_memory() -> bool:
    """Make glibc keep large freed blocks on the heap for reuse (this process, from now on).

    Returns True when the allocator was changed; False on a C library other than glibc (macOS, musl: their
    allocators do not map and unmap each block like this), when ``S4REC_MALLOC=default`` is set, or when
    glibc refuses the values. Safe to call more than once.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(OPT_OUT, "").strip().lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; both settings or neither matter, but a refused one leaves glibc's default.
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned
