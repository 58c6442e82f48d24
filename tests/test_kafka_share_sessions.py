"""The Kafka listener's pure share-session bookkeeping and its reading of acknowledgement batches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from logstore.broker.domain.share.values import AckRange
from logstore.broker.kafka.share import ack_ranges
from logstore.broker.kafka.share_sessions import (
    MAX_EPOCH,
    InvalidShareSessionEpochError,
    ShareSessionLimitReachedError,
    ShareSessionNotFoundError,
    ShareSessions,
)

from logstore.errors import InvalidRequestError

KEY = ("orders-workers", "member-1")


def sessions(live: set[tuple[str, str]] | None = None, limit: int = 10) -> ShareSessions:
    return ShareSessions(lambda key: live is None or key in live, max_sessions=limit)


def test_a_session_opens_at_epoch_0_then_takes_each_next_epoch_and_its_partition_changes() -> None:
    book = sessions()
    opened = book.advance(KEY, 0, [("a" * 32, 0), ("a" * 32, 1)])
    assert opened.partitions == {("a" * 32, 0), ("a" * 32, 1)} and opened.next_epoch == 1
    later = book.advance(KEY, 1, [("b" * 32, 0)], forgotten=[("a" * 32, 1)])
    assert later.partitions == {("a" * 32, 0), ("b" * 32, 0)} and later.next_epoch == 2


def test_a_wrong_epoch_is_refused_and_leaves_the_session_as_it_was() -> None:
    book = sessions()
    book.advance(KEY, 0, [("a" * 32, 0)])
    with pytest.raises(InvalidShareSessionEpochError, match="expected epoch 1, got 3"):
        book.advance(KEY, 3, [("b" * 32, 0)])
    assert book.advance(KEY, 1).partitions == {("a" * 32, 0)}


def test_a_member_without_a_session_is_told_to_open_one() -> None:
    with pytest.raises(ShareSessionNotFoundError, match="open one with epoch 0"):
        sessions().advance(KEY, 4)
    with pytest.raises(ShareSessionNotFoundError):
        sessions().advance(KEY, -1)


def test_the_final_epoch_keeps_the_epoch_and_close_ends_the_session() -> None:
    book = sessions()
    book.advance(KEY, 0)
    assert book.advance(KEY, -1).next_epoch == 1
    book.close(KEY)
    with pytest.raises(ShareSessionNotFoundError):
        book.advance(KEY, 1)


def test_epochs_wrap_from_the_largest_int32_to_1() -> None:
    book = sessions()
    session = book.advance(KEY, 0)
    session.next_epoch = MAX_EPOCH
    assert book.advance(KEY, MAX_EPOCH).next_epoch == 1


def test_at_the_limit_sessions_of_members_that_left_make_room_and_live_ones_do_not() -> None:
    live = {("g", "m0"), ("g", "m1")}
    book = sessions(live, limit=2)
    book.advance(("g", "m0"), 0)
    book.advance(("g", "m1"), 0)
    with pytest.raises(ShareSessionLimitReachedError):
        book.advance(("g", "m2"), 0)
    live.discard(("g", "m0"))
    book.advance(("g", "m2"), 0)
    assert len(book) == 2
    with pytest.raises(ShareSessionNotFoundError):
        book.advance(("g", "m0"), 1)


def test_reopening_replaces_the_members_session_without_counting_twice() -> None:
    book = sessions(limit=1)
    book.advance(KEY, 0, [("a" * 32, 0)])
    assert book.advance(KEY, 0).partitions == set()
    book.drop_member(*KEY)
    assert len(book) == 0


@dataclass
class Batch:
    first_offset: int
    last_offset: int
    acknowledge_types: tuple[int, ...]


def test_one_type_covers_the_batch_and_per_offset_types_become_runs_without_gaps() -> None:
    assert ack_ranges([Batch(0, 9, (1,))]) == [AckRange(0, 9, 1)]
    assert ack_ranges([Batch(5, 9, (1, 1, 0, 2, 3))]) == [
        AckRange(5, 6, 1),
        AckRange(8, 8, 2),
        AckRange(9, 9, 3),
    ]
    assert ack_ranges([Batch(3, 4, (0,))]) == []


@pytest.mark.parametrize(
    ("batch", "words"),
    [
        (Batch(5, 4, (1,)), "not a range"),
        (Batch(-1, 4, (1,)), "not a range"),
        (Batch(0, 2, (1, 2)), "one per offset"),
        (Batch(0, 0, (4,)), "0 \\(gap\\), 1 \\(accept\\)"),
        (Batch(0, 0, ()), "0 \\(gap\\)"),
    ],
)
def test_a_malformed_batch_is_refused_with_what_is_wrong(batch: Batch, words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        ack_ranges([batch])
