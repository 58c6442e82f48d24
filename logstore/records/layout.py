"""The RecordBatch v2 header: field layout, constants and in-place patches.

Everything here works on any buffer (bytes, bytearray, memoryview, mmap) with ``struct`` at an offset,
so the broker can inspect and patch batches without copying or decoding their records.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import CorruptRecordError
from .crc import crc32c

#: What the codec reads batches from: bytes off the wire, or a segment file's map.
Readable = bytes | bytearray | memoryview | mmap.mmap

# base offset, batch length, partition leader epoch, magic, crc, attributes, last offset delta,
# base timestamp, max timestamp, producer id, producer epoch, base sequence, record count
HEADER_STRUCT = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER_STRUCT.size  # 61
# The same header in two parts: the fields before the CRC, and the CRC-covered rest (attributes onwards).
HEAD_STRUCT = struct.Struct(">qiibI")
CRC_COVERED_HEAD_STRUCT = struct.Struct(">hiqqqhii")

BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21  # the CRC covers everything from here to the end of the batch
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORD_COUNT_OFFSET = 57

LENGTH_FIELD_END = 12  # the batch length counts the bytes after the length field
MIN_BATCH_LENGTH = HEADER_SIZE - LENGTH_FIELD_END  # 49: a header and no records
MAGIC = 2

# compression codecs (attribute bits 0-2)
NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
COMPRESSION_MASK = 0x07
# timestamp types (attribute bit 3)
CREATE_TIME = 0
LOG_APPEND_TIME = 1
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

# Partial views of the header, for scans that step over many batches and need one or two fields of each.
OFFSET_AND_LENGTH_STRUCT = struct.Struct(">qi")  # base offset and batch length, at BASE_OFFSET_OFFSET
LAST_OFFSET_DELTA_STRUCT = struct.Struct(">i")  # at LAST_OFFSET_DELTA_OFFSET
LENGTH_STRUCT = struct.Struct(">i")  # the batch length, at LENGTH_OFFSET

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_PRODUCER_FIELDS = struct.Struct(">qhi")  # producer id, producer epoch, base sequence


class BatchHeader(NamedTuple):
    """The 13 fields of a v2 batch header, in wire order, plus derived views of them."""

    base_offset: int
    length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.length + LENGTH_FIELD_END

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_MASK else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID


_new_header = tuple.__new__  # builds a BatchHeader from the unpacked tuple without per-field calls


def parse_header(buf: Readable, pos: int = 0) -> BatchHeader:
    """Unpack the header at ``pos`` without checking anything but that 61 bytes are there."""
    try:
        return _new_header(BatchHeader, HEADER_STRUCT.unpack_from(buf, pos))
    except struct.error:
        available = max(len(buf) - pos, 0)
        raise CorruptRecordError(
            f"batch at byte {pos}: only {available} bytes left, a batch header needs {HEADER_SIZE}"
        ) from None


def iter_headers(buf: Readable, start: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(pos, header)`` for each complete batch in ``buf[start:end]``, back to back.

    Stops without an error at a partial tail and at a batch whose length field is below the minimum
    (a zero-filled preallocated tail looks like that); the caller decides what such a stop means by
    comparing the last position reached with ``end``. Nothing else (magic, CRC) is checked here.
    """
    if end is None:
        end = len(buf)
    unpack_from = HEADER_STRUCT.unpack_from
    new = _new_header
    header_type = BatchHeader
    pos = start
    last_header_start = end - HEADER_SIZE
    while pos <= last_header_start:
        fields = unpack_from(buf, pos)
        length = fields[1]
        if length < MIN_BATCH_LENGTH:
            return
        next_pos = pos + length + LENGTH_FIELD_END
        if next_pos > end:
            return
        yield pos, new(header_type, fields)
        pos = next_pos


def set_base_offset(buf: bytearray | memoryview, pos: int, offset: int) -> None:
    """Write the base offset of the batch at ``pos`` in place. The CRC does not cover it."""
    _I64.pack_into(buf, pos + BASE_OFFSET_OFFSET, offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Write the partition leader epoch of the batch at ``pos`` in place. The CRC does not cover it.

    What a replicated partition's leader does to every batch it appends (Kafka's LogValidator), so each
    batch says which leader wrote it; followers copy the field as it is.
    """
    _I32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp_ms: int) -> None:
    """Mark the batch at ``pos`` as LogAppendTime stamped ``timestamp_ms``, and fix its CRC in place.

    Kafka's semantics: the timestamp-type bit is set and the max timestamp becomes the append time,
    which readers then report for every record; the per-record deltas stay as the producer wrote them.
    The CRC is recomputed from the bytes as they are, so check the batch before calling this.
    """
    attributes = _I16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_MASK
    _I16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes)
    _I64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp_ms)
    update_crc(buf, pos)


def set_producer(
    buf: bytearray | memoryview, pos: int, producer_id: int, producer_epoch: int, base_sequence: int
) -> None:
    """Write the producer id, epoch and base sequence of the batch at ``pos``, and fix its CRC in place.

    What an idempotent producer does to a batch built before its id was known, or renumbered for a retry.
    The CRC is recomputed from the bytes as they are, so only call this on a batch known to be whole.
    """
    _PRODUCER_FIELDS.pack_into(buf, pos + PRODUCER_ID_OFFSET, producer_id, producer_epoch, base_sequence)
    update_crc(buf, pos)


def update_crc(buf: bytearray | memoryview, pos: int = 0) -> int:
    """Recompute the CRC of the batch at ``pos`` over its bytes as they are, write it, and return it.

    The one place a header patch that touches CRC-covered fields (attributes onwards) seals the batch.
    """
    length = LENGTH_STRUCT.unpack_from(buf, pos + LENGTH_OFFSET)[0]
    with memoryview(buf) as view, view[pos + ATTRIBUTES_OFFSET : pos + LENGTH_FIELD_END + length] as covered:
        crc = crc32c(covered)
    _U32.pack_into(buf, pos + CRC_OFFSET, crc)
    return crc
