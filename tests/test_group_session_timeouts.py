"""A member's own timing (kafka-python's session_timeout_ms, heartbeat_interval_ms, max_poll_interval_ms):
the broker holds each member to the session timeout it asked for, within the broker's bounds; a worker
killed with -9 is replaced after its own session timeout, not the broker's; a member that stops calling
poll() leaves the group. Real brokers and a killed subprocess; waiting is bounded polling on a condition."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest
from logstore.client import Admin, Consumer, ConsumerRebalanceListener, TopicPartition
from logstore.client.groups.membership import HeartbeatAnswer, Membership, Subscription
from logstore.client.shared.backoff import Backoff
from logstore.wire.logstore.v1 import common_pb2 as common

from tests import waiting
from tests.conftest import GroupMember, group_stub

BROKER_SESSION_MS = 60_000
"""Longer than any wait here: a test that passes cannot have waited for the broker's own timeout."""
LIMIT_S = 20.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    waiting.wait_until(condition, what, timeout_s=LIMIT_S)


@pytest.fixture
def broker(start_broker):
    broker = start_broker(
        group_session_timeout_ms=BROKER_SESSION_MS,
        group_heartbeat_interval_ms=50,
        group_min_session_timeout_ms=200,
        group_max_session_timeout_ms=120_000,
    )
    with Admin(broker.address) as admin:
        admin.create_topic("orders", 2)
    return broker


def test_the_broker_removes_a_member_after_its_own_session_timeout(broker, connect) -> None:
    stubs = connect(broker)
    quiet = GroupMember(group_stub(stubs), "g", ["orders"], session_timeout_ms=300)
    answer = quiet.heartbeat()
    assert answer.error_code == common.ERROR_CODE_NONE
    assert answer.session_timeout_ms == 300
    with Admin(broker.address) as admin:
        wait_until(lambda: admin.describe_group("g").members == [], "the silent member was removed")


@pytest.mark.parametrize("asked", [100, 200_000])
def test_a_session_timeout_outside_the_broker_bounds_is_refused(broker, connect, asked: int) -> None:
    member = GroupMember(group_stub(connect(broker)), "g", ["orders"], session_timeout_ms=asked)
    answer = member.heartbeat()
    assert answer.error_code == common.ERROR_CODE_INVALID_GROUP_REQUEST
    assert "[200, 120000]" in answer.error_message
    assert "group_min_session_timeout_ms" in answer.error_message


def test_without_a_session_timeout_the_member_gets_the_broker_one(broker, connect) -> None:
    answer = GroupMember(group_stub(connect(broker)), "g", ["orders"]).heartbeat()
    assert answer.session_timeout_ms == BROKER_SESSION_MS


WORKER = textwrap.dedent(
    """
    import sys
    from logstore.client import Consumer
    consumer = Consumer(bootstrap=sys.argv[1], group_id="g", session_timeout_ms=1000,
                        heartbeat_interval_ms=100)
    consumer.subscribe(["orders"])
    while not consumer.assignment():
        consumer.poll(timeout_ms=50)
    print("assigned", flush=True)
    sys.stdin.read()  # until killed
    """
)


def test_a_killed_worker_is_replaced_after_its_own_session_timeout(broker) -> None:
    with subprocess.Popen(  # leaving the block closes the pipes (no ResourceWarning) and reaps the child
        [sys.executable, "-c", WORKER, broker.address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line == "assigned\n", worker.stderr.read() if worker.stderr else ""
        finally:
            worker.kill()
            worker.wait()
    everything = {TopicPartition("orders", 0), TopicPartition("orders", 1)}
    with Consumer(bootstrap=broker.address, group_id="g") as survivor:
        survivor.subscribe(["orders"])
        deadline = time.monotonic() + LIMIT_S
        while survivor.assignment() != everything:
            assert time.monotonic() < deadline, "the killed worker's partitions never moved"
            survivor.poll(timeout_ms=50)


class Lost(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.lost: list[set[TopicPartition]] = []

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.lost.append(lost)


def test_a_member_that_stops_polling_leaves_the_group_and_rejoins_at_its_next_poll(
    broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    everything = {TopicPartition("orders", 0), TopicPartition("orders", 1)}
    listener = Lost()
    stuck = Consumer(bootstrap=broker.address, group_id="g", max_poll_interval_ms=300)
    other = Consumer(bootstrap=broker.address, group_id="g")
    try:
        stuck.subscribe(["orders"], listener=listener)
        deadline = time.monotonic() + LIMIT_S
        while stuck.assignment() != everything:
            assert time.monotonic() < deadline
            stuck.poll(timeout_ms=50)
        # `stuck` no longer polls: after 300 ms it leaves, and `other` gets everything.
        other.subscribe(["orders"])
        while other.assignment() != everything:
            assert time.monotonic() < deadline, "the stuck member kept its partitions"
            other.poll(timeout_ms=50)
        assert any("max_poll_interval_ms" in r.getMessage() for r in caplog.records)
        assert stuck.assignment() == set()
        # Its next poll reports the loss and rejoins: the two share the partitions again.
        while not (stuck.assignment() and other.assignment()):
            assert time.monotonic() < deadline, "the stuck member did not rejoin"
            stuck.poll(timeout_ms=20)
            other.poll(timeout_ms=20)
        assert listener.lost and listener.lost[0] == everything
    finally:
        stuck.close()
        other.close()


def test_heartbeat_interval_ms_caps_the_broker_pace() -> None:
    m = Membership("g", Backoff(100, 1000, jitter=0), max_heartbeat_interval_s=0.2)
    m.subscribe(Subscription(("orders",)), now=0.0)
    plan = m.plan(0.0)
    assert plan is not None
    m.on_answer(HeartbeatAnswer(0, "", "m1", 1, 5000, 45000, frozenset()), plan, 0.0)
    assert m.heartbeat_interval_s == 0.2
    assert m.next_heartbeat_in(0.0) == 0.2


def test_a_session_timeout_is_sent_in_every_heartbeat() -> None:
    m = Membership("g", Backoff(100, 1000, jitter=0), requested_session_timeout_ms=1500)
    m.subscribe(Subscription(("orders",)), now=0.0)
    plan = m.plan(0.0)
    assert plan is not None and plan.session_timeout_ms == 1500


@pytest.mark.parametrize(
    "settings",
    [
        {"session_timeout_ms": 1000, "heartbeat_interval_ms": 1000},
        {"session_timeout_ms": 0},
        {"max_poll_interval_ms": -1},
    ],
)
def test_bad_group_timings_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError, match="_ms"):
        Consumer(bootstrap="127.0.0.1:1", group_id="g", **settings)
