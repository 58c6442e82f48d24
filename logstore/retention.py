"""Retention decisions, pure: which of a partition's oldest closed segments have outlived their topic's limits.

Kafka's rules: a closed segment goes when its newest record is older than `retention_ms`, or while the
partition is larger than `retention_bytes` and dropping the oldest segment keeps it at or above the limit.
Deletion only ever takes a prefix of whole segments, so the log start offset simply moves forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentStats:
    size: int
    max_timestamp: int  # -1 when the segment has no timestamped record: never deleted by age


def segments_to_delete(
    closed: Sequence[SegmentStats], *, total_size: int, now_ms: int, retention_ms: int, retention_bytes: int
) -> int:
    """How many of the oldest `closed` segments to delete (a prefix). -1 limits mean "no limit"."""
    by_age = 0
    if retention_ms >= 0:
        for segment in closed:
            if segment.max_timestamp < 0 or now_ms - segment.max_timestamp <= retention_ms:
                break
            by_age += 1
    by_size = 0
    if retention_bytes >= 0:
        excess = total_size - retention_bytes
        for segment in closed:
            if excess - segment.size < 0:
                break
            excess -= segment.size
            by_size += 1
    return max(by_age, by_size)
