"""A subscribed consumer commits as the group member it is, whatever its epoch (issue 9, item 15).

A member that was fenced or timed out rejoins with epoch 0. Its commits must still carry its member id
and epoch so the broker fences them; sent as commits from outside the group (member id "", epoch -1)
they were accepted whenever the group happened to be empty, overwriting offsets for partitions the
member no longer owned. Joins are held back by wrapping the consumer's GroupService stub, so the member
stays at epoch 0 for as long as the test needs: no timing involved.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from logstore.client import (
    Admin,
    CommitFailedError,
    Consumer,
    ConsumerRebalanceListener,
    Producer,
    TopicPartition,
)
from logstore.wire.logstore.v1 import group_pb2, group_pb2_grpc

from tests.test_client_support import FailedCall

LIMIT_S = 20.0
TP = TopicPartition("ledger", 0)


class RefuseJoins:
    """A GroupService stub whose joins (heartbeats with epoch 0) fail as if the broker were away; every
    other call goes through."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._lock = threading.Lock()
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def Heartbeat(self, request: group_pb2.HeartbeatRequest, **kwargs: Any) -> Any:
        if request.member_epoch == 0:
            with self._lock:
                self.refused += 1
            raise FailedCall(grpc.StatusCode.UNAVAILABLE, "injected: the join did not reach the broker")
        return self._stub.Heartbeat(request, **kwargs)


class Lost(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.lost: list[set[TopicPartition]] = []

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.lost.append(set(lost))


@pytest.fixture
def address(start_broker: Any) -> str:
    broker = start_broker(group_session_timeout_ms=1500, group_heartbeat_interval_ms=50)
    with Admin(broker.address) as admin:
        admin.create_topic(TP.topic, 1)
    with Producer(broker.address, linger_ms=0) as producer:
        for i in range(10):
            producer.send(TP.topic, b"%d" % i)
        producer.flush()
    return broker.address


def committed(address: str) -> int | None:
    with Consumer(bootstrap=address, group_id="g") as reader:
        return reader.committed(TP)


def poll_until(consumer: Consumer, done: Any) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not done():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        consumer.poll(timeout_ms=20)


def test_a_rejoining_member_commits_as_itself_and_is_refused(address: str) -> None:
    listener = Lost()
    consumer = Consumer(
        bootstrap=address, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        consumer.subscribe([TP.topic], listener=listener)
        poll_until(consumer, lambda: consumer.assignment() == {TP} and consumer.position(TP) == 10)
        consumer.commit()
        assert committed(address) == 10
        group = consumer._group
        assert group is not None
        refuse = RefuseJoins(group._stub)
        group._stub = refuse  # type: ignore[assignment]  # a stand-in stub that refuses joins
        # The broker drops the member (as a session timeout would): the group is empty now.
        member_id = group._membership.member_id
        with grpc.insecure_channel(address) as channel:
            answer = group_pb2_grpc.GroupServiceStub(channel).Heartbeat(
                group_pb2.HeartbeatRequest(group_id="g", member_id=member_id, member_epoch=-1)
            )
            assert answer.error_code == 0, answer.error_message
        # Its next heartbeat is answered UNKNOWN_MEMBER_ID: it loses its partition and tries to rejoin.
        poll_until(consumer, lambda: listener.lost == [{TP}] and refuse.refused > 0)
        assert group._membership.member_epoch == 0

        with pytest.raises(CommitFailedError, match="reassigned"):
            consumer.commit({TP: 3})
        failed = consumer.commit_async({TP: 4})
        with pytest.raises(CommitFailedError):
            failed.result(10)
        assert committed(address) == 10, "the rejoining member's commits stored nothing"
    finally:
        consumer.close()


def test_a_member_that_has_not_joined_yet_cannot_commit(address: str) -> None:
    consumer = Consumer(bootstrap=address, group_id="g", enable_auto_commit=False)
    try:
        group = consumer._group
        assert group is not None
        refuse = RefuseJoins(group._stub)
        group._stub = refuse  # type: ignore[assignment]  # a stand-in stub that refuses joins
        consumer.subscribe([TP.topic])
        poll_until(consumer, lambda: refuse.refused > 0)
        with pytest.raises(CommitFailedError, match="not joined the group yet"):
            consumer.commit({TP: 3})
        seen: list = []
        future = consumer.commit_async({TP: 3}, callback=lambda offsets, error: seen.append(error))
        with pytest.raises(CommitFailedError):
            future.result(10)
        assert isinstance(seen[0], CommitFailedError)
        assert committed(address) is None, "nothing was committed from outside the group"
    finally:
        consumer.close()


def test_an_assign_consumer_still_commits_from_outside(address: str) -> None:
    with Consumer(bootstrap=address, group_id="g", enable_auto_commit=False) as consumer:
        consumer.assign([TP])
        consumer.commit({TP: 7})
    assert committed(address) == 7
