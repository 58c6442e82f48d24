"""The retry-and-dead-letter helper: unit tests with a fake producer, and the loop against a real broker."""

from __future__ import annotations

import pytest
from logstore.client import Admin, Consumer, Producer, TopicPartition
from logstore.client.consumer.records import ConsumerRecord
from logstore.client.consumer.retry import HANDLED, PARKED, RetryingHandler, process_with_retry

from tests.test_client_support import read_partition


class FakeFuture:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list | None]] = []

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None
    ) -> FakeFuture:
        self.sent.append((topic, value, key, headers))
        return FakeFuture()


def record(offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord("orders", 2, offset, 1000, key=b"k", value=b"v", headers=[("trace", b"abc")])


def test_a_record_that_succeeds_after_failures_is_handled_with_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky(r: ConsumerRecord) -> None:
        calls.append(r.offset)
        if len(calls) < 3:
            raise TimeoutError("downstream busy")

    producer = FakeProducer()
    handle = RetryingHandler(
        flaky,
        producer,
        dead_letter_topic="dlt",
        max_attempts=3,
        backoff_ms=100,
        backoff_max_ms=150,
        sleep=sleeps.append,
    )
    assert handle(record()) == HANDLED
    assert calls == [7, 7, 7] and sleeps == [0.1, 0.15] and producer.sent == []


def test_a_record_that_keeps_failing_is_parked_with_why_and_where() -> None:
    producer = FakeProducer()

    def broken(r: ConsumerRecord) -> None:
        raise ValueError("bad amount: -3")

    handle = RetryingHandler(
        broken, producer, dead_letter_topic="orders.dlt", max_attempts=2, sleep=lambda s: None
    )
    assert handle(record()) == PARKED
    [(topic, value, key, headers)] = producer.sent
    assert (topic, value, key) == ("orders.dlt", b"v", b"k")
    assert headers == [
        ("trace", b"abc"),
        ("dlt.error.type", b"ValueError"),
        ("dlt.error.message", b"bad amount: -3"),
        ("dlt.original.topic", b"orders"),
        ("dlt.original.partition", b"2"),
        ("dlt.original.offset", b"7"),
        ("dlt.attempts", b"2"),
    ]
    assert (handle.handled, handle.parked) == (0, 1)


def test_exceptions_outside_retry_on_propagate_unparked() -> None:
    producer = FakeProducer()

    def crash(r: ConsumerRecord) -> None:
        raise KeyboardInterrupt

    handle = RetryingHandler(
        crash, producer, dead_letter_topic="dlt", retry_on=(ValueError,), sleep=lambda s: None
    )
    with pytest.raises(KeyboardInterrupt):
        handle(record())
    assert producer.sent == []


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryingHandler(print, FakeProducer(), dead_letter_topic="dlt", max_attempts=0)


def test_the_loop_parks_poison_records_and_commits_everything(start_broker) -> None:
    broker = start_broker()
    with Admin(broker.address) as admin:
        admin.create_topics(["jobs", "jobs.dlt"])
    with Producer(broker.address) as producer:
        for i in range(10):
            producer.send("jobs", b"poison" if i in (3, 8) else b"job-%d" % i, key=b"%d" % i)
        producer.flush()
        seen: list[bytes | None] = []

        def work(r: ConsumerRecord) -> None:
            if r.value == b"poison":
                raise ValueError(f"cannot process offset {r.offset}")
            seen.append(r.value)

        handle = RetryingHandler(work, producer, dead_letter_topic="jobs.dlt", max_attempts=2, backoff_ms=1)
        with Consumer(
            "jobs",
            group_id="workers",
            bootstrap=broker.address,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        ) as consumer:
            counts = process_with_retry(consumer, handle, max_records=10, poll_timeout_ms=200)
            assert consumer.committed(TopicPartition("jobs", 0)) == 10
    assert counts == {"handled": 8, "parked": 2}
    assert seen == [b"job-%d" % i for i in range(10) if i not in (3, 8)]
    parked = read_partition(broker.address, "jobs.dlt", 0)
    assert [r.value for r in parked] == [b"poison", b"poison"]
    assert [dict(r.headers)["dlt.original.offset"] for r in parked] == [b"3", b"8"]
    assert dict(parked[0].headers)["dlt.error.message"] == b"cannot process offset 3"
    assert [r.key for r in parked] == [b"3", b"8"]
