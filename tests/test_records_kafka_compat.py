"""Compatibility with kafka-python's RecordBatch v2 codec, both ways, and byte for byte where possible.

kafka-python's builder always writes base offset 0 and partition leader epoch 0, stamps CreateTime, and
falls back to an uncompressed batch when compression does not shrink the records, so the byte-equality
cases use compressible values and ``partition_leader_epoch=0``. Its gzip output embeds the current time
(and uses level 9), so gzip batches are compared by content, not bytes.
"""

from __future__ import annotations

import pytest
from kafka.codec import has_lz4, has_snappy, has_zstd
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from logstore.records import (
    GZIP,
    LOG_APPEND_TIME,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    BatchBuilder,
    Record,
    check_batch,
    decode_batch,
)

BASE_TS = 1_700_000_000_000

# zstandard, python-snappy and lz4 are installed in the project's environment (the test extra), so
# kafka-python's codecs for all five are available.
assert has_zstd(), "kafka-python cannot see zstandard; the zstd compatibility cases would not run"
assert has_snappy(), "kafka-python cannot see python-snappy (the test extra); the snappy cases would not run"
assert has_lz4(), "kafka-python cannot see lz4 (the test extra); the lz4 cases would not run"

COMPRESSIONS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]

RECORDS: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = [
    # (key, value, headers, timestamp)
    (None, b"plain value", [], BASE_TS),
    (b"key-1", b"keyed value " * 10, [], BASE_TS + 1),
    (b"tombstone", None, [], BASE_TS + 2),
    (b"", b"", [], BASE_TS + 3),
    (None, b"with headers", [("trace", b"abc"), ("null", None), ("ünïcødé", b"\x00\xff")], BASE_TS - 7),
    (b"k" * 200, b"large " * 4000, [("h" * 100, b"v" * 300)], BASE_TS + 10**8),
    (None, b"compressible " * 50, [], BASE_TS + 5),
]


def kafka_build(records, compression: int, **producer) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=producer.get("is_transactional", False),
        producer_id=producer.get("producer_id", -1),
        producer_epoch=producer.get("producer_epoch", -1),
        base_sequence=producer.get("base_sequence", -1),
        batch_size=10**8,
    )
    for offset, (key, value, headers, timestamp) in enumerate(records):
        assert builder.append(offset, timestamp, key, value, headers) is not None
    return bytes(builder.build())


def our_build(records, compression: int, **kwargs) -> bytes:
    builder = BatchBuilder(compression=compression, **kwargs)
    for key, value, headers, timestamp in records:
        builder.append(value, key=key, headers=headers, timestamp_ms=timestamp)
    return builder.build()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_kafka_python_decodes_our_batches(compression: int) -> None:
    data = our_build(
        RECORDS,
        compression,
        producer_id=4242,
        producer_epoch=3,
        base_sequence=17,
        base_offset=500,
        partition_leader_epoch=9,
        is_transactional=True,
    )
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    assert batch.magic == 2
    assert batch.base_offset == 500
    assert batch.leader_epoch == 9
    assert batch.size_in_bytes == len(data)
    assert batch.compression_type == compression
    assert batch.timestamp_type == 0
    assert batch.is_transactional
    assert not batch.is_control_batch
    assert batch.last_offset_delta == len(RECORDS) - 1
    assert batch.first_timestamp == BASE_TS
    assert batch.max_timestamp == BASE_TS + 10**8
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (4242, 3, 17)
    assert batch.records_count == len(RECORDS)
    decoded = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
    assert decoded == [(500 + i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(RECORDS)]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_we_decode_kafka_python_batches(compression: int) -> None:
    data = kafka_build(RECORDS, compression, producer_id=77, producer_epoch=1, base_sequence=5)
    header = check_batch(data)
    assert header.compression == compression
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 1, 5)
    assert header.record_count == len(RECORDS)
    assert decode_batch(data) == [Record(i, ts, 0, k, v, list(h)) for i, (k, v, h, ts) in enumerate(RECORDS)]


def test_kafka_python_reads_log_append_time() -> None:
    data = our_build(RECORDS[:3], NONE, timestamp_type=LOG_APPEND_TIME)
    batch = DefaultRecordBatch(data)
    assert batch.timestamp_type == 1
    assert [r.timestamp for r in batch] == [BASE_TS + 2] * 3


@pytest.mark.parametrize("compression", [NONE, SNAPPY, ZSTD])  # same snappy blocks: xerial's 32 KiB
def test_byte_for_byte_equal_to_kafka_python(compression: int) -> None:
    ours = our_build(RECORDS, compression, partition_leader_epoch=0)
    theirs = kafka_build(RECORDS, compression)
    assert check_batch(theirs).compression == compression  # really compressed, no fallback
    assert ours == theirs


def test_byte_for_byte_equal_for_the_fast_path_shape() -> None:
    """Many keyless, headerless records with growing deltas: the builder's fast path vs kafka-python."""
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]] = [
        (None, bytes([i % 256]) * (i % 300), [], BASE_TS + i // 10) for i in range(10_000)
    ]
    assert our_build(records, NONE, partition_leader_epoch=0) == kafka_build(records, NONE)


def test_byte_for_byte_equal_with_producer_fields() -> None:
    fields = {"producer_id": 2**40, "producer_epoch": 12, "base_sequence": 2**31 - 1}
    ours = our_build(RECORDS, NONE, partition_leader_epoch=0, is_transactional=True, **fields)
    assert ours == kafka_build(RECORDS, NONE, is_transactional=True, **fields)
