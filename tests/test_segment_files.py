"""What segments cost in files: closed segments' indexes keep their size (no regrowth to
segment.index.bytes on every open), and closed segments release their descriptors and maps."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from logstore.manager import CLEAN_SHUTDOWN_MARKER, LogManager
from logstore.records import Record, build_batch, check_batch
from logstore.segment import INDEX_SUFFIX, TIME_INDEX_SUFFIX

TS = 1_700_000_000_000
TINY_SEGMENTS = {"segment.bytes": 1024, "index.interval.bytes": 100}


def fill(mgr: LogManager, topic: str, partitions: int, batches: int) -> None:
    for p in range(partitions):
        log = mgr.log(topic, p)
        for i in range(batches):
            log.append(build_batch([Record(0, TS + i, value=b"v" * 150)]))


def index_sizes(data_dir: Path) -> dict[str, int]:
    """Size of every index file of every closed segment (all but each partition's last)."""
    sizes = {}
    for partition in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        logs = sorted(partition.glob("*.log"))
        for log_file in logs[:-1]:
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                path = log_file.with_suffix(suffix)
                sizes[f"{partition.name}/{path.name}"] = path.stat().st_size
    return sizes


def make_closed_segments(data_dir: Path, partitions: int = 2, batches: int = 60) -> dict[str, int]:
    with LogManager(data_dir, background=False, clock_ms=lambda: TS) as mgr:
        mgr.create_topic("t", partitions, TINY_SEGMENTS)
        fill(mgr, "t", partitions, batches)
        assert len(mgr.log("t", 0).segments) >= 15
    sizes = index_sizes(data_dir)
    assert sizes and max(sizes.values()) < 1024  # trimmed at the clean stop
    return sizes


def test_a_closed_segments_index_files_keep_their_size_when_reopened(tmp_path: Path) -> None:
    sizes = make_closed_segments(tmp_path)
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS)
    try:
        assert index_sizes(tmp_path) == sizes  # before: every one regrown to 10 MiB (segment.index.bytes)
        log = mgr.log("t", 0)
        assert log.read(0, 1 << 20).data  # reads of closed segments still find their batches
    finally:
        mgr.close()
    assert index_sizes(tmp_path) == sizes


CRASH_AFTER_CLEAN_START = """
import os, signal, sys
from logstore.manager import LogManager
mgr = LogManager(sys.argv[1], background=False)
print("opened", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_unclean_start_after_a_clean_one_leaves_closed_segments_indexes_alone(tmp_path: Path) -> None:
    sizes = make_closed_segments(tmp_path, partitions=3)
    # A clean start, then a crash: what the crash leaves is what the broker made of the files at start.
    child = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_CLEAN_START, str(tmp_path)], capture_output=True, text=True
    )
    assert child.stdout.strip() == "opened", child.stderr
    assert not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    assert index_sizes(tmp_path) == sizes  # before: 10 MiB each, which the unclean start then scanned
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS)
    try:
        assert not mgr.clean_shutdown
        # Only the segment holding each partition's recovery point is re-checked, not all of them.
        assert [info.segments_recovered for info in mgr.recovery] == [1, 1, 1]
        assert index_sizes(tmp_path) == sizes
        assert mgr.log("t", 2).log_end_offset == 60
    finally:
        mgr.close()
    assert index_sizes(tmp_path) == sizes


def test_a_reopened_active_segment_is_preallocated_again(tmp_path: Path) -> None:
    make_closed_segments(tmp_path, partitions=1)
    with LogManager(tmp_path, background=False, clock_ms=lambda: TS) as mgr:
        active = mgr.log("t", 0).active
        # The active segment's indexes are preallocated again for appends, as before.
        assert os.path.getsize(active.offset_index.path) == mgr.topic("t").config.segment_index_bytes


# --- descriptors: closed segments release their files, a bounded number stay open ---------------------


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_closed_segments_hold_no_descriptors(tmp_path: Path) -> None:
    before = open_descriptors()
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS, max_open_segments=4)
    try:
        mgr.create_topic("t", 2, TINY_SEGMENTS)
        fill(mgr, "t", 2, 150)
        segments = sum(len(log.segments) for log in mgr.all_logs())
        assert segments >= 70
        # Before: six descriptors for every segment, for life. Now: at most four segments' worth.
        assert open_descriptors() - before <= 4 * 6 + 1  # (+1: the data directory's lock file)
        assert sum(s.files_open for log in mgr.all_logs() for s in log.segments) <= 4
        for log in mgr.all_logs():  # reading every closed segment reopens each in turn, within the bound
            offset = 0
            while offset < log.log_end_offset:
                data = log.read(offset, 1).data
                assert data
                offset = check_batch(data).last_offset + 1
        assert open_descriptors() - before <= 4 * 6 + 1
    finally:
        mgr.close()
    assert open_descriptors() == before
    with LogManager(tmp_path, background=False, clock_ms=lambda: TS, max_open_segments=4) as again:
        assert open_descriptors() - before <= 4 * 6 + 1  # a start opens them one after another
        assert [log.log_end_offset for log in again.all_logs()] == [150, 150]


def test_a_segment_in_use_is_not_released_under_its_reader(tmp_path: Path) -> None:
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS, max_open_segments=2)
    try:
        mgr.create_topic("t", 1, TINY_SEGMENTS)
        fill(mgr, "t", 1, 40)
        log = mgr.log("t", 0)
        first = log.segments[0]
        scan = first.batches()
        _, header = next(scan)  # the scan pins the segment
        for segment in log.segments[1:-1]:  # every read here would release the least recently used
            assert segment.read(0, 1 << 20)
        assert first.files_open
        assert [h.base_offset for _, h in scan] == list(range(header.base_offset + 1, first.next_offset))
        log.segments[5].read(0, 1 << 20)
        log.segments[6].read(0, 1 << 20)
        assert not first.files_open  # once the scan is done it is released like any other
    finally:
        mgr.close()


def test_concurrent_reads_and_appends_within_a_tiny_bound(tmp_path: Path) -> None:
    """Readers of many partitions race appends that roll segments; nothing is closed under anybody."""
    mgr = LogManager(tmp_path, background=False, clock_ms=lambda: TS, max_open_segments=3)
    errors: list[BaseException] = []
    try:
        mgr.create_topic("t", 4, TINY_SEGMENTS)
        fill(mgr, "t", 4, 30)

        def read_all(partition: int) -> None:
            try:
                log = mgr.log("t", partition)
                for _ in range(5):
                    offset = 0
                    while offset < 30:
                        batch = log.read(offset, 1).data
                        assert check_batch(batch).base_offset == offset
                        offset += 1
            except BaseException as exc:  # reported below
                errors.append(exc)

        readers = [threading.Thread(target=read_all, args=(p,)) for p in range(4)]
        for thread in readers:
            thread.start()
        fill(mgr, "t", 4, 30)  # meanwhile: 120 more appends, each rolling a segment
        for thread in readers:
            thread.join()
        assert not errors, errors
        assert [log.log_end_offset for log in mgr.all_logs()] == [60] * 4
    finally:
        mgr.close()
