"""The share consumer's pure parts, without a broker: acknowledgements coalesced into ranges per
partition, and only the records inside acquired ranges handed out (batches can hold others' records)."""

from __future__ import annotations

import pickle

import pytest
from logstore.client import AcknowledgeType, ShareRecord
from logstore.client.share.acks import (
    ACCEPT,
    RELEASE,
    RELEASE_NOT_AN_ATTEMPT,
    AckRange,
    PartitionLedger,
    merge,
    outcome,
)
from logstore.client.share.records import Acquired, take_records
from logstore.client.shared.errors import IllegalStateError

from logstore.records import build_batch

REJECT = int(AcknowledgeType.REJECT)
RENEW = int(AcknowledgeType.RENEW)


def ledger(*ranges: tuple[int, int], gaps: tuple[tuple[int, int], ...] = ()) -> PartitionLedger:
    held = PartitionLedger()
    size = sum(last - first + 1 for first, last in ranges) - sum(last - first + 1 for first, last in gaps)
    held.hold(list(ranges), gaps, size)
    return held


def test_acknowledge_type_numbers_are_the_wire_enum() -> None:
    from logstore.wire.logstore.v1 import share_pb2

    for t in AcknowledgeType:
        assert share_pb2.AcknowledgeType.Value(f"ACKNOWLEDGE_TYPE_{t.name}") == t


def test_implicit_mode_accepts_every_held_range_as_it_came() -> None:
    held = ledger((0, 99), (200, 299))
    assert held.flush(implicit=True) == [(0, 99, ACCEPT), (200, 299, ACCEPT)]
    assert held.held == [] and held.flush(implicit=True) == []


def test_contiguous_offsets_with_the_same_outcome_become_one_range() -> None:
    held = ledger((10, 19))
    for offset in range(10, 20):
        code = outcome(RELEASE) if offset in (14, 15) else outcome(ACCEPT)
        held.acknowledge(offset, code)
    assert held.unacknowledged() == 0
    assert held.flush(implicit=False) == [(10, 13, ACCEPT), (14, 15, RELEASE), (16, 19, ACCEPT)]
    assert held.held == []


def test_delay_and_not_an_attempt_split_ranges_and_survive_the_encoding() -> None:
    held = ledger((0, 3))
    held.acknowledge(0, outcome(RELEASE, delay_ms=500))
    held.acknowledge(1, outcome(RELEASE, delay_ms=500))
    held.acknowledge(2, outcome(RELEASE))
    held.acknowledge(3, outcome(RELEASE, not_an_attempt=True))
    ranges = [AckRange.of(*r) for r in held.flush(implicit=False)]
    assert ranges == [
        AckRange(0, 1, AcknowledgeType.RELEASE, 500, False),
        AckRange(2, 2, AcknowledgeType.RELEASE, 0, False),
        AckRange(3, 3, AcknowledgeType.RELEASE, 0, True),
    ]


def test_gap_offsets_are_accepted_and_join_their_neighbours() -> None:
    held = ledger((0, 9), gaps=((3, 4),))
    for offset in (0, 1, 2, 5, 6, 7, 8, 9):
        held.acknowledge(offset, ACCEPT)
    assert held.flush(implicit=False) == [(0, 9, ACCEPT)]
    held = ledger((0, 9), gaps=((3, 4),))
    held.acknowledge(2, outcome(REJECT))
    # explicit mode: only decided offsets and gaps go; undecided records stay held
    assert held.flush(implicit=False) == [(2, 2, REJECT), (3, 4, ACCEPT)]
    assert held.held == [(0, 1), (5, 9)]
    assert held.unacknowledged() == 7


def test_a_gap_cannot_be_acknowledged_and_a_record_only_once() -> None:
    held = ledger((0, 9), gaps=((3, 3),))
    with pytest.raises(IllegalStateError, match="not held"):
        held.acknowledge(3, ACCEPT)
    with pytest.raises(IllegalStateError, match="not held"):
        held.acknowledge(10, ACCEPT)
    held.acknowledge(0, ACCEPT)
    with pytest.raises(IllegalStateError, match="acknowledged already"):
        held.acknowledge(0, outcome(RELEASE))
    held.flush(implicit=False)
    with pytest.raises(IllegalStateError, match="not held"):
        held.acknowledge(0, ACCEPT)


def test_renew_keeps_the_record_held_until_a_final_outcome() -> None:
    held = ledger((0, 1))
    held.acknowledge(0, ACCEPT)
    held.acknowledge(1, RENEW)
    assert held.unacknowledged() == 0  # a renewed record may stay past a poll
    assert held.flush(implicit=False) == [(0, 0, ACCEPT), (1, 1, RENEW)]
    assert held.held == [(1, 1)]
    held.acknowledge(1, outcome(REJECT))
    assert held.flush(implicit=False) == [(1, 1, REJECT)]
    assert held.held == [] and held.unacknowledged() == 0


def test_implicit_mode_keeps_explicit_outcomes_and_accepts_the_rest() -> None:
    held = ledger((0, 5))
    held.acknowledge(2, outcome(RELEASE))
    held.acknowledge(3, RENEW)  # the next poll says the record is done: accepted
    assert held.flush(implicit=True) == [(0, 1, ACCEPT), (2, 2, RELEASE), (3, 5, ACCEPT)]


def test_close_gives_back_what_is_held_without_counting_an_attempt() -> None:
    held = ledger((0, 9))
    held.acknowledge(0, ACCEPT)
    assert held.flush(implicit=False) == [(0, 0, ACCEPT)]
    held.give_back([(20, 29)])
    assert held.release_all() == [(1, 9, RELEASE_NOT_AN_ATTEMPT), (20, 29, RELEASE_NOT_AN_ATTEMPT)]
    assert AckRange.of(1, 9, RELEASE_NOT_AN_ATTEMPT).not_an_attempt


def test_settle_decides_only_what_is_held_and_undecided() -> None:
    held = ledger((0, 5), gaps=((5, 5),))
    held.acknowledge(1, REJECT)
    held.acknowledge(2, RENEW)
    for offset in (0, 1, 2, 5, 9):  # undecided, decided, renewed, a gap, not held
        held.settle(offset, ACCEPT)
    assert held.unacknowledged() == 2, "3 and 4 are still undecided"
    assert held.flush(False) == [(0, 0, ACCEPT), (1, 1, REJECT), (2, 2, ACCEPT), (5, 5, ACCEPT)]
    held.settle(0, ACCEPT)  # sent already: nothing to do, and no error
    held.settle(3, RELEASE)
    assert held.flush(False) == [(3, 3, RELEASE)]


def test_outcome_refuses_what_the_broker_would() -> None:
    with pytest.raises(ValueError, match="AcknowledgeType"):
        outcome(7)
    with pytest.raises(ValueError, match="RELEASE only"):
        outcome(ACCEPT, delay_ms=10)
    with pytest.raises(ValueError, match="non-negative"):
        outcome(RELEASE, delay_ms=-1)


def test_merge_joins_touching_ranges() -> None:
    assert merge([(5, 9), (0, 4), (11, 12)]) == [(0, 9), (11, 12)]


# --- picking records out of batches -----------------------------------------------------------------------


def batches(*spans: tuple[int, int]) -> bytes:
    """Batches of consecutive records, one per (base offset, count); values are b"v<offset>"."""
    return b"".join(
        build_batch([b"v%d" % (base + i) for i in range(count)], base_offset=base) for base, count in spans
    )


def test_only_records_inside_acquired_ranges_are_taken_with_their_delivery_counts() -> None:
    data = batches((0, 10))
    taken = take_records("t", 0, data, [Acquired(2, 4, 1), Acquired(7, 8, 3)])
    assert [(r.offset, r.delivery_count) for r in taken.records] == [(2, 1), (3, 1), (4, 1), (7, 3), (8, 3)]
    assert all(isinstance(r, ShareRecord) and r.topic == "t" and r.partition == 0 for r in taken.records)
    assert taken.held == [(2, 4), (7, 8)] and taken.gaps == [] and taken.missing == []


def test_a_batch_inside_one_range_is_taken_whole() -> None:
    data = batches((0, 5), (5, 5))
    taken = take_records("t", 1, data, [Acquired(0, 9, 2)])
    assert [r.value for r in taken.records] == [b"v%d" % i for i in range(10)]
    assert {r.delivery_count for r in taken.records} == {2}


def test_compaction_gaps_inside_a_range_are_reported_and_offsets_past_the_data_are_missing() -> None:
    data = batches((0, 3), (5, 2))  # offsets 3 and 4 compacted away
    taken = take_records("t", 0, data, [Acquired(0, 10, 1)])
    assert [r.offset for r in taken.records] == [0, 1, 2, 5, 6]
    assert taken.held == [(0, 6)]
    assert taken.gaps == [(3, 4)]
    assert taken.missing == [(7, 10)]


def test_share_records_compare_pickle_and_show_their_delivery_count() -> None:
    record = ShareRecord("t", 2, 5, 1000, key=b"k", value=b"v", delivery_count=3)
    assert record.delivery_count == 3 and record.partition == 2
    copy = pickle.loads(pickle.dumps(record))
    assert copy == record and copy.delivery_count == 3
    assert "delivery_count=3" in repr(record)
