"""Giving freed memory back to the operating system between the large steps of one task.

Arrow's allocator (mimalloc in the wheels) and glibc's malloc (pandas, numpy, Python objects
beyond the small-object pool) keep freed pages for reuse; a task that goes through several
tables one after the other then holds, as resident memory, the high-water mark of all of them
added up rather than of the largest. ``give_back`` returns what is free now, so each step of a
task starts from what the task really holds (the per-task memory budget, docs/operations.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

import pyarrow as pa

log = logging.getLogger(__name__)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def give_back() -> None:
    """Collect cycles, then return free memory of Arrow's pool and of malloc (glibc's
    ``malloc_trim``; nothing where the C library has none)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
