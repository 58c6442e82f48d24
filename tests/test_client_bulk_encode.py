"""Deferred, bulk encoding: ``BatchBuilder.append_many`` and ``ProducerBatch``'s pending records must give
exactly the bytes that appending each record on its own gives."""

from __future__ import annotations

import random
from typing import Any

import pytest
from logstore.client.producer.accumulator import ProducerBatch

from logstore.records import GZIP, NONE, BatchBuilder, decode_batch

BASE_MS = 1_700_000_000_000


def flat(records: list[tuple[bytes, bytes | None, int]]) -> list[bytes | int | None]:
    return [field for record in records for field in record]


def one_by_one(records: list[tuple[bytes, bytes | None, int]], **settings: Any) -> BatchBuilder:
    builder = BatchBuilder(**settings)
    for value, key, stamp in records:
        builder.append(value, key, (), stamp)
    return builder


def records_of(
    count: int, value_length: int, key_length: int | None, stamp_of: object = lambda i: BASE_MS + i // 100
) -> list[tuple[bytes, bytes | None, int]]:
    return [
        (
            bytes([i % 251]) * value_length,
            None if key_length is None else bytes([i % 7]) * key_length,
            stamp_of(i),  # type: ignore[operator]
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 63, 64, 65, 8191, 8192, 8193, 16_385])
@pytest.mark.parametrize(("value_length", "key_length"), [(100, None), (0, None), (200, 16), (10, 0)])
def test_uniform_records_encode_like_one_by_one(
    count: int, value_length: int, key_length: int | None
) -> None:
    records = records_of(count, value_length, key_length)
    expected = one_by_one(records, producer_id=3, producer_epoch=1, base_sequence=9)
    builder = BatchBuilder(producer_id=3, producer_epoch=1, base_sequence=9)
    builder.append_many(flat(records))
    assert builder.record_count == count
    assert builder.size_in_bytes() == expected.size_in_bytes()
    assert builder.build() == expected.build()


@pytest.mark.parametrize(
    "stamp_of",
    [
        lambda i: BASE_MS + (i * 37) % 1024,  # every tabled delta width
        lambda i: BASE_MS - (i % 65),  # down to just past the negative table
        lambda i: BASE_MS + (5000 if i == 40 else 0),  # one delta far outside the tables
    ],
)
def test_timestamp_deltas_encode_like_one_by_one(stamp_of: object) -> None:
    records = records_of(300, 100, None, stamp_of)
    builder = BatchBuilder()
    builder.append_many(flat(records))
    built = builder.build()
    assert built == one_by_one(records).build()
    assert [record.timestamp for record in decode_batch(built)] == [r[2] for r in records]


def test_mixed_shapes_and_split_calls_encode_like_one_by_one() -> None:
    rng = random.Random(5)
    records = [
        (
            bytes(rng.randrange(256) for _ in range(rng.choice([3, 100, 130]))),
            rng.choice([None, b"k" * 16, b"other-key"]),
            BASE_MS + rng.randrange(50),
        )
        for _ in range(500)
    ]
    builder = BatchBuilder(compression=GZIP)
    builder.append(*records[0][:2], (), records[0][2])
    builder.append_many(flat(records[1:200]))
    builder.append(b"with header", None, [("h", b"x")], BASE_MS)
    builder.append_many(flat(records[200:]))
    expected = BatchBuilder(compression=GZIP)
    for value, key, stamp in records[:200]:
        expected.append(value, key, (), stamp)
    expected.append(b"with header", None, [("h", b"x")], BASE_MS)
    for value, key, stamp in records[200:]:
        expected.append(value, key, (), stamp)
    assert builder.size_in_bytes() == expected.size_in_bytes()
    assert builder.build() == expected.build()


def test_producer_batch_settles_pending_records_before_anything_reads_them() -> None:
    builder = BatchBuilder(compression=NONE)
    batch = ProducerBatch("t", 0, builder, 0.0, 60.0, 1000)
    assert batch.append(b"first", None, (), BASE_MS) == 0
    batch.pending += (b"second", None, BASE_MS + 1)
    batch.pending += (b"third", b"key", BASE_MS + 2)
    assert batch.record_count == 3
    assert batch.append(b"fourth", None, [("h", b"v")], BASE_MS + 3) == 3  # after the pending two
    batch.pending += (b"fifth", None, BASE_MS + 4)
    expected = BatchBuilder()
    expected.append(b"first", None, (), BASE_MS)
    expected.append(b"second", None, (), BASE_MS + 1)
    expected.append(b"third", b"key", (), BASE_MS + 2)
    expected.append(b"fourth", None, [("h", b"v")], BASE_MS + 3)
    expected.append(b"fifth", None, (), BASE_MS + 4)
    assert batch.size() == expected.size_in_bytes()
    assert not batch.pending
    assert batch.record_count == 5
    assert batch.encode(-1) == expected.build()
