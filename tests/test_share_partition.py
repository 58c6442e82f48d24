"""SharePartition, rule by rule: acquisition, each acknowledgement type, releases, expiry, the window."""

from __future__ import annotations

import pytest
from logstore.broker.share_machine import (
    Acknowledgement,
    AcknowledgeType,
    AcquiredRange,
    Archived,
    ArchiveReason,
    InvalidRecordStateError,
    PartitionCounts,
    PartitionSnapshot,
    PersistedSpan,
    RecordState,
    ShareGroupConfig,
    SharePartition,
)

from logstore.errors import InvalidRequestError

LOCK = 1_000
CONFIG = ShareGroupConfig(
    record_lock_duration_ms=LOCK, delivery_count_limit=3, partition_max_record_locks=100
)
ACCEPT, RELEASE, REJECT, RENEW = (
    AcknowledgeType.ACCEPT,
    AcknowledgeType.RELEASE,
    AcknowledgeType.REJECT,
    AcknowledgeType.RENEW,
)


def ack(
    first: int, last: int, kind: AcknowledgeType, delay_ms: int = 0, not_an_attempt: bool = False
) -> Acknowledgement:
    return Acknowledgement(first, last, kind, delay_ms, not_an_attempt)


def ok(partition: SharePartition, member: str, now: int, *acks: Acknowledgement) -> list[Archived]:
    results, archived = partition.acknowledge(member, now, acks)
    assert [r.error for r in results] == [None] * len(acks), results
    return archived


def errors(
    partition: SharePartition, member: str, now: int, *acks: Acknowledgement
) -> list[type[Exception] | None]:
    results, _ = partition.acknowledge(member, now, acks)
    return [None if r.error is None else type(r.error) for r in results]


def states(partition: SharePartition) -> list[tuple[int, RecordState, int, str]]:
    out = []
    for offset in range(partition.start_offset, partition.end_offset):
        found = partition.state_of(offset)
        assert found is not None
        out.append((offset, *found))
    return out


def fresh(start: int = 10) -> SharePartition:
    return SharePartition(start, CONFIG)


# acquiring


def test_first_acquisition_takes_new_offsets_from_the_start_with_count_one() -> None:
    p = fresh()
    assert p.next_fetch_offset(0) == 10
    assert p.acquire("a", 0, 10, 14, 500) == [AcquiredRange(10, 14, 1)]
    assert (p.start_offset, p.end_offset) == (10, 15)
    assert p.acquired_by("a") == 5
    assert p.next_deadline_ms() == LOCK
    assert p.counts(0) == PartitionCounts(10, 15, 5, 5, 0, 0, ((1, 5),))  # 5 in flight, delivered once


def test_max_records_cuts_new_offsets_and_the_middle_of_a_span() -> None:
    p = fresh()
    assert p.acquire("a", 0, 10, 19, 4) == [AcquiredRange(10, 13, 1)]
    assert p.acquire("b", 0, 10, 19, 3) == [AcquiredRange(14, 16, 1)]  # skips a's, then new
    ok(p, "a", 1, ack(10, 13, RELEASE))
    # 10..13 available (count 1); take 2 of them from the middle of that span
    assert p.acquire("c", 2, 11, 19, 2) == [AcquiredRange(11, 12, 2)]
    assert [s[1:] for s in states(p)[:4]] == [
        (RecordState.AVAILABLE, 1, ""),
        (RecordState.ACQUIRED, 2, "c"),
        (RecordState.ACQUIRED, 2, "c"),
        (RecordState.AVAILABLE, 1, ""),
    ]


def test_acquire_inside_the_window_skips_what_others_hold_and_extends_past_the_end() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(2, 3, RELEASE), ack(6, 6, RELEASE))
    got = p.acquire("b", 2, 0, 14, 100)
    assert got == [AcquiredRange(2, 3, 2), AcquiredRange(6, 6, 2), AcquiredRange(10, 14, 1)]
    assert p.acquired_by("a") == 7 and p.acquired_by("b") == 8


def test_ranges_are_split_where_delivery_counts_differ_and_merged_where_equal() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 3, 100)
    ok(p, "a", 1, ack(0, 1, RELEASE))
    p.acquire("a", 2, 0, 1, 100)  # 0..1 now count 2
    ok(p, "a", 3, ack(0, 3, RELEASE))  # 0..1 count 2, 2..3 count 1
    assert p.acquire("b", 4, 0, 5, 100) == [
        AcquiredRange(0, 1, 3),
        AcquiredRange(2, 3, 2),
        AcquiredRange(4, 5, 1),
    ]
    assert p.counts(5).delivery_counts == ((1, 2), (2, 2), (3, 2))  # what the console shows per partition


def test_new_offsets_are_taken_only_when_the_read_reaches_the_end() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    assert p.acquire("b", 0, 7, 9, 100) == []  # 5..6 were not read
    assert p.end_offset == 5
    assert p.acquire("b", 0, 3, 9, 100) == [AcquiredRange(5, 9, 1)]


def test_a_read_below_the_window_starts_at_the_window() -> None:
    p = fresh(20)
    assert p.acquire("a", 0, 5, 22, 100) == [AcquiredRange(20, 22, 1)]


def test_nothing_for_no_budget_or_an_empty_range() -> None:
    p = fresh(0)
    assert p.acquire("a", 0, 0, 9, 0) == []
    assert p.acquire("a", 0, 5, 4, 10) == []
    assert p.end_offset == 0
    with pytest.raises(InvalidRequestError):
        p.acquire("", 0, 0, 1, 10)


def test_the_window_never_grows_past_max_record_locks() -> None:
    p = fresh(0)
    assert p.acquire("a", 0, 0, 499, 500) == [AcquiredRange(0, 99, 1)]
    assert p.next_fetch_offset(0) is None  # full, nothing available
    assert p.acquire("b", 0, 0, 499, 500) == []
    ok(p, "a", 1, ack(0, 9, ACCEPT))  # start moves on: room for 10 more
    assert p.start_offset == 10
    assert p.next_fetch_offset(1) == 100
    assert p.acquire("b", 1, 100, 499, 500) == [AcquiredRange(100, 109, 1)]
    assert p.end_offset - p.start_offset == 100


def test_batch_boundaries_make_the_window_and_max_records_soft_as_in_kafka() -> None:
    p = fresh(0)  # window 100
    batches = [49, 179, 299]  # batches [0, 49], [50, 179], [180, 299]
    # the window (100) cuts the second batch: the rest of it comes too, not the third batch
    assert p.acquire("a", 0, 0, 299, 500, batches) == [AcquiredRange(0, 179, 1)]
    assert p.acquire("b", 0, 0, 299, 500, batches) == [], "no new offsets once the window is full"
    ok(p, "a", 1, ack(0, 99, ACCEPT))
    assert p.start_offset == 100
    # max_records (10) cuts the third batch: its rest comes too, never past what was read (last_offset)
    assert p.acquire("b", 1, 180, 250, 10, batches) == [AcquiredRange(180, 250, 1)]
    # without batch boundaries both limits stay hard
    q = fresh(0)
    assert q.acquire("a", 0, 0, 299, 500) == [AcquiredRange(0, 99, 1)]


def test_a_lowered_lock_limit_stops_new_acquisitions_until_the_window_shrinks() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 149, 500)
    p.config = ShareGroupConfig(partition_max_record_locks=100, record_lock_duration_ms=5_000)
    ok(p, "a", 1, ack(0, 0, RELEASE))
    assert p.acquire("b", 2, 0, 200, 500) == [AcquiredRange(0, 0, 2)]  # no new offsets: window is 100
    assert p.end_offset == 100
    assert p.next_deadline_ms() == LOCK  # a's other locks keep their deadline; b's is 2 + 5000


# acknowledging


def test_accept_advances_the_start_past_done_offsets() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(3, 5, ACCEPT))
    assert p.start_offset == 0
    ok(p, "a", 1, ack(0, 2, ACCEPT))
    assert p.start_offset == 6
    assert p.counts(1) == PartitionCounts(6, 10, 4, 4, 0, 0, ((1, 4),))


def test_done_offsets_behind_an_open_one_stay_in_the_window() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(1, 9, ACCEPT))
    assert p.counts(1) == PartitionCounts(0, 10, 1, 1, 0, 9, ((1, 1),))


def test_an_ack_over_spans_with_different_counts_applies_to_each() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 3, 100)
    ok(p, "a", 1, ack(0, 1, RELEASE))
    p.acquire("a", 2, 0, 1, 100)  # 0..1 count 2, 2..3 count 1, all a's
    archived = ok(p, "a", 3, ack(0, 3, REJECT))
    assert archived == [Archived(0, 1, 2, ArchiveReason.REJECTED), Archived(2, 3, 1, ArchiveReason.REJECTED)]
    assert p.start_offset == 4
    assert p.counts(3).archived_total == 4


def test_a_partial_ack_splits_the_span_and_leaves_the_rest_held() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(4, 5, RELEASE))
    assert [s[1] for s in states(p)] == [RecordState.ACQUIRED] * 4 + [RecordState.AVAILABLE] * 2 + [
        RecordState.ACQUIRED
    ] * 4
    assert p.next_fetch_offset(1) == 4
    ok(p, "a", 1, ack(0, 3, ACCEPT), ack(6, 9, ACCEPT))
    assert p.acquired_by("a") == 0
    assert p.start_offset == 4


def test_offsets_not_held_are_refused_and_nothing_in_that_range_changes() -> None:
    p = fresh(10)
    p.acquire("a", 0, 10, 14, 100)
    p.acquire("b", 0, 15, 19, 100)
    before = states(p)
    assert errors(p, "a", 1, ack(12, 16, ACCEPT)) == [InvalidRecordStateError]  # partly b's
    assert errors(p, "b", 1, ack(10, 10, ACCEPT)) == [InvalidRecordStateError]  # a's
    assert errors(p, "a", 1, ack(18, 25, ACCEPT)) == [InvalidRecordStateError]  # past the end
    assert errors(p, "x", 1, ack(10, 10, RENEW)) == [InvalidRecordStateError]
    assert states(p) == before
    ok(p, "a", 1, ack(10, 14, ACCEPT))
    assert p.start_offset == 15
    results, _ = p.acknowledge("a", 1, [ack(10, 12, ACCEPT)])  # below start: already done
    assert isinstance(results[0].error, InvalidRecordStateError)
    assert "already acknowledged or archived" in str(results[0].error)


def test_acknowledged_offsets_inside_the_window_are_refused_a_second_time() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    ok(p, "a", 1, ack(2, 2, ACCEPT))
    assert errors(p, "a", 1, ack(2, 2, ACCEPT), ack(2, 3, REJECT)) == [
        InvalidRequestError,
        InvalidRequestError,
    ]
    assert errors(p, "a", 1, ack(2, 3, REJECT)) == [InvalidRecordStateError]
    assert p.state_of(3) == (RecordState.ACQUIRED, 1, "a")


def test_one_bad_range_does_not_stop_the_others() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    got = errors(
        p,
        "a",
        1,
        ack(0, 1, ACCEPT),
        ack(5, 4, ACCEPT),  # last < first
        ack(20, 21, ACCEPT),  # never acquired
        ack(2, 2, RELEASE, delay_ms=-1),
        ack(3, 3, RELEASE, delay_ms=12 * LOCK + 1),
        ack(4, 4, RELEASE, delay_ms=12 * LOCK),
        ack(5, 5, REJECT),
    )
    assert got == [
        None,
        InvalidRequestError,
        InvalidRecordStateError,
        InvalidRequestError,
        InvalidRequestError,
        None,
        None,
    ]
    assert p.start_offset == 2
    assert p.state_of(4) == (RecordState.AVAILABLE, 1, "")


def test_overlapping_ranges_are_all_refused_and_the_rest_applied() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 19, 100)
    got = errors(
        p,
        "a",
        1,
        ack(0, 5, ACCEPT),
        ack(8, 9, ACCEPT),
        ack(5, 6, REJECT),
        ack(12, 15, ACCEPT),
        ack(10, 20, ACCEPT),
    )
    assert got == [InvalidRequestError, None, InvalidRequestError, InvalidRequestError, InvalidRequestError]
    assert p.state_of(8) == (RecordState.ACKNOWLEDGED, 1, "")
    assert p.state_of(0) == (RecordState.ACQUIRED, 1, "a")


def test_an_unknown_acknowledge_type_is_a_bad_request() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 0, 100)
    bad = Acknowledgement(0, 0, 7)  # type: ignore[arg-type]  # what a wire number may hold
    assert errors(p, "a", 1, bad) == [InvalidRequestError]
    assert errors(p, "a", 1, Acknowledgement(0, 0, 1)) == [None]  # type: ignore[arg-type]


def test_an_expired_lock_cannot_be_acknowledged_or_renewed_even_before_expire_runs() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    assert errors(p, "a", LOCK, ack(0, 4, ACCEPT)) == [InvalidRecordStateError]
    assert errors(p, "a", LOCK, ack(0, 4, RENEW)) == [InvalidRecordStateError]
    results, _ = p.acknowledge("a", LOCK + 5, [ack(0, 0, ACCEPT)])
    assert "expired 5 ms ago" in str(results[0].error)
    assert p.counts(LOCK).acquired == 0  # not counted as held any more
    assert errors(p, "a", LOCK - 1, ack(0, 4, ACCEPT)) == [None]


def test_renew_extends_the_lock_from_now() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    ok(p, "a", 900, ack(0, 1, RENEW))
    assert p.next_deadline_ms() == LOCK
    assert p.expire(LOCK) == []
    assert [s[1] for s in states(p)] == [RecordState.ACQUIRED] * 2 + [RecordState.AVAILABLE] * 3
    assert p.next_deadline_ms() == 900 + LOCK
    ok(p, "a", 900 + LOCK - 1, ack(0, 1, ACCEPT))
    assert p.state_of(2) == (RecordState.AVAILABLE, 1, "")


# releases and the delivery limit


def test_release_counts_and_archives_at_the_limit() -> None:
    p = fresh(0)
    for delivery in (1, 2):
        assert p.acquire("a", delivery, 0, 0, 1) == [AcquiredRange(0, 0, delivery)]
        assert ok(p, "a", delivery, ack(0, 0, RELEASE)) == []
    assert p.acquire("a", 3, 0, 0, 1) == [AcquiredRange(0, 0, 3)]
    assert ok(p, "a", 3, ack(0, 0, RELEASE)) == [Archived(0, 0, 3, ArchiveReason.DELIVERY_LIMIT)]
    assert (p.start_offset, p.counts(3).archived_total) == (1, 1)


def test_not_an_attempt_takes_the_count_back_before_the_limit_check() -> None:
    p = fresh(0)
    for now in (1, 2):
        p.acquire("a", now, 0, 0, 1)
        ok(p, "a", now, ack(0, 0, RELEASE))
    p.acquire("a", 3, 0, 0, 1)  # third delivery: at the limit
    assert ok(p, "a", 3, ack(0, 0, RELEASE, not_an_attempt=True)) == []
    assert p.state_of(0) == (RecordState.AVAILABLE, 2, "")
    assert p.acquire("b", 4, 0, 0, 1) == [AcquiredRange(0, 0, 3)]


def test_not_an_attempt_on_a_first_delivery_makes_it_as_good_as_new() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 1, 10)
    ok(p, "a", 1, ack(0, 1, RELEASE, not_an_attempt=True))
    assert p.snapshot().spans == (PersistedSpan(0, 1, RecordState.AVAILABLE, 0),)
    assert p.acquire("b", 1, 0, 1, 10) == [AcquiredRange(0, 1, 1)]


def test_a_delayed_release_is_unavailable_until_due_then_acquirable() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    ok(p, "a", 10, ack(1, 2, RELEASE, delay_ms=500), ack(0, 0, ACCEPT), ack(3, 4, ACCEPT))
    assert p.start_offset == 1
    assert p.next_fetch_offset(100) == 5  # nothing due: read new records
    assert p.acquire("b", 100, 1, 2, 100) == []
    assert p.next_deadline_ms() == 510
    assert p.expire(509) == []
    assert p.next_fetch_offset(510) == 1  # due even before expire ran
    assert p.expire(510) == []
    assert p.next_deadline_ms() is None
    assert p.acquire("b", 510, 1, 2, 100) == [AcquiredRange(1, 2, 2)]


def test_release_of_a_range_with_different_counts_archives_only_those_at_the_limit() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 3, 100)
    for now in (1, 2):
        ok(p, "a", now, ack(0, 1, RELEASE))
        p.acquire("a", now, 0, 1, 100)
    # 0..1 count 3 (the limit), 2..3 count 1
    archived = ok(p, "a", 5, ack(0, 3, RELEASE))
    assert archived == [Archived(0, 1, 3, ArchiveReason.DELIVERY_LIMIT)]
    assert p.start_offset == 2
    assert p.state_of(2) == (RecordState.AVAILABLE, 1, "")


def test_expired_locks_are_released_and_counted() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    p.acquire("b", 500, 0, 9, 100)
    assert p.expire(LOCK - 1) == []
    assert p.expire(LOCK) == []
    assert p.acquired_by("a") == 0 and p.acquired_by("b") == 5
    assert p.next_fetch_offset(LOCK) == 0
    for now in (2 * LOCK, 4 * LOCK):  # two more deliveries of 0..4, both expire
        p.expire(now)
        p.acquire("a", now, 0, 4, 100)
    assert p.state_of(0) == (RecordState.ACQUIRED, 3, "a")
    assert p.expire(5 * LOCK) == [Archived(0, 4, 3, ArchiveReason.DELIVERY_LIMIT)]
    assert p.start_offset == 5


def test_release_member_releases_only_that_members_records() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 4, 100)
    p.acquire("b", 0, 0, 9, 100)
    assert p.release_member("a", 1) == []
    assert p.acquired_by("a") == 0 and p.acquired_by("b") == 5
    assert p.acquire("c", 2, 0, 9, 100) == [AcquiredRange(0, 4, 2)]
    assert p.release_member("nobody", 3) == []


def test_a_lowered_delivery_limit_archives_at_the_next_release() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 0, 1)
    ok(p, "a", 1, ack(0, 0, RELEASE))
    p.acquire("a", 2, 0, 0, 1)
    p.config = ShareGroupConfig(record_lock_duration_ms=LOCK, delivery_count_limit=2)
    assert p.release_member("a", 3) == [Archived(0, 0, 2, ArchiveReason.DELIVERY_LIMIT)]


# retention, snapshots


def test_advance_to_drops_state_below_the_log_start() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    p.advance_to(4)
    assert (p.start_offset, p.end_offset, p.acquired_by("a")) == (4, 10, 6)
    assert errors(p, "a", 1, ack(2, 5, ACCEPT)) == [InvalidRecordStateError]
    p.advance_to(2)  # never backwards
    assert p.start_offset == 4
    p.advance_to(50)  # past the end: an empty window there
    assert (p.start_offset, p.end_offset, p.acquired_by("a")) == (50, 50, 0)
    assert p.next_fetch_offset(1) == 50


def test_advance_to_also_skips_done_offsets_that_follow() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(4, 6, ACCEPT))
    p.advance_to(4)
    assert p.start_offset == 7


def test_snapshot_persists_acquired_as_available_and_restore_replays_it() -> None:
    p = fresh(0)
    p.acquire("a", 0, 0, 9, 100)
    ok(p, "a", 1, ack(1, 1, ACCEPT), ack(2, 2, REJECT), ack(3, 4, RELEASE, delay_ms=100))
    p.acquire("b", 2, 0, 12, 100)  # 0 was held by a: skipped; 10..12 new
    snapshot = p.snapshot()
    assert snapshot == PartitionSnapshot(
        0,
        13,
        (
            PersistedSpan(0, 0, RecordState.AVAILABLE, 1),
            PersistedSpan(1, 1, RecordState.ACKNOWLEDGED, 1),
            PersistedSpan(2, 2, RecordState.ARCHIVED, 1),
            PersistedSpan(3, 12, RecordState.AVAILABLE, 1),
        ),
        1,
    )
    restored = SharePartition.restore(snapshot, CONFIG)
    assert restored.snapshot() == snapshot
    assert restored.next_deadline_ms() is None
    assert restored.acquire("c", 0, 0, 20, 100) == [
        AcquiredRange(0, 0, 2),
        AcquiredRange(3, 12, 2),
        AcquiredRange(13, 20, 1),
    ]


def test_restore_refuses_inconsistent_snapshots() -> None:
    span = PersistedSpan(0, 4, RecordState.AVAILABLE, 1)
    SharePartition.restore(PartitionSnapshot(0, 5, (span,), 0), CONFIG)
    for bad in (
        PartitionSnapshot(0, 6, (span,), 0),  # does not reach the end
        PartitionSnapshot(1, 5, (span,), 0),  # does not start at the start
        PartitionSnapshot(0, 5, (PersistedSpan(0, 4, RecordState.ACQUIRED, 1),), 0),
        PartitionSnapshot(0, 10, (span, PersistedSpan(6, 9, RecordState.AVAILABLE, 1)), 0),  # a gap
    ):
        with pytest.raises(InvalidRequestError):
            SharePartition.restore(bad, CONFIG)


def test_spans_stay_few_when_a_consumer_acks_in_ranges() -> None:
    """The performance promise: work is per range, not per record."""
    p = SharePartition(0, ShareGroupConfig(partition_max_record_locks=10_000))
    for now in range(200):
        got = p.acquire("a", now, p.end_offset, p.end_offset + 9_999, 500)
        assert len(got) == 1 and got[0].last_offset - got[0].first_offset == 499
        ok(p, "a", now, ack(got[0].first_offset, got[0].last_offset, ACCEPT))
        assert p.span_count == 0  # everything done, the window is empty
    assert p.start_offset == p.end_offset == 100_000
