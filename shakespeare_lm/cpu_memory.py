"""Keep freed memory in the process, so a CPU training step does not page-fault its tensors back in.

A training step allocates the same activations every step: in nanogpt-cpu each feed-forward layer's
hidden activations are a 2 MiB tensor (16 x 64 x 512 floats), and the backward pass allocates their
gradients. glibc's malloc serves a block of >= 128 KiB with a fresh `mmap` (its threshold rises
with the blocks it sees freed, up to 32 MiB) and trims freed memory at the top of its heap, so
large blocks keep going back to the kernel. A nanogpt-cpu step then takes ~2,000-3,000 page faults
(each a 4 KiB page the kernel zeroes first); with the options below, ~150. On the 2-core machines
of this project that cost ~7% of the step (`benchmarks/cpu_kernels.py`, "allocator": 0.93x).

`keep_freed_memory()` sets two glibc malloc options with `mallopt`, as the environment variables
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ would at start-up: blocks up to 32 MiB come from
the heap, and up to 256 MiB of freed heap stay in the process for the next step to reuse. The
price is memory: the process keeps its peak footprint (plus at most 256 MiB) instead of
shrinking between steps. PyTorch's CPU tuning advice reaches the same end by preloading jemalloc
or tcmalloc; this needs nothing installed. `train` calls it when it trains on a CPU. Set
SHAKESPEARE_LM_KEEP_FREED_MEMORY=0 to leave malloc as it is; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV = "SHAKESPEARE_LM_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap: glibc's largest allowed value (64-bit)
TRIM_THRESHOLD = 256 << 20  # freed heap kept in the process before malloc returns it to the kernel

_state: dict[str, bool] = {}  # "kept": the result of the first call (the options are process-wide)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse (see the module docstring).

    Returns True if the options are set (now or by an earlier call), False where they cannot be
    (not Linux with glibc) or SHAKESPEARE_LM_KEEP_FREED_MEMORY=0 says not to. Safe to call often.
    """
    if "kept" not in _state:
        _state["kept"] = os.environ.get(ENV, "1").strip() != "0" and _set_malloc_options()
    return _state["kept"]


def glibc_mallopt():
    """glibc's `mallopt` function (ctypes), or None where the process does not run on glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc has it; musl (whose mallopt does nothing) not
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _set_malloc_options() -> bool:
    mallopt = glibc_mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


__all__ = ["ENV", "glibc_mallopt", "keep_freed_memory"]
