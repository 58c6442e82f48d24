"""validate_records: every class of CRC-valid batch with bad contents is refused, good batches pass.

Each bad batch here has a correct CRC, so `check_batch` (all that the broker ran before) accepts it; the
`Log.append` test shows such batches were appended before and are refused, with nothing written, now.
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstore.config import TopicConfig
from logstore.errors import CorruptRecordError, InvalidTimestampError
from logstore.log import Log
from logstore.records import GZIP, LZ4, NONE, SNAPPY, ZSTD, BatchBuilder, check_batch, crc32c, decode_batch
from logstore.records.compression import compress
from logstore.records.layout import ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_STRUCT, MAGIC
from logstore.records.validate import validate_records
from logstore.records.varint import encode_varint

BASE_TS = 1_700_000_000_000


def record(offset_delta: int, value: bytes | None, key: bytes | None = None, ts_delta: int = 0) -> bytes:
    """One v2 record, encoded by hand (no headers)."""
    body = b"".join(
        (
            b"\x00",
            encode_varint(ts_delta),
            encode_varint(offset_delta),
            encode_varint(-1) if key is None else encode_varint(len(key)) + key,
            encode_varint(-1) if value is None else encode_varint(len(value)) + value,
            b"\x00",
        )
    )
    return encode_varint(len(body)) + body


def raw_batch(
    section: bytes,
    count: int,
    *,
    last_offset_delta: int | None = None,
    attributes: int = NONE,
    base_ts: int = BASE_TS,
    max_ts: int | None = None,
) -> bytes:
    """A batch around ``section`` (sent as is: compress it first for a compressed codec), correct CRC."""
    header = HEADER_STRUCT.pack(
        0,
        HEADER_STRUCT.size - 12 + len(section),
        -1,
        MAGIC,
        0,
        attributes,
        count - 1 if last_offset_delta is None else last_offset_delta,
        base_ts,
        base_ts if max_ts is None else max_ts,
        -1,
        -1,
        -1,
        count,
    )
    batch = bytearray(header + section)
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(bytes(batch[ATTRIBUTES_OFFSET:])))
    return bytes(batch)


def built(values: list[bytes], compression: int = NONE, timestamps: list[int] | None = None) -> bytes:
    builder = BatchBuilder(compression=compression)
    for i, value in enumerate(values):
        builder.append(value, timestamp_ms=BASE_TS if timestamps is None else timestamps[i])
    return builder.build()


def validate(batch: bytes, *, require_keys: bool = False) -> None:
    validate_records(batch, 0, check_batch(batch), require_keys=require_keys)


THREE = b"".join(record(i, b"value %d" % i) for i in range(3))


def _dependent(frame: bytes) -> bytes:
    """The LZ4 frame with its block-independence flag cleared (its descriptor checksum is not checked)."""
    return frame[:4] + bytes([frame[4] & ~0x20]) + frame[5:]


# name -> (CRC-valid batch with bad contents, the error, words its message must hold)
BAD_BATCHES: dict[str, tuple[bytes, type[Exception], str]] = {
    "garbage-records": (raw_batch(b"\x93garbage that is no record" * 4, 3), CorruptRecordError, "record 0"),
    "gzip-header-over-garbage": (
        raw_batch(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + os.urandom(64), 1, attributes=GZIP),
        CorruptRecordError,
        "gzip",
    ),
    "gzip-of-garbage": (
        raw_batch(compress(GZIP, b"\x01\x02 garbage inside good gzip"), 1, attributes=GZIP),
        CorruptRecordError,
        "record 0",
    ),
    "snappy-garbage": (
        raw_batch(b"\x00" * 20, 1, attributes=SNAPPY),
        CorruptRecordError,
        "snappy records section does not decompress",
    ),
    "xerial-snappy-truncated": (
        raw_batch(compress(SNAPPY, THREE)[:-3], 3, attributes=SNAPPY),
        CorruptRecordError,
        "does not fit",
    ),
    "lz4-garbage": (
        raw_batch(b"\x00" * 20, 1, attributes=LZ4),
        CorruptRecordError,
        "lz4 records section has no frame",
    ),
    "lz4-truncated": (
        raw_batch(compress(LZ4, THREE)[:-5], 3, attributes=LZ4),
        CorruptRecordError,
        "truncated",
    ),
    "lz4-dependent-blocks": (
        raw_batch(_dependent(compress(LZ4, THREE)), 3, attributes=LZ4),
        CorruptRecordError,
        "dependent blocks",
    ),
    "unknown-codec": (
        raw_batch(THREE, 3, attributes=6),
        CorruptRecordError,
        "unknown \\(6\\) is not supported",
    ),
    "negative-timestamp": (built([b"v"], timestamps=[-5]), InvalidTimestampError, "timestamp -5"),
    "1000-offsets-for-one-record": (
        raw_batch(record(0, b"v"), 1, last_offset_delta=999),
        CorruptRecordError,
        "last offset delta 999",
    ),
    "count-of-1000-for-one-record": (raw_batch(record(0, b"v"), 1000), CorruptRecordError, "record 1"),
    "bytes-left-after-records": (raw_batch(THREE + b"\x00\x00", 3), CorruptRecordError, "2 bytes left over"),
    "record-longer-than-batch": (raw_batch(THREE[:-1], 3), CorruptRecordError, "record 2"),
    "offset-delta-gap": (
        raw_batch(record(0, b"a") + record(2, b"b") + record(3, b"c"), 3),
        CorruptRecordError,
        "offset delta 2",
    ),
    "max-timestamp-too-small": (
        raw_batch(record(0, b"a") + record(1, b"b", ts_delta=7), 2, max_ts=BASE_TS),
        InvalidTimestampError,
        f"record 1 has timestamp {BASE_TS + 7}",
    ),
    "max-timestamp-too-large": (
        raw_batch(THREE, 3, max_ts=BASE_TS + 1),
        InvalidTimestampError,
        f"the largest is {BASE_TS}",
    ),
    "log-append-time-from-producer": (
        raw_batch(THREE, 3, attributes=0x08),
        InvalidTimestampError,
        "LogAppendTime",
    ),
}


@pytest.mark.parametrize("name", list(BAD_BATCHES))
def test_a_crc_valid_batch_with_bad_contents_is_refused(name: str) -> None:
    batch, error, words = BAD_BATCHES[name]
    check_batch(batch)  # the CRC and framing are fine: only the contents are bad
    with pytest.raises(error, match=words):
        validate(batch)


@pytest.mark.parametrize("name", list(BAD_BATCHES))
def test_log_append_refuses_it_and_writes_nothing(tmp_path, name: str) -> None:
    """On the code before validate_records, every one of these was appended (then broke readers)."""
    log = Log(tmp_path / "t-0", "t", 0, TopicConfig(segment_bytes=1 << 20))
    try:
        good = built([b"before"])
        assert log.append(good).base_offset == 0
        batch, error, _ = BAD_BATCHES[name]
        with pytest.raises(error):
            log.append(good + batch)  # all or nothing: the good batch in front is not written either
        assert log.log_end_offset == 1
        assert log.append(good).base_offset == 1
    finally:
        log.close()


@pytest.mark.parametrize("compression", [NONE, GZIP, SNAPPY, LZ4, ZSTD])
def test_good_batches_pass(compression: int) -> None:
    validate(built([b"v" * 100] * 3, compression))
    validate(built([b"v" * i for i in range(300)], compression))  # no two records of one shape
    validate(built([b"a" * 100] * 64 + [b"b" * 50] * 84, compression))  # halves of different shapes
    validate(built([b"a" * 100] * 70 + [b"b" * 50] * 78, compression))  # a shape change inside a half
    stamps = [BASE_TS + (i * 7) % 300 - 100 for i in range(9_000)]  # deltas of one and two bytes, both signs
    validate(built([b"x" * 90] * 9_000, compression, stamps))


def test_no_timestamp_is_allowed_and_only_it() -> None:
    validate(built([b"a", b"b"], timestamps=[-1, -1]))
    validate(raw_batch(record(0, b"a") + record(1, b"b", ts_delta=-1), 2, base_ts=0, max_ts=0))
    with pytest.raises(InvalidTimestampError, match="timestamp -2"):
        validate(raw_batch(record(0, b"a") + record(1, b"b", ts_delta=-2), 2, base_ts=0, max_ts=0))


def test_tombstones_pass_and_compacted_topics_need_keys() -> None:
    keyed = raw_batch(record(0, None, key=b"k") + record(1, b"v", key=b"k"), 2)
    validate(keyed, require_keys=True)
    with pytest.raises(CorruptRecordError, match="needs a key; the record at offset delta 40 has none"):
        values = [b"k%d" % i for i in range(40)]
        section = b"".join(record(i, b"v", key=k) for i, k in enumerate(values)) + record(40, b"v")
        validate(raw_batch(section, 41), require_keys=True)


def test_header_keys_must_be_utf8() -> None:
    body = b"\x00\x00\x00\x01\x02v" + b"\x02" + b"\x04\xff\xfe" + b"\x00"  # one header, key 0xff 0xfe
    batch = raw_batch(encode_varint(len(body)) + body, 1)
    decode = pytest.raises(CorruptRecordError)
    with decode:
        decode_batch(batch)  # the reader refuses it too, so the broker must not store it
    with pytest.raises(CorruptRecordError, match="not UTF-8"):
        validate(batch)


def _damage_record(count: int, index: int, offset_in_record: int, new: int) -> bytes:
    """A batch of ``count`` same-shaped records with one byte of record ``index`` replaced."""
    records = [record(i, b"%06d" % i + b"v" * 94) for i in range(count)]
    broken = bytearray(records[index])
    broken[offset_in_record] = new
    records[index] = bytes(broken)
    return raw_batch(b"".join(records), count)


@pytest.mark.parametrize("count", [100, 9_500])  # a 16 KiB-sized batch, a 1 MiB one (bisected runs)
@pytest.mark.parametrize("index", [0, 63, 64, 5_000, -1])
def test_one_bad_record_inside_a_long_run_is_found(count: int, index: int) -> None:
    index = index % count if index < count else count - 1
    width = 1 if index < 64 else 2 if index < 8192 else 3
    offset_byte = 4  # length (2 bytes), attributes, timestamp delta, then the offset delta
    wrong_delta = encode_varint(index + 1)
    if len(wrong_delta) == width:  # the offset delta of the next record: offsets no longer dense
        records = [record(i, b"%06d" % i + b"v" * 94) for i in range(count)]
        records[index] = record(index + 1, b"%06d" % index + b"v" * 94)
        with pytest.raises(CorruptRecordError, match=f"record {index} has offset delta {index + 1}"):
            validate(raw_batch(b"".join(records), count))
    value_length_at = offset_byte + width + 1
    with pytest.raises(CorruptRecordError, match=f"record {index}"):
        validate(_damage_record(count, index, value_length_at, 0xC6))  # value length 99: record too long
    last = len(record(index, b"v" * 100)) - 1
    with pytest.raises(CorruptRecordError, match=f"record {index}"):
        validate(_damage_record(count, index, last, 0x02))  # a header count of 1 where the record ends


settings_ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.binary(max_size=70)),
            st.one_of(st.none(), st.binary(max_size=150)),
            st.integers(-70, 10_000),
        ),
        min_size=1,
        max_size=120,
    ),
    st.integers(0, 1 << 20),
    st.integers(0, 255),
)
def test_what_validation_accepts_the_reader_decodes_with_dense_offsets(records, where, byte) -> None:
    """Random records pass; after a random byte is changed (CRC fixed up, so only the contents are bad),
    the batch is either refused, or the reader decodes exactly its records with offsets 0..n-1."""
    builder = BatchBuilder()
    for key, value, ts in records:
        builder.append(value, key=key, timestamp_ms=BASE_TS + ts)
    batch = bytearray(builder.build())
    validate(bytes(batch))
    position = 61 + where % (len(batch) - 61)
    batch[position] = byte
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(bytes(batch[ATTRIBUTES_OFFSET:])))
    damaged = bytes(batch)
    header = check_batch(damaged)
    try:
        validate(damaged)
    except (CorruptRecordError, InvalidTimestampError):
        return
    decoded = decode_batch(damaged)
    assert [r.offset for r in decoded] == list(range(header.record_count))
    assert max(r.timestamp for r in decoded) == header.max_timestamp
    assert min(r.timestamp for r in decoded) >= -1


def test_a_bad_gzip_member_after_a_good_one_is_refused() -> None:
    good = compress(GZIP, record(0, b"v"))
    batch = raw_batch(good + good[:10], 1, attributes=GZIP)
    with pytest.raises(CorruptRecordError, match="gzip"):
        validate(batch)
    assert zlib.decompress(good, 31) == record(0, b"v")


@settings_
@given(
    st.integers(1, 700),
    st.integers(0, 3),
    st.integers(0, 200),
    st.lists(st.integers(0, 63), min_size=1, max_size=8),
    st.integers(0, 1 << 20),
    st.integers(0, 255),
)
def test_damage_inside_runs_of_same_shaped_records_is_caught(
    count, key_length, value_length, deltas, where, byte
) -> None:
    """The same oracle over batches the run paths take (same-shaped records, one-byte timestamp deltas),
    damaged at a random byte: refused, or decoded with dense offsets and consistent timestamps."""
    builder = BatchBuilder()
    key = b"k" * key_length if key_length else None
    for i in range(count):
        builder.append(
            b"%03d" % (i % 1000) + b"v" * value_length,
            key=key,
            timestamp_ms=BASE_TS + deltas[i % len(deltas)],
        )
    batch = bytearray(builder.build())
    validate(bytes(batch))
    position = 61 + where % (len(batch) - 61)
    batch[position] = byte
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(bytes(batch[ATTRIBUTES_OFFSET:])))
    damaged = bytes(batch)
    header = check_batch(damaged)
    try:
        validate(damaged)
    except (CorruptRecordError, InvalidTimestampError):
        return
    decoded = decode_batch(damaged)
    assert [r.offset for r in decoded] == list(range(header.record_count))
    assert max(r.timestamp for r in decoded) == header.max_timestamp
