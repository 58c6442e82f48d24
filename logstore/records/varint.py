"""Zig-zag varints as Kafka's RecordBatch v2 uses them (protobuf's sint32/sint64 encoding).

The general functions here are the reference; the builder and reader inline faster paths for the
common one- and two-byte cases and fall back to these for everything else. ``VARINT`` is a table of
ready-made encodings that lets the builder turn small ints into bytes with one list lookup.
"""

from __future__ import annotations

from ..errors import CorruptRecordError

MAX_VARINT_BYTES = 10  # a zig-zagged int64 needs at most ten 7-bit groups

# Encodings of every int in [-VARINT_TABLE_NEGATIVE, VARINT_TABLE_LIMIT). Negative ints are stored at the
# end of the list so that ``VARINT[i]`` works for them via Python's negative indexing; callers must
# keep ``-VARINT_TABLE_NEGATIVE <= i < VARINT_TABLE_LIMIT``. 16384 covers every offset delta of a
# 1 MiB batch of 100-byte records and the record lengths of values up to 16 KiB.
VARINT_TABLE_LIMIT = 1 << 14
VARINT_TABLE_NEGATIVE = 64


def zigzag(value: int) -> int:
    """Map a signed int64 to an unsigned one so small magnitudes of either sign stay small."""
    return (value << 1) ^ (value >> 63)


def encode_varint(value: int) -> bytes:
    """Encode a signed int (int64 range) as a zig-zag varint."""
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"varint value {value} is outside the int64 range")
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def size_of_varint(value: int) -> int:
    """Number of bytes ``encode_varint(value)`` produces."""
    z = (value << 1) ^ (value >> 63)
    size = 1
    while z > 0x7F:
        z >>= 7
        size += 1
    return size


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode the zig-zag varint at ``buf[pos]``; return ``(value, position after it)``.

    Raises CorruptRecordError if the buffer ends inside the varint or it is longer than ten bytes.
    """
    z = 0
    shift = 0
    start = pos
    end = len(buf)
    while True:
        if pos >= end:
            raise CorruptRecordError(f"varint at byte {start} runs past the end of its data ({end} bytes)")
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
        if shift >= 7 * MAX_VARINT_BYTES:
            raise CorruptRecordError(f"varint at byte {start} is longer than {MAX_VARINT_BYTES} bytes")


def _build_table() -> list[bytes]:
    table = [encode_varint(i) for i in range(VARINT_TABLE_LIMIT)]
    table.extend(encode_varint(i) for i in range(-VARINT_TABLE_NEGATIVE, 0))
    return table


VARINT: list[bytes] = _build_table()
