"""Compression of a batch's records section (everything after the 61-byte header, as one block).

Kafka's five codecs: none, gzip (standard library), snappy and lz4 (``cramjam``, in ``snappy_codec`` and
``lz4_codec``) and zstd (``zstandard``). Any other codec id can still be stored and served as opaque
bytes, but encoding or decoding its records raises a clear error. Every decompressor is bounded (see
``limits``).
"""

from __future__ import annotations

import zlib

import zstandard

from ..errors import CorruptRecordError
from .layout import GZIP, LZ4, NONE, SNAPPY, ZSTD
from .limits import MAX_DECOMPRESSED_BYTES, too_large
from .lz4_codec import compress_lz4, decompress_lz4
from .snappy_codec import compress_snappy, decompress_snappy

CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
SUPPORTED_CODECS = (NONE, GZIP, SNAPPY, LZ4, ZSTD)

# Kafka's own defaults: java.util.zip's default deflate level and zstd level 3 (lz4's is in lz4_codec).
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
_GZIP_WBITS = 31  # deflate inside a gzip member (header with mtime 0, so output is deterministic)


def codec_name(codec: int) -> str:
    return CODEC_NAMES.get(codec, f"unknown ({codec})")


def require_supported(codec: int) -> None:
    """Raise CorruptRecordError unless we can encode and decode records compressed with ``codec``."""
    if codec not in SUPPORTED_CODECS:
        supported = ", ".join(CODEC_NAMES[c] for c in SUPPORTED_CODECS)
        raise CorruptRecordError(
            f"compression codec {codec_name(codec)} is not supported (supported: {supported})"
        )


def compress(codec: int, data: bytes) -> bytes:
    """Compress a records section with ``codec`` (NONE returns ``data`` unchanged)."""
    if codec == NONE:
        return data
    if codec == GZIP:
        return zlib.compress(data, GZIP_LEVEL, _GZIP_WBITS)
    if codec == ZSTD:
        # A compressor per call: ZstdCompressor objects must not be shared between threads.
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    if codec == SNAPPY:
        return compress_snappy(data)
    if codec == LZ4:
        return compress_lz4(data)
    require_supported(codec)
    raise AssertionError("unreachable")  # pragma: no cover


def decompress(codec: int, data: bytes | memoryview, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress a records section, raising CorruptRecordError on malformed input.

    The output is capped at ``max_bytes``: a few kilobytes of crafted input can claim gigabytes, and the
    broker decodes compressed batches of compacted topics on the produce path.
    """
    if codec == NONE:
        return bytes(data)
    require_supported(codec)
    if codec == SNAPPY:
        return decompress_snappy(data, max_bytes)
    if codec == LZ4:
        return decompress_lz4(data, max_bytes)
    try:
        if codec == GZIP:
            return _gzip_decompress(data, max_bytes)
        return _zstd_decompress(data, max_bytes)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise CorruptRecordError(f"{codec_name(codec)} records section does not decompress: {exc}") from None


def _gzip_decompress(data: bytes | memoryview, max_bytes: int) -> bytes:
    """One or more gzip members, bounded: never inflates more than ``max_bytes`` + 1 bytes."""
    pieces = []
    total = 0
    rest = bytes(data)
    while rest:
        member = zlib.decompressobj(_GZIP_WBITS)
        out = member.decompress(rest, max_bytes - total + 1)
        total += len(out)
        if total > max_bytes:
            raise too_large("gzip", max_bytes)
        if not member.eof:
            raise CorruptRecordError("gzip records section is truncated: its last member does not end")
        pieces.append(out)
        rest = member.unused_data
    return b"".join(pieces)


def _zstd_decompress(data: bytes | memoryview, max_bytes: int) -> bytes:
    """Decompress one or more zstd frames, never producing more than ``max_bytes``.

    A frame that declares its content size (ours do) is checked against what is left of the cap before
    it is inflated, and decompressed on its own so a truncated frame is told from a complete one.
    Streaming producers omit the size; from such a frame on, the rest is read through a bounded stream.
    """
    pieces = []
    total = 0
    rest = bytes(data)
    while rest:
        try:
            declared = zstandard.frame_content_size(rest)
        except zstandard.ZstdError:
            declared = 0  # not a frame header: the decompressor below reports it as malformed
        if declared > max_bytes - total:
            raise too_large("zstd", max_bytes)
        if declared < 0:
            reader = zstandard.ZstdDecompressor().stream_reader(rest, read_across_frames=True)
            out = reader.read(max_bytes - total + 1)
            if total + len(out) > max_bytes:
                raise too_large("zstd", max_bytes)
            pieces.append(out)
            break
        frame = zstandard.ZstdDecompressor().decompressobj()
        out = frame.decompress(rest)
        if not frame.eof:
            raise CorruptRecordError("zstd records section is truncated: its last frame does not end")
        total += len(out)
        if total > max_bytes:  # a frame that understated its size
            raise too_large("zstd", max_bytes)
        pieces.append(out)
        rest = frame.unused_data
    return b"".join(pieces)
