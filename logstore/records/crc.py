"""CRC-32C (Castagnoli), the checksum of RecordBatch v2.

The ``crc32c`` package uses SSE4.2 / ARMv8 instructions where available, which keeps checking a whole
produce request far cheaper than anything else the broker does with it. The C function is exported
as is (no Python wrapper) because it sits on the append and recovery paths.
"""

from __future__ import annotations

from typing import Protocol

from crc32c import crc32c as _crc32c


class _Crc32c(Protocol):
    def __call__(self, data: bytes | bytearray | memoryview, value: int = 0, /) -> int: ...


#: ``crc32c(data, value=0) -> int``: CRC-32C of any buffer (bytes, bytearray, memoryview, mmap), unsigned;
#: ``value`` is the CRC of the bytes before ``data``, so a CRC can be computed over pieces.
crc32c: _Crc32c = _crc32c
