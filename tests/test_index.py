"""The sparse offset and time indexes on real files: encoding, floor lookups, capacity, truncation,
trimming, crash-left files, and the corruption checks the segment relies on to decide on a rebuild."""

from __future__ import annotations

import bisect
import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logstore.errors import LogStoreError
from logstore.index import CorruptIndexError, IndexFullError, OffsetIndex, TimeIndex

MB = 1024 * 1024
TS = 1_700_000_000_000


def offset_index(path: Path, base: int = 100, max_bytes: int = MB, **kwargs: bool) -> OffsetIndex:
    return OffsetIndex(path, base, max_bytes, **kwargs)


def write_raw(path: Path, fmt: str, *entries: tuple[int, ...], zero_tail: int = 0) -> None:
    """Write an index file by hand, optionally followed by `zero_tail` bytes of zeros (an untrimmed file)."""
    path.write_bytes(b"".join(struct.pack(fmt, *entry) for entry in entries) + bytes(zero_tail))


# --- offset index: lookups and encoding -------------------------------------------------------------


def test_empty_offset_index_answers_base_and_is_preallocated(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=100, max_bytes=100)
    assert index.entries == 0
    assert index.max_entries == 12
    assert index.last_offset == 100
    assert index.lookup(100) == (100, 0)
    assert index.lookup(5000) == (100, 0)
    assert index.lookup(0) == (100, 0)
    assert os.path.getsize(index.path) == 96  # rounded down to whole entries
    index.close()
    assert os.path.getsize(tmp_path / "a.index") == 0


def test_floor_lookup_exact_between_before_and_after(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=100)
    for offset, position in [(110, 4096), (125, 9000), (190, 20000)]:
        index.append(offset, position)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(100) == (100, 0)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 4096)
    assert index.lookup(124) == (110, 4096)
    assert index.lookup(125) == (125, 9000)
    assert index.lookup(189) == (125, 9000)
    assert index.lookup(190) == (190, 20000)
    assert index.lookup(2**63 - 1) == (190, 20000)
    assert index.last_offset == 190
    assert [index.entry(n) for n in range(3)] == [(110, 4096), (125, 9000), (190, 20000)]
    with pytest.raises(IndexError, match="no entry 3"):
        index.entry(3)
    index.close()


def test_offset_entries_are_relative_big_endian_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=1_000_000)
    index.append(1_000_000, 0)
    index.append(1_000_005, 4096)
    index.append(1_000_000 + 0x01020304, 0xA0B0C0D0)
    index.close()
    assert path.read_bytes() == bytes.fromhex(
        "00000000 00000000  00000005 00001000  01020304 a0b0c0d0".replace(" ", "")
    )


def test_first_entry_at_base_and_position_zero_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    with offset_index(path, base=7) as index:
        index.append(7, 0)
        index.append(9, 100)
    with offset_index(path, base=7) as reopened:
        assert reopened.entries == 2
        assert [reopened.entry(0), reopened.entry(1)] == [(7, 0), (9, 100)]


@pytest.mark.parametrize(
    ("offset", "position", "problem"),
    [
        (120, 5000, "must come after"),  # same offset as the last entry
        (119, 6000, "must come after"),  # offset goes back
        (121, 4096, "must come after"),  # same position
        (121, 4000, "must come after"),  # position goes back
        (99, 6000, "outside this segment's range"),  # below the base offset
        (100 + 2**32, 6000, "outside this segment's range"),  # relative offset does not fit u32
        (121, 2**32, "outside"),  # position does not fit u32
    ],
)
def test_offset_append_rejects_out_of_order_or_range(
    tmp_path: Path, offset: int, position: int, problem: str
) -> None:
    index = offset_index(tmp_path / "a.index", base=100)
    index.append(120, 4096)
    with pytest.raises(ValueError, match=problem) as raised:
        index.append(offset, position)
    assert not isinstance(raised.value, IndexFullError)
    assert index.entries == 1
    assert index.lookup(10**6) == (120, 4096)
    index.close()


def test_full_offset_index_raises_index_full(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=0, max_bytes=3 * 8 + 5)
    assert index.max_entries == 3
    for n in range(3):
        assert not index.is_full
        index.append(n * 10, n * 100)
    assert index.is_full
    with pytest.raises(IndexFullError, match="full") as raised:
        index.append(40, 400)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, LogStoreError)
    assert index.entries == 3
    assert index.lookup(10**9) == (20, 200)
    index.close()


def test_max_index_bytes_below_one_entry_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one 8-byte entry"):
        offset_index(tmp_path / "a.index", max_bytes=7)
    with pytest.raises(ValueError, match="at least one 12-byte entry"):
        TimeIndex(tmp_path / "a.timeindex", 0, 11)


# --- truncation, reset, trim, reopen ------------------------------------------------------------------


def test_truncate_to_drops_entries_at_and_after_offset(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=0)
    for offset in (0, 10, 20, 30):
        index.append(offset, offset * 100)
    index.truncate_to(31)
    assert index.entries == 4
    index.truncate_to(30)
    assert index.entries == 3
    assert index.last_offset == 20
    index.truncate_to(15)
    assert index.entries == 2
    assert index.lookup(10**6) == (10, 1000)
    index.append(12, 1200)  # appending resumes after the new last entry
    assert index.lookup(13) == (12, 1200)
    index.truncate_to(0)
    assert index.entries == 0
    assert index.lookup(50) == (0, 0)
    index.close()


def test_truncated_entries_do_not_come_back_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=0, max_bytes=4096)
    for offset in (1, 10, 20, 30):
        index.append(offset, offset * 100)
    index.truncate_to(20)
    index.flush()
    crashed = tmp_path / "crashed.index"
    shutil.copyfile(path, crashed)  # the untrimmed file as a crash would leave it
    assert os.path.getsize(crashed) == 4096
    with offset_index(crashed, base=0) as reopened:
        assert reopened.entries == 2
        assert reopened.last_offset == 10
    index.close()


def test_reset_drops_everything_and_allows_a_rebuild(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=50)
    index.append(60, 10)
    index.append(70, 20)
    index.reset()
    assert index.entries == 0
    assert index.last_offset == 50
    assert index.lookup(100) == (50, 0)
    index.append(50, 0)
    assert index.lookup(100) == (50, 0)
    assert index.entries == 1
    index.close()


def test_trim_then_reopen_gives_the_same_entries(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=10, max_bytes=MB)
    entries = [(10 + n * 3, n * 4096) for n in range(50)]
    for offset, position in entries:
        index.append(offset, position)
    index.trim()
    assert os.path.getsize(path) == 50 * 8
    index.append(500, 50 * 4096)  # a trimmed index still accepts appends: it grows again, but stepwise
    assert os.path.getsize(path) == 512 * 8  # (a closed segment's rebuilt index never balloons to MB)
    index.close()
    assert os.path.getsize(path) == 51 * 8
    with offset_index(path, base=10, max_bytes=MB) as reopened:
        assert reopened.entries == 51
        assert [reopened.entry(n) for n in range(51)] == [*entries, (500, 50 * 4096)]
        assert reopened.max_entries == MB // 8
        assert os.path.getsize(path) == MB  # preallocated again for appends


def test_reopen_without_preallocation_keeps_the_file_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    write_raw(path, ">II", (0, 0), (4, 4096))
    index = offset_index(path, base=0, preallocate=False)
    assert os.path.getsize(path) == 16
    assert index.entries == 2
    index.append(9, 8192)
    index.close()
    assert os.path.getsize(path) == 24


def test_empty_file_without_preallocation_has_no_map_until_appended(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=0, max_bytes=64, preallocate=False)
    assert os.path.getsize(path) == 0
    assert index.lookup(5) == (0, 0)
    index.sanity_check(0)
    index.flush()
    index.append(3, 0)
    assert index.lookup(5) == (3, 0)
    index.close()
    assert path.read_bytes() == bytes.fromhex("0000000300000000")


def test_reopen_of_an_untrimmed_file_counts_only_real_entries(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=0, max_bytes=MB)
    for n in range(1000):
        index.append(n * 2, n * 512)
    index.flush()
    crashed = tmp_path / "crashed.index"
    shutil.copyfile(path, crashed)  # no close(): the file is still preallocated, zeros at the end
    assert os.path.getsize(crashed) == MB
    with offset_index(crashed, base=0, max_bytes=MB) as reopened:
        assert reopened.entries == 1000
        assert reopened.lookup(10**6) == (1998, 999 * 512)
        reopened.sanity_check(1000 * 512)
    index.close()


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], 0),
        ([(0, 0)], 0),  # a lone all-zero entry cannot be told from preallocation; lookups agree anyway
        ([(0, 0), (5, 100)], 2),
        ([(3, 0), (5, 0x100)], 2),  # trailing zero bytes inside a real entry still count as that entry
    ],
)
def test_hand_written_file_with_zero_tail(
    tmp_path: Path, entries: list[tuple[int, int]], expected: int
) -> None:
    path = tmp_path / "a.index"
    write_raw(path, ">II", *entries, zero_tail=8 * 300_000)  # zeros spanning several scan chunks
    with offset_index(path, base=0, max_bytes=64) as index:
        assert index.entries == expected
        assert [index.entry(n) for n in range(expected)] == entries[:expected]
        assert index.max_entries == 8  # the configured capacity, the stale zeros are gone
        assert os.path.getsize(path) == 64


def test_existing_file_larger_than_capacity_keeps_all_entries_and_is_full(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    write_raw(path, ">II", *[(n, n * 10) for n in range(5)])
    with offset_index(path, base=0, max_bytes=16) as index:
        assert index.entries == 5
        assert index.is_full
        with pytest.raises(IndexFullError):
            index.append(9, 90)


# --- corruption ------------------------------------------------------------------------------------


def test_size_not_a_multiple_of_the_entry_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    path.write_bytes(bytes(13))
    with pytest.raises(CorruptIndexError, match=r"a\.index.*size 13 is not a multiple of the 8-byte entry"):
        offset_index(path)
    time_path = tmp_path / "a.timeindex"
    time_path.write_bytes(bytes(16))
    with pytest.raises(CorruptIndexError, match="12-byte entry"):
        TimeIndex(time_path, 0, MB)


def test_sanity_check_passes_a_good_index(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=0)
    index.sanity_check()
    index.append(0, 0)
    index.append(10, 4096)
    index.sanity_check(4097)
    index.close()


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([(1, 0), (5, 100), (4, 200)], "entry 2 .* offsets must strictly increase"),
        ([(1, 0), (5, 100), (5, 200)], "entry 2 .* offsets must strictly increase"),
        ([(1, 0), (5, 100), (6, 100)], "entry 2 .* positions must strictly increase"),
        ([(1, 50), (5, 10), (6, 100)], "entry 1 .* positions must strictly increase"),
        ([(1, 0), (0, 0), (6, 100)], "entry 1 .* offsets must strictly increase"),  # a zero hole
    ],
)
def test_sanity_check_catches_entries_out_of_order(
    tmp_path: Path, entries: list[tuple[int, int]], problem: str
) -> None:
    path = tmp_path / "a.index"
    write_raw(path, ">II", *entries, zero_tail=64)
    with offset_index(path, base=0) as index, pytest.raises(CorruptIndexError, match=problem) as raised:
        index.sanity_check()
    assert str(path) in str(raised.value)


def test_sanity_check_catches_position_past_the_log(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index", base=0)
    index.append(0, 0)
    index.append(10, 4096)
    with pytest.raises(CorruptIndexError, match="position 4096, but the log is only 4096 bytes"):
        index.sanity_check(4096)
    index.close()


def test_sanity_check_catches_a_file_cut_behind_its_back(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=0, max_bytes=64)
    index.append(0, 0)
    index.append(1, 10)
    index.trim()
    os.truncate(path, 12)
    with pytest.raises(CorruptIndexError, match="file size 12"):
        index.sanity_check()
    index.delete()


# --- life cycle ------------------------------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_index_refuses_work(tmp_path: Path) -> None:
    index = offset_index(tmp_path / "a.index")
    index.append(100, 0)
    index.close()
    index.close()
    assert index.closed
    for call in (lambda: index.lookup(100), lambda: index.append(101, 1), index.flush, index.sanity_check):
        with pytest.raises(ValueError, match="is closed"):
            call()


def test_delete_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path)
    index.append(100, 0)
    index.delete()
    assert not path.exists()
    assert index.closed
    index.delete()  # deleting twice is harmless


def test_rename_keeps_the_index_open(tmp_path: Path) -> None:
    path = tmp_path / "a.index"
    index = offset_index(path, base=0)
    index.append(0, 0)
    index.rename(tmp_path / "a.index.deleted")
    assert index.path == tmp_path / "a.index.deleted"
    assert not path.exists()
    index.append(5, 100)
    index.close()
    assert (tmp_path / "a.index.deleted").read_bytes() == bytes.fromhex("00000000000000000000000500000064")


# --- time index --------------------------------------------------------------------------------------


def test_time_index_floor_lookup_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "a.timeindex"
    index = TimeIndex(path, 1000, MB)
    assert index.lookup(TS) == (-1, 1000)
    assert index.last_timestamp == -1
    index.append(TS, 1003)
    index.append(TS + 10, 1003)  # several timestamps may point at one offset
    index.append(TS + 0x1_0000_0000, 1010)  # crosses into the next high 32-bit word
    assert index.lookup(TS - 1) == (-1, 1000)
    assert index.lookup(TS) == (TS, 1003)
    assert index.lookup(TS + 9) == (TS, 1003)
    assert index.lookup(TS + 10) == (TS + 10, 1003)
    assert index.lookup(TS + 11) == (TS + 10, 1003)
    assert index.lookup(2**63 - 1) == (TS + 0x1_0000_0000, 1010)
    assert index.last_timestamp == TS + 0x1_0000_0000
    index.sanity_check()
    index.close()
    expected = b"".join(
        struct.pack(">qI", ts, rel) for ts, rel in [(TS, 3), (TS + 10, 3), (TS + 0x1_0000_0000, 10)]
    )
    assert path.read_bytes() == expected
    assert expected[:12] == bytes.fromhex("0000018bcfe56800 00000003".replace(" ", ""))


def test_time_index_skips_timestamps_that_do_not_grow(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "a.timeindex", 0, 2 * 12)
    index.append(500, 1)
    index.append(500, 2)
    index.append(400, 3)
    index.append(-1, 3)
    assert index.entries == 1
    index.append(600, 2)
    assert index.is_full
    index.append(600, 9)  # skipped, so a full index does not complain
    with pytest.raises(IndexFullError, match=r"time index .* is full"):
        index.append(700, 9)
    assert [index.entry(0), index.entry(1)] == [(500, 1), (600, 2)]
    index.close()


def test_time_index_rejects_offsets_that_go_back_or_leave_the_segment(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "a.timeindex", 100, MB)
    index.append(10, 150)
    with pytest.raises(ValueError, match="must not decrease"):
        index.append(20, 149)
    with pytest.raises(ValueError, match="outside this segment's range"):
        index.append(20, 99)
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        index.append(2**63, 200)
    assert index.entries == 1
    index.close()


def test_time_index_truncate_reset_and_crash_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.timeindex"
    index = TimeIndex(path, 0, MB)
    for n in range(1, 6):
        index.append(TS + n, n * 10)
    index.truncate_to(30)
    assert index.entries == 2
    assert index.last_timestamp == TS + 2
    assert index.lookup(2**63 - 1) == (TS + 2, 20)
    index.append(TS + 3, 25)
    index.flush()
    crashed = tmp_path / "crashed.timeindex"
    shutil.copyfile(path, crashed)
    with TimeIndex(crashed, 0, MB) as reopened:
        assert reopened.entries == 3
        assert reopened.lookup(2**63 - 1) == (TS + 3, 25)
    index.reset()
    assert index.lookup(TS + 3) == (-1, 0)
    assert index.last_timestamp == -1
    index.close()
    assert os.path.getsize(path) == 0


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([(TS, 1), (TS + 5, 2), (TS + 5, 3)], "entry 2 .* timestamps must strictly increase"),
        ([(TS, 1), (TS + 5, 2), (TS + 4, 3)], "entry 2 .* timestamps must strictly increase"),
        ([(TS + 2**32, 1), (TS, 2)], "entry 1 .* timestamps must strictly increase"),  # high words differ
        ([(TS, 5), (TS + 1, 4)], "entry 1 .* offsets must not decrease"),
        ([(TS, 5), (-7, 6)], "entry 1 .* negative timestamp"),
    ],
)
def test_time_index_sanity_check_catches_bad_entries(
    tmp_path: Path, entries: list[tuple[int, int]], problem: str
) -> None:
    path = tmp_path / "a.timeindex"
    write_raw(path, ">qI", *entries, zero_tail=120)
    with TimeIndex(path, 0, MB) as index, pytest.raises(CorruptIndexError, match=problem) as raised:
        index.sanity_check()
    assert str(path) in str(raised.value)


# --- properties against a plain sorted list -------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(
    base=st.integers(0, 2**40),
    steps=st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 10**5)), max_size=200),
    first_at_base=st.booleans(),
    probes=st.lists(st.integers(-50, 250_000), max_size=60),
    cut=st.integers(-10, 250_000),
)
def test_offset_index_matches_bisect(
    base: int,
    steps: list[tuple[int, int]],
    first_at_base: bool,
    probes: list[int],
    cut: int,
) -> None:
    offsets: list[int] = []
    positions: list[int] = []
    offset, position = (base, 0) if first_at_base else (base + 1, 1)
    for offset_step, position_step in steps:
        offsets.append(offset)
        positions.append(position)
        offset += offset_step
        position += position_step
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "p.index"
        index = OffsetIndex(path, base, 8 * 256)
        for entry in zip(offsets, positions, strict=True):
            index.append(*entry)

        def expected(target: int) -> tuple[int, int]:
            slot = bisect.bisect_right(offsets, target) - 1
            return (offsets[slot], positions[slot]) if slot >= 0 else (base, 0)

        for probe in [*probes, *(stored - base + delta for stored in offsets for delta in (-1, 0, 1))]:
            assert index.lookup(base + probe) == expected(base + probe)
        index.sanity_check(positions[-1] + 1 if positions else 0)

        index.truncate_to(base + cut)
        kept = bisect.bisect_left(offsets, base + cut)
        del offsets[kept:], positions[kept:]
        index.close()
        survivors = list(zip(offsets, positions, strict=True))
        if survivors == [(base, 0)]:
            survivors = []  # a lone all-zero entry reads as preallocation; lookups answer the same
        with OffsetIndex(path, base, 8 * 256) as reopened:
            assert [reopened.entry(n) for n in range(reopened.entries)] == survivors
            for probe in probes:
                assert reopened.lookup(base + probe) == expected(base + probe)


@settings(deadline=None, max_examples=60)
@given(
    base=st.integers(0, 2**40),
    appends=st.lists(st.tuples(st.integers(-3, 2**40), st.integers(0, 5)), max_size=200),
    probes=st.lists(st.integers(-5, 2**40 + 5), max_size=60),
)
def test_time_index_matches_bisect(base: int, appends: list[tuple[int, int]], probes: list[int]) -> None:
    timestamps: list[int] = []
    offsets: list[int] = []
    offset = base
    with tempfile.TemporaryDirectory() as directory:
        index = TimeIndex(Path(directory) / "p.timeindex", base, 12 * 256)
        for timestamp, offset_step in appends:
            offset += offset_step
            index.append(timestamp, offset)
            if timestamp > (timestamps[-1] if timestamps else -1):
                timestamps.append(timestamp)
                offsets.append(offset)
        assert index.entries == len(timestamps)
        assert index.last_timestamp == (timestamps[-1] if timestamps else -1)
        index.sanity_check()
        for probe in [*probes, *(stored + delta for stored in timestamps for delta in (-1, 0, 1))]:
            slot = bisect.bisect_right(timestamps, probe) - 1
            assert index.lookup(probe) == ((timestamps[slot], offsets[slot]) if slot >= 0 else (-1, base))
        index.close()
