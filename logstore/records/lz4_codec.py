"""LZ4 records sections: the standard LZ4 frame format, as Kafka's clients write it in RecordBatch v2.

Kafka reads the frame a block at a time, each block on its own (``Lz4BlockInputStream``), so it refuses
frames whose blocks depend on the previous ones; every Kafka client writes independent blocks (64 KiB by
default). We do the same: each block inflates into a buffer of the frame's declared maximum block size
(4 MiB at most), and the running total is checked against the cap after every block, so a bomb stops
after at most one block past it.

The xxHash32 checksums a frame may carry (of its descriptor, of each block, of the content) are not
checked: the batch's CRC-32C, checked before any records section is decompressed, covers every one of
these bytes. The block codec is cramjam's (the lz4 C library).
"""

from __future__ import annotations

import struct

import cramjam

from ..errors import CorruptRecordError
from .limits import too_large

MAGIC = 0x184D2204
LEVEL = 0
"""lz4's fast compressor: what Kafka's Java producer uses at its default level (compression.lz4.level)."""

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_UNCOMPRESSED = 0x80000000
_FLG_VERSION_MASK, _FLG_VERSION = 0xC0, 0x40
_FLG_INDEPENDENT = 0x20
_FLG_BLOCK_CHECKSUM = 0x10
_FLG_CONTENT_SIZE = 0x08
_FLG_CONTENT_CHECKSUM = 0x04
_FLG_RESERVED = 0x03  # bit 1 reserved, bit 0 a dictionary id: Kafka has no dictionaries
_BD_RESERVED = 0x8F


def compress_lz4(data: bytes | memoryview) -> bytes:
    """One LZ4 frame of independent 64 KiB blocks, as Kafka's Java producer writes."""
    compressor = cramjam.lz4.Compressor(level=LEVEL, content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


def decompress_lz4(data: bytes | memoryview, max_bytes: int) -> bytes:
    """One or more LZ4 frames, never producing more than ``max_bytes``."""
    view = memoryview(data)
    pieces: list[bytes] = []
    scratch = bytearray()  # one block's output, grown to the largest block size met, shared by the frames
    total = pos = 0
    while True:
        pos, total = _frame(view, pos, total, max_bytes, pieces, scratch)
        if pos == len(view):
            return b"".join(pieces)


def _frame(
    view: memoryview, pos: int, total: int, max_bytes: int, pieces: list[bytes], scratch: bytearray
) -> tuple[int, int]:
    """Inflate the frame at ``pos`` onto ``pieces``; returns the position after it and the new total."""
    _need(view, pos, 7, "frame header")
    (magic,) = _U32.unpack_from(view, pos)
    if magic != MAGIC:
        raise CorruptRecordError(f"lz4 records section has no frame at byte {pos} (magic {magic:#x})")
    flg, bd = view[pos + 4], view[pos + 5]
    if flg & _FLG_VERSION_MASK != _FLG_VERSION or flg & _FLG_RESERVED or bd & _BD_RESERVED:
        raise CorruptRecordError(
            f"lz4 frame descriptor {flg:#04x} {bd:#04x} is not version 1 with reserved bits clear"
        )
    if not flg & _FLG_INDEPENDENT:
        raise CorruptRecordError(
            "lz4 frame with dependent blocks is not supported (Kafka reads each block on its own; "
            "Kafka producers write independent blocks)"
        )
    block_id = (bd >> 4) & 7
    if block_id < 4:
        raise CorruptRecordError(f"lz4 frame block size id {block_id} is not one of 4 to 7")
    max_block = 1 << (2 * block_id + 8)
    pos += 6
    declared = -1
    if flg & _FLG_CONTENT_SIZE:
        _need(view, pos, 8, "frame header")
        (declared,) = _U64.unpack_from(view, pos)
        if declared > max_bytes - total:
            raise too_large("lz4", max_bytes)
        pos += 8
    _need(view, pos, 1, "frame header")
    pos += 1  # the descriptor's checksum byte
    block_trailer = 4 if flg & _FLG_BLOCK_CHECKSUM else 0
    start_total = total
    if len(scratch) < max_block:
        scratch.extend(bytes(max_block - len(scratch)))
    with memoryview(scratch) as whole, whole[:max_block] as out:
        while True:
            _need(view, pos, 4, "block length")
            (word,) = _U32.unpack_from(view, pos)
            pos += 4
            if word == 0:  # the end mark
                break
            size = word & ~_UNCOMPRESSED
            if size > max_block:
                raise CorruptRecordError(f"lz4 block of {size} bytes exceeds the frame's {max_block}")
            _need(view, pos, size + block_trailer, "block")
            block = view[pos : pos + size]
            if word & _UNCOMPRESSED:
                pieces.append(bytes(block))
                total += size
            else:
                written = _inflate(block, out)
                pieces.append(bytes(out[:written]))
                total += written
            if total > max_bytes:
                raise too_large("lz4", max_bytes)
            pos += size + block_trailer
    if flg & _FLG_CONTENT_CHECKSUM:
        _need(view, pos, 4, "content checksum")
        pos += 4
    if declared >= 0 and total - start_total != declared:
        raise CorruptRecordError(
            f"lz4 frame declares {declared} bytes of content but holds {total - start_total}"
        )
    return pos, total


def _need(view: memoryview, pos: int, count: int, what: str) -> None:
    if pos + count > len(view):
        raise CorruptRecordError(f"lz4 records section is truncated inside a {what} at byte {pos}")


def _inflate(block: memoryview, out: memoryview) -> int:
    try:
        return cramjam.lz4.decompress_block_into(block, out, output_len=len(out))
    except cramjam.DecompressionError as exc:
        raise CorruptRecordError(f"lz4 block does not decompress: {exc}") from None
