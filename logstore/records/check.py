"""Validating a batch's framing, magic byte and CRC without decoding its records.

This is what the broker runs on every produce request and what recovery runs on every batch after the
checkpoint, so it only unpacks the header and computes one CRC over a zero-copy view.
"""

from __future__ import annotations

from ..errors import CorruptRecordError, RecordTooLargeError
from .crc import crc32c
from .layout import (
    ATTRIBUTES_OFFSET,
    HEADER_SIZE,
    HEADER_STRUCT,
    LENGTH_FIELD_END,
    MAGIC,
    MIN_BATCH_LENGTH,
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
