"""A bound on the segments whose files are open, so descriptors do not grow with the segment count.

An open segment costs six descriptors on CPython 3.11 (the `.log` and two index files, plus the one each
memory map duplicates). Segments register here when they open their files and each time they are used;
once more than `limit` are open, the least recently used idle ones release their files and maps. A
released segment keeps everything it knows in memory (size, offsets, timestamps) and reopens on its next
use. A segment in use (a read, an append, a scan) is pinned and never released under its user.
"""

from __future__ import annotations

import logging
import resource
import threading
from collections import OrderedDict
from typing import Protocol

log = logging.getLogger(__name__)

DESCRIPTORS_PER_SEGMENT = 6
"""`.log`, `.index`, `.timeindex`, and the duplicate each of their memory maps holds."""
MIN_OPEN_SEGMENTS = 16


class Releasable(Protocol):
    def release(self) -> bool:
        """Close files and maps unless in use; whether it did."""
        ...


def default_limit() -> int:
    """Half of the process's descriptor limit, in segments; the other half is left for connections."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(MIN_OPEN_SEGMENTS, soft // 2 // DESCRIPTORS_PER_SEGMENT)


class OpenSegments:
    """The segments with open files, least recently used first. Thread-safe."""

    def __init__(self, limit: int | None = None) -> None:
        """`limit`: how many segments may have their files open at once (None: from the descriptor limit)."""
        self.limit = default_limit() if limit is None else limit
        if self.limit < 1:
            raise ValueError(f"the open segment limit must be at least 1, not {self.limit}")
        self._lock = threading.Lock()
        self._order: OrderedDict[Releasable, None] = OrderedDict()
        self.releases = 0

    def __len__(self) -> int:
        return len(self._order)

    def touch(self, segment: Releasable) -> None:
        """Note that `segment` has its files open and was just used; release others beyond the limit.

        Only idle segments are released (each says so itself, without blocking), so the count can stay
        above the limit while more than `limit` segments are in use at once.
        """
        with self._lock:
            order = self._order
            order[segment] = None
            order.move_to_end(segment)
            if len(order) <= self.limit:
                return
            for victim in list(order):
                if len(order) <= self.limit:
                    break
                if victim is segment:
                    continue
                try:
                    released = victim.release()
                except OSError:
                    log.exception("could not release the files of %r; keeping them open", victim)
                    released = False
                if released:
                    del order[victim]
                    self.releases += 1

    def forget(self, segment: Releasable) -> None:
        """`segment` closed its files for good (closed or deleted)."""
        with self._lock:
            self._order.pop(segment, None)
