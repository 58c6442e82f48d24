"""The reader's bulk path for runs of same-shaped records gives exactly what record-by-record decoding
gives, engages on the producer's usual output, and leaves anything irregular to the general loop."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from logstore.errors import CorruptRecordError
from logstore.records import (
    CREATE_TIME,
    LOG_APPEND_TIME,
    BatchBuilder,
    Record,
    crc32c,
    decode_batch,
    set_log_append_time,
)
from logstore.records.builder import encode_record
from logstore.records.reader import _run_rows, decode_batch_chunks

BASE_TS = 1_700_000_000_000
COUNT = 8300  # offset deltas of one, two and three varint bytes


Row = tuple[bytes | None, bytes | None, list, int]
"""(key, value, headers, timestamp) of one record to build."""


def ts(i: int) -> int:
    """Timestamps within 60 ms either side of the first record's: one-byte deltas, some negative."""
    return BASE_TS + (i * 37) % 61 - 30 if i else BASE_TS


def build(records: Sequence[Row]) -> bytes:
    builder = BatchBuilder(base_offset=500)
    for key, value, headers, timestamp in records:
        builder.append(value, key, headers, timestamp)
    return builder.build()


def expected(records: Sequence[Row], append_time: int | None = None) -> list:
    kind = CREATE_TIME if append_time is None else LOG_APPEND_TIME
    return [
        Record(500 + i, timestamp if append_time is None else append_time, kind, key, value, list(headers))
        for i, (key, value, headers, timestamp) in enumerate(records)
    ]


@pytest.mark.parametrize("key", [None, b"", b"k" * 16, b"k" * 63, b"k" * 64])
@pytest.mark.parametrize("append_time", [None, BASE_TS + 999])
def test_same_shaped_records_in_every_offset_delta_width(key: bytes | None, append_time: int | None) -> None:
    records: list[Row] = [(key, b"%05d" % i, [], ts(i)) for i in range(COUNT)]
    data = bytearray(build(records))
    if append_time is not None:
        set_log_append_time(data, 0, append_time)
    assert decode_batch(bytes(data)) == expected(records, append_time)
    assert decode_batch(data) == expected(records, append_time)  # a copied section, not the caller's bytes


@pytest.mark.parametrize(
    "odd",
    [
        (None, b"longer value", [], BASE_TS),
        (None, b"00000", [("h", b"1")], BASE_TS),
        (None, b"00000", [], BASE_TS + 5000),  # a two-byte timestamp delta
        (None, b"00000", [], BASE_TS - 65),
        (None, None, [], BASE_TS),
        (b"key", b"00000", [], BASE_TS),
    ],
    ids=["value length", "headers", "late", "early", "null value", "key"],
)
@pytest.mark.parametrize("where", [0, 7, 40, 63, 64, 3000, 8191, 8192, COUNT - 1])
def test_one_odd_record_anywhere_decodes_the_same(odd: tuple, where: int) -> None:
    records: list[Row] = [(None, b"%05d" % i, [], ts(i)) for i in range(COUNT)]
    records[where] = odd
    assert decode_batch(build(records)) == expected(records)


def test_values_of_two_byte_lengths_and_empty_values() -> None:
    for value in (b"", b"x" * 200, b"y" * 5000):
        records: list[Row] = [(None, value, [], ts(i)) for i in range(100)]
        assert decode_batch(build(records)) == expected(records)


def test_the_bulk_path_takes_whole_runs_of_the_producers_output() -> None:
    data = build([(None, b"%05d" % i, [], ts(i)) for i in range(100)])
    first_record = 61  # the batch header's size: records start right after it
    run = _run_rows(data, first_record, len(data), 0, 64)
    assert run is not None
    found, keyed, end = run
    rows = list(found)
    assert not keyed and len(rows) == 64 and rows[63][1] == b"00063"
    assert data[end] == data[first_record] + 2  # the next record: one byte longer (a two-byte offset delta)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 500, 8192, 9000])
def test_chunks_hold_the_same_records_in_order(chunk_size: int) -> None:
    records: list[Row] = [(None, b"%05d" % i, [], ts(i)) for i in range(COUNT)]
    records[100] = (None, b"odd one out", [("h", None)], BASE_TS)  # the general loop between runs
    chunks = list(decode_batch_chunks(build(records), 0, Record, chunk_size))
    assert [len(chunk) for chunk in chunks[:-1]] == [chunk_size] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= chunk_size
    assert [record for chunk in chunks for record in chunk] == expected(records)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        decode_batch_chunks(build([(None, b"v", [], BASE_TS)]), 0, Record, 0)


def raw_batch(section: bytes, count: int, last_delta: int) -> bytes:
    """A v2 batch around an encoded records section (base offset 0)."""
    covered = struct.pack(">hiqqqhii", 0, last_delta, BASE_TS, BASE_TS, -1, -1, -1, count)
    crc = crc32c(section, crc32c(covered))
    return struct.pack(">qiibI", 0, 49 + len(section), -1, 2, crc) + covered + section


def test_offset_deltas_with_gaps_keep_their_offsets() -> None:
    """A compacted batch: same-shaped records, but offset deltas are not their index."""
    deltas = [2 * i for i in range(40)]
    section = b"".join(encode_record(d, 0, None, b"v%02d" % d) for d in deltas)
    records = decode_batch(raw_batch(section, len(deltas), deltas[-1]))
    assert [(r.offset, r.value) for r in records] == [(d, b"v%02d" % d) for d in deltas]


def test_damage_inside_a_run_is_still_caught() -> None:
    """A header count of 1 in the middle of a run (CRC fixed up): the general loop reports it."""
    pieces = [encode_record(i, 0, None, b"value") for i in range(40)]
    pieces[20] = pieces[20][:-1] + b"\x02"  # one header, but nothing left in the record for it
    with pytest.raises(CorruptRecordError, match="record 20"):
        decode_batch(raw_batch(b"".join(pieces), 40, 39))
