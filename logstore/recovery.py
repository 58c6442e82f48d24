"""Checking a segment's batches at start-up: framing, offsets and (after an unclean stop) CRCs.

Every segment is walked at every start, clean or not: the walk unpacks one 61-byte header per batch and
follows its length field, so it costs one header per batch, not a read of the data. That is enough to
find what a clean stop's trust would otherwise hide: a length field that no longer adds up to the file
size, a truncated file, offsets that do not increase (the CRC does not cover the base offset, so a
flipped one is caught only here). After an unclean stop the segments past the recovery point are also
CRC-checked, batch by batch (`check_crc`).

The walk reports the longest valid prefix; the segment cuts itself there (see `LogSegment.load` and
`LogSegment.recover`). Bytes cut off a segment that was not being written to are moved aside with
`set_aside`, never silently deleted: they were acknowledged once, and a person may want them back.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from logstore.records.crc import crc32c
from logstore.records.layout import (
    ATTRIBUTES_OFFSET,
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_END,
    MAGIC,
    MIN_BATCH_LENGTH,
    BatchHeader,
)

log = logging.getLogger(__name__)

MAX_RELATIVE_OFFSET = 0xFFFFFFFF  # an offset index entry holds offsets relative to the base in 32 bits
CORRUPT_SUFFIX = ".corrupt"
"""Bytes cut off a segment at start-up: `<segment>.log.corrupt-<ms>`, kept beside it for a person."""
STRAY_SUFFIX = ".stray"
"""A whole segment file moved aside at start-up: `<segment>.log.stray-<ms>`."""

_new_header = tuple.__new__


@dataclass
class SegmentScan:
    """What walking a segment found: its valid batches, and why the walk stopped short, if it did."""

    valid_bytes: int = 0
    """End of the longest valid prefix; the segment is sound when this is the file's size."""
    batches: list[tuple[int, BatchHeader]] = field(default_factory=list)
    """(position, header) of each batch of that prefix."""
    problem: str | None = None
    """Why the walk stopped before the end of the data, in words; None when it reached it."""
    max_timestamp: int = -1
    offset_of_max_timestamp: int = -1
    """The largest max timestamp of the prefix's batches, and the last offset of the batch holding it."""

    @property
    def last_offset(self) -> int | None:
        return self.batches[-1][1].last_offset if self.batches else None


def scan_segment(
    buf: bytes | bytearray | memoryview | mmap.mmap | None,
    end: int,
    base_offset: int,
    *,
    check_crc: bool = False,
) -> SegmentScan:
    """Walk the batches of `buf[0:end]`, a segment named `base_offset`, and find its longest valid prefix.

    A batch is valid when its header is whole, its length is at least a header's and stays within `end`,
    its magic byte is 2, its record count and last offset delta agree, its offsets lie between the
    segment's base offset and base + 2^32 - 1, and its base offset is above the previous batch's last
    offset (and, with `check_crc`, its CRC matches). Offsets may have gaps (compaction leaves them).

    When a batch's base offset is not above the previous batch's last offset, either header may be the
    flipped one. The previous batch is blamed when it is the outlier: when its offsets would fit between
    the batch before it and this one. Otherwise this batch is.
    """
    scan = SegmentScan()
    if buf is None or end <= 0:
        return scan
    unpack = HEADER_STRUCT.unpack_from
    batches = scan.batches
    position = 0
    previous_last = base_offset - 1
    while position < end:
        if end - position < HEADER_SIZE:
            scan.problem = f"a partial batch header at byte {position} ({end - position} bytes)"
            break
        fields = unpack(buf, position)
        base, length, magic, count, delta = fields[0], fields[1], fields[3], fields[12], fields[6]
        size = length + LENGTH_FIELD_END
        problem = None
        if length < MIN_BATCH_LENGTH:
            problem = (
                f"batch length field {length} at byte {position} is below the minimum {MIN_BATCH_LENGTH}"
            )
        elif position + size > end:
            problem = (
                f"the batch at byte {position} claims {size} bytes but the segment ends "
                f"{end - position} bytes later"
            )
        elif magic != MAGIC:
            problem = f"the batch at byte {position} has magic byte {magic}, not {MAGIC}"
        elif count < 1 or delta < count - 1:
            problem = (
                f"the batch at byte {position} has {count} records and last offset delta {delta}, "
                "which cannot both be right"
            )
        elif base < base_offset or base + delta - base_offset > MAX_RELATIVE_OFFSET:
            problem = (
                f"the batch at byte {position} holds offsets {base}..{base + delta}, outside the "
                f"segment's range {base_offset}..{base_offset + MAX_RELATIVE_OFFSET}"
            )
        elif base <= previous_last:
            problem = (
                f"the batch at byte {position} starts at offset {base}, not after the previous "
                f"batch's last offset {previous_last}"
            )
            if batches and _previous_is_outlier(batches, base_offset, base):
                position, header = batches.pop()
                problem = (
                    f"the batch at byte {position} claims offsets {header.base_offset}.."
                    f"{header.last_offset}, out of line with the batches around it "
                    f"(a damaged base offset)"
                )
        elif check_crc:
            stored = fields[4]
            with memoryview(buf) as view, view[position + ATTRIBUTES_OFFSET : position + size] as covered:
                computed = crc32c(covered)
            if computed != stored:
                problem = (
                    f"the batch at byte {position} fails its CRC "
                    f"(stored 0x{stored:08x}, computed 0x{computed:08x})"
                )
        if problem is not None:
            scan.problem = problem
            break
        batches.append((position, _new_header(BatchHeader, fields)))
        previous_last = base + delta
        position += size
    scan.valid_bytes = batches[-1][0] + batches[-1][1].size if batches else 0
    for _, header in batches:  # after the walk: a batch blamed late must not count
        if header.max_timestamp > scan.max_timestamp:
            scan.max_timestamp = header.max_timestamp
            scan.offset_of_max_timestamp = header.last_offset
    if scan.problem is None and scan.valid_bytes != end:  # only possible after blaming a previous batch
        scan.problem = f"batches end at byte {scan.valid_bytes}, the segment at {end}"
    return scan


def _previous_is_outlier(batches: list[tuple[int, BatchHeader]], base_offset: int, base: int) -> bool:
    """Whether the last batch in `batches` would fit, offsets and all, between the one before and `base`."""
    previous = batches[-1][1]
    before = batches[-2][1].last_offset if len(batches) > 1 else base_offset - 1
    return before + previous.last_offset_delta + 1 < base


def set_aside(path: Path, data: bytes | bytearray | memoryview, reason: str) -> Path:
    """Write `data` (bytes cut off `path`) to a new file beside it, fsynced, and return its path."""
    aside = _unused(path, CORRUPT_SUFFIX)
    with open(aside, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: %s; the %d bytes cut off are kept in %s", path, reason, len(data), aside.name)
    return aside


def move_aside(path: Path, reason: str) -> Path:
    """Rename a whole segment file out of the log's way (`.stray-<ms>`) and say so."""
    aside = _unused(path, STRAY_SUFFIX)
    os.replace(path, aside)
    log.warning("%s: %s; moved aside to %s", path, reason, aside.name)
    return aside


def _unused(path: Path, suffix: str) -> Path:
    stamp = time.time_ns() // 1_000_000
    candidate = path.with_name(f"{path.name}{suffix}-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}{suffix}-{stamp}.{n}")
        n += 1
    return candidate
