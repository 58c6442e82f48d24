"""The cap on a records section's decompressed size, shared by every codec.

A few kilobytes of crafted gzip, zstd, snappy or lz4 can claim gigabytes, and the broker decodes
compressed batches (of compacted topics, and to check them) on the produce path: each codec stops
inflating once its output passes the cap and raises the one error below.
"""

from __future__ import annotations

from ..errors import CorruptRecordError

MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024


def too_large(codec: str, max_bytes: int) -> CorruptRecordError:
    return CorruptRecordError(
        f"{codec} records section decompresses to more than {max_bytes} bytes; refusing it (a batch that "
        "large uncompressed should be split by the producer)"
    )
