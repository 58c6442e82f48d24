"""GrpcShareForwarder against a real broker's ShareService: the conversions both ways and the errors.

A single broker coordinates every share group, so a call the forwarder marks forwarded is served there;
what a forwarded call gets at a broker that does not coordinate the group is checked on a real cluster
(tests/test_cluster_share_kafka.py). Here: the domain's values survive the trip to the wire and back
(acknowledgements, partition filters, record limits, the answers' ranges and outcomes), the coordinator's
error codes come back as the same error classes its domain raised, and a coordinator that cannot be
reached is NotCoordinatorError naming it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import grpc
import pytest
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.share.values import (
    AckRange,
    PartitionAcks,
    ShareFetchAnswer,
    ShareFetchSpec,
    ShareHeartbeat,
)
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.group_machine.errors import UnknownMemberIdError
from logstore.broker.replication.share_forward import GrpcShareForwarder
from logstore.broker.share_machine.errors import InvalidRecordStateError
from logstore.client import Admin, Producer

from logstore.errors import InvalidRequestError
from logstore.records import iter_records

TOPIC = "jobs"
GROUP = "workers"
ACCEPT, RELEASE = 1, 2
T = TypeVar("T")


@pytest.fixture
def loaded(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    """Three partitions of four records each (values p<partition>-<i>), read by GROUP from the start."""
    with Admin(broker.address) as admin:
        admin.create_topic(TOPIC, partitions=3)
        admin.alter_group_config(GROUP, {"share.auto.offset.reset": "earliest"})
    with Producer(broker.address, linger_ms=0) as producer:
        for partition in range(3):
            for i in range(4):
                producer.send(TOPIC, b"p%d-%d" % (partition, i), partition=partition).get(10)
    yield broker


def run(broker: EmbeddedBroker, call: Callable[[GrpcShareForwarder], Awaitable[T]]) -> T:
    """`call` with a forwarder whose broker 0 is `broker` (every other id unknown), on a loop of its own."""

    async def main() -> T:
        async with grpc.aio.insecure_channel(broker.address) as channel:
            forwarder = GrpcShareForwarder(lambda broker_id: channel if broker_id == 0 else None)
            return await call(forwarder)

    return asyncio.run(main())


def join(broker: EmbeddedBroker, member_id: str = "m-1") -> str:
    beat = ShareHeartbeat(GROUP, member_id, 0, [TOPIC], "forward-test")
    answer = run(broker, lambda f: f.heartbeat(0, beat))
    assert answer.member_id == member_id  # a Kafka client's own id is kept
    assert answer.member_epoch > 0
    assert [(topic, list(p)) for topic, p in answer.assignment] == [(TOPIC, [0, 1, 2])]
    assert answer.heartbeat_interval_ms > 0 and answer.session_timeout_ms > 0
    return answer.member_id


def values(answer: ShareFetchAnswer) -> dict[int, list[bytes]]:
    """The acquired records' values by partition (only offsets inside the acquired ranges)."""
    got: dict[int, list[bytes]] = {}
    for acquired in answer.partitions:
        held = [(r.first_offset, r.last_offset) for r in acquired.ranges]
        for record in iter_records(acquired.records):
            if any(first <= record.offset <= last for first, last in held):
                assert record.value is not None
                got.setdefault(acquired.partition, []).append(record.value)
    return got


def test_a_forwarded_fetch_acquires_and_its_acknowledgements_come_back_per_range(
    loaded: EmbeddedBroker,
) -> None:
    member = join(loaded)
    spec = ShareFetchSpec(GROUP, member, max_wait_ms=5000, partitions=frozenset({(TOPIC, 1)}))
    answer = run(loaded, lambda f: f.fetch(0, spec))
    assert values(answer) == {1: [b"p1-%d" % i for i in range(4)]}, "only the partition asked for"
    assert [(r.first_offset, r.last_offset, r.delivery_count) for r in answer.partitions[0].ranges] == [
        (0, 3, 1)
    ]
    assert answer.lock_duration_ms > 0

    nothing = ShareFetchSpec(GROUP, member, max_wait_ms=0, partitions=frozenset())
    assert run(loaded, lambda f: f.fetch(0, nothing)).partitions == [], "an empty filter is not 'all'"

    one = ShareFetchSpec(GROUP, member, max_wait_ms=5000, max_records=1, record_limit=True)
    acquired = run(loaded, lambda f: f.fetch(0, one))
    assert sum(r.last_offset - r.first_offset + 1 for p in acquired.partitions for r in p.ranges) == 1

    # Piggy-backed on a fetch: accept 0-1 of partition 1, release 2-3, and an unknown type for a range
    # it never held. The fetch acknowledges only (no acquisition) and answers per range, in order.
    acks = [PartitionAcks(TOPIC, 1, [AckRange(0, 1, ACCEPT), AckRange(2, 3, RELEASE), AckRange(9, 9, 7)])]
    done = run(loaded, lambda f: f.fetch(0, ShareFetchSpec(GROUP, member, acks, acknowledge_only=True)))
    assert done.partitions == []
    [outcome] = done.acks
    assert (outcome.topic, outcome.partition, outcome.error) == (TOPIC, 1, None)
    assert [(r.first_offset, r.last_offset) for r in outcome.results] == [(0, 1), (2, 3), (9, 9)]
    assert [r.error for r in outcome.results[:2]] == [None, None]
    assert isinstance(outcome.results[2].error, InvalidRequestError)

    # ShareAcknowledge: 0-1 are accepted already, so that range is refused with the domain's own class.
    again = [PartitionAcks(TOPIC, 1, [AckRange(0, 1, ACCEPT)])]
    [outcome] = run(loaded, lambda f: f.acknowledge(0, GROUP, member, again))
    assert outcome.error is None
    assert isinstance(outcome.results[0].error, InvalidRecordStateError)

    # The released 2-3 come back on a later fetch, delivered for the second time.
    redelivered = run(
        loaded,
        lambda f: f.fetch(
            0, ShareFetchSpec(GROUP, member, max_wait_ms=5000, partitions=frozenset({(TOPIC, 1)}))
        ),
    )
    assert [(r.first_offset, r.last_offset, r.delivery_count) for r in redelivered.partitions[0].ranges] == [
        (2, 3, 2)
    ]


def test_the_coordinators_refusals_come_back_as_the_domains_error_classes(loaded: EmbeddedBroker) -> None:
    join(loaded)
    with pytest.raises(UnknownMemberIdError):
        run(loaded, lambda f: f.fetch(0, ShareFetchSpec(GROUP, "nobody", max_wait_ms=0)))
    with pytest.raises(UnknownMemberIdError):
        run(
            loaded,
            lambda f: f.acknowledge(0, GROUP, "nobody", [PartitionAcks(TOPIC, 0, [AckRange(0, 0, 1)])]),
        )
    # A request the coordinator refuses as a whole (a gRPC status with its code in the trailer).
    with pytest.raises(InvalidRequestError, match="group_id"):
        run(loaded, lambda f: f.fetch(0, ShareFetchSpec("", "m-1")))


def test_a_coordinator_that_cannot_be_reached_is_not_the_coordinator(loaded: EmbeddedBroker) -> None:
    with pytest.raises(NotCoordinatorError, match="broker 7") as unknown:
        run(loaded, lambda f: f.fetch(7, ShareFetchSpec(GROUP, "m-1")))
    assert unknown.value.coordinator == -1

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"

    async def refused() -> None:
        async with grpc.aio.insecure_channel(closed) as channel:
            forwarder = GrpcShareForwarder(lambda broker_id: channel)
            await forwarder.acknowledge(3, GROUP, "m-1", [])

    with pytest.raises(NotCoordinatorError, match=r"broker 3.*UNAVAILABLE") as gone:
        asyncio.run(refused())
    assert gone.value.coordinator == -1
