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
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from logstore.records.crc import crc32c
from logstore.records.layout import (
    ATTRIBUTES_OFFSET,
    BASE_OFFSET_OFFSET,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_FIELD_END,
    LENGTH_OFFSET,
    MAGIC,
    MAGIC_OFFSET,
    MAX_TIMESTAMP_OFFSET,
    MIN_BATCH_LENGTH,
    RECORD_COUNT_OFFSET,
    BatchHeader,
    parse_header,
)

log = logging.getLogger(__name__)

MAX_RELATIVE_OFFSET = 0xFFFFFFFF  # an offset index entry holds offsets relative to the base in 32 bits
CORRUPT_SUFFIX = ".corrupt"
"""Bytes cut off a segment at start-up: `<segment>.log.corrupt-<ms>`, kept beside it for a person."""
STRAY_SUFFIX = ".stray"
"""A whole segment file moved aside at start-up: `<segment>.log.stray-<ms>`."""

# What the walk reads of a header, in one unpack: base offset, length, magic, CRC, last offset delta, max
# timestamp, record count (the fields between are skipped as padding).
assert BASE_OFFSET_OFFSET == 0 and LENGTH_OFFSET == 8 and LENGTH_FIELD_END == 12
_WALK = struct.Struct(
    f">qi{MAGIC_OFFSET - LENGTH_FIELD_END}xbI{LAST_OFFSET_DELTA_OFFSET - ATTRIBUTES_OFFSET}xi"
    f"{MAX_TIMESTAMP_OFFSET - LAST_OFFSET_DELTA_OFFSET - 4}xq{RECORD_COUNT_OFFSET - MAX_TIMESTAMP_OFFSET - 8}xi"
)
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")

_Buffer = bytes | bytearray | memoryview | mmap.mmap


@dataclass
class SegmentScan:
    """What walking a segment found: where its valid batches are, and why the walk stopped short, if it did.

    Plain lists of ints, no header per batch: this runs on every batch of every segment at every start.
    `headers` parses the headers of the prefix for the callers that need them.
    """

    valid_bytes: int = 0
    """End of the longest valid prefix; the segment is sound when this is the file's size."""
    positions: list[int] = field(default_factory=list)
    """Byte position of each batch of that prefix."""
    base_offsets: list[int] = field(default_factory=list)
    """Base offset of each batch of that prefix."""
    last_offset: int | None = None
    """Last offset of the prefix's last batch; None when the prefix is empty."""
    problem: str | None = None
    """Why the walk stopped before the end of the data, in words; None when it reached it."""
    max_timestamp: int = -1
    offset_of_max_timestamp: int = -1
    """The largest max timestamp of the prefix's batches, and the last offset of the batch holding it."""

    def headers(self, buf: _Buffer) -> list[tuple[int, BatchHeader]]:
        """(position, header) of each batch of the prefix, parsed from `buf`, the buffer that was walked."""
        return [(position, parse_header(buf, position)) for position in self.positions]


def scan_segment(buf: _Buffer | None, end: int, base_offset: int, *, check_crc: bool = False) -> SegmentScan:
    """Walk the batches of `buf[0:end]`, a segment named `base_offset`, and find its longest valid prefix.

    A batch is valid when its header is whole, its length is at least a header's and stays within `end`,
    its magic byte is 2, its record count and last offset delta agree, its offsets lie between the
    segment's base offset and base + 2^32 - 1, and its base offset is above the previous batch's last
    offset (and, with `check_crc`, its CRC matches). Offsets may have gaps (compaction leaves them).

    When a batch's base offset is not above the previous batch's last offset, either header may be the
    flipped one. The previous batch is blamed when it is the outlier: when its offsets would fit between
    the batch before it and this one. Otherwise this batch is.

    One unpack of the fields it checks per batch, straight from `buf` (an mmap at start-up), and one
    combined test; the reason is worked out only for the batch that fails it.
    """
    scan = SegmentScan()
    if buf is None or end <= 0:
        return scan
    unpack = _WALK.unpack_from
    positions, bases = scan.positions, scan.base_offsets
    add_position, add_base = positions.append, bases.append
    highest = base_offset + MAX_RELATIVE_OFFSET
    position = 0
    previous_last = base_offset - 1
    before_previous = base_offset - 1  # the last offset of the batch before the previous one
    max_timestamp = offset_of_max_timestamp = -1
    problem = None
    view = memoryview(buf) if check_crc else None
    try:
        while position < end:
            if end - position < HEADER_SIZE:
                problem = f"a partial batch header at byte {position} ({end - position} bytes)"
                break
            base, length, magic, stored, delta, timestamp, count = unpack(buf, position)
            next_position = position + length + LENGTH_FIELD_END
            if (
                length < MIN_BATCH_LENGTH
                or next_position > end
                or magic != MAGIC
                or count < 1
                or delta < count - 1
                or base < base_offset
                or base + delta > highest
                or base <= previous_last
            ):
                problem = _why(position, end, base_offset, base, length, magic, delta, count)
                if problem is None:  # only the order is wrong: which of the two batches is the outlier?
                    problem = (
                        f"the batch at byte {position} starts at offset {base}, not after the previous "
                        f"batch's last offset {previous_last}"
                    )
                    if positions and before_previous + previous_last - bases[-1] + 1 < base:
                        position = positions.pop()
                        problem = (
                            f"the batch at byte {position} claims offsets {bases.pop()}..{previous_last}, "
                            "out of line with the batches around it (a damaged base offset)"
                        )
                        previous_last = before_previous
                        max_timestamp, offset_of_max_timestamp = _max_timestamp(buf, positions)
                break
            if view is not None:
                computed = crc32c(view[position + ATTRIBUTES_OFFSET : next_position])
                if computed != stored:
                    problem = (
                        f"the batch at byte {position} fails its CRC "
                        f"(stored 0x{stored:08x}, computed 0x{computed:08x})"
                    )
                    break
            add_position(position)
            add_base(base)
            before_previous = previous_last
            previous_last = base + delta
            if timestamp > max_timestamp:
                max_timestamp, offset_of_max_timestamp = timestamp, previous_last
            position = next_position
    finally:
        if view is not None:
            view.release()
    scan.valid_bytes = position  # after a blamed previous batch: that batch's position
    scan.problem = problem
    scan.last_offset = previous_last if positions else None
    scan.max_timestamp, scan.offset_of_max_timestamp = max_timestamp, offset_of_max_timestamp
    return scan


def _why(
    position: int,
    end: int,
    base_offset: int,
    base: int,
    length: int,
    magic: int,
    delta: int,
    count: int,
) -> str | None:
    """Why the batch at `position` failed the walk's combined test, in words; None if only its order did."""
    size = length + LENGTH_FIELD_END
    if length < MIN_BATCH_LENGTH:
        return f"batch length field {length} at byte {position} is below the minimum {MIN_BATCH_LENGTH}"
    if position + size > end:
        return (
            f"the batch at byte {position} claims {size} bytes but the segment ends "
            f"{end - position} bytes later"
        )
    if magic != MAGIC:
        return f"the batch at byte {position} has magic byte {magic}, not {MAGIC}"
    if count < 1 or delta < count - 1:
        return (
            f"the batch at byte {position} has {count} records and last offset delta {delta}, "
            "which cannot both be right"
        )
    if base < base_offset or base + delta - base_offset > MAX_RELATIVE_OFFSET:
        return (
            f"the batch at byte {position} holds offsets {base}..{base + delta}, outside the "
            f"segment's range {base_offset}..{base_offset + MAX_RELATIVE_OFFSET}"
        )
    return None


def _max_timestamp(buf: _Buffer, positions: list[int]) -> tuple[int, int]:
    """The largest max timestamp of the batches at `positions`, and the last offset of the first holding it."""
    best = offset = -1
    for position in positions:
        timestamp = _I64.unpack_from(buf, position + MAX_TIMESTAMP_OFFSET)[0]
        if timestamp > best:
            base = _I64.unpack_from(buf, position + BASE_OFFSET_OFFSET)[0]
            best, offset = timestamp, base + _I32.unpack_from(buf, position + LAST_OFFSET_DELTA_OFFSET)[0]
    return best, offset


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
