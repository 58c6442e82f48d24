"""Leader epochs: the cache's rules, OffsetForLeaderEpoch, the follower's truncation, the checkpoint file."""

from __future__ import annotations

from pathlib import Path

import pytest

from logstore.leader_epoch import (
    CHECKPOINT_NAME,
    UNDEFINED,
    EpochEnd,
    EpochEntry,
    LeaderEpochCache,
    LeaderEpochFile,
    Truncation,
    follower_truncation,
    rebuild_from_batches,
)


def cache(*pairs: tuple[int, int]) -> LeaderEpochCache:
    return LeaderEpochCache(EpochEntry(e, o) for e, o in pairs)


def test_a_new_epoch_replaces_the_entries_it_contradicts() -> None:
    epochs = cache((0, 0), (2, 10), (3, 20))
    assert not epochs.assign(3, 25)  # same epoch, later offset: nothing new
    assert epochs.assign(3, 15)  # epoch 3 starts earlier than thought: 2's entry at 10 stays
    assert epochs.entries == (EpochEntry(0, 0), EpochEntry(2, 10), EpochEntry(3, 15))
    assert epochs.assign(4, 12)
    assert epochs.entries == (EpochEntry(0, 0), EpochEntry(2, 10), EpochEntry(4, 12))


def test_offset_for_leader_epoch_answers_as_kafka_does() -> None:
    epochs = cache((1, 0), (3, 10), (5, 30))
    assert epochs.end_offset_for(5, 42) == EpochEnd(5, 42)  # the latest epoch ends at the log end
    assert epochs.end_offset_for(3, 42) == EpochEnd(3, 30)
    assert epochs.end_offset_for(4, 42) == EpochEnd(3, 30)  # unknown epoch: the largest one below it
    assert epochs.end_offset_for(0, 42) == EpochEnd(0, 0)  # below every epoch: where the first starts
    assert epochs.end_offset_for(6, 42) == UNDEFINED
    assert epochs.end_offset_for(-1, 42) == UNDEFINED
    assert LeaderEpochCache().end_offset_for(1, 42) == UNDEFINED


def test_truncation_from_either_end() -> None:
    epochs = cache((1, 0), (3, 10), (5, 30))
    assert epochs.truncate_from_end(30)
    assert epochs.entries == (EpochEntry(1, 0), EpochEntry(3, 10))
    assert epochs.truncate_from_start(15)
    assert epochs.entries == (EpochEntry(3, 15),)
    assert not epochs.truncate_from_start(15)


def test_a_follower_that_wrote_ahead_in_an_old_epoch_truncates_where_the_leaders_epoch_ended() -> None:
    # Old leader (the follower now) appended 20..25 at epoch 1 that no ISR member had; the new leader took
    # epoch 2 from offset 20 and wrote on. The follower asks about epoch 1; the leader answers (1, 20).
    follower = cache((0, 0), (1, 10))
    leader = cache((0, 0), (1, 10), (2, 20))
    answer = leader.end_offset_for(follower.latest_epoch, 40)
    assert answer == EpochEnd(1, 20)
    assert follower_truncation(follower, 26, 18, answer) == Truncation(20, True)


def test_a_follower_behind_the_leader_keeps_its_whole_log() -> None:
    follower = cache((0, 0), (1, 10))
    assert follower_truncation(follower, 15, 12, EpochEnd(1, 20)) == Truncation(15, True)


def test_an_epoch_the_follower_never_had_is_one_step_and_the_follower_asks_again() -> None:
    # KIP-279: the leader has epochs 0 (from 0) and 1 (from 5); the follower has 0 (from 0) and 2 (from 8),
    # an epoch whose leader wrote records no one else kept. Asked about 2, the leader answers (1, 12).
    leader = cache((0, 0), (1, 5))
    follower = cache((0, 0), (2, 8))
    step = follower_truncation(follower, 30, 5, EpochEnd(1, 12))
    assert step == Truncation(8, False)  # where the follower's own history before epoch 2 ends
    follower.truncate_from_end(step.offset)
    again = leader.end_offset_for(follower.latest_epoch, 12)
    assert follower_truncation(follower, step.offset, 5, again) == Truncation(5, True)


def test_the_same_epoch_in_both_logs_ends_the_search_at_the_shorter_end() -> None:
    follower = cache((0, 0), (2, 8))
    assert follower_truncation(follower, 30, 5, EpochEnd(0, 12)) == Truncation(8, True)


def test_a_leader_that_knows_no_epoch_leaves_the_high_watermark_as_the_safe_point() -> None:
    assert follower_truncation(cache((0, 0)), 30, 12, UNDEFINED) == Truncation(12, True)
    assert follower_truncation(cache((0, 0)), 30, 12, EpochEnd(3, 40)) == Truncation(12, True)


def test_rebuild_from_batch_headers_keeps_the_first_offset_of_each_epoch() -> None:
    rebuilt = rebuild_from_batches([(0, -1), (3, 0), (5, 0), (9, 2), (12, 2), (14, 4)])
    assert rebuilt.entries == (EpochEntry(0, 3), EpochEntry(2, 9), EpochEntry(4, 14))


def test_the_checkpoint_round_trips_in_kafkas_text_format(tmp_path: Path) -> None:
    file = LeaderEpochFile.open(tmp_path, lambda: [(0, 0), (7, 1)])
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # a rebuilt cache is written with the checkpoints
    file.flush_if_dirty()
    assert (tmp_path / CHECKPOINT_NAME).read_text() == "0\n2\n0 0\n1 7\n"
    file.assign(3, 20)
    file.truncate_from_end(20)
    assert not (tmp_path / f"{CHECKPOINT_NAME}.tmp").exists()
    again = LeaderEpochFile.open(tmp_path, lambda: pytest.fail("a present checkpoint is not rebuilt"))
    assert again.cache.entries == (EpochEntry(0, 0), EpochEntry(1, 7))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"0\n2\n0 0\n", "entry count"),
        (b"1\n0\n", "version"),
        (b"0\n1\n0 x\n", "line 3"),
        (b"0\n2\n3 10\n2 20\n", "must both increase"),
        (b"0\n", "two header lines"),
        (b"\xff\xfe", "not ASCII"),
    ],
)
def test_a_damaged_checkpoint_is_rebuilt_from_the_batch_headers_with_a_warning_naming_it(
    tmp_path: Path, content: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(content)
    with caplog.at_level("WARNING", logger="logstore.leader_epoch"):
        file = LeaderEpochFile.open(tmp_path, lambda: [(0, 5), (9, 6)])
    assert file.cache.entries == (EpochEntry(5, 0), EpochEntry(6, 9))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(path) in warning and reason in warning and "rebuilt" in warning
    assert path.read_bytes() == content  # nothing written at open
    file.flush_if_dirty()
    assert path.read_text() == "0\n2\n5 0\n6 9\n"
