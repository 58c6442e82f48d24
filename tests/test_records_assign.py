"""Offset assignment (``assign_offsets``) and the header setters: the bytes the broker writes, without a
log. The reference is the patch-a-copy way ``Log.append`` used before: set the base offset, and for
LogAppendTime the timestamp type, max timestamp and CRC, in a private copy of each batch."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstore.records import (
    GZIP,
    LOG_APPEND_TIME,
    NONE,
    ZSTD,
    BatchBuilder,
    BatchHeader,
    assign_offsets,
    check_batch,
    decode_batch,
    iter_headers,
    layout,
    parse_header,
    set_base_offset,
    set_log_append_time,
    set_producer,
    update_crc,
)

BASE_TS = 1_700_000_000_000


def batch(count: int, compression: int = NONE, *, producer_id: int = -1, first_ts: int = BASE_TS) -> bytes:
    builder = BatchBuilder(
        compression=compression, producer_id=producer_id, producer_epoch=0, base_sequence=0
    )
    for i in range(count):
        builder.append(b"v%d" % i, key=b"k%d" % (i % 3), timestamp_ms=first_ts + i)
    return builder.build()


def checked(request: bytes) -> list[tuple[int, BatchHeader]]:
    return [(position, check_batch(request, position)) for position, _ in iter_headers(request)]


def reference(request: bytes, next_offset: int, append_time: int | None) -> bytes:
    """The pre-``assign_offsets`` way: patch a copy of each batch in place."""
    out = bytearray()
    for position, header in iter_headers(request):
        copy = bytearray(request[position : position + header.size])
        if append_time is not None:
            set_log_append_time(copy, 0, append_time)
        set_base_offset(copy, 0, next_offset)
        out += copy
        next_offset = header.last_offset + 1 - header.base_offset + next_offset
    return bytes(out)


def test_named_offsets_match_the_header_struct() -> None:
    """Every named offset is where the header struct puts its field, so no caller needs a bare number."""
    fields = ">" + "q i i b I h i q q q h i i".replace(" ", "")
    starts = [struct.calcsize(">" + fields[1 : i + 1]) for i in range(len(fields) - 1)]
    assert layout.HEADER_STRUCT.format == fields
    named = [
        layout.BASE_OFFSET_OFFSET,
        layout.LENGTH_OFFSET,
        layout.PARTITION_LEADER_EPOCH_OFFSET,
        layout.MAGIC_OFFSET,
        layout.CRC_OFFSET,
        layout.ATTRIBUTES_OFFSET,
        layout.LAST_OFFSET_DELTA_OFFSET,
        layout.BASE_TIMESTAMP_OFFSET,
        layout.MAX_TIMESTAMP_OFFSET,
        layout.PRODUCER_ID_OFFSET,
        layout.PRODUCER_EPOCH_OFFSET,
        layout.BASE_SEQUENCE_OFFSET,
        layout.RECORD_COUNT_OFFSET,
    ]
    assert named == starts
    assert layout.HEAD_STRUCT.size + layout.CRC_COVERED_HEAD_STRUCT.size == layout.HEADER_SIZE
    assert layout.HEAD_STRUCT.size == layout.ATTRIBUTES_OFFSET


def test_create_time_gives_consecutive_offsets_and_leaves_the_input_alone() -> None:
    request = batch(3) + batch(1) + batch(5, GZIP)
    before = bytes(request)
    result = assign_offsets(request, checked(request), 100)
    written = b"".join(result.pieces)
    assert request == before
    assert written == reference(request, 100, None)
    assert [(h.base_offset, h.last_offset) for _, h in iter_headers(written)] == [
        (100, 102),
        (103, 103),
        (104, 108),
    ]
    assert result.next_offset == 109
    assert result.record_count == 9
    assert result.size == len(written) == len(request)
    assert result.headers == [h for _, h in iter_headers(written)]
    for position, _ in iter_headers(written):
        check_batch(written, position)  # the base offset is outside the CRC
    assert [r.offset for p, _ in iter_headers(written) for r in decode_batch(written, p)] == list(
        range(100, 109)
    )


def test_create_time_pieces_are_views_of_the_request() -> None:
    """Zero copy: besides each new 8-byte base offset, the pieces point into the request's buffer."""
    request = batch(4) + batch(2)
    result = assign_offsets(request, checked(request), 7)
    offsets, rests = result.pieces[0::2], result.pieces[1::2]
    assert offsets == [struct.pack(">q", 7), struct.pack(">q", 11)]
    assert all(isinstance(rest, memoryview) and rest.obj is request for rest in rests)


def test_log_append_time_stamps_every_batch_and_reseals_its_crc() -> None:
    request = batch(3, first_ts=BASE_TS - 5000) + batch(2, ZSTD)
    before = bytes(request)
    now = BASE_TS + 60_000
    result = assign_offsets(request, checked(request), 0, now)
    written = b"".join(result.pieces)
    assert request == before
    assert written == reference(request, 0, now)
    headers = [check_batch(written, position) for position, _ in iter_headers(written)]  # good CRCs
    assert result.headers == headers
    assert all(h.timestamp_type == LOG_APPEND_TIME and h.max_timestamp == now for h in headers)
    assert all(h.crc != old.crc for h, (_, old) in zip(headers, checked(request), strict=True))
    assert {r.timestamp for p, _ in iter_headers(written) for r in decode_batch(written, p)} == {now}
    assert result.next_offset == 5 and result.record_count == 5 and result.size == len(request)


def test_a_gap_in_the_offset_deltas_is_kept() -> None:
    """A compacted batch claims more offsets than it has records: the next batch starts after its last."""
    gappy = bytearray(batch(2))
    struct.pack_into(">i", gappy, layout.LAST_OFFSET_DELTA_OFFSET, 9)
    update_crc(gappy)
    request = bytes(gappy) + batch(1)
    for append_time in (None, BASE_TS):
        result = assign_offsets(request, checked(request), 50, append_time)
        assert [(h.base_offset, h.last_offset) for h in result.headers] == [(50, 59), (60, 60)]
        assert result.next_offset == 61 and result.record_count == 3


def test_no_batches_assign_nothing() -> None:
    assert assign_offsets(b"", [], 42) == ([], [], 42, 0, 0)


def test_only_the_batches_given_are_assigned() -> None:
    """The caller picks the batches (e.g. skips none, or a slice): positions are taken as given."""
    first, second = batch(2), batch(3)
    request = first + second
    result = assign_offsets(request, checked(request)[1:], 10)
    assert b"".join(result.pieces) == reference(second, 10, None)


def test_set_producer_patches_the_fields_and_the_crc() -> None:
    request = batch(2) + batch(3)
    data = bytearray(request)
    second = len(batch(2))
    set_producer(data, second, 99, 4, 1234)
    header = check_batch(data, second)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (99, 4, 1234)
    assert data[:second] == request[:second]
    assert decode_batch(data, second) == decode_batch(request, second)


def test_update_crc_returns_what_it_writes() -> None:
    data = bytearray(batch(3))
    struct.pack_into(">q", data, layout.MAX_TIMESTAMP_OFFSET, BASE_TS + 99)
    crc = update_crc(data)
    assert parse_header(data).crc == crc == check_batch(data).crc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(1, 30), st.sampled_from([NONE, GZIP, ZSTD])), min_size=1, max_size=6),
    st.integers(0, 2**40),
    st.one_of(st.none(), st.integers(0, 2**42)),
)
def test_assign_offsets_writes_what_patching_a_copy_writes(shapes, next_offset: int, append_time) -> None:
    request = b"".join(batch(count, compression) for count, compression in shapes)
    result = assign_offsets(request, checked(request), next_offset, append_time)
    written = b"".join(result.pieces)
    assert written == reference(request, next_offset, append_time)
    assert result.headers == [check_batch(written, p) for p, _ in iter_headers(written)]
    assert result.next_offset == next_offset + sum(count for count, _ in shapes)
