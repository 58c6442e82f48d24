"""Storage engine throughput: Log.append and Log.read beside plain os.write / os.read of the same bytes.

Run: .venv/bin/python -m pytest bench/bench_storage.py --benchmark-enable --benchmark-only

Append: each round appends 256 MiB of prebuilt batches (1 MiB or 16 KiB each, one batch per call) into a
fresh partition whose single segment (segment.bytes 1 GiB) never rolls; the baseline writes the same
bytes, one os.write() per batch, to a new file in the same directory. Neither side fsyncs: both measure
the write path into the page cache. Log.append also checks each batch (framing, magic, CRC-32C over the
whole batch), assigns offsets and indexes, which is the cost the ratio shows.

Read: reads the whole 256 MiB log back with Log.read(offset, 1 MiB) from precomputed start offsets (what
a consumer fetching with max_bytes = 1 MiB asks for), beside os.read() of the same segment file in
1 MiB chunks. Both read from the page cache.

At the end the module prints MB/s per case and the ratio storage/baseline, from the best and the median
round (pytest-benchmark's own table has the full statistics).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from logstore.config import TopicConfig
from logstore.log import Log
from logstore.records import BatchBuilder, iter_headers, parse_header

KiB = 1024
MiB = 1024 * KiB
TOTAL_BYTES = 256 * MiB
RECORD_VALUE_BYTES = 1000
ROUNDS = 9
BATCH_SIZES = {"1 MiB": MiB, "16 KiB": 16 * KiB}
CONFIG = TopicConfig(segment_bytes=1024 * MiB, max_message_bytes=2 * MiB)

_results: dict[tuple[str, str], dict[str, float]] = {}


def build_batches(batch_bytes: int, total_bytes: int) -> list[bytes]:
    """Uncompressed batches of 1000-byte random values, each at most `batch_bytes`, about `total_bytes` in all."""
    batches: list[bytes] = []
    size = 0
    while size < total_bytes:
        builder = BatchBuilder()
        while builder.size_in_bytes() + RECORD_VALUE_BYTES + 16 <= batch_bytes:
            builder.append(os.urandom(RECORD_VALUE_BYTES), timestamp_ms=1_700_000_000_000)
        batch = builder.build()
        batches.append(batch)
        size += len(batch)
    return batches


@pytest.fixture(scope="module", params=list(BATCH_SIZES), ids=list(BATCH_SIZES))
def batches(request: pytest.FixtureRequest) -> tuple[str, list[bytes]]:
    return request.param, build_batches(BATCH_SIZES[request.param], TOTAL_BYTES)


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the MB/s table once every benchmark of the module has run."""
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not _results:
        return
    with capture.global_and_fixture_disabled():  # what capsys.disabled() does, at module scope
        _write_summary(reporter)


def _write_summary(reporter: Any) -> None:
    reporter.write_line("")
    reporter.write_line(
        "Storage throughput, 256 MiB per round (MB/s = 10^6 bytes/s; best round | median round)"
    )
    reporter.write_line(f"  {'case':22s} {'storage':>17s} {'baseline':>17s} {'ratio':>13s}")
    for (operation, size), row in sorted(_results.items()):
        if "storage" not in row or "baseline" not in row:
            continue
        best, median = row["storage"], row["storage_median"]
        base, base_median = row["baseline"], row["baseline_median"]
        reporter.write_line(
            f"  {operation + ', ' + size + ' batches':22s} {best:7.0f} | {median:7.0f} {base:7.0f} | "
            f"{base_median:7.0f} {best / base:5.2f} | {median / base_median:5.2f}"
        )


def record(benchmark: Any, operation: str, size: str, side: str, nbytes: int) -> None:
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is None:  # --benchmark-disable: the function ran once, untimed
        return
    row = _results.setdefault((operation, size), {})
    row[side] = nbytes / stats.min / 1e6
    row[f"{side}_median"] = nbytes / stats.median / 1e6
    benchmark.extra_info["MB/s (median)"] = round(row[f"{side}_median"])


class Rounds:
    """A fresh directory per round, created untimed in `setup`, removed before the next one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.current: Path | None = None
        self.cleanups: list[Callable[[], None]] = []

    def setup(self) -> Path:
        self.cleanup()
        self.count += 1
        self.current = self.root / f"round-{self.count}"
        self.current.mkdir()
        return self.current

    def cleanup(self) -> None:
        for cleanup in self.cleanups:
            cleanup()
        self.cleanups.clear()
        if self.current is not None:
            shutil.rmtree(self.current)
            self.current = None


# --- append -------------------------------------------------------------------------------------------------


def test_append(benchmark: Any, batches: tuple[str, list[bytes]], tmp_path: Path) -> None:
    size, data = batches
    benchmark.group = f"append, {size} batches"
    rounds = Rounds(tmp_path)
    logs: list[Log] = []

    def setup() -> tuple[tuple[Log], dict[str, Any]]:
        directory = rounds.setup()
        log = Log(directory / "bench-0", "bench", 0, CONFIG)
        rounds.cleanups.append(log.delete)  # no flush: 256 MiB of fsync is not part of the append path
        logs.append(log)
        return (log,), {}

    def append_all(log: Log) -> None:
        append = log.append
        for batch in data:
            append(batch)

    benchmark.pedantic(append_all, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    last = logs[-1]
    assert last.log_end_offset == sum(parse_header(b).record_count for b in data)
    assert last.size_in_bytes == sum(map(len, data))
    assert len(last.segments) == 1
    rounds.cleanup()
    record(benchmark, "append", size, "storage", sum(map(len, data)))


def test_append_baseline_os_write(benchmark: Any, batches: tuple[str, list[bytes]], tmp_path: Path) -> None:
    size, data = batches
    benchmark.group = f"append, {size} batches"
    rounds = Rounds(tmp_path)

    def setup() -> tuple[tuple[int], dict[str, Any]]:
        directory = rounds.setup()
        fd = os.open(directory / "plain.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        rounds.cleanups.append(lambda: os.close(fd))
        return (fd,), {}

    def write_all(fd: int) -> None:
        write = os.write
        for batch in data:
            write(fd, batch)

    benchmark.pedantic(write_all, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    rounds.cleanup()
    record(benchmark, "append", size, "baseline", sum(map(len, data)))


# --- read ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written_log(
    batches: tuple[str, list[bytes]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Log, list[int]]]:
    """The batches appended once into a log, and the offsets a 1 MiB-at-a-time consumer would fetch from."""
    size, data = batches
    log = Log(tmp_path_factory.mktemp("bench-read") / "bench-0", "bench", 0, CONFIG)
    for batch in data:
        log.append(batch)
    starts = []
    offset = 0
    while offset < log.log_end_offset:
        starts.append(offset)
        chunk = log.read(offset, MiB).data
        offset = list(iter_headers(chunk))[-1][1].last_offset + 1
    yield size, log, starts
    log.delete()


def test_read(benchmark: Any, written_log: tuple[str, Log, list[int]]) -> None:
    size, log, starts = written_log
    benchmark.group = f"read 1 MiB at a time, {size} batches"

    def read_all() -> int:
        read = log.read
        return sum(len(read(offset, MiB).data) for offset in starts)

    total = benchmark.pedantic(read_all, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert total == log.size_in_bytes
    record(benchmark, "read", size, "storage", total)


def test_read_baseline_os_read(benchmark: Any, written_log: tuple[str, Log, list[int]]) -> None:
    size, log, _ = written_log
    benchmark.group = f"read 1 MiB at a time, {size} batches"
    logical_size = log.size_in_bytes
    fd = os.open(log.segments[0].log_path, os.O_RDONLY)

    def read_all() -> int:
        read = os.read
        done = 0
        os.lseek(fd, 0, os.SEEK_SET)
        while done < logical_size:
            done += len(read(fd, min(MiB, logical_size - done)))
        return done

    try:
        total = benchmark.pedantic(read_all, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    finally:
        os.close(fd)
    assert total == logical_size
    record(benchmark, "read", size, "baseline", total)
