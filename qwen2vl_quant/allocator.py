"""Give freed memory back to the operating system (glibc's malloc on Linux).

The pipeline allocates and frees buffers of tens to hundreds of MB per layer (Hessians,
their factors, float32 weight copies). glibc serves such blocks from mmap only above a
threshold that it raises on its own after the first large free, after which freed blocks
stay in the heap: the resident memory of a 28-layer run kept growing by about 0.1 GB per
layer. Pinning the thresholds keeps large blocks in mmap, returned to the system on free.

A process-wide setting: the CLI makes it before a run; the library never does on its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 20


def return_freed_memory_to_os() -> bool:
    """Pin glibc's mmap and trim thresholds at 1 MiB (for the whole process); False where
    that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
    logger.debug("glibc malloc thresholds pinned at %d bytes: %s", THRESHOLD_BYTES, ok)
    return ok
