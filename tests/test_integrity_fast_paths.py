"""The fast paths of the integrity checks decide exactly as the full ones.

`check_batches` (every served read) must refuse what `check_batch` refuses, with the same words, and
`scan_segment` (every start) must keep its verdict and its max timestamp when it blames a batch late.
"""

from __future__ import annotations

import struct

import pytest

from logstore.errors import CorruptRecordError
from logstore.records import BatchBuilder, check_batch, crc32c
from logstore.records.check import check_batches
from logstore.records.layout import (
    ATTRIBUTES_OFFSET,
    BASE_OFFSET_OFFSET,
    CRC_OFFSET,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_OFFSET,
    MAGIC_OFFSET,
    RECORD_COUNT_OFFSET,
)
from logstore.recovery import scan_segment

BASE_TS = 1_700_000_000_000


def batch(n: int, base_offset: int, timestamp: int = BASE_TS) -> bytes:
    builder = BatchBuilder(base_offset=base_offset)
    for i in range(n):
        builder.append(b"value %d" % i, timestamp_ms=timestamp + i)
    return builder.build()


def patched(data: bytes, fmt: str, offset: int, value: int, *, fix_crc: bool = False) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    if fix_crc:
        struct.pack_into(">I", buf, CRC_OFFSET, crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
    return bytes(buf)


GOOD = batch(3, 0)
DAMAGED = {
    "payload byte": GOOD[:-1] + bytes([GOOD[-1] ^ 1]),
    "magic": patched(GOOD, ">b", MAGIC_OFFSET, 1),
    "length below the minimum": patched(GOOD, ">i", LENGTH_OFFSET, 10),
    "length past the end": patched(GOOD, ">i", LENGTH_OFFSET, len(GOOD)),
    "no records": patched(GOOD, ">i", RECORD_COUNT_OFFSET, 0, fix_crc=True),
    "last offset delta too small": patched(GOOD, ">i", LAST_OFFSET_DELTA_OFFSET, 0, fix_crc=True),
    "cut short": GOOD[:40],
}


@pytest.mark.parametrize("damage", DAMAGED)
def test_check_batches_stops_where_check_batch_refuses_and_says_the_same(damage: str) -> None:
    bad = DAMAGED[damage]
    with pytest.raises(CorruptRecordError) as refused:
        check_batch(bad)
    buf = GOOD + batch(2, 3) + bad
    position, problem = check_batches(buf)
    assert position == len(GOOD) + len(batch(2, 3))
    assert problem == str(refused.value).removeprefix("batch at byte 0: ")


def test_check_batches_passes_sound_batches_to_the_end() -> None:
    buf = GOOD + batch(2, 3) + batch(5, 5)
    assert check_batches(buf) == (len(buf), None)
    assert check_batches(buf, len(GOOD), len(GOOD) + len(batch(2, 3))) == (len(GOOD) + len(batch(2, 3)), None)


def test_a_batch_blamed_late_does_not_count_for_the_max_timestamp() -> None:
    # The middle batch's base offset is flipped up (the CRC does not cover it) and it has the newest
    # timestamp; the walk blames it when the next batch turns out to be below it.
    first, middle, last = batch(2, 100), batch(2, 102, timestamp=BASE_TS + 99), batch(2, 104)
    flipped = patched(middle, ">q", BASE_OFFSET_OFFSET, 10_000)
    buf = first + flipped + last
    scan = scan_segment(buf, len(buf), 100)
    assert scan.valid_bytes == len(first) and scan.positions == [0] and scan.base_offsets == [100]
    assert "out of line with the batches around it" in (scan.problem or "")
    assert scan.last_offset == 101
    assert (scan.max_timestamp, scan.offset_of_max_timestamp) == (BASE_TS + 1, 101)
    assert [header.base_offset for _, header in scan.headers(buf)] == [100]


def test_a_sound_segment_walks_to_the_end_with_its_max_timestamp() -> None:
    batches = [batch(2, 100), batch(2, 102, timestamp=BASE_TS + 50), batch(2, 110)]
    buf = b"".join(batches)
    for check_crc in (False, True):
        scan = scan_segment(buf, len(buf), 100, check_crc=check_crc)
        assert scan.problem is None and scan.valid_bytes == len(buf)
        assert scan.base_offsets == [100, 102, 110] and scan.last_offset == 111
        assert (scan.max_timestamp, scan.offset_of_max_timestamp) == (BASE_TS + 51, 103)
