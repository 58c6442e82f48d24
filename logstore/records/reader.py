"""Decoding v2 record batches into Record objects.

The per-record loop is the consumer's hot path, so it is one flat function: varints of one and two
bytes (every length, delta and count of a typical record) are decoded inline, anything longer falls
back to ``decode_varint``; values are sliced from ``bytes`` so each is one copy and a real ``bytes``.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import CorruptRecordError
from .check import check_batch
from .compression import decompress
from .layout import HEADER_SIZE, LOG_APPEND_TIME, NONE, iter_headers
from .record import Header, Record
from .varint import decode_varint

# value of each one-byte zig-zag varint
_ONE_BYTE = [(z >> 1) ^ -(z & 1) for z in range(0x80)]
# value of each two-byte zig-zag varint b0 b1, at index b0 + (b1 << 7) (b0 has its high bit set, so the
# index is the 14-bit payload plus 0x80; the first 0x80 entries are never used)
_TWO_BYTES = [0] * 0x80 + [(z >> 1) ^ -(z & 1) for z in range(1 << 14)]


def decode_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> list[Record]:
    """Check the batch at ``pos`` (framing, magic, CRC) and return its records, decompressing if needed.

    With LogAppendTime every record's timestamp is the batch's max timestamp, as in Kafka. Records of a
    control batch are returned like any other (see ``BatchHeader.is_control``).
    """
    return list(_batch_records(buf, pos))


def iter_records(buf: bytes | bytearray | memoryview) -> Iterator[Record]:
    """Yield the records of every complete batch in ``buf``, in order; a partial tail is ignored.

    Each batch is checked (framing, magic, CRC) before its first record is yielded. Records are made
    one at a time, so a consumer that handles and drops them keeps memory flat.
    """
    for pos, _ in iter_headers(buf):
        yield from _batch_records(buf, pos)


def _batch_records(buf: bytes | bytearray | memoryview, pos: int) -> Iterator[Record]:
    """Check the batch at ``pos`` and yield its records."""
    header = check_batch(buf, pos)
    start = pos + HEADER_SIZE
    end = pos + header.size
    compression = header.compression
    if compression == NONE and type(buf) is bytes:
        data, p = buf, start
    else:
        with memoryview(buf) as view, view[start:end] as section:
            data = bytes(section)
        if compression != NONE:
            data = decompress(compression, data)
        p, end = 0, len(data)
    count = header.record_count
    base_offset = header.base_offset
    base_timestamp = header.base_timestamp
    timestamp_type = header.timestamp_type
    append_time = header.max_timestamp if timestamp_type == LOG_APPEND_TIME else None
    new = object.__new__
    record_type = Record
    one_byte = _ONE_BYTE
    two_bytes = _TWO_BYTES
    read_varint = decode_varint
    index = 0
    try:
        for index in range(count):
            # record length: one or two bytes for records under 8 KiB
            b = data[p]
            if b < 0x80:
                length = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                length = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            else:
                length, p = read_varint(data, p)
            record_end = p + length
            if record_end > end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} declares {length} bytes, "
                    f"past the end of the records section by {record_end - end}"
                )
            # attributes byte (unused) then the timestamp delta
            b = data[p + 1]
            if b < 0x80:
                timestamp_delta = one_byte[b]
                p += 2
            else:
                timestamp_delta, p = read_varint(data, p + 1)
            b = data[p]
            if b < 0x80:
                offset_delta = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                offset_delta = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            elif data[p + 2] < 0x80:  # deltas from 8192 on: the tail of a 1 MiB batch of small records
                z = (b & 0x7F) | ((data[p + 1] & 0x7F) << 7) | (data[p + 2] << 14)
                offset_delta = (z >> 1) ^ -(z & 1)
                p += 3
            else:
                offset_delta, p = read_varint(data, p)
            # key: a single 0x01 byte is the common null key
            if data[p] == 1:
                key = None
                p += 1
            else:
                key_length, p = read_varint(data, p)
                if key_length < 0:
                    key = None
                else:
                    key = data[p : p + key_length]
                    p += key_length
            b = data[p]
            if b < 0x80:
                value_length = one_byte[b]
                p += 1
            elif data[p + 1] < 0x80:
                value_length = two_bytes[b + (data[p + 1] << 7)]
                p += 2
            else:
                value_length, p = read_varint(data, p)
            if value_length < 0:
                value = None
            else:
                value = data[p : p + value_length]
                p += value_length
            if data[p] == 0:
                headers = None
                p += 1
            else:
                headers, p = _decode_headers(data, p)
            if p != record_end:
                raise CorruptRecordError(
                    f"batch at byte {pos}: record {index} declares {length} bytes "
                    f"but its fields take {length + p - record_end}"
                )
            # object.__new__ plus slot stores: no Python-level __init__ frame on the hot path
            record = new(record_type)
            record.offset = base_offset + offset_delta
            record.timestamp = base_timestamp + timestamp_delta if append_time is None else append_time
            record.timestamp_type = timestamp_type
            record.key = key
            record.value = value
            record._headers = headers
            yield record
    except (IndexError, ValueError) as exc:  # ran off the end of the data, or a header key is not UTF-8
        raise CorruptRecordError(f"batch at byte {pos}: malformed record {index} of {count}: {exc}") from None
    if p != end:
        raise CorruptRecordError(f"batch at byte {pos}: {end - p} bytes left over after its {count} records")


def _decode_headers(data: bytes, p: int) -> tuple[list[Header], int]:
    count, p = decode_varint(data, p)
    if count < 0:
        raise CorruptRecordError(f"record header count is {count}, must not be negative")
    headers: list[Header] = []
    for _ in range(count):
        key_length, p = decode_varint(data, p)
        if key_length < 0:
            raise CorruptRecordError(f"record header key length is {key_length}, must not be negative")
        key_end = p + key_length
        if key_end > len(data):
            raise IndexError("header key runs past the end of the data")
        key = data[p:key_end].decode("utf-8")
        p = key_end
        value_length, p = decode_varint(data, p)
        if value_length < 0:
            value = None
        else:
            value = data[p : p + value_length]
            p += value_length
        headers.append((key, value))
    return headers, p
