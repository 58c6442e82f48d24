"""The share coordinator's copy of a partition another broker leads (`RemotePartition`): what it answers
from the Fetch answers it kept, and what it asks for next. The reader task against real brokers is
exercised by tests/test_cluster_share.py."""

from __future__ import annotations

import pytest
from logstore.broker.domain.share.sources import SourceNotReady
from logstore.broker.domain.waiters import AppendWaiters
from logstore.broker.replication import remote_reads
from logstore.broker.replication.remote_reads import MAX_CHUNKS, RemotePartition, RemoteReads

from logstore.errors import OffsetOutOfRangeError
from logstore.records import BatchBuilder, iter_headers


def batches(first: int, count: int, per_batch: int = 10, value: bytes = b"x" * 100) -> bytes:
    """`count` batches of `per_batch` records from offset `first`, back to back."""
    data = b""
    for number in range(count):
        builder = BatchBuilder(base_offset=first + number * per_batch)
        for _ in range(per_batch):
            builder.append(value)
        data += builder.build()
    return data


def bases(data: bytes) -> list[int]:
    return [header.base_offset for _, header in iter_headers(data)]


def test_before_any_answer_a_read_asks_for_its_offset() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    assert remote.answered(0, 100, -1, b"")  # the first answer: start and high watermark
    assert remote.read(40, 1 << 20) == b""
    assert remote.wanted == 40 and remote.wake.is_set()
    assert remote.next_offset() == 40


def test_an_answer_serves_reads_from_the_batch_holding_the_offset() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    remote.answered(0, 100, -1, b"")
    remote.read(40, 1 << 20)
    assert remote.answered(0, 100, 40, batches(40, 3))
    assert remote.wanted is None  # served: the next fetch long-polls at the high watermark
    assert remote.next_offset() == 100
    assert bases(remote.read(45, 1 << 20)) == [40, 50, 60]
    assert bases(remote.read(52, 1)) == [50]  # at least one whole batch, however small the budget
    assert remote.read(70, 1 << 20) == b""  # past what it holds: asked for
    assert remote.wanted == 70


def test_reads_below_the_log_start_are_out_of_range_and_the_window_follows_the_leader() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    remote.answered(0, 100, -1, batches(0, 2))
    assert remote.answered(30, 120, -1, b"")  # retention moved the start on the leader
    assert (remote.log_start_offset, remote.log_end_offset) == (30, 120)
    assert remote.chunks == []  # the kept batches all end before the new start
    with pytest.raises(OffsetOutOfRangeError):
        remote.read(10, 1 << 20)


def test_at_most_a_few_answers_are_kept() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    for number in range(MAX_CHUNKS + 3):
        remote.answered(0, 1000, -1, batches(number * 20, 2))
    assert len(remote.chunks) == MAX_CHUNKS
    assert remote.chunks[-1].base == (MAX_CHUNKS + 2) * 20


def test_an_offset_by_timestamp_is_asked_of_the_leader_once_and_then_answered() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    with pytest.raises(SourceNotReady):
        remote.offset_for_timestamp(5_000)
    assert remote.timestamp_query == 5_000 and remote.wake.is_set()
    remote.timestamp_answer = (5_000, 17)
    assert remote.offset_for_timestamp(5_001) == 17


def test_offsets_compaction_removed_are_answered_by_the_next_batch() -> None:
    remote = RemotePartition(("jobs", 0), now_ms=0)
    remote.answered(0, 100, -1, b"")
    assert remote.read(5, 1 << 20) == b""
    assert remote.answered(0, 100, 5, batches(10, 1))  # the leader answers 5 with the batch at 10
    assert bases(remote.read(5, 1 << 20)) == [10]  # no second ask: the gap is the member's to accept
    assert remote.wanted is None


def test_the_answers_kept_over_every_partition_stay_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = RemoteReads(lambda topic, partition: None, lambda broker: None, AppendWaiters(), lambda: 0)
    chunk = len(batches(0, 2))
    monkeypatch.setattr(remote_reads, "MAX_TOTAL_BYTES", 3 * chunk)
    partitions = [RemotePartition(("jobs", p), now_ms=0) for p in range(4)]
    for remote in partitions:  # one answer each, oldest first
        remote.answered(0, 1000, -1, batches(0, 2))
        reads._keep_within_budget(remote)
    assert [len(remote.chunks) for remote in partitions] == [0, 1, 1, 1]  # the oldest answer went
    assert bases(partitions[0].read(0, 1 << 20)) == []  # and a read of it fetches it again
    assert partitions[0].wanted == 0
