"""Start-up checks whatever the stop: damage a closed data directory the ways a disk or a hand can, reopen it,
and check that every segment comes back as its longest valid prefix (the rest kept aside, a WARNING naming
the file), that later segments are kept, and that reads never serve a batch whose CRC does not match."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from logstore.errors import CorruptRecordError, CorruptSegmentError
from logstore.records import build_batch, iter_records
from tests.test_crash_recovery import (
    StoredBatch,
    assert_recovered,
    crash,
    open_manager,
    segment_path,
    write_partition,
)


def flip(path: Path, byte: int, mask: int) -> None:
    with open(path, "r+b") as f:
        f.seek(byte)
        value = f.read(1)[0]
        f.seek(byte)
        f.write(bytes([value ^ mask]))


def raise_base_offset(path: Path, batch: StoredBatch, by: int = 128) -> None:
    """Raise the stored base offset of `batch` (what a flipped bit does; the CRC does not cover it)."""
    with open(path, "r+b") as f:
        f.seek(batch.position)
        f.write((batch.base_offset + by).to_bytes(8, "big"))


def segment_bases(expected: list[StoredBatch]) -> list[int]:
    return sorted({b.segment_base for b in expected})


def in_segment(expected: list[StoredBatch], base: int) -> list[StoredBatch]:
    return [b for b in expected if b.segment_base == base]


def values_from(mgr, offset: int = 0) -> list[tuple[int, bytes | None]]:
    """Every (offset, value) a reader gets from `offset` on, following the log like a consumer does."""
    log = mgr.log("t", 0)
    seen: list[tuple[int, bytes | None]] = []
    while offset < log.log_end_offset:
        records = [r for r in iter_records(log.read(offset, 1 << 20).data) if r.offset >= offset]
        if not records:
            break
        seen.extend((r.offset, r.value) for r in records)
        offset = records[-1].offset + 1
    return seen


def records_of(batches: list[StoredBatch]) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for b in batches for r in iter_records(b.data)]


def aside_files(data_dir: Path, kind: str) -> list[Path]:
    return sorted((data_dir / "t-0").glob(f"*.log{kind}-*"))


def test_a_flipped_length_byte_after_a_clean_stop_cuts_that_segment_and_keeps_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mgr, expected = write_partition(tmp_path, seed=61)
    mgr.close()
    bases = segment_bases(expected)
    base = bases[1]
    victim = in_segment(expected, base)[2]
    path = segment_path(tmp_path, base)
    flip(path, victim.position + 10, 0x40)  # the batch length field: everything after it misframes
    with caplog.at_level(logging.WARNING):
        mgr = open_manager(tmp_path)
    assert mgr.clean_shutdown
    assert str(path) in caplog.text
    survivors = [b for b in expected if b.segment_base != base or b.position < victim.position]
    log = mgr.log("t", 0)
    assert log.log_end_offset == expected[-1].last_offset + 1  # later segments kept: appends go on there
    assert values_from(mgr) == records_of(survivors)  # readers get past the cut, to the end
    (kept,) = aside_files(tmp_path, ".corrupt")
    cut = in_segment(expected, base)[2:]
    assert kept.read_bytes()[: len(cut[0].data)][12:] == cut[0].data[12:]  # all but the flipped framing
    assert len(kept.read_bytes()) == sum(len(b.data) for b in cut)
    end = log.log_end_offset
    assert log.append(build_batch([b"after"])).base_offset == end
    mgr.close()
    mgr = open_manager(tmp_path)  # and the repaired directory is sound from then on
    assert values_from(mgr)[-1] == (end, b"after")
    mgr.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_a_truncated_closed_segment_is_repaired_not_refused(tmp_path: Path, clean: bool) -> None:
    mgr, expected = write_partition(tmp_path, seed=62)
    bases = segment_bases(expected)
    base = bases[0]  # before the recovery checkpoint: not re-checked byte by byte even after a crash
    if clean:
        mgr.close()
    else:
        crash(mgr)
    victim = in_segment(expected, base)[-3]
    os.truncate(segment_path(tmp_path, base), victim.position + 30)
    mgr = open_manager(tmp_path)
    survivors = [b for b in expected if b.segment_base != base or b.position < victim.position]
    assert values_from(mgr) == records_of(survivors)
    assert mgr.log("t", 0).log_end_offset == expected[-1].last_offset + 1
    assert [p.stat().st_size for p in aside_files(tmp_path, ".corrupt")] == [30]
    mgr.close()


@pytest.mark.parametrize("where", ["middle of a segment", "last batch of a segment"])
def test_a_flipped_base_offset_after_a_clean_stop_is_caught(tmp_path: Path, where: str) -> None:
    """The CRC does not cover the base offset: a flip that raises one would serve records as other offsets."""
    mgr, expected = write_partition(tmp_path, seed=63)
    mgr.close()
    base = segment_bases(expected)[1]
    batches = in_segment(expected, base)
    victim = batches[3] if where == "middle of a segment" else batches[-1]
    raise_base_offset(segment_path(tmp_path, base), victim)
    mgr = open_manager(tmp_path)
    served = values_from(mgr)
    # Whatever is served, is served under its own offset; the damaged batch is not served at all.
    assert set(served) <= set(records_of(expected))
    assert not set(served) & set(records_of([victim]))
    before = [b for b in expected if b.base_offset < victim.base_offset]
    assert served[: len(records_of(before))] == records_of(before)
    assert mgr.log("t", 0).log_end_offset == expected[-1].last_offset + 1
    mgr.close()


def test_a_flipped_base_offset_in_the_active_segment_after_a_crash_is_caught(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=64)
    crash(mgr)
    active = segment_bases(expected)[-1]
    victim = in_segment(expected, active)[-3]
    raise_base_offset(segment_path(tmp_path, active), victim)
    mgr = open_manager(tmp_path)
    assert_recovered(mgr, [b for b in expected if b.base_offset < victim.base_offset])
    mgr.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_a_stray_segment_file_in_the_middle_is_moved_aside_and_nothing_valid_is_dropped(
    tmp_path: Path, clean: bool, caplog: pytest.LogCaptureFixture
) -> None:
    mgr, expected = write_partition(tmp_path, seed=65)
    if clean:
        mgr.close()
    else:
        crash(mgr)
    bases = segment_bases(expected)
    # A name inside the offsets of the last closed segment (past the recovery checkpoint), e.g. a copy.
    inside = in_segment(expected, bases[-2])[1].base_offset
    stray = segment_path(tmp_path, inside)
    stray.write_bytes(in_segment(expected, bases[-2])[0].data)
    with caplog.at_level(logging.WARNING):
        mgr = open_manager(tmp_path)
    assert str(stray) in caplog.text
    assert mgr.recovery[0].segments_dropped == 1
    assert_recovered(mgr, expected)
    (aside,) = aside_files(tmp_path, ".stray")
    assert aside.read_bytes() == in_segment(expected, bases[-2])[0].data
    mgr.close()


def test_a_crc_mismatch_is_never_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mgr, expected = write_partition(tmp_path, seed=66)
    mgr.close()
    base = segment_bases(expected)[1]
    victim = in_segment(expected, base)[2]
    path = segment_path(tmp_path, base)
    flip(path, victim.position + len(victim.data) - 1, 0x01)  # a payload byte: framing still adds up
    mgr = open_manager(tmp_path)
    log = mgr.log("t", 0)
    # A read that starts before the damaged batch stops short of it ...
    previous = in_segment(expected, base)[1]
    assert log.read(previous.base_offset, 1 << 20).data == previous.data
    # ... and one that starts in it is refused, naming the file and the offset, with a WARNING.
    with caplog.at_level(logging.WARNING), pytest.raises(CorruptSegmentError) as raised:
        log.read(victim.last_offset, 1 << 20)
    assert isinstance(raised.value, CorruptRecordError)
    assert str(path) in str(raised.value) and raised.value.offset == victim.base_offset
    assert str(path) in caplog.text and "CRC" in caplog.text
    # The batches after it are served as ever.
    after = in_segment(expected, base)[3]
    assert log.read(after.base_offset, 1).data == after.data
    mgr.close()


def test_a_length_field_damaged_after_start_is_refused_not_followed(tmp_path: Path) -> None:
    mgr, expected = write_partition(tmp_path, seed=67)
    log = mgr.log("t", 0)
    segment = log.segments[1]
    batches = in_segment(expected, segment.base_offset)
    flip(segment.log_path, batches[0].position + 8, 0x80)  # the length goes negative, under the live map
    with pytest.raises(CorruptSegmentError, match=str(segment.log_path)):
        log.read(batches[0].base_offset, 1 << 20)
    mgr.close()
