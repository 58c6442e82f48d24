"""Snappy records sections: raw snappy, or xerial's block framing, which Kafka's Java producer writes.

A Java producer's snappy batch is the stream of xerial's ``SnappyOutputStream``: a 16-byte header (the
magic ``\\x82SNAPPY\\x00``, then a version and a compat int32) and blocks, each a big-endian int32 length
and one raw snappy block of at most 32 KiB of input. librdkafka writes one raw snappy block instead. Like
Kafka's broker we read both, telling them apart by the magic. We write the xerial framing: it is what
Java's producer writes, so it is what every client's reader is built for (Java, librdkafka, kafka-python
and aiokafka all detect it), and its 32 KiB blocks keep each decompression small.

Every raw block starts with its uncompressed length (a varint), so the cap is checked before anything
is inflated. The codec is cramjam's (the Rust ``snap`` crate).
"""

from __future__ import annotations

import struct

import cramjam

from ..errors import CorruptRecordError
from .limits import too_large

XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, compatible with readers of 1
XERIAL_BLOCK_SIZE = 32 * 1024  # xerial's default, and so what Java producers write
_BLOCK_LENGTH = struct.Struct(">i")


def compress_snappy(data: bytes | memoryview) -> bytes:
    """Xerial-framed snappy: the header, then one length-prefixed raw block per 32 KiB of ``data``."""
    pieces = [XERIAL_HEADER]
    with memoryview(data) as view:
        for start in range(0, len(view), XERIAL_BLOCK_SIZE):
            block = bytes(cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_SIZE]))
            pieces += (_BLOCK_LENGTH.pack(len(block)), block)
    return b"".join(pieces)


def decompress_snappy(data: bytes | memoryview, max_bytes: int) -> bytes:
    """Raw or xerial-framed snappy, never producing more than ``max_bytes``."""
    view = memoryview(data)
    if view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        blocks = [view]
    else:
        if len(view) < len(XERIAL_HEADER):
            raise CorruptRecordError("snappy records section is truncated inside its xerial header")
        blocks = list(_xerial_blocks(view))
    sizes = [_declared_size(block) for block in blocks]
    total = sum(sizes)
    if total > max_bytes:
        raise too_large("snappy", max_bytes)
    out = bytearray(total)
    pos = 0
    for block, size in zip(blocks, sizes, strict=True):
        with memoryview(out) as target:
            written = _inflate(block, target[pos : pos + size])
        if written != size:
            raise CorruptRecordError(
                f"snappy block declares {size} bytes but decompresses to {written}: it is corrupt"
            )
        pos += size
    return bytes(out)


def _xerial_blocks(view: memoryview) -> list[memoryview]:
    blocks = []
    pos = len(XERIAL_HEADER)
    while pos < len(view):
        if pos + 4 > len(view):
            raise CorruptRecordError("snappy records section is truncated inside a xerial block length")
        (length,) = _BLOCK_LENGTH.unpack_from(view, pos)
        pos += 4
        if length < 0 or pos + length > len(view):
            raise CorruptRecordError(
                f"xerial snappy block of {length} bytes at byte {pos - 4} does not fit the "
                f"{len(view)}-byte records section"
            )
        blocks.append(view[pos : pos + length])
        pos += length
    return blocks


def _declared_size(block: memoryview) -> int:
    try:
        return cramjam.snappy.decompress_raw_len(block)
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"snappy records section does not decompress: {exc}") from None


def _inflate(block: memoryview, target: memoryview) -> int:
    try:
        return cramjam.snappy.decompress_raw_into(block, target)
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"snappy records section does not decompress: {exc}") from None
