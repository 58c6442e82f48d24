"""Retention: the pure decision of which segments go, and the manager applying it to real partitions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.errors import OffsetOutOfRangeError
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import Record, build_batch, iter_records
from logstore.retention import SegmentStats, segments_to_delete

TS = 1_700_000_000_000
NO_LIMIT = -1


def decide(
    closed: list[tuple[int, int]],
    *,
    total: int | None = None,
    now: int = 1000,
    ms: int = NO_LIMIT,
    size: int = NO_LIMIT,
) -> int:
    stats = [SegmentStats(size, max_ts) for size, max_ts in closed]
    total = sum(s.size for s in stats) if total is None else total
    return segments_to_delete(stats, total_size=total, now_ms=now, retention_ms=ms, retention_bytes=size)


# --- the pure decision ------------------------------------------------------------------------------------


def test_no_limits_delete_nothing() -> None:
    assert decide([(100, 0), (100, 1)]) == 0
    assert decide([], ms=0, size=0) == 0


def test_age_deletes_the_oldest_prefix_strictly_past_the_limit() -> None:
    closed = [(10, 100), (10, 200), (10, 899), (10, 300)]
    assert decide(closed, now=1000, ms=800) == 1  # 1000-200 = 800 is not past 800; and only a prefix goes
    assert decide(closed, now=1001, ms=800) == 2
    assert decide(closed, now=1000, ms=799) == 2
    assert decide(closed, now=1000, ms=0) == 4
    assert decide(closed, now=100, ms=0) == 0


def test_segments_without_timestamps_are_never_deleted_by_age() -> None:
    assert decide([(10, -1), (10, 5)], now=10**6, ms=1) == 0


def test_size_deletes_while_what_remains_stays_at_or_above_the_limit() -> None:
    closed = [(100, 0), (100, 0), (100, 0)]
    assert decide(closed, total=350, size=150) == 2  # 350 -> 250 -> 150, one more would leave 50
    assert decide(closed, total=350, size=151) == 1
    assert decide(closed, total=350, size=0) == 3
    assert decide(closed, total=350, size=350) == 0
    assert decide(closed, total=350, size=10**9) == 0


def test_the_larger_of_the_two_rules_wins() -> None:
    closed = [(100, 0), (100, 900), (100, 950)]
    assert decide(closed, total=300, now=1000, ms=500, size=100) == 2
    assert decide(closed, total=300, now=1000, ms=99, size=250) == 2
    assert decide(closed, total=300, now=1000, ms=500, size=250) == 1


# --- through the manager ----------------------------------------------------------------------------------


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[LogManager]:
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS)
    yield mgr
    mgr.close()


def fill(mgr: LogManager, config: dict[str, Any], batches: int = 30, topic: str = "t") -> Log:
    """Batch i holds offsets 2i, 2i+1 with timestamp TS + 1000 i, in ~1 KiB segments of four batches."""
    mgr.create_topic(topic, 1, {"segment.bytes": 1024, **config})
    log = mgr.log(topic, 0)
    for i in range(batches):
        log.append(build_batch([Record(0, TS + 1000 * i, value=bytes(100))] * 2))
    return log


def test_time_retention_deletes_old_segments_and_advances_the_start(manager: LogManager) -> None:
    log = fill(manager, {"retention.ms": 10_000})
    segments = list(log.segments)
    now = TS + 20_000
    expected = [s for s in segments[:-1] if now - s.max_timestamp > 10_000]
    assert 0 < len(expected) < len(segments) - 1
    assert manager.run_retention(now) == len(expected)
    first = segments[len(expected)]
    assert log.log_start_offset == first.base_offset
    assert all(not s.log_path.exists() for s in expected)
    with pytest.raises(OffsetOutOfRangeError, match=f"valid offsets are {first.base_offset} to 60"):
        log.read(first.base_offset - 1, 100)
    assert next(iter(iter_records(log.read(first.base_offset, 100).data))).offset == first.base_offset
    assert manager.run_retention(now) == 0  # nothing more is due


def test_time_retention_of_an_idle_partition_rolls_and_empties_it(manager: LogManager) -> None:
    log = fill(manager, {"retention.ms": 10_000})
    count = len(log.segments)
    assert manager.run_retention(TS + 29_000 + 10_001) == count  # the active one is rolled, then deleted too
    assert (log.log_start_offset, log.log_end_offset) == (60, 60)
    assert log.read(60, 100).data == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    assert log.append(build_batch([b"next"])).base_offset == 60


def test_size_retention(manager: LogManager) -> None:
    log = fill(manager, {"retention.bytes": 3000, "retention.ms": -1})
    before = [s.size for s in log.segments]
    deleted = manager.run_retention(TS + 10**12)
    assert deleted > 0
    assert log.size_in_bytes >= 3000
    assert log.size_in_bytes - log.segments[0].size < 3000  # one more would break the limit
    assert sum(before[deleted:]) == log.size_in_bytes
    with pytest.raises(OffsetOutOfRangeError):
        log.read(log.log_start_offset - 1, 100)


def test_no_retention_without_limits_or_for_compacted_topics(manager: LogManager) -> None:
    unlimited = fill(manager, {"retention.ms": -1, "retention.bytes": -1}, topic="forever")
    compacted = fill(
        manager, {"cleanup.policy": "compact", "retention.ms": 1, "retention.bytes": 1}, batches=0, topic="c"
    )
    for i in range(20):
        compacted.append(build_batch([Record(0, TS + i, key=b"k", value=bytes(200))]))
    assert manager.run_retention(TS + 10**12) == 0
    assert unlimited.log_start_offset == 0
    assert compacted.log_start_offset == 0


def test_retention_with_compact_and_delete_still_deletes(manager: LogManager) -> None:
    log = fill(manager, {"cleanup.policy": "compact,delete", "retention.bytes": 2000}, batches=0)
    for i in range(30):
        log.append(build_batch([Record(0, TS + i, key=b"k%d" % i, value=bytes(100))] * 2))
    assert manager.run_retention(TS) > 0
    assert log.log_start_offset > 0


def test_retention_survives_a_reopen(tmp_path: Path) -> None:
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS)
    log = fill(mgr, {"retention.ms": 10_000})
    mgr.run_retention(TS + 20_000)
    start, end = log.log_start_offset, log.log_end_offset
    mgr.close()
    mgr = LogManager(tmp_path, background=False, default_config=TopicConfig(), clock_ms=lambda: TS)
    log = mgr.log("t", 0)
    assert (log.log_start_offset, log.log_end_offset) == (start, end)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(start - 1, 10)
    mgr.close()
