"""The start-up checks and crash recovery scenarios again, with at most two segments holding open files.

Segments are then released and reopened between every step of loading, recovering, cutting and reading,
so any path that touches a segment's map, descriptor or indexes without pinning it, or any state that a
release loses, shows up here.
"""

from __future__ import annotations

import pytest

import logstore.manager
import tests.test_crash_recovery as crash_recovery
from logstore.open_segments import OpenSegments
from logstore.segment import LogSegment
from tests.test_crash_recovery import (
    test_a_lost_last_batch_of_a_closed_segment_after_the_checkpoint_drops_what_follows,
    test_a_start_up_cut_short_after_a_clean_stop_is_recovered,
    test_a_torn_tail_in_a_closed_segment_after_the_checkpoint_drops_what_follows,
    test_bit_flip_in_the_base_offset_that_goes_backwards_cuts_there,
    test_cut_at_a_random_byte_of_the_active_segment,
    test_deleted_index_files_are_rebuilt,
    test_garbage_after_the_last_batch_is_cut_and_nothing_is_lost,
    test_random_bit_flip_in_the_active_segment,
    test_recovery_is_repeatable,
    test_zeroed_index_tails_are_harmless,
)
from tests.test_start_checks import (
    test_a_crc_mismatch_is_never_served,
    test_a_flipped_base_offset_after_a_clean_stop_is_caught,
    test_a_flipped_base_offset_in_the_active_segment_after_a_crash_is_caught,
    test_a_flipped_length_byte_after_a_clean_stop_cuts_that_segment_and_keeps_the_rest,
    test_a_length_field_damaged_after_start_is_refused_not_followed,
    test_a_stray_segment_file_in_the_middle_is_moved_aside_and_nothing_valid_is_dropped,
    test_a_truncated_closed_segment_is_repaired_not_refused,
)

__all__ = [
    "test_a_crc_mismatch_is_never_served",
    "test_a_flipped_base_offset_after_a_clean_stop_is_caught",
    "test_a_flipped_base_offset_in_the_active_segment_after_a_crash_is_caught",
    "test_a_flipped_length_byte_after_a_clean_stop_cuts_that_segment_and_keeps_the_rest",
    "test_a_length_field_damaged_after_start_is_refused_not_followed",
    "test_a_lost_last_batch_of_a_closed_segment_after_the_checkpoint_drops_what_follows",
    "test_a_start_up_cut_short_after_a_clean_stop_is_recovered",
    "test_a_stray_segment_file_in_the_middle_is_moved_aside_and_nothing_valid_is_dropped",
    "test_a_torn_tail_in_a_closed_segment_after_the_checkpoint_drops_what_follows",
    "test_a_truncated_closed_segment_is_repaired_not_refused",
    "test_bit_flip_in_the_base_offset_that_goes_backwards_cuts_there",
    "test_cut_at_a_random_byte_of_the_active_segment",
    "test_deleted_index_files_are_rebuilt",
    "test_garbage_after_the_last_batch_is_cut_and_nothing_is_lost",
    "test_random_bit_flip_in_the_active_segment",
    "test_recovery_is_repeatable",
    "test_zeroed_index_tails_are_harmless",
]

BOUND = 2


@pytest.fixture(autouse=True)
def tiny_open_segment_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LogManager these tests open keeps at most BOUND segments' files open."""
    monkeypatch.setattr(logstore.manager, "OpenSegments", lambda limit=None: OpenSegments(BOUND))
    simulate = crash_recovery._release

    def release_as_a_crash_would(segment: LogSegment) -> None:
        if segment.files_open:  # a released segment holds nothing a crash could leave behind
            simulate(segment)

    monkeypatch.setattr(crash_recovery, "_release", release_as_a_crash_would)


def test_the_bound_is_in_force(tmp_path) -> None:
    """The scenarios above really run with segments released: more segments than the bound, few open."""
    mgr, expected = crash_recovery.write_partition(tmp_path, seed=3)
    log = mgr.log("t", 0)
    assert mgr.open_segments.limit == BOUND
    assert len(log.segments) > BOUND
    assert mgr.open_segments.releases > 0
    assert sum(segment.files_open for segment in log.segments) <= BOUND
    crash_recovery.assert_recovered(mgr, expected)
    mgr.close()
