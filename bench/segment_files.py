"""What a data directory's segment count costs in descriptors and in start-up time (issue 9, items 4, 11).

    python bench/segment_files.py fds DIR --segments 3000 [--max-open-segments N]
    python bench/segment_files.py unclean-start DIR --segments 3000 --runs 5

`fds` builds DIR (if empty) with that many segments over 30 partitions, opens it, and prints the
descriptors the process holds, before and after reading every segment once. `unclean-start` builds DIR,
then per run: a clean start in a child process that is SIGKILLed once open (a crash after a clean
start), then the timed unclean start, then a clean stop; it prints each time and the median.

Runs against whatever `logstore` is importable, so `PYTHONPATH=<checkout of main>` measures the baseline.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from logstore.manager import LogManager
from logstore.records import Record, build_batch

PARTITIONS = 30
CONFIG = {"segment.bytes": "1024"}
TS = 1_700_000_000_000


def manager(data_dir: Path, max_open_segments: int | None = None) -> LogManager:
    kwargs: dict[str, Any] = {}
    if max_open_segments is not None and "max_open_segments" in inspect.signature(LogManager).parameters:
        kwargs["max_open_segments"] = max_open_segments
    return LogManager(data_dir, background=False, **kwargs)


def build(data_dir: Path, segments: int) -> None:
    """`segments` closed segments over PARTITIONS partitions (one ~900-byte batch each), cleanly closed."""
    if (data_dir / "meta.json").exists():
        return
    per_partition = -(-segments // PARTITIONS)
    with manager(data_dir, max_open_segments=64) as mgr:
        mgr.create_topic("t", PARTITIONS, CONFIG)
        for partition in range(PARTITIONS):
            log = mgr.log("t", partition)
            for i in range(per_partition + 1):  # +1: the active segment
                log.append(build_batch([Record(0, TS + i, value=b"v" * 900)]))


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def count_fds(data_dir: Path, max_open_segments: int | None) -> None:
    before = open_descriptors()
    started = time.perf_counter()
    with manager(data_dir, max_open_segments) as mgr:
        opened = time.perf_counter() - started
        segments = sum(len(log.segments) for log in mgr.all_logs())
        after_open = open_descriptors() - before
        for log in mgr.all_logs():
            for base in list(log._bases):
                log.read(base, 1)
        after_reads = open_descriptors() - before
    print(
        f"{segments} segments: {after_open} descriptors held after a clean start ({opened:.1f} s), "
        f"{after_reads} after reading every segment once"
    )


CRASH_AFTER_CLEAN_START = """
import os, signal, sys
from logstore.manager import LogManager
LogManager(sys.argv[1], background=False)
os.kill(os.getpid(), signal.SIGKILL)
"""


def unclean_start(data_dir: Path, runs: int) -> None:
    times = []
    for run in range(runs):
        subprocess.run([sys.executable, "-c", CRASH_AFTER_CLEAN_START, str(data_dir)], check=False)
        index_bytes = sum(p.stat().st_size for p in data_dir.glob("*/*.index"))
        started = time.perf_counter()
        mgr = manager(data_dir)
        elapsed = time.perf_counter() - started
        assert not mgr.clean_shutdown
        mgr.close()
        times.append(elapsed)
        print(
            f"run {run + 1}: unclean start {elapsed:.2f} s (offset index files before it: {index_bytes:,} B)"
        )
    print(f"median of {runs}: {statistics.median(times):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["fds", "unclean-start"])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--segments", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-open-segments", type=int, default=None)
    args = parser.parse_args()
    build(args.data_dir, args.segments)
    if args.what == "fds":
        count_fds(args.data_dir, args.max_open_segments)
    else:
        unclean_start(args.data_dir, args.runs)


if __name__ == "__main__":
    main()
