"""A group consumer that cannot do its job says so: an unreachable broker (a warning, then an error from
poll() after request_timeout_ms), a subscribed topic that does not exist (a warning), an offset past the
end (a warning naming the reset); and auto-commit runs on its interval while poll() waits for records.
Real brokers; waiting is bounded polling on a condition, never a sleep."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest
from logstore.client import Admin, Consumer, Producer, TopicPartition
from logstore.client.shared.errors import ClientError, ClosedError

from tests import waiting

LIMIT_S = 20.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    waiting.wait_until(condition, what, timeout_s=LIMIT_S)


def dead_address() -> str:
    """An address where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def address(start_broker) -> str:
    return start_broker(group_session_timeout_ms=2000, group_heartbeat_interval_ms=50).address


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def test_group_consumer_without_a_broker_warns_then_poll_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    consumer = Consumer(
        bootstrap=dead_address(),
        group_id="g",
        request_timeout_ms=300,
        retry_backoff_ms=20,
        retry_backoff_max_ms=50,
    )
    try:
        consumer.subscribe(["orders"])
        with pytest.raises(ClientError) as raised:
            deadline = time.monotonic() + LIMIT_S
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=1000)
        assert raised.value.retriable
        assert "no answer from the broker" in str(raised.value)
        assert "request_timeout_ms" in str(raised.value)
        assert warnings_with(caplog, "cannot reach the broker")
    finally:
        consumer.close()


def test_group_consumer_recovers_after_the_unreachable_error(start_broker) -> None:
    """The error is raised once per request_timeout_ms, not on every poll: the membership keeps retrying."""
    consumer = Consumer(
        bootstrap=dead_address(),
        group_id="g",
        request_timeout_ms=300,
        retry_backoff_ms=20,
        retry_backoff_max_ms=50,
    )
    try:
        consumer.subscribe(["orders"])
        with pytest.raises(ClientError):
            deadline = time.monotonic() + LIMIT_S
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=1000)
        assert consumer.poll(timeout_ms=0) == {}  # right after the error: no new one yet
    finally:
        consumer.close()


def test_group_consumer_warns_about_a_topic_that_does_not_exist(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with Consumer(bootstrap=address, group_id="g") as consumer:
        consumer.subscribe(["missing"])
        deadline = time.monotonic() + LIMIT_S
        while not warnings_with(caplog, "'missing' does not exist"):
            assert time.monotonic() < deadline, "no warning about the missing topic"
            consumer.poll(timeout_ms=50)
        (message,) = warnings_with(caplog, "'missing' does not exist")  # once, not per heartbeat
        assert "UNKNOWN_TOPIC_OR_PARTITION" in message


def test_auto_commit_runs_on_its_interval_while_poll_waits(address: str) -> None:
    with Admin(address) as admin:
        admin.create_topic("orders", 1)
    with Producer(address, linger_ms=0) as producer:
        for i in range(3):
            producer.send("orders", b"%d" % i)
        producer.flush()
    consumer = Consumer(
        bootstrap=address, group_id="g", auto_offset_reset="earliest", auto_commit_interval_ms=100
    )
    try:
        consumer.subscribe(["orders"])
        got = 0
        deadline = time.monotonic() + LIMIT_S
        while got < 3:
            assert time.monotonic() < deadline
            got += sum(len(r) for r in consumer.poll(timeout_ms=50).values())

        # One long poll with nothing to return: the positions reached must be committed meanwhile.
        def idle_poll() -> None:
            with contextlib.suppress(ClosedError):  # closed below while it waits
                consumer.poll(timeout_ms=60_000)

        waiting = threading.Thread(target=idle_poll, daemon=True)
        waiting.start()
        with Admin(address) as admin:

            def committed() -> int:
                progress = admin.describe_group("g").offsets
                return next((p.committed_offset for p in progress if p.partition == 0), -1)

            wait_until(lambda: committed() == 3, "the idle consumer auto-committed offset 3")
    finally:
        consumer.close()
        waiting.join(LIMIT_S)


def test_an_offset_past_the_end_is_reset_with_a_warning(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with Admin(address) as admin:
        admin.create_topic("orders", 1)
    tp = TopicPartition("orders", 0)
    with Consumer(bootstrap=address) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, 999)
        deadline = time.monotonic() + LIMIT_S
        while not warnings_with(caplog, "out of range"):
            assert time.monotonic() < deadline, "no warning about the offset out of range"
            consumer.poll(timeout_ms=50)
        (message,) = warnings_with(caplog, "out of range")
        assert "999" in message and "auto_offset_reset='latest'" in message
        assert consumer.position(tp) == 0


def test_consumer_without_a_group_and_without_a_broker_poll_raises() -> None:
    """The same promise without a group: assign() on a dead broker does not return nothing forever."""
    with Consumer(
        bootstrap=dead_address(), request_timeout_ms=300, retry_backoff_ms=20, retry_backoff_max_ms=50
    ) as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        with pytest.raises(ClientError) as raised:
            deadline = time.monotonic() + LIMIT_S
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=1000)
        assert raised.value.retriable
        assert "no answer from the broker" in str(raised.value)
