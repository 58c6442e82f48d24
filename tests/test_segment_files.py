"""What segments cost in files: closed segments' indexes keep their size (no regrowth to
segment.index.bytes on every open), and closed segments release their descriptors and maps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from logstore.manager import CLEAN_SHUTDOWN_MARKER, LogManager
from logstore.records import Record, build_batch
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
