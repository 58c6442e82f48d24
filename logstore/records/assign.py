"""Offset assignment: what the broker does to checked batches before writing them, as Kafka's
``LogValidator.assignOffsets`` does. Pure: no I/O, no clock, and the input buffer is never written.

The batches are handed back as pieces for one gathered write (``pwritev``), so the payload is never
copied: for CreateTime each batch becomes its new 8-byte base offset, which the CRC does not cover, and a
view of the rest as the producer sent it (with a leader epoch to stamp, the first 16 bytes are new: base
offset, length, partition leader epoch, all outside the CRC). For LogAppendTime the header changes under the CRC (timestamp
type bit, max timestamp), so each batch becomes a new 61-byte header, its CRC recomputed over that header
and the untouched records, and a view of those records.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from .crc import crc32c
from .layout import (
    CRC_COVERED_HEAD_STRUCT,
    HEAD_STRUCT,
    HEADER_SIZE,
    LENGTH_OFFSET,
    MAGIC_OFFSET,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
)

_BASE_OFFSET = struct.Struct(">q")  # the batch's first field; the length field follows it
_FRONT = struct.Struct(">qii")  # base offset, length, partition leader epoch: the fields before the magic
_new_header = tuple.__new__  # a BatchHeader from a plain tuple, without _replace's per-field calls


class AssignedBatches(NamedTuple):
    """Batches with their offsets assigned, ready to be written in one gathered write."""

    pieces: list[bytes | bytearray | memoryview]
    """The batches as they go to disk, back to back; views into the input buffer where unchanged."""
    headers: list[BatchHeader]
    """Each batch's header as written (its base offset; for LogAppendTime its attributes, max timestamp
    and CRC too)."""
    next_offset: int
    """The offset after the last batch's last offset: the log end once these are appended."""
    record_count: int
    size: int
    """Total bytes of ``pieces``."""


def assign_offsets(
    buf: bytes | bytearray | memoryview,
    batches: Sequence[tuple[int, BatchHeader]],
    next_offset: int,
    log_append_time_ms: int | None = None,
    partition_leader_epoch: int | None = None,
) -> AssignedBatches:
    """Give the batches at ``(position, header)`` in ``buf`` consecutive offsets from ``next_offset``.

    Each batch keeps its offset deltas, so a batch with a gap in them (a compacted one) keeps the gap and
    the next batch starts after its last offset. With ``log_append_time_ms`` every batch is stamped
    LogAppendTime at that time (Kafka's semantics: the timestamp-type bit is set and the max timestamp
    becomes the append time; the records' own deltas stay as sent). With ``partition_leader_epoch`` every
    batch's partition leader epoch field is set to it (outside the CRC, so the CRC stays the producer's).
    ``batches`` are the checked headers of whole batches (``check_batch``); nothing is checked again here.
    """
    view = buf if type(buf) is memoryview else memoryview(buf)
    pieces: list[bytes | bytearray | memoryview] = []
    headers: list[BatchHeader] = []
    records = 0
    size = 0
    if log_append_time_ms is None and partition_leader_epoch is not None:
        pack_front = _FRONT.pack
        for position, header in batches:
            end = position + header.size
            pieces += (
                pack_front(next_offset, header.length, partition_leader_epoch),
                view[position + MAGIC_OFFSET : end],
            )
            headers.append(
                _new_header(BatchHeader, (next_offset, header.length, partition_leader_epoch, *header[3:]))
            )
            next_offset += header.last_offset_delta + 1
            records += header.record_count
            size += end - position
    elif log_append_time_ms is None:
        pack_offset = _BASE_OFFSET.pack
        for position, header in batches:
            end = position + header.size
            pieces += (pack_offset(next_offset), view[position + LENGTH_OFFSET : end])
            headers.append(_new_header(BatchHeader, (next_offset, *header[1:])))  # base offset is field 0
            next_offset += header.last_offset_delta + 1
            records += header.record_count
            size += end - position
    else:
        attributes_bit = TIMESTAMP_TYPE_MASK
        pack_head = HEAD_STRUCT.pack
        pack_covered = CRC_COVERED_HEAD_STRUCT.pack
        for position, header in batches:
            end = position + header.size
            epoch = (
                header.partition_leader_epoch if partition_leader_epoch is None else partition_leader_epoch
            )
            attributes = header.attributes | attributes_bit
            covered = pack_covered(
                attributes,
                header.last_offset_delta,
                header.base_timestamp,
                log_append_time_ms,
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.record_count,
            )
            body = view[position + HEADER_SIZE : end]
            crc = crc32c(body, crc32c(covered))  # over the new head, then the records
            pieces += (
                pack_head(next_offset, header.length, epoch, header.magic, crc),
                covered,
                body,
            )
            headers.append(
                BatchHeader(
                    next_offset,
                    header.length,
                    epoch,
                    header.magic,
                    crc,
                    attributes,
                    header.last_offset_delta,
                    header.base_timestamp,
                    log_append_time_ms,
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence,
                    header.record_count,
                )
            )
            next_offset += header.last_offset_delta + 1
            records += header.record_count
            size += end - position
    return AssignedBatches(pieces, headers, next_offset, records, size)
