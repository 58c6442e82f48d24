"""One segment on real files: append, read, find_batch, seal, activate, truncate, load and recover."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logstore.errors import StorageError
from logstore.records import BatchHeader, Record, build_batch, check_batch, decode_batch, iter_headers
from logstore.segment import LogSegment, parse_segment_name, segment_name

TS = 1_700_000_000_000
KIB = 1024


def batch_at(base: int, count: int = 3, *, ts: int = TS, size: int = 40) -> tuple[bytes, BatchHeader]:
    """A batch of `count` records with offsets from `base`, timestamps from `ts`, values of `size` bytes."""
    records = [Record(0, ts + i, value=bytes([base % 251]) * size) for i in range(count)]
    data = build_batch(records, base_offset=base)
    return data, check_batch(data)


def open_segment(
    directory: Path,
    base: int = 0,
    *,
    capacity: int = 64 * KIB,
    max_index_bytes: int = 4 * KIB,
    interval: int = 0,
    active: bool = True,
) -> LogSegment:
    return LogSegment(
        directory,
        base,
        capacity=capacity,
        max_index_bytes=max_index_bytes,
        index_interval_bytes=interval,
        active=active,
    )


def fill(
    segment: LogSegment, batches: int, *, count: int = 3, ts: int = TS
) -> list[tuple[bytes, BatchHeader]]:
    """Append `batches` batches one call each, continuing at the segment's next offset."""
    written = []
    for i in range(batches):
        data, header = batch_at(segment.next_offset, count, ts=ts + 10 * i)
        segment.append([data], [header], len(data), now_ms=0)
        written.append((data, header))
    return written


def test_segment_names_are_twenty_digit_base_offsets() -> None:
    assert segment_name(42) == "00000000000000000042"
    assert parse_segment_name("00000000000000000042.log") == 42
    assert parse_segment_name("00000000000000000042.index") == 42
    assert parse_segment_name("42.log") is None
    assert parse_segment_name("0000000000000000004x.log") is None


def test_append_writes_batches_back_to_back_and_tracks_offsets(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, base=100)
    written = fill(segment, 5)
    assert segment.next_offset == 115
    assert segment.size == sum(len(data) for data, _ in written)
    assert segment.read_all() == b"".join(data for data, _ in written)
    assert [header.base_offset for _, header in segment.batches()] == [100, 103, 106, 109, 112]
    assert segment.max_timestamp == TS + 40 + 2
    assert segment.offset_of_max_timestamp == 114
    assert segment.first_batch_timestamp == TS + 2
    # An active segment's file is preallocated; its logical end lives in memory.
    assert os.path.getsize(segment.log_path) == 64 * KIB
    segment.close()


def test_append_many_batches_in_one_vectored_write(tmp_path: Path) -> None:
    segment = open_segment(tmp_path)
    parts: list[bytes] = []
    headers: list[BatchHeader] = []
    offset = 0
    for _ in range(1500):  # more than IOV_MAX parts, so the write is split into chunks
        data, header = batch_at(offset, 1, size=1)
        parts.append(data)
        headers.append(header)
        offset = header.last_offset + 1
    segment.append(list(parts), headers, sum(map(len, parts)), now_ms=0)
    assert segment.next_offset == 1500
    assert segment.read_all() == b"".join(parts)
    segment.close()


def test_batch_larger_than_capacity_grows_the_file(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, capacity=1 * KIB)
    data, header = batch_at(0, 10, size=500)
    assert not segment.fits(len(data))
    segment.append([data], [header], len(data), now_ms=0)
    assert segment.read_all() == data
    segment.close()


def test_find_batch_returns_the_batch_holding_the_offset(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, base=10, interval=100)
    written = fill(segment, 40)
    assert segment.offset_index.entries > 3  # the index is used, not only the scan from 0
    positions = {}
    position = 0
    for data, header in written:
        positions[header.base_offset] = position
        position += len(data)
    for offset in range(10, segment.next_offset):
        base = 10 + (offset - 10) // 3 * 3
        assert segment.find_batch(offset) == positions[base], offset
    assert segment.find_batch(0) == 0  # below the base: the first batch
    assert segment.find_batch(segment.next_offset) is None
    segment.close()


def test_read_returns_whole_batches_within_max_bytes_but_at_least_one(tmp_path: Path) -> None:
    segment = open_segment(tmp_path)
    written = fill(segment, 4)
    size = len(written[0][0])
    assert segment.read(0, 1) == written[0][0]
    assert segment.read(0, 2 * size) == written[0][0] + written[1][0]
    assert segment.read(0, 2 * size + size - 1) == written[0][0] + written[1][0]
    assert segment.read(size, 10 * size) == b"".join(data for data, _ in written[1:])
    assert segment.read(segment.size, 100) == b""
    segment.close()


def test_index_entries_follow_index_interval_bytes(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=1000)
    written = fill(segment, 30)
    size = len(written[0][0])
    # An entry once more than `interval` bytes were written since the last one.
    per_entry = 1000 // size + 1
    assert segment.offset_index.entries == (30 - 1) // per_entry
    for n in range(segment.offset_index.entries):
        offset, position = segment.offset_index.entry(n)
        assert check_batch(segment.read_all(), position).base_offset == offset
    segment.close()


def test_seal_trims_files_and_records_the_max_timestamp(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=10 * KIB)
    fill(segment, 5)
    segment.seal()
    assert os.path.getsize(segment.log_path) == segment.size
    assert os.path.getsize(segment.offset_index.path) == 8 * segment.offset_index.entries
    assert segment.time_index.last_timestamp == segment.max_timestamp
    assert segment.time_index.last_offset == segment.offset_of_max_timestamp
    assert segment.read(0, 10**9) == segment.read_all()
    segment.close()


def test_activate_reopens_a_sealed_segment_for_appends(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=200)
    first = fill(segment, 5)
    segment.close()
    reopened = open_segment(tmp_path, interval=200, active=False)
    reopened.load()
    assert reopened.next_offset == 15
    assert reopened.max_timestamp == TS + 40 + 2
    reopened.activate(64 * KIB)
    assert os.path.getsize(reopened.log_path) == 64 * KIB
    second = fill(reopened, 3, ts=TS + 1000)
    assert reopened.read_all() == b"".join(data for data, _ in first + second)
    assert reopened.next_offset == 24
    reopened.close()
    assert os.path.getsize(reopened.log_path) == reopened.size


def test_load_restores_state_from_indexes_and_a_short_scan(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=300)
    fill(segment, 30)
    expected = (segment.next_offset, segment.max_timestamp, segment.offset_of_max_timestamp, segment.size)
    entries = segment.offset_index.entries
    segment.close()
    loaded = open_segment(tmp_path, interval=300, active=False)
    loaded.load()
    assert (loaded.next_offset, loaded.max_timestamp, loaded.offset_of_max_timestamp, loaded.size) == expected
    assert loaded.offset_index.entries == entries
    loaded.close()


def test_load_rebuilds_an_index_that_fails_its_sanity_check(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=300)
    fill(segment, 30)
    entries = [segment.offset_index.entry(n) for n in range(segment.offset_index.entries)]
    segment.close()
    index_path = tmp_path / f"{segment_name(0)}.index"
    raw = bytearray(index_path.read_bytes())
    raw[8:16] = raw[0:8]  # two equal entries: offsets no longer strictly increase
    index_path.write_bytes(bytes(raw))
    loaded = open_segment(tmp_path, interval=300, active=False)
    loaded.load()
    assert [loaded.offset_index.entry(n) for n in range(loaded.offset_index.entries)] == entries
    loaded.close()


def test_truncate_to_drops_batches_from_the_offset_and_zeroes_the_tail(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=100)
    written = fill(segment, 10)
    kept = sum(len(data) for data, _ in written[:4])
    dropped = segment.truncate_to(12)
    assert dropped == segment.size + dropped - kept
    assert segment.size == kept
    assert segment.next_offset == 12
    assert segment.read_all() == b"".join(data for data, _ in written[:4])
    with open(segment.log_path, "rb") as f:
        f.seek(kept)
        assert f.read().count(0) == 64 * KIB - kept  # nothing of the dropped batches survives
    assert segment.offset_index.lookup(10**9)[1] < kept
    assert segment.max_timestamp == TS + 30 + 2
    assert segment.truncate_to(12) == 0
    fill(segment, 1)
    assert segment.next_offset == 15
    segment.close()


def test_truncate_to_an_offset_inside_a_batch_drops_the_whole_batch(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=100)
    written = fill(segment, 10)
    segment.truncate_to(13)  # batch 4 holds offsets 12..14
    assert segment.next_offset == 12
    assert segment.read_all() == b"".join(data for data, _ in written[:4])
    segment.close()


def test_recover_cuts_a_torn_tail_and_rebuilds_indexes(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=100)
    written = fill(segment, 10)
    segment.flush()
    full = segment.size
    keep = sum(len(data) for data, _ in written[:6])
    segment.close()
    with open(tmp_path / f"{segment_name(0)}.log", "r+b") as f:
        f.truncate(keep + 30)  # mid-header of batch 7
    recovered = open_segment(tmp_path, interval=100)
    result = recovered.recover(max_batch_bytes=1 * KIB)
    assert (result.valid_bytes, result.truncated_bytes, result.batches, result.next_offset) == (
        keep,
        30,
        6,
        18,
    )
    assert full > keep
    assert recovered.read_all() == b"".join(data for data, _ in written[:6])
    assert [h.base_offset for _, h in recovered.batches()] == [0, 3, 6, 9, 12, 15]
    recovered.close()


def test_recover_stops_at_a_bad_crc_and_at_offsets_going_backwards(tmp_path: Path) -> None:
    segment = open_segment(tmp_path)
    written = fill(segment, 4)
    # Batch 5 repeats offsets of batch 4: valid on its own, but the log may not go backwards.
    segment.close()
    with open(segment.log_path, "ab") as f:
        f.write(batch_at(9, 3)[0])
    recovered = open_segment(tmp_path)
    assert recovered.recover(1 * KIB).batches == 4
    assert recovered.next_offset == 12
    recovered.close()

    path = tmp_path / f"{segment_name(0)}.log"
    raw = bytearray(path.read_bytes())
    raw[len(written[0][0]) + 70] ^= 0x01  # a record byte of batch 2
    path.write_bytes(bytes(raw))
    recovered = open_segment(tmp_path)
    assert recovered.recover(1 * KIB).batches == 1
    assert recovered.next_offset == 3
    recovered.close()


def test_find_offset_by_timestamp_within_a_segment(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, interval=100)
    fill(segment, 20)  # batch i holds offsets 3i..3i+2 with timestamps TS+10i .. TS+10i+2
    assert segment.find_offset_by_timestamp(TS) == (0, TS)
    assert segment.find_offset_by_timestamp(TS + 51) == (16, TS + 51)
    assert segment.find_offset_by_timestamp(TS + 53) == (18, TS + 60)
    assert segment.find_offset_by_timestamp(TS + 192) == (59, TS + 192)
    assert segment.find_offset_by_timestamp(TS + 193) is None
    segment.close()


def test_rebuild_indexes_refuses_a_log_that_does_not_end_on_a_batch(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, active=False)
    data, header = batch_at(0)
    segment.append([data], [header], len(data), now_ms=0)
    segment.size -= 1
    with pytest.raises(StorageError, match="batches end at byte 0"):
        segment.rebuild_indexes()
    segment.size += 1
    segment.close()


def test_closed_segment_refuses_appends_and_delete_removes_files(tmp_path: Path) -> None:
    segment = open_segment(tmp_path)
    fill(segment, 1)
    segment.close()
    data, header = batch_at(3)
    with pytest.raises(StorageError, match="closed"):
        segment.append([data], [header], len(data), now_ms=0)
    segment.delete()
    assert list(tmp_path.iterdir()) == []


def test_decoded_records_match_what_was_appended(tmp_path: Path) -> None:
    segment = open_segment(tmp_path, base=7)
    written = fill(segment, 3, count=2)
    records = [
        r for pos, _ in iter_headers(segment.read_all()) for r in decode_batch(segment.read_all(), pos)
    ]
    assert [r.offset for r in records] == list(range(7, 13))
    assert [r.value for r in records] == [
        bytes([b.base_offset % 251]) * 40 for _, b in written for _ in (0, 1)
    ]
    segment.close()


@pytest.mark.parametrize("damage", ["deleted", "odd size"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_load_rebuilds_a_missing_or_unopenable_index(tmp_path: Path, damage: str, suffix: str) -> None:
    segment = open_segment(tmp_path, interval=200)
    data, header = batch_at(0, 2, ts=TS + 10_000)  # the newest record comes first
    segment.append([data], [header], len(data), now_ms=0)
    fill(segment, 20)
    expected = (segment.max_timestamp, segment.offset_of_max_timestamp, segment.offset_index.entries)
    segment.close()
    path = tmp_path / f"{segment_name(0)}{suffix}"
    if damage == "deleted":
        path.unlink()
    else:
        with open(path, "ab") as f:
            f.write(b"\x07")
    loaded = open_segment(tmp_path, interval=200, active=False)
    loaded.load()
    assert (loaded.max_timestamp, loaded.offset_of_max_timestamp, loaded.offset_index.entries) == expected
    assert loaded.find_offset_by_timestamp(TS + 5_000) == (0, TS + 10_000)
    loaded.close()
