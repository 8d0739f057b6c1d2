"""Process memory: hand argon2's large buffers back to the system once they are freed.

Each argon2id computation mallocs its whole memory cost (19 MiB by default). glibc serves
a request that large with ``mmap``, but when such a block is freed it raises its mmap
threshold to the block's size (its "dynamic threshold"), so every later computation comes
from a heap instead, and a heap keeps the freed 19 MiB resident: one worker's RSS grew by
~19 MiB after the first start's administrator hash and by as much again for each thread
that verified a password. A fixed threshold turns the dynamic one off.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
# Above the 1 MiB request limit (OSTIARY_MAX_REQUEST_BYTES), below argon2's 19 MiB.
MMAP_THRESHOLD = 4 * 1024 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold and trim what startup left free; whether it applied
    (not on other C libraries)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return False  # musl has no malloc_trim and no dynamic threshold either
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    libc.malloc_trim(0)
    return applied
