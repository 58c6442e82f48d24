"""What the integrity checks of issue 9 item 12 cost: CRC-checking every served batch, and walking every
segment's batch headers at every start.

Run: .venv/bin/python -m logstore.bench.bench_integrity [--mib 256] [--rounds 9]

Serve: a 256 MiB partition of 16 KiB and 1 MiB batches (1000-byte values) is read back whole with
Log.read(offset, 1 MiB), what a consumer fetching with max_bytes = 1 MiB asks for, beside the same reads
without the CRC check (the pre-check read path, kept here as `unchecked_read`: follow the length fields
and slice), and beside the floor of any check that reads every byte (`floor_read`: the unchecked read
plus one CRC-32C over the whole answer). Rounds alternate between them so a busy machine slows all
alike; the figure is the median of the per-round ratios. Everything is in the page cache.

Start: a partition of `--segments` closed segments (default 3000 x 64 KiB, 100-byte records in batches
of 16) is stopped cleanly and opened again, timed, beside the time of the header walk alone
(`recovery.scan_segment` over every segment).
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from logstore.config import TopicConfig
from logstore.log import Log
from logstore.manager import LogManager
from logstore.records import HEADER_SIZE, BatchBuilder, crc32c, iter_headers
from logstore.records.layout import LENGTH_FIELD_END, LENGTH_OFFSET

try:
    from logstore.recovery import scan_segment
except ImportError:  # the code before the checks (for the baseline): time the start only
    scan_segment = None  # type: ignore[assignment]

KiB = 1024
MiB = 1024 * KiB


def build_batches(batch_bytes: int, total_bytes: int, value_bytes: int = 1000) -> list[bytes]:
    batches: list[bytes] = []
    size = 0
    while size < total_bytes:
        builder = BatchBuilder()
        while builder.size_in_bytes() + value_bytes + 16 <= batch_bytes:
            builder.append(os.urandom(value_bytes), timestamp_ms=1_700_000_000_000)
        batch = builder.build()
        batches.append(batch)
        size += len(batch)
    return batches


def unchecked_read(log: Log, offset: int, max_bytes: int) -> bytes:
    """The read path before serve-time CRC checks: whole batches by their length fields, no CRC."""
    index = max(0, [s.base_offset <= offset for s in log.segments].count(True) - 1)
    segment = log.segments[index]
    position = segment.find_batch(offset)
    assert position is not None and segment._map is not None
    view, size, end = segment._map, segment.size, position
    while end + HEADER_SIZE <= size:
        length = int.from_bytes(view[end + LENGTH_OFFSET : end + LENGTH_FIELD_END], "big") + LENGTH_FIELD_END
        if end + length - position > max_bytes and end > position:
            break
        end += length
    return view[position:end]


def floor_read(log: Log, offset: int, max_bytes: int) -> bytes:
    """`unchecked_read` plus one CRC-32C over the whole answer: what any check reading every byte costs."""
    data = unchecked_read(log, offset, max_bytes)
    crc32c(data)
    return data


def bench_serve(root: Path, total: int, rounds: int) -> None:
    for label, batch_bytes in (("16 KiB", 16 * KiB), ("1 MiB", MiB)):
        directory = root / f"serve-{batch_bytes}"
        log = Log(directory, "t", 0, TopicConfig(segment_bytes=1024 * MiB, max_message_bytes=2 * MiB))
        for batch in build_batches(batch_bytes, total):
            log.append(batch)
        starts = []
        offset = 0
        while offset < log.log_end_offset:
            starts.append(offset)
            data = log.read(offset, MiB).data
            offset = [h for _, h in iter_headers(data)][-1].last_offset + 1
        nbytes = log.size_in_bytes
        checked_s, unchecked_s, floor_s, ratios, floor_ratios = [], [], [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for offset in starts:
                log.read(offset, MiB)
            t1 = time.perf_counter()
            for offset in starts:
                unchecked_read(log, offset, MiB)
            t2 = time.perf_counter()
            for offset in starts:
                floor_read(log, offset, MiB)
            t3 = time.perf_counter()
            checked_s.append(t1 - t0)
            unchecked_s.append(t2 - t1)
            floor_s.append(t3 - t2)
            ratios.append((t1 - t0) / (t2 - t1))
            floor_ratios.append((t3 - t2) / (t2 - t1))
        log.close()
        shutil.rmtree(directory)
        med_c, med_u, med_f = (statistics.median(s) for s in (checked_s, unchecked_s, floor_s))
        print(
            f"serve {label} batches: checked {nbytes / med_c / 1e6:,.0f} MB/s, unchecked "
            f"{nbytes / med_u / 1e6:,.0f} MB/s, checked/unchecked time x{statistics.median(ratios):.2f}; "
            f"floor (one CRC over each answer) {nbytes / med_f / 1e6:,.0f} MB/s, "
            f"x{statistics.median(floor_ratios):.2f} (median of {rounds} rounds, {nbytes / MiB:.0f} MiB)"
        )


def bench_crc(rounds: int) -> None:
    """CRC-32C alone over an in-cache 1 MiB answer: one call, and one call per 16 KiB batch."""
    data = os.urandom(MiB)
    per_answer, per_batch = [], []
    with memoryview(data) as view:
        for _ in range(rounds * 10):
            t0 = time.perf_counter()
            crc32c(view)
            t1 = time.perf_counter()
            for position in range(0, MiB, 16 * KiB):
                crc32c(view[position : position + 16 * KiB])
            t2 = time.perf_counter()
            per_answer.append(t1 - t0)
            per_batch.append(t2 - t1)
    print(
        f"CRC-32C of 1 MiB in cache: one call {statistics.median(per_answer) * 1e6:.0f} us, 64 calls of "
        f"16 KiB {statistics.median(per_batch) * 1e6:.0f} us (median of {rounds * 10})"
    )


def bench_start(root: Path, segments: int, segment_bytes: int, rounds: int) -> None:
    data_dir = root / "start"
    config = {"segment.bytes": segment_bytes, "index.interval.bytes": 4096}
    mgr = LogManager(data_dir, background=False)
    mgr.create_topic("t", 1, config)
    log = mgr.log("t", 0)
    batch = build_batches(16 * 116, 16 * 116, value_bytes=100)[0]
    while len(log.segments) <= segments:
        log.append(batch)
    mgr.close()
    files = sorted((data_dir / "t-0").glob("*.log"))
    opens, walks = [], []
    batches = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        LogManager(data_dir, background=False).close()
        t1 = time.perf_counter()
        batches = 0
        for path in files if scan_segment is not None else ():
            with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                batches += len(scan_segment(data, len(data), int(path.name[:20])).positions)
        t2 = time.perf_counter()
        opens.append(t1 - t0)
        walks.append(t2 - t1)
    print(
        f"start after a clean stop, {len(files)} segments, {batches:,} batches, "
        f"{sum(p.stat().st_size for p in files) / MiB:.0f} MiB: open {statistics.median(opens):.2f} s; "
        f"the header walk alone (open + mmap + scan_segment per file) {statistics.median(walks):.2f} s "
        f"(median of {rounds} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="size of each served partition")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--segments", type=int, default=3000)
    parser.add_argument("--segment-kib", type=int, default=64)
    parser.add_argument("--only", choices=["serve", "crc", "start"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    try:
        if args.only in (None, "serve"):
            bench_serve(root, args.mib * MiB, args.rounds)
        if args.only in (None, "crc"):
            bench_crc(args.rounds)
        if args.only in (None, "start"):
            bench_start(root, args.segments, args.segment_kib * KiB, max(3, args.rounds // 3))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
