"""Keep the server's memory close to what it uses: image bodies are megabytes each.

glibc serves large blocks from mmap only up to a threshold it raises by itself after each
free, so after a few multi-megabyte responses those buffers come from per-thread heaps that
fragment and never shrink (hundreds of MB of RSS for nothing). Fixing the threshold at 1 MiB
would send every image-sized buffer to mmap (returned to the OS at once: 155 MB instead of
~320-400 MB after the overhead bench) but costs ~25% more CPU in page faults, so by default we
only cap the arenas at two (threads here just encode, write and hop to SQLite).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("imagegate")

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc(mmap_threshold: int | None = None, arenas: int = 2) -> bool:
    """Apply the settings through ``mallopt`` where the C library is glibc; False elsewhere."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    if mmap_threshold is not None:
        ok = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and ok
    if not ok:
        log.debug("mallopt refused the memory settings")
    return ok
