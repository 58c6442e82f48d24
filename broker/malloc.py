"""Keep glibc from handing large buffers back to the OS after every call.

Every produce and fetch moves about a megabyte through freshly allocated buffers (gRPC's receive buffer,
the parsed message, the answer). With glibc's defaults such buffers are mmapped and unmapped, or
trimmed off the heap, each time, so each call pays a page fault per 4 KiB touched: measured here as 1
to 5 ms per 1 MiB call, several times the cost of the gRPC round trip itself. Raising the mmap and trim
thresholds lets freed buffers be reused instead, at the price of keeping peak memory mapped.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's largest allowed mmap threshold on 64-bit; larger buffers are still mmapped."""
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Raise glibc's thresholds for this process; False (and no change) on other C libraries."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def release_free_memory() -> bool:
    """Give the OS back the free memory of every malloc arena (glibc's malloc_trim); False elsewhere.

    The raised thresholds keep freed buffers for reuse; after a burst of answers (many slow readers let
    go at once) that would keep hundreds of megabytes mapped for good, so the broker calls this when the
    memory held for answers drains (broker/service/answers.py).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim(0)
    return True
