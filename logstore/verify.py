"""Offline check of a whole data directory, like `kafka-dump-log --deep-iteration`: `logstore verify DIR`.

Every batch of every segment is checked as the broker's recovery would after a crash (framing, magic,
offsets, CRC), and then its records are decoded (record framing, compressed contents), which even the
broker does not do at start. Segments of one partition must follow each other (each starts after its
predecessor's last offset). Read-only: nothing is repaired, so it can be run before deciding what to do.
Run it on a stopped broker: the segment being written to may otherwise end in a half-written batch.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from logstore.errors import CorruptRecordError
from logstore.records import decode_batch
from logstore.recovery import CORRUPT_SUFFIX, STRAY_SUFFIX, scan_segment
from logstore.segment import LOG_SUFFIX, parse_segment_name


@dataclass
class SegmentReport:
    """What checking one segment file found."""

    path: Path
    size: int = 0
    batches: int = 0
    records: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    zero_tail: int = 0
    """Bytes of zeros after the last batch (a preallocated segment after a crash): not an error."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        offsets = f"offsets {self.first_offset}..{self.last_offset}" if self.batches else "no batches"
        if not self.ok:
            return (
                f"{self.path}: CORRUPT: {'; '.join(self.problems)} "
                f"(before it {self.batches} good batches, {self.records} records, {offsets}; "
                f"file {self.size} bytes)"
            )
        summary = f"{self.batches} batches, {self.records} records, {offsets}, {self.size} bytes"
        if self.zero_tail:
            summary += f" ({self.zero_tail} of them a zero-filled tail)"
        return f"{self.path}: ok, {summary}"


@dataclass
class PartitionReport:
    directory: Path
    segments: list[SegmentReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Problems between segments (offsets that do not follow) and files set aside by earlier starts."""
    set_aside: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.segments)


def verify_segment(path: Path) -> SegmentReport:
    """Check every batch of the segment file at `path`, and decode its records."""
    report = SegmentReport(path, size=path.stat().st_size)
    base_offset = parse_segment_name(path.name)
    if base_offset is None:
        report.problems.append("the file name is not a 20-digit base offset")
        return report
    if report.size == 0:
        return report
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        scan = scan_segment(data, report.size, base_offset, check_crc=True)
        for position, header in scan.headers(data):
            try:
                report.records += len(decode_batch(data, position))
            except CorruptRecordError as exc:
                report.problems.append(
                    f"the records of the batch at byte {position} (offset {header.base_offset}) "
                    f"do not decode: {exc}"
                )
                break
            if report.first_offset is None:
                report.first_offset = header.base_offset
            report.last_offset = header.last_offset
            report.batches += 1
        rest = data[scan.valid_bytes :] if scan.problem is not None else b""
    if scan.problem is not None:
        if rest.count(0) == len(rest):
            report.zero_tail = len(rest)
        else:
            report.problems.append(f"{scan.problem}; {len(rest)} bytes from there on are not trusted")
    return report


def verify_partition(directory: Path) -> PartitionReport:
    report = PartitionReport(directory)
    logs = sorted((p for p in directory.iterdir() if p.name.endswith(LOG_SUFFIX)), key=lambda p: p.name)
    previous: SegmentReport | None = None
    for path in logs:
        segment = verify_segment(path)
        report.segments.append(segment)
        base = parse_segment_name(path.name)
        reached = previous.last_offset if previous is not None else None
        if previous is not None and reached is not None and base is not None and base <= reached:
            report.problems.append(
                f"{path.name} starts at offset {base}, inside {previous.path.name} "
                f"(which reaches offset {reached})"
            )
        previous = segment
    report.set_aside = sorted(
        p
        for p in directory.iterdir()
        if f"{LOG_SUFFIX}{CORRUPT_SUFFIX}-" in p.name or f"{LOG_SUFFIX}{STRAY_SUFFIX}-" in p.name
    )
    return report


def partition_directories(data_dir: Path) -> Iterator[Path]:
    """The directories under `data_dir` that hold segment files, in name order."""
    for path in sorted(data_dir.iterdir()):
        if path.is_dir() and any(p.name.endswith(LOG_SUFFIX) for p in path.iterdir()):
            yield path


def verify_data_dir(data_dir: Path) -> list[PartitionReport]:
    """Check every partition of a data directory. Raises ValueError if `data_dir` is not a directory."""
    if not data_dir.is_dir():
        raise ValueError(f"{data_dir} is not a directory; give a broker's data directory (its --data-dir)")
    return [verify_partition(directory) for directory in partition_directories(data_dir)]


def report_lines(reports: list[PartitionReport], *, problems_only: bool = False) -> Iterator[str]:
    """The text `logstore verify` prints: one line per segment file, then a summary line."""
    files = bad = 0
    for partition in reports:
        for segment in partition.segments:
            files += 1
            bad += not segment.ok
            if not (problems_only and segment.ok):
                yield segment.describe()
        for problem in partition.problems:
            bad += 1
            yield f"{partition.directory}: CORRUPT: {problem}"
        for path in partition.set_aside:
            yield f"{path}: note: set aside by an earlier start (not part of the log)"
    verdict = "no problems" if bad == 0 else f"{bad} problem(s)"
    yield f"checked {files} segment file(s) in {len(reports)} partition(s): {verdict}"


def main(data_dir: Path, *, problems_only: bool = False) -> int:
    """`logstore verify`: print the report; exit code 0 if everything checks out, 1 if anything does not."""
    reports = verify_data_dir(data_dir)
    for line in report_lines(reports, problems_only=problems_only):
        print(line)
    return 0 if all(r.ok for r in reports) else 1
