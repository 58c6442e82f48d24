"""Compression of a batch's records section (everything after the 61-byte header, as one block).

We implement none, gzip (standard library) and zstd (``zstandard``). Snappy and LZ4 batches can still
be stored and served as opaque bytes, but encoding or decoding their records raises a clear error.
"""

from __future__ import annotations

import gzip
import zlib

import zstandard

from ..errors import CorruptRecordError
from .layout import GZIP, LZ4, NONE, SNAPPY, ZSTD

CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
SUPPORTED_CODECS = (NONE, GZIP, ZSTD)

# Kafka's own defaults: java.util.zip's default deflate level and zstd level 3.
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
    require_supported(codec)
    raise AssertionError("unreachable")  # pragma: no cover


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress a records section, raising CorruptRecordError on any malformed input."""
    if codec == NONE:
        return bytes(data)
    require_supported(codec)
    try:
        if codec == GZIP:
            return gzip.decompress(data)
        return _zstd_decompress(data)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise CorruptRecordError(f"{codec_name(codec)} records section does not decompress: {exc}") from None


def _zstd_decompress(data: bytes | memoryview) -> bytes:
    """Decompress one or more zstd frames, with or without a content size in their headers.

    Streaming producers omit the content size, which ``ZstdDecompressor.decompress`` refuses; a
    decompressobj per frame copes, and its ``eof`` flag tells a truncated frame from a complete one.
    """
    pieces = []
    rest = bytes(data)
    while rest:
        frame = zstandard.ZstdDecompressor().decompressobj()
        pieces.append(frame.decompress(rest))
        if not frame.eof:
            raise CorruptRecordError("zstd records section is truncated: its last frame does not end")
        rest = frame.unused_data
    return b"".join(pieces)
