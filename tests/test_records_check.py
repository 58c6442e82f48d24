"""check_batch, parse_header, iter_headers and the in-place patches the broker applies."""

from __future__ import annotations

import struct

import pytest

from logstore.errors import CorruptRecordError, RecordTooLargeError
from logstore.records import (
    GZIP,
    HEADER_SIZE,
    LOG_APPEND_TIME,
    NONE,
    ZSTD,
    BatchBuilder,
    build_batch,
    check_batch,
    crc32c,
    decode_batch,
    iter_headers,
    parse_header,
    set_base_offset,
    set_log_append_time,
)
from logstore.records.layout import ATTRIBUTES_OFFSET, CRC_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET

BASE_TS = 1_700_000_000_000


def batch(n: int = 3, compression: int = NONE, base_offset: int = 0) -> bytes:
    builder = BatchBuilder(compression=compression, base_offset=base_offset)
    for i in range(n):
        builder.append(b"value %d" % i, timestamp_ms=BASE_TS + i)
    return builder.build()


def patch(data: bytes, fmt: str, offset: int, value: int, *, fix_crc: bool = False) -> bytearray:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    if fix_crc:
        struct.pack_into(">I", buf, CRC_OFFSET, crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
    return buf


def test_valid_batch_passes_and_returns_its_header() -> None:
    data = batch(base_offset=40)
    header = check_batch(data, max_size=len(data))
    assert header == parse_header(data)
    assert (header.base_offset, header.record_count, header.size) == (40, 3, len(data))


def test_check_at_a_position_inside_a_larger_buffer() -> None:
    first, second = batch(2), batch(5, base_offset=2)
    buf = memoryview(first + second)
    assert check_batch(buf, len(first)).record_count == 5


@pytest.mark.parametrize("junk", [b"", b"\x00", b"garbage" * 8, bytes(60)])
def test_short_garbage_is_a_truncated_header(junk: bytes) -> None:
    with pytest.raises(CorruptRecordError, match=rf"only {len(junk)} bytes left, a batch header needs 61"):
        check_batch(junk)


def test_long_garbage_is_rejected() -> None:
    with pytest.raises(CorruptRecordError, match="batch at byte 0"):
        check_batch(b"not a record batch at all, just text. " * 10)


def test_zero_filled_buffer_has_a_too_small_length() -> None:
    with pytest.raises(CorruptRecordError, match="length field 0 is below the minimum 49"):
        check_batch(bytes(4096))


def test_truncated_batch() -> None:
    data = batch()
    with pytest.raises(
        CorruptRecordError, match=rf"says {len(data)} bytes but only {len(data) - 1} are left"
    ):
        check_batch(data[:-1])


def test_wrong_magic() -> None:
    with pytest.raises(CorruptRecordError, match="magic byte is 1, only 2 is supported"):
        check_batch(patch(batch(), ">b", MAGIC_OFFSET, 1))


def test_wrong_crc() -> None:
    data = batch()
    stored = parse_header(data).crc
    bad = patch(data, ">I", CRC_OFFSET, stored ^ 1)
    with pytest.raises(
        CorruptRecordError,
        match=rf"batch at byte 0: CRC mismatch \(stored 0x{stored ^ 1:08x}, computed 0x{stored:08x}\)",
    ):
        check_batch(bad)


def test_flipped_record_byte_fails_the_crc() -> None:
    buf = bytearray(batch())
    buf[-2] ^= 0x40
    with pytest.raises(CorruptRecordError, match="CRC mismatch"):
        check_batch(buf)


def test_length_mismatch_shorter_than_the_data_fails_the_crc() -> None:
    data = batch()
    shorter = patch(data, ">i", LENGTH_OFFSET, len(data) - 12 - 1)
    with pytest.raises(CorruptRecordError, match="CRC mismatch"):
        check_batch(shorter)


def test_length_below_minimum() -> None:
    with pytest.raises(CorruptRecordError, match="length field 48 is below the minimum 49"):
        check_batch(patch(batch(), ">i", LENGTH_OFFSET, 48))


def test_oversize_batch() -> None:
    data = batch()
    with pytest.raises(
        RecordTooLargeError, match=rf"is {len(data)} bytes, larger than the limit of 100 bytes"
    ):
        check_batch(data, max_size=100)


def test_record_count_and_last_offset_delta_must_agree() -> None:
    data = batch(3)
    count_at, delta_at = HEADER_SIZE - 4, ATTRIBUTES_OFFSET + 2
    with pytest.raises(CorruptRecordError, match="record count is 0, must be at least 1"):
        check_batch(patch(data, ">i", count_at, 0, fix_crc=True))
    with pytest.raises(CorruptRecordError, match="record count is -1"):
        check_batch(patch(data, ">i", count_at, -1, fix_crc=True))
    with pytest.raises(CorruptRecordError, match="last offset delta 1 is too small for 3 records"):
        check_batch(patch(data, ">i", delta_at, 1, fix_crc=True))
    # a larger last offset delta is legal: compaction leaves gaps
    assert check_batch(patch(data, ">i", delta_at, 10, fix_crc=True)).last_offset == 10


def test_parse_header_needs_61_bytes() -> None:
    with pytest.raises(CorruptRecordError, match="only 10 bytes left"):
        parse_header(batch()[:10])


def test_iter_headers_walks_batches_and_stops_at_a_partial_tail() -> None:
    batches = [batch(1), batch(4, GZIP, base_offset=1), batch(2, ZSTD, base_offset=5)]
    whole = b"".join(batches)
    starts = [0, len(batches[0]), len(batches[0]) + len(batches[1])]
    found = list(iter_headers(whole))
    assert [pos for pos, _ in found] == starts
    assert [h.base_offset for _, h in found] == [0, 1, 5]
    for cut in (1, 30, 61, len(batches[2]) - 1):
        assert [pos for pos, _ in iter_headers(whole[:-cut])] == starts[:2]


def test_iter_headers_stops_at_a_zero_filled_tail() -> None:
    data = batch(2)
    preallocated = bytearray(data + bytes(10_000))
    assert [pos for pos, _ in iter_headers(preallocated)] == [0]
    assert [pos for pos, _ in iter_headers(memoryview(preallocated))] == [0]


def test_iter_headers_respects_start_and_end() -> None:
    one, two, three = batch(1), batch(1, base_offset=1), batch(1, base_offset=2)
    whole = one + two + three
    assert [h.base_offset for _, h in iter_headers(whole, len(one))] == [1, 2]
    assert [h.base_offset for _, h in iter_headers(whole, 0, len(one) + len(two))] == [0, 1]
    assert list(iter_headers(whole, 0, len(one) - 1)) == []


@pytest.mark.parametrize("compression", [NONE, GZIP, ZSTD])
def test_set_base_offset_keeps_the_crc_and_moves_offsets(compression: int) -> None:
    prefix = b"\x00" * 7
    buf = bytearray(prefix + batch(3, compression))
    set_base_offset(buf, len(prefix), 2**40)
    header = check_batch(buf, len(prefix))
    assert header.base_offset == 2**40 and header.last_offset == 2**40 + 2
    assert [r.offset for r in decode_batch(buf, len(prefix))] == [2**40, 2**40 + 1, 2**40 + 2]


@pytest.mark.parametrize("compression", [NONE, GZIP, ZSTD])
def test_set_log_append_time_recomputes_the_crc(compression: int) -> None:
    prefix = batch(1)
    buf = bytearray(prefix + batch(3, compression))
    set_log_append_time(buf, len(prefix), BASE_TS + 999)
    header = check_batch(buf, len(prefix))
    assert header.timestamp_type == LOG_APPEND_TIME
    assert header.max_timestamp == BASE_TS + 999
    assert header.base_timestamp == BASE_TS  # unchanged, as in Kafka
    assert header.compression == compression
    records = decode_batch(buf, len(prefix))
    assert [(r.timestamp, r.timestamp_type, r.value) for r in records] == [
        (BASE_TS + 999, LOG_APPEND_TIME, b"value %d" % i) for i in range(3)
    ]
    check_batch(buf)  # the batch before it is untouched


def test_patches_work_through_a_memoryview_and_release_it() -> None:
    buf = bytearray(build_batch([b"a"]))
    view = memoryview(buf)
    set_base_offset(view, 0, 5)
    set_log_append_time(view, 0, BASE_TS)
    view.release()
    buf += b"resizable again"  # fails with BufferError if a view were still exported
    assert check_batch(buf).base_offset == 5


def test_check_batch_releases_its_view_of_the_buffer() -> None:
    buf = bytearray(batch())
    check_batch(buf)
    decode_batch(buf)
    buf += b"x"  # fails with BufferError if a view were still exported
    assert check_batch(buf).record_count == 3


def test_unsupported_codecs_fail_to_decode_with_a_clear_error() -> None:
    for codec, name in ((5, "unknown"), (7, "unknown")):
        data = patch(batch(), ">h", ATTRIBUTES_OFFSET, codec, fix_crc=True)
        assert check_batch(data).compression == codec  # stored as opaque bytes is fine
        with pytest.raises(CorruptRecordError, match=f"compression codec {name}.*not supported"):
            decode_batch(data)


@pytest.mark.parametrize("compression", [GZIP, ZSTD])
def test_corrupt_compressed_section_is_a_corrupt_record_error(compression: int) -> None:
    data = bytearray(batch(50, compression))
    del data[-5:]
    struct.pack_into(">i", data, LENGTH_OFFSET, len(data) - 12)
    struct.pack_into(">I", data, CRC_OFFSET, crc32c(bytes(data[ATTRIBUTES_OFFSET:])))
    with pytest.raises(CorruptRecordError, match="records section"):
        decode_batch(data)


def test_malformed_records_under_a_valid_crc_are_corrupt_record_errors() -> None:
    data = batch(3)
    more = patch(data, ">i", HEADER_SIZE - 4, 4, fix_crc=True)  # claims one record more than it holds
    more = patch(bytes(more), ">i", ATTRIBUTES_OFFSET + 2, 3, fix_crc=True)
    with pytest.raises(CorruptRecordError, match="malformed record 3 of 4"):
        decode_batch(more)
    fewer = patch(data, ">i", HEADER_SIZE - 4, 2, fix_crc=True)
    with pytest.raises(CorruptRecordError, match="bytes left over after its 2 records"):
        decode_batch(fewer)
    longer = bytearray(data)
    longer[HEADER_SIZE] += 2  # first record's length varint (one byte) now claims one byte more
    struct.pack_into(">I", longer, CRC_OFFSET, crc32c(bytes(longer[ATTRIBUTES_OFFSET:])))
    with pytest.raises(CorruptRecordError, match="record 0 declares"):
        decode_batch(longer)


# --- decompression bombs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec_id", "bomb_size"),
    [(1, 64 * 1024), (2, 256 * 1024), (3, 64 * 1024), (4, 64 * 1024)],  # snappy shrinks zeros only ~21:1
    ids=["gzip", "snappy", "lz4", "zstd"],
)
def test_decompression_is_capped(codec_id: int, bomb_size: int) -> None:
    from logstore.records.compression import compress, decompress

    bomb = compress(codec_id, b"\x00" * (4 * 1024 * 1024))
    assert len(bomb) < bomb_size
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(codec_id, bomb, max_bytes=1024 * 1024)
    assert len(decompress(codec_id, bomb, max_bytes=4 * 1024 * 1024)) == 4 * 1024 * 1024


def test_zstd_frames_without_a_declared_size_are_capped_too() -> None:
    import zstandard

    from logstore.records.compression import ZSTD, decompress

    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x00" * (2 * 1024 * 1024))
    assert zstandard.frame_content_size(streamed) == -1
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(ZSTD, streamed, max_bytes=1024 * 1024)
    assert len(decompress(ZSTD, streamed, max_bytes=2 * 1024 * 1024)) == 2 * 1024 * 1024
    small = zstandard.ZstdCompressor().compress(b"ok")
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(ZSTD, small + streamed, max_bytes=1024 * 1024)


def test_snappy_sizes_are_checked_before_anything_is_inflated() -> None:
    """Every raw snappy block starts with its length: a block or a xerial stream claiming more is refused
    before any output buffer is allocated."""
    import cramjam

    from logstore.records.compression import SNAPPY, decompress
    from logstore.records.snappy_codec import XERIAL_HEADER

    claims_4_gib = b"\xff\xff\xff\xff\x0f" + b"\x00" * 10
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(SNAPPY, claims_4_gib)
    block = bytes(cramjam.snappy.compress_raw(b"\x00" * 32 * 1024))
    xerial = XERIAL_HEADER + (struct.pack(">i", len(block)) + block) * 40  # 40 blocks of 32 KiB
    assert len(decompress(SNAPPY, xerial)) == 40 * 32 * 1024
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(SNAPPY, xerial, max_bytes=39 * 32 * 1024)
    lying = bytearray(block)
    lying[0] -= 1  # the varint now claims one byte less than the block holds
    with pytest.raises(CorruptRecordError, match="snappy records section does not decompress"):
        decompress(SNAPPY, bytes(lying))


def test_lz4_frames_are_capped_by_declared_size_and_block_by_block() -> None:
    """A frame that declares its content size is refused from its header; one that does not is refused
    after the block that passes the cap, in frames of any block size (64 KiB to 4 MiB)."""
    import lz4.frame

    from logstore.records.compression import LZ4, decompress

    zeros = b"\x00" * (4 * 1024 * 1024)
    sized = lz4.frame.compress(zeros, block_linked=False, store_size=True)
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(LZ4, sized[:64], max_bytes=1024 * 1024)  # the header alone is enough to refuse it
    for block_size in (lz4.frame.BLOCKSIZE_MAX64KB, lz4.frame.BLOCKSIZE_MAX4MB):
        unsized = lz4.frame.compress(zeros, block_linked=False, store_size=False, block_size=block_size)
        with pytest.raises(CorruptRecordError, match="decompresses to more than"):
            decompress(LZ4, unsized, max_bytes=1024 * 1024)
        assert decompress(LZ4, unsized) == zeros
    with pytest.raises(CorruptRecordError, match="decompresses to more than"):
        decompress(LZ4, lz4.frame.compress(b"ok", block_linked=False) + sized, max_bytes=1024 * 1024)


def test_lz4_frames_kafka_does_not_read_are_refused() -> None:
    import lz4.frame

    from logstore.records.compression import LZ4, decompress

    values = b"".join(b"record %d " % i for i in range(100_000))  # many 64 KiB blocks
    with pytest.raises(CorruptRecordError, match="dependent blocks"):
        decompress(LZ4, lz4.frame.compress(values, block_linked=True))
    good = lz4.frame.compress(values, block_linked=False, content_checksum=True, block_checksum=True)
    assert decompress(LZ4, good) == values
    with pytest.raises(CorruptRecordError, match="reserved bits"):
        decompress(LZ4, good[:4] + bytes([good[4] | 0x01]) + good[5:])  # a dictionary id
    with pytest.raises(CorruptRecordError, match="truncated"):
        decompress(LZ4, good[:-10])
    # By hand: independent blocks and a content size of 3 (FLG 0x68, BD 64 KiB), its descriptor checksum
    # byte (not checked: the batch CRC covers it), one stored block of 2 bytes, the end mark.
    header = struct.pack("<IBBQB", 0x184D2204, 0x68, 0x40, 3, 0)
    lying = header + struct.pack("<I", 0x80000002) + b"ab" + b"\x00" * 4
    with pytest.raises(CorruptRecordError, match="declares 3 bytes of content but holds 2"):
        decompress(LZ4, lying)
    assert decompress(LZ4, lying.replace(b"\x03", b"\x02", 1)) == b"ab"
