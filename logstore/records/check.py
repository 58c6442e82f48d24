"""Validating a batch's framing, magic byte and CRC without decoding its records.

This is what the broker runs on every produce request and what recovery runs on every batch after the
checkpoint, so it only unpacks the header and computes one CRC over a zero-copy view.
"""

from __future__ import annotations

import struct

from ..errors import CorruptRecordError, RecordTooLargeError
from .crc import crc32c
from .layout import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    HEADER_SIZE,
    HEADER_STRUCT,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_FIELD_END,
    LENGTH_OFFSET,
    MAGIC,
    MAGIC_OFFSET,
    MIN_BATCH_LENGTH,
    RECORD_COUNT_OFFSET,
    BatchHeader,
    Readable,
)

_new_header = tuple.__new__


def check_batch(buf: Readable, pos: int = 0, *, max_size: int | None = None) -> BatchHeader:
    """Check the batch at ``pos`` and return its header.

    Raises CorruptRecordError if the header is cut short, the length field is below the minimum or runs
    past the buffer, the magic byte is not 2, the CRC does not match, or the record count and last
    offset delta are inconsistent (Kafka's rule: at least one record, and a last offset delta of at
    least ``record_count - 1`` since deltas are distinct and start at 0). Raises RecordTooLargeError if
    the batch is larger than ``max_size``. The base offset and partition leader epoch are not covered
    by the CRC and are not checked.
    """
    available = len(buf) - pos
    if available < HEADER_SIZE:
        raise CorruptRecordError(
            f"batch at byte {pos}: only {max(available, 0)} bytes left, a batch header needs {HEADER_SIZE}"
        )
    fields = HEADER_STRUCT.unpack_from(buf, pos)
    length = fields[1]
    if length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch at byte {pos}: length field {length} is below the minimum {MIN_BATCH_LENGTH}"
        )
    magic = fields[3]
    if magic != MAGIC:
        raise CorruptRecordError(f"batch at byte {pos}: magic byte is {magic}, only {MAGIC} is supported")
    size = length + LENGTH_FIELD_END
    if size > available:
        raise CorruptRecordError(
            f"batch at byte {pos}: length field says {size} bytes but only {available} are left (truncated)"
        )
    if max_size is not None and size > max_size:
        raise RecordTooLargeError(
            f"batch at byte {pos} is {size} bytes, larger than the limit of {max_size} bytes"
        )
    with memoryview(buf) as view, view[pos + ATTRIBUTES_OFFSET : pos + size] as covered:
        computed = crc32c(covered)
    stored = fields[4]
    if computed != stored:
        raise CorruptRecordError(
            f"batch at byte {pos}: CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
        )
    record_count = fields[12]
    if record_count < 1:
        raise CorruptRecordError(f"batch at byte {pos}: record count is {record_count}, must be at least 1")
    last_offset_delta = fields[6]
    if last_offset_delta < record_count - 1:
        raise CorruptRecordError(
            f"batch at byte {pos}: last offset delta {last_offset_delta} is too small for "
            f"{record_count} records (must be at least {record_count - 1})"
        )
    return _new_header(BatchHeader, fields)


# What check_batches reads of a header, in one unpack from the length field on: length, magic, CRC, last
# offset delta, record count (the fields between are skipped as padding).
assert CRC_OFFSET == MAGIC_OFFSET + 1 and LENGTH_FIELD_END == LENGTH_OFFSET + 4
_FRAME = struct.Struct(
    f">i{MAGIC_OFFSET - LENGTH_FIELD_END}xbI{LAST_OFFSET_DELTA_OFFSET - ATTRIBUTES_OFFSET}xi"
    f"{RECORD_COUNT_OFFSET - LAST_OFFSET_DELTA_OFFSET - 4}xi"
)


def check_batches(
    buf: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
) -> tuple[int, str | None]:
    """Check the back-to-back batches of ``buf[start:end]`` as `check_batch` does, and say where they stop.

    Returns ``(position, None)`` when every batch up to ``end`` is sound, else the position of the first
    bad batch and why, in words without the position (the caller knows what that byte means). The fast
    path for serving a read: one unpack and one CRC over a zero-copy view per batch, no header object.
    """
    if end is None:
        end = len(buf)
    unpack = _FRAME.unpack_from
    pos = start
    with memoryview(buf) as view:
        while pos < end:
            if end - pos < HEADER_SIZE:
                return pos, f"only {end - pos} bytes left, a batch header needs {HEADER_SIZE}"
            length, magic, stored, last_offset_delta, record_count = unpack(view, pos + LENGTH_OFFSET)
            next_pos = pos + length + LENGTH_FIELD_END
            if length < MIN_BATCH_LENGTH:
                return pos, f"length field {length} is below the minimum {MIN_BATCH_LENGTH}"
            if magic != MAGIC:
                return pos, f"magic byte is {magic}, only {MAGIC} is supported"
            if next_pos > end:
                return pos, (
                    f"length field says {length + LENGTH_FIELD_END} bytes but only {end - pos} are left "
                    "(truncated)"
                )
            computed = crc32c(view[pos + ATTRIBUTES_OFFSET : next_pos])
            if computed != stored:
                return pos, f"CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
            if record_count < 1:
                return pos, f"record count is {record_count}, must be at least 1"
            if last_offset_delta < record_count - 1:
                return pos, (
                    f"last offset delta {last_offset_delta} is too small for {record_count} records "
                    f"(must be at least {record_count - 1})"
                )
            pos = next_pos
    return pos, None
