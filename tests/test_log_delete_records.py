"""Deleting a partition's records below an offset (Kafka's DeleteRecords) on real files, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from logstore.errors import OffsetOutOfRangeError
from logstore.log import LOG_START_FILE, Log
from logstore.segment import LOG_SUFFIX
from tests.test_log import batch, offsets, open_log


def filled(tmp_path: Path, batches: int = 10) -> Log:
    """A log of `batches` batches of 3 records (offsets 0 to 3*batches-1) over several small segments."""
    log = open_log(tmp_path, segment_bytes=300)
    for _ in range(batches):
        log.append(batch(3))
    assert len(log.segments) > 3
    return log


def segment_files(log: Log) -> list[str]:
    return sorted(p.name for p in log.directory.iterdir() if p.name.endswith(LOG_SUFFIX))


def test_deleting_inside_a_segment_moves_the_start_and_drops_the_segments_wholly_below(
    tmp_path: Path,
) -> None:
    log = filled(tmp_path)
    target = 16
    holding = max(s for s in log._bases if s <= target)
    assert holding < target  # the new start lies inside a segment, not at its base
    assert log.delete_records_before(target) == target
    assert log.log_start_offset == target
    assert log.segments[0].base_offset == holding  # the segment holding it stays, the earlier ones went
    assert all(int(name.removesuffix(LOG_SUFFIX)) >= holding for name in segment_files(log))
    with pytest.raises(OffsetOutOfRangeError) as raised:
        log.read(target - 1, 10**6)
    assert raised.value.log_start_offset == target
    assert target in offsets(log.read(target, 10**6).data)


def test_the_start_survives_a_restart_and_a_lower_offset_changes_nothing(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log.delete_records_before(16)
    assert log.delete_records_before(5) == 16
    log.close()
    reopened = open_log(tmp_path, segment_bytes=300)
    assert (reopened.log_start_offset, reopened.log_end_offset) == (16, 30)
    assert (reopened.directory / LOG_START_FILE).read_text().strip() == "16"
    reopened.close()


def test_deleting_up_to_the_end_leaves_an_empty_log_that_keeps_its_offsets(tmp_path: Path) -> None:
    log = filled(tmp_path)
    assert log.delete_records_before(log.log_end_offset) == 30
    assert len(log.segments) == 1 and log.log_start_offset == log.log_end_offset == 30
    assert log.read(30, 10**6).data == b""
    assert log.append(batch(2)).base_offset == 30
    assert log.log_start_offset == 30 and offsets(log.read(30, 10**6).data) == [30, 31]


def test_an_offset_past_the_end_or_negative_is_out_of_range_and_changes_nothing(tmp_path: Path) -> None:
    log = filled(tmp_path)
    for bad in (31, -2):
        with pytest.raises(OffsetOutOfRangeError):
            log.delete_records_before(bad)
    assert log.log_start_offset == 0 and not (log.directory / LOG_START_FILE).exists()


def test_a_truncation_below_the_start_lowers_it_so_new_appends_are_served(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log.delete_records_before(25)
    log.truncate_to(21)
    assert log.log_start_offset == log.log_end_offset == 21
    log.append(batch(9))
    assert log.log_start_offset == 21
    assert offsets(log.read(21, 10**6).data)[0] == 21
