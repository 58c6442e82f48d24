"""Round trips through our own builder and reader, and the builder's and Record's contracts."""

from __future__ import annotations

from typing import Any

import pytest

from logstore.errors import CorruptRecordError
from logstore.records import (
    CREATE_TIME,
    GZIP,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    BatchBuilder,
    Record,
    build_batch,
    check_batch,
    decode_batch,
    iter_records,
)
from logstore.records.builder import encode_record
from logstore.records.varint import VARINT, decode_varint, encode_varint, size_of_varint

COMPRESSIONS = [NONE, GZIP, SNAPPY, LZ4, ZSTD]
BASE_TS = 1_700_000_000_000


def build(records: list[dict], **kwargs) -> bytes:
    builder = BatchBuilder(**kwargs)
    for i, record in enumerate(records):
        assert builder.append(**record) == i
    return builder.build()


def expected(records: list[dict], base_offset: int = 0, timestamp_type: int = CREATE_TIME) -> list[Record]:
    return [
        Record(
            base_offset + i,
            r["timestamp_ms"],
            timestamp_type,
            None if r.get("key") is None else bytes(r["key"]),
            None if r["value"] is None else bytes(r["value"]),
            [(k, None if v is None else bytes(v)) for k, v in r.get("headers", ())],
        )
        for i, r in enumerate(records)
    ]


MIXED: list[dict[str, Any]] = [
    {"value": b"plain", "timestamp_ms": BASE_TS},
    {"value": b"with key", "key": b"k1", "timestamp_ms": BASE_TS + 1},
    {"value": None, "key": b"tombstone", "timestamp_ms": BASE_TS + 2},
    {"value": b"", "key": b"", "timestamp_ms": BASE_TS + 3},
    {"value": b"hdr", "headers": [("a", b"1"), ("null", None), ("ünï©ødé ✓", b"")], "timestamp_ms": BASE_TS},
    {"value": bytearray(b"from a bytearray"), "key": memoryview(b"mv key"), "timestamp_ms": BASE_TS - 5000},
    {"value": b"x" * 20_000, "key": b"k" * 300, "timestamp_ms": BASE_TS + 10**9},
    {"value": bytes(range(256)) * 70, "timestamp_ms": BASE_TS - 10**7},
]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_mixed_records_round_trip(compression: int) -> None:
    data = build(MIXED, compression=compression)
    header = check_batch(data)
    assert header.compression == compression
    assert header.record_count == len(MIXED)
    assert header.last_offset_delta == len(MIXED) - 1
    assert header.base_timestamp == BASE_TS
    assert header.max_timestamp == BASE_TS + 10**9
    assert decode_batch(data) == expected(MIXED)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_producer_fields_and_base_offset_round_trip(compression: int) -> None:
    records = [{"value": b"v%d" % i, "timestamp_ms": BASE_TS + i} for i in range(5)]
    data = build(
        records,
        compression=compression,
        producer_id=123456789012,
        producer_epoch=7,
        base_sequence=41,
        base_offset=1000,
        partition_leader_epoch=3,
        is_transactional=True,
    )
    header = check_batch(data)
    assert header.producer_id == 123456789012
    assert header.has_producer_id
    assert header.producer_epoch == 7
    assert header.base_sequence == 41
    assert header.base_offset == 1000
    assert header.last_offset == 1004
    assert header.partition_leader_epoch == 3
    assert header.is_transactional
    assert not header.is_control
    assert header.size == len(data)
    assert decode_batch(data) == expected(records, base_offset=1000)


def test_default_header_fields() -> None:
    header = check_batch(build_batch([b"a"]))
    assert (header.base_offset, header.partition_leader_epoch, header.magic) == (0, -1, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
    assert not header.has_producer_id and not header.is_transactional
    assert header.timestamp_type == CREATE_TIME


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_log_append_time_batch_reports_max_timestamp_for_every_record(compression: int) -> None:
    records = [{"value": b"v", "timestamp_ms": BASE_TS + d} for d in (5, -3, 9, 0)]
    data = build(records, compression=compression, timestamp_type=LOG_APPEND_TIME)
    header = check_batch(data)
    assert header.timestamp_type == LOG_APPEND_TIME
    decoded = decode_batch(data)
    assert [r.timestamp for r in decoded] == [BASE_TS + 9] * 4
    assert {r.timestamp_type for r in decoded} == {LOG_APPEND_TIME}


def test_timestamp_deltas_of_every_size_round_trip() -> None:
    deltas = [0, 1, -1, 63, 64, -64, -65, 1023, 1024, 8191, 8192, -8193, 2**31, -(2**40), 2**62]
    records = [{"value": b"t", "timestamp_ms": BASE_TS + d} for d in deltas]
    assert decode_batch(build(records)) == expected(records)


def test_value_lengths_of_every_varint_size_round_trip() -> None:
    lengths = [0, 1, 63, 64, 127, 128, 4095, 4096, 8191, 8192, 16367, 16368, 16384, 70_000]
    records = [{"value": bytes([n % 251]) * n, "timestamp_ms": BASE_TS} for n in lengths]
    assert decode_batch(build(records)) == expected(records)


def test_many_records_cross_every_offset_delta_varint_size() -> None:
    """17000 records: offset deltas of one, two and three bytes, past the fast-path table."""
    values = [b"%d" % i for i in range(17_000)]
    data = build_batch(values)
    decoded = decode_batch(data)
    assert [r.offset for r in decoded] == list(range(17_000))
    assert [r.value for r in decoded] == values


def test_fast_path_bytes_equal_general_path_bytes() -> None:
    """bytes values take the fast path, bytearray and memoryview the general one: same batch bytes."""
    deltas = [0, 3, -64, -65, 1023, 1024, 5000]
    lengths = [0, 5, 63, 64, 100, 4095, 4096, 9000, 16367, 16368]
    cases = [(d, n) for d in deltas for n in lengths]
    fast = BatchBuilder()
    slow = BatchBuilder()
    via_view = BatchBuilder()
    for delta, n in cases:
        value = bytes([n % 256]) * n
        fast.append(value, timestamp_ms=BASE_TS + delta)
        slow.append(bytearray(value), timestamp_ms=BASE_TS + delta)
        via_view.append(memoryview(value), timestamp_ms=BASE_TS + delta)
    assert fast.build() == slow.build() == via_view.build()
    assert fast.size_in_bytes() == slow.size_in_bytes() == len(fast.build())


def test_keyed_fast_path_bytes_equal_general_path_bytes() -> None:
    """bytes keys and values take the keyed fast path, bytearrays the general one: same batch bytes,
    including at the edge where key and value together no longer fit the varint table."""
    deltas = [0, 3, -64, -65, 1023, 1024]
    sizes = [(0, 0), (16, 100), (63, 64), (100, 16266), (16367, 0), (0, 16367), (16368, 0), (8000, 8400)]
    fast = BatchBuilder()
    slow = BatchBuilder()
    for delta in deltas:
        for key_length, value_length in sizes:
            key, value = b"k" * key_length, bytes([value_length % 256]) * value_length
            fast.append(value, key, timestamp_ms=BASE_TS + delta)
            slow.append(bytearray(value), bytearray(key), timestamp_ms=BASE_TS + delta)
    assert fast.build() == slow.build()
    assert fast.size_in_bytes() == len(fast.build())


def test_fast_path_record_matches_reference_encoder() -> None:
    builder = BatchBuilder()
    pieces = []
    for i in range(300):
        value = b"v" * (i * 37 % 500)
        builder.append(value, timestamp_ms=BASE_TS + i % 7)
        pieces.append(encode_record(i, i % 7, None, value, ()))
    assert builder.build()[HEADER_SIZE:] == b"".join(pieces)


def test_size_in_bytes_is_exact_without_compression() -> None:
    builder = BatchBuilder()
    assert builder.size_in_bytes() == HEADER_SIZE
    for record in MIXED:
        builder.append(**record)
        assert builder.size_in_bytes() == len(builder.build())


def test_size_in_bytes_is_an_upper_bound_with_compression() -> None:
    builder = BatchBuilder(compression=ZSTD)
    for i in range(200):
        builder.append(b"compressible value %d" % (i % 3))
    assert len(builder.build()) < builder.size_in_bytes()


def test_append_defaults_timestamp_to_now() -> None:
    import time

    before = time.time_ns() // 1_000_000
    data = build_batch([b"a", b"b"])
    after = time.time_ns() // 1_000_000
    records = decode_batch(data)
    assert all(before <= r.timestamp <= after for r in records)


def test_build_batch_takes_values_and_records() -> None:
    records = [
        Record(99, BASE_TS, key=b"k", value=b"v", headers=[("h", b"1")]),
        Record(5, BASE_TS + 2, value=None),
    ]
    decoded = decode_batch(build_batch([*records, b"raw"], base_offset=10))
    assert decoded[:2] == [
        Record(10, BASE_TS, CREATE_TIME, b"k", b"v", [("h", b"1")]),
        Record(11, BASE_TS + 2, CREATE_TIME, None, None, []),
    ]
    assert decoded[2].offset == 12 and decoded[2].value == b"raw" and decoded[2].key is None


def test_build_is_repeatable_and_builder_keeps_accepting_records() -> None:
    builder = BatchBuilder()
    builder.append(b"one", timestamp_ms=BASE_TS)
    first = builder.build()
    assert builder.build() == first
    builder.append(b"two", timestamp_ms=BASE_TS)
    assert [r.value for r in decode_batch(builder.build())] == [b"one", b"two"]
    assert builder.record_count == 2


def test_iter_records_spans_batches() -> None:
    first = build_batch([b"a", b"b"], base_offset=0)
    second = build_batch([b"c"], base_offset=2, compression=GZIP)
    third = build_batch([b"d", b"e"], base_offset=3, compression=ZSTD)
    buf = first + second + third + third[:30]  # a partial tail is ignored
    assert [(r.offset, r.value) for r in iter_records(buf)] == [
        (0, b"a"),
        (1, b"b"),
        (2, b"c"),
        (3, b"d"),
        (4, b"e"),
    ]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_decode_accepts_any_buffer_and_returns_bytes(wrap) -> None:
    data = build_batch([b"a", b"b"], base_offset=7)
    padded = b"x" * 13 + data
    decoded = decode_batch(wrap(padded), 13)
    assert [(r.offset, r.value) for r in decoded] == [(7, b"a"), (8, b"b")]
    assert all(type(r.value) is bytes for r in decoded)


def test_str_values_keys_and_header_values_are_rejected_with_a_hint() -> None:
    builder = BatchBuilder()
    with pytest.raises(TypeError, match="not str: encode it"):
        builder.append("text")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(TypeError, match="not str: encode it"):
        builder.append(b"v", key="text")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(TypeError, match="not str: encode it"):
        builder.append(b"v", headers=[("h", "text")])  # type: ignore[list-item]  # the wrong type on purpose
    with pytest.raises(TypeError, match="header keys must be str"):
        builder.append(b"v", headers=[(b"h", b"x")])  # type: ignore[list-item]  # the wrong type on purpose
    with pytest.raises(TypeError, match="must be bytes"):
        builder.append(42)  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(TypeError, match="timestamp_ms must be an int"):
        builder.append(b"v", timestamp_ms=1.5)  # type: ignore[arg-type]  # the wrong type on purpose
    assert builder.record_count == 0


def test_builder_rejects_bad_settings() -> None:
    with pytest.raises(CorruptRecordError, match="unknown"):
        BatchBuilder(compression=6)
    with pytest.raises(ValueError, match="timestamp_type"):
        BatchBuilder(timestamp_type=2)
    with pytest.raises(ValueError, match="producer_epoch"):
        BatchBuilder(producer_epoch=1 << 15)
    with pytest.raises(ValueError, match="transactional"):
        BatchBuilder(is_transactional=True)
    with pytest.raises(ValueError, match="empty batch"):
        BatchBuilder().build()


def test_record_equality_repr_and_lazy_headers() -> None:
    a = Record(1, 2, CREATE_TIME, b"k", b"v")
    assert a.headers == [] and a == Record(1, 2, CREATE_TIME, b"k", b"v", [])
    assert a != Record(1, 2, CREATE_TIME, b"k", b"w")
    assert a != Record(1, 2, CREATE_TIME, b"k", b"v", [("h", None)])
    assert a != (1, 2, 0, b"k", b"v", [])
    a.headers.append(("h", None))
    assert a == Record(1, 2, CREATE_TIME, b"k", b"v", [("h", None)])
    assert repr(a) == (
        "Record(offset=1, timestamp=2, timestamp_type=0, key=b'k', value=b'v', headers=[('h', None)])"
    )
    with pytest.raises(TypeError):
        hash(a)


def test_decoded_records_have_independent_header_lists() -> None:
    first, second = decode_batch(build_batch([b"a", b"b"]))
    first.headers.append(("added", b"1"))
    assert second.headers == []


@pytest.mark.parametrize(
    "value", [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
)
def test_varint_round_trip_and_table(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == size_of_varint(value)
    assert decode_varint(b"\xff" + encoded + b"\x00", 1) == (value, 1 + len(encoded))
    if -64 <= value < len(VARINT) - 64:
        assert VARINT[value] == encoded


def test_varint_errors() -> None:
    with pytest.raises(CorruptRecordError, match="runs past the end"):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(CorruptRecordError, match="longer than 10 bytes"):
        decode_varint(b"\xff" * 11, 0)
    with pytest.raises(OverflowError):
        encode_varint(2**63)


def test_headers_may_be_none_or_any_iterable() -> None:
    builder = BatchBuilder()
    builder.append(b"a", headers=None)
    builder.append(b"b", key=b"k", headers=None)
    builder.append(b"c", headers=iter([("h", b"1")]))
    assert [r.headers for r in decode_batch(builder.build())] == [[], [], [("h", b"1")]]
