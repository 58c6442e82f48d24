"""Subscribe: batches pushed as they are appended, from earliest, latest, an offset or a timestamp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from typing import Protocol, cast

import grpc
import pytest
from logstore.broker.domain.replicas import NotReplicated
from logstore.broker.domain.subscribe import Subscriptions
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.values import PartitionRead, StartFrom, SubscribeStart
from logstore.broker.domain.waiters import AppendWaiters
from logstore.broker.embedded import EmbeddedBroker
from logstore.wire.logstore.v1 import admin_pb2
from logstore.wire.logstore.v1 import common_pb2 as common
from logstore.wire.logstore.v1 import fetch_pb2 as pb

from logstore.errors import OffsetOutOfRangeError
from logstore.manager import LogManager
from logstore.records import Record, build_batch, iter_records
from tests.waiting import broker_waiters, wait_until

DEADLINE_S = 30  # a broken subscription fails the test instead of hanging it


class _Stream(Protocol):
    """A server-streaming call: its messages, and the call's control."""

    def __iter__(self) -> Iterator[pb.SubscribeResponse]: ...
    def __next__(self) -> pb.SubscribeResponse: ...
    def cancel(self) -> bool: ...
    def code(self) -> grpc.StatusCode: ...


def _subscribe(stubs, *partitions: pb.SubscribePartition, max_bytes: int = 0) -> _Stream:
    request = pb.SubscribeRequest(partitions=partitions, max_bytes=max_bytes)
    return stubs.fetch.Subscribe(request, timeout=DEADLINE_S)


def _start(partition: int, start_from: pb.StartFrom, **fields: int) -> pb.SubscribePartition:
    return pb.SubscribePartition(topic="t", partition=partition, start_from=start_from, **fields)


def _collect(stream, count: int, positions: dict[int, int]) -> dict[int, list[bytes | None]]:
    """Read messages until `count` records past `positions` arrived; returns values per partition."""
    got: dict[int, list[bytes | None]] = {}
    while sum(map(len, got.values())) < count:
        message = next(stream)
        partitions = [p.partition for p in message.partitions]
        assert len(partitions) == len(set(partitions)), "a partition appears at most once per message"
        for part in message.partitions:
            assert part.error_code == common.ERROR_CODE_NONE, part.error_message
            for record in iter_records(part.records):
                if record.offset >= positions.get(part.partition, 0):
                    got.setdefault(part.partition, []).append(record.value)
                    positions[part.partition] = record.offset + 1
    return got


def _wait_for_waiter(broker: EmbeddedBroker) -> None:
    wait_until(lambda: broker_waiters(broker) > 0, "the subscription goes to sleep")


def test_from_earliest_gets_stored_batches_then_new_ones(broker, stubs) -> None:
    stubs.create_topic("t", 2)
    stubs.produce_one("t", 0, build_batch([b"p0-a", b"p0-b"]))
    stubs.produce_one("t", 1, build_batch([b"p1-a"]))
    stream = _subscribe(stubs, _start(0, pb.START_FROM_EARLIEST), _start(1, pb.START_FROM_EARLIEST))
    positions: dict[int, int] = {}
    assert _collect(stream, 3, positions) == {0: [b"p0-a", b"p0-b"], 1: [b"p1-a"]}

    _wait_for_waiter(broker)
    stubs.produce_one("t", 1, build_batch([b"p1-b"]))
    assert _collect(stream, 1, positions) == {1: [b"p1-b"]}
    stubs.produce_one("t", 0, build_batch([b"p0-c"]))
    assert _collect(stream, 1, positions) == {0: [b"p0-c"]}
    stream.cancel()


def test_from_latest_gets_only_new_batches(broker, stubs) -> None:
    stubs.create_topic("t")
    stubs.produce_one("t", 0, build_batch([b"old"]))
    stream = _subscribe(stubs, _start(0, pb.START_FROM_LATEST))
    _wait_for_waiter(broker)
    stubs.produce_one("t", 0, build_batch([b"new"]))
    assert _collect(stream, 1, {}) == {0: [b"new"]}
    stream.cancel()


def test_from_an_offset_and_from_a_timestamp(stubs) -> None:
    stubs.create_topic("t")
    for timestamp in (1_000, 2_000, 3_000):
        stubs.produce_one("t", 0, build_batch([Record(0, timestamp, 0, None, str(timestamp).encode(), [])]))

    from_offset = _subscribe(stubs, _start(0, pb.START_FROM_OFFSET, offset=1))
    assert _collect(from_offset, 2, {0: 1}) == {0: [b"2000", b"3000"]}
    from_offset.cancel()

    from_time = _subscribe(stubs, _start(0, pb.START_FROM_TIMESTAMP, timestamp_ms=2_500))
    assert _collect(from_time, 1, {}) == {0: [b"3000"]}
    from_time.cancel()


def test_max_bytes_splits_a_backlog_over_several_messages(stubs) -> None:
    stubs.create_topic("t")
    batch = build_batch([b"x" * 1000])
    for _ in range(5):
        stubs.produce_one("t", 0, batch)
    stream = _subscribe(stubs, _start(0, pb.START_FROM_EARLIEST), max_bytes=2 * len(batch))
    sizes = [len(next(stream).partitions[0].records) for _ in range(3)]
    assert sizes == [2 * len(batch), 2 * len(batch), len(batch)]
    stream.cancel()


@pytest.mark.parametrize(
    ("partitions", "status"),
    [
        ((), grpc.StatusCode.INVALID_ARGUMENT),
        ((_start(0, pb.START_FROM_UNSPECIFIED),), grpc.StatusCode.INVALID_ARGUMENT),
        (
            (_start(0, pb.START_FROM_EARLIEST), _start(0, pb.START_FROM_LATEST)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ((_start(0, pb.START_FROM_TIMESTAMP, timestamp_ms=-1),), grpc.StatusCode.INVALID_ARGUMENT),
        ((_start(5, pb.START_FROM_EARLIEST),), grpc.StatusCode.NOT_FOUND),
        (
            (pb.SubscribePartition(topic="ghost", start_from=pb.START_FROM_EARLIEST),),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            (pb.SubscribePartition(topic="../x", start_from=pb.START_FROM_EARLIEST),),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ((_start(0, pb.START_FROM_OFFSET, offset=2),), grpc.StatusCode.OUT_OF_RANGE),
        ((_start(0, pb.START_FROM_OFFSET, offset=-1),), grpc.StatusCode.OUT_OF_RANGE),
    ],
)
def test_unusable_starts_end_the_call_before_the_first_message(stubs, partitions, status) -> None:
    stubs.create_topic("t")
    stubs.produce_one("t", 0, build_batch([b"v"]))
    with pytest.raises(grpc.RpcError) as raised:
        next(_subscribe(stubs, *partitions))
    assert raised.value.code() == status
    assert raised.value.details()
    assert _collect(_subscribe(stubs, _start(0, pb.START_FROM_EARLIEST)), 1, {}) == {0: [b"v"]}


def test_a_deleted_topic_is_reported_once_and_dropped(broker, stubs) -> None:
    stubs.create_topic("t")
    stubs.create_topic("other")
    stream = _subscribe(
        stubs,
        _start(0, pb.START_FROM_LATEST),
        pb.SubscribePartition(topic="other", start_from=pb.START_FROM_LATEST),
    )
    _wait_for_waiter(broker)
    stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="t"))
    (gone,) = next(stream).partitions
    assert (gone.topic, gone.error_code) == ("t", common.ERROR_CODE_UNKNOWN_TOPIC)
    stubs.produce_one("other", 0, build_batch([b"still followed"]))
    (alive,) = next(stream).partitions
    assert [r.value for r in iter_records(alive.records)] == [b"still followed"]
    stubs.admin.DeleteTopic(admin_pb2.DeleteTopicRequest(name="other"))
    assert next(stream).partitions[0].error_code == common.ERROR_CODE_UNKNOWN_TOPIC
    assert list(stream) == [], "with no partition left the stream ends"
    assert stream.code() == grpc.StatusCode.OK


# --- a cluster leader: clients read up to the high watermark -------------------------------------------


class _LaggingWatermark(NotReplicated):
    """A leader's replicas whose high watermark is `hw` (below the log end until moved)."""

    def __init__(self, hw: int) -> None:
        self.hw = hw

    def visible_end(self, topic: str, partition: int) -> int | None:
        return self.hw


def test_a_start_past_the_high_watermark_but_in_the_log_waits_for_the_watermark(tmp_path) -> None:
    """A new leader's high watermark can lag the one the old leader showed (it learns its followers'
    ends at their next fetch): a tail resuming there where it stopped on the old leader is not refused
    with OFFSET_OUT_OF_RANGE, and gets the records once the watermark covers them, none before."""
    manager = LogManager(tmp_path, background=False)
    waiters = AppendWaiters()
    topics = Topics(manager, waiters, auto_create=False, default_partitions=1, max_batch_bytes=1 << 20)
    manager.create_topic("t", 1)
    for value in (b"a", b"b", b"c"):
        manager.log("t", 0).append(build_batch([value]))
    topics.replicas = replicas = _LaggingWatermark(1)
    subscriptions = Subscriptions(topics, waiters)

    async def run() -> list[bytes | None]:
        positions = subscriptions.resolve([SubscribeStart("t", 0, StartFrom.OFFSET, 2, 0)])
        assert positions == {("t", 0): 2}
        with pytest.raises(OffsetOutOfRangeError):
            subscriptions.resolve([SubscribeStart("t", 0, StartFrom.OFFSET, 4, 0)])  # past the log end
        stream = subscriptions.run(positions, 1 << 20)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        assert not first.done() and len(waiters) == 1, "nothing past the watermark is sent"
        replicas.hw = 3
        waiters.notify(("t", 0))
        (read,) = await asyncio.wait_for(first, DEADLINE_S)
        await cast(AsyncGenerator[list[PartitionRead], None], stream).aclose()
        return [r.value for r in iter_records(read.records)]

    try:
        assert asyncio.run(run()) == [b"c"]
    finally:
        manager.close()
