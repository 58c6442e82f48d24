"""Property tests: random records survive a round trip (and kafka-python agrees), and random damage
to a batch is always caught as a CorruptRecordError."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch

from logstore.errors import CorruptRecordError
from logstore.records import (
    CREATE_TIME,
    GZIP,
    HEADER_SIZE,
    LZ4,
    NONE,
    SNAPPY,
    ZSTD,
    BatchBuilder,
    Record,
    check_batch,
    crc32c,
    decode_batch,
)
from logstore.records.compression import compress, decompress
from logstore.records.layout import ATTRIBUTES_OFFSET, CRC_OFFSET

BASE_TS = 1_700_000_000_000

blobs = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(0, 20_000), st.integers(0, 255)),
)
headers = st.lists(st.tuples(st.text(max_size=12), st.one_of(st.none(), st.binary(max_size=20))), max_size=3)
records = st.lists(
    st.tuples(
        blobs,  # key
        blobs,  # value
        headers,
        st.one_of(st.integers(-100, 2000), st.integers(-(2**40), 2**40)),  # timestamp offset
    ),
    min_size=1,
    max_size=40,
)
settings_ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(recs, compression: int, base_offset: int = 0) -> bytes:
    builder = BatchBuilder(compression=compression, base_offset=base_offset)
    for key, value, hdrs, ts in recs:
        builder.append(value, key=key, headers=hdrs, timestamp_ms=BASE_TS + ts)
    return builder.build()


@settings_
@given(records, st.sampled_from([NONE, GZIP, SNAPPY, LZ4, ZSTD]), st.integers(0, 2**62))
def test_build_then_decode_returns_the_input(recs, compression: int, base_offset: int) -> None:
    data = build(recs, compression, base_offset)
    expected = [
        Record(base_offset + i, BASE_TS + ts, CREATE_TIME, key, value, list(hdrs))
        for i, (key, value, hdrs, ts) in enumerate(recs)
    ]
    assert decode_batch(data) == expected
    header = check_batch(data)
    assert header.max_timestamp == BASE_TS + max(ts for *_, ts in recs)
    theirs = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in DefaultRecordBatch(data)]
    assert theirs == [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in expected]


@settings_
@given(
    records,
    st.sampled_from([NONE, GZIP, SNAPPY, LZ4, ZSTD]),
    st.data(),
)
def test_any_damaged_byte_is_caught(recs, compression: int, data) -> None:
    batch = bytearray(build(recs, compression))
    index = data.draw(st.integers(0, len(batch) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    batch[index] ^= flip
    if index < 8 or 12 <= index < 16:  # base offset and partition leader epoch: not covered by the CRC
        check_batch(batch)
        return
    try:
        check_batch(batch)
    except CorruptRecordError:
        return
    raise AssertionError(f"damage at byte {index} (xor 0x{flip:02x}) passed check_batch")


@settings_
@given(records, st.data())
def test_malformed_records_under_a_valid_crc_never_raise_anything_else(recs, data) -> None:
    """A buggy producer can sign garbage: decoding it must fail cleanly or decode, nothing else."""
    batch = bytearray(build(recs, NONE))
    index = data.draw(st.integers(HEADER_SIZE, len(batch) - 1), label="index")
    batch[index] = data.draw(st.integers(0, 255), label="byte")
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(bytes(batch[ATTRIBUTES_OFFSET:])))
    try:
        decoded = decode_batch(bytes(batch))
    except CorruptRecordError:
        return
    assert len(decoded) == len(recs)


@settings_
@given(
    st.sampled_from([SNAPPY, LZ4]),
    st.binary(min_size=1, max_size=3000),
    st.sampled_from(["as-is", "garbage", "one-byte-changed", "truncated"]),
    st.data(),
)
def test_damaged_snappy_and_lz4_sections_fail_cleanly_and_stay_capped(
    codec: int, payload: bytes, damage: str, data
) -> None:
    """Our own framing parsers sit in front of cramjam: whatever the bytes, they decode within the cap or
    raise CorruptRecordError, never another exception."""
    section = bytearray(payload if damage == "garbage" else compress(codec, payload * 30))
    if damage == "one-byte-changed":
        index = data.draw(st.integers(0, len(section) - 1), label="index")
        section[index] = data.draw(st.integers(0, 255), label="byte")
    elif damage == "truncated":
        del section[data.draw(st.integers(0, len(section) - 1), label="cut") :]
    cap = 64 * 1024
    try:
        out = decompress(codec, bytes(section), max_bytes=cap)
    except CorruptRecordError:
        assert damage != "as-is" or len(payload) * 30 > cap
        return
    assert len(out) <= cap
    if damage == "as-is":
        assert out == payload * 30
