"""The live tail (Subscribe stream, no group): starts, follows, closes, survives a broker restart."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, ConsumerRecord, Producer, Tail, TopicPartition, tail
from logstore.client.shared.errors import BrokerUnavailableError, UnknownTopicError

from tests.etcd_support import free_port


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


def produce(address: str, topic: str, *values: bytes, **send: object) -> None:
    with Producer(address, linger_ms=0) as producer:
        for value in values:
            producer.send(topic, value, **send).get(10)  # type: ignore[arg-type]


class Reader:
    """Iterates a tail in a thread, handing records over through a queue."""

    def __init__(self, follow: Tail) -> None:
        self.follow = follow
        self.records: queue.Queue[ConsumerRecord | BaseException | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for record in self.follow:
                self.records.put(record)
        except BaseException as exc:
            self.records.put(exc)
        self.records.put(None)

    def next(self, count: int = 1) -> list[ConsumerRecord]:
        out = []
        for _ in range(count):
            item = self.records.get(timeout=15)
            assert isinstance(item, ConsumerRecord), item
            out.append(item)
        return out

    def stop(self) -> BaseException | None:
        self.follow.close()
        self.thread.join(15)
        assert not self.thread.is_alive()
        items = []
        while not self.records.empty():
            items.append(self.records.get())
        return next((i for i in items if isinstance(i, BaseException)), None)


@pytest.fixture
def two_partitions(broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    with Admin(broker.address) as admin:
        admin.create_topic("live", 2)
    yield broker


def test_tail_starts_at_the_end_and_follows_every_partition(two_partitions: EmbeddedBroker) -> None:
    address = two_partitions.address
    produce(address, "live", b"old")
    reader = Reader(tail("live", bootstrap=address))
    produce(address, "live", b"p0", partition=0)
    produce(address, "live", b"p1", partition=1)
    got = reader.next(2)
    assert sorted((r.partition, r.value) for r in got) == [(0, b"p0"), (1, b"p1")]
    assert (
        reader.follow.positions[TopicPartition("live", 1)]
        == got[[r.partition for r in got].index(1)].offset + 1
    )
    assert reader.stop() is None


def test_tail_from_the_beginning_or_a_time_with_deserializers(two_partitions: EmbeddedBroker) -> None:
    address = two_partitions.address
    for i in range(3):
        produce(address, "live", b"%d" % i, partition=0, timestamp_ms=5_000 + i)
    reader = Reader(
        Tail(
            partitions=[TopicPartition("live", 0)],
            bootstrap=address,
            start="earliest",
            value_deserializer="str",
        )
    )
    assert [r.value for r in reader.next(3)] == ["0", "1", "2"]
    reader.stop()
    reader = Reader(Tail("live", bootstrap=address, from_time_ms=5_001))
    assert [r.value for r in reader.next(2)] == [b"1", b"2"]
    reader.stop()


def test_tail_survives_a_broker_restart_without_loss_or_repeats(start_broker) -> None:
    broker = start_broker()
    port = int(broker.address.rsplit(":", 1)[1])
    with Admin(broker.address) as admin:
        admin.create_topic("r", 1)
    address = broker.address
    reader = Reader(Tail("r", bootstrap=address, reconnect_backoff_ms=20, reconnect_backoff_max_ms=200))
    produce(address, "r", b"before")
    assert [r.value for r in reader.next()] == [b"before"]
    broker.stop()
    broker = start_broker(port=port)
    produce(address, "r", b"after-1", b"after-2")
    assert [r.value for r in reader.next(2)] == [b"after-1", b"after-2"]
    assert reader.stop() is None


def test_unknown_topic_and_deleted_topic(two_partitions: EmbeddedBroker) -> None:
    address = two_partitions.address
    with pytest.raises(UnknownTopicError):
        tail("missing", bootstrap=address)
    with pytest.raises(ValueError, match="start"):
        Tail("live", bootstrap=address, start="middle")
    reader = Reader(Tail(partitions=[TopicPartition("live", 0)], bootstrap=address))
    produce(address, "live", b"x", partition=0)
    reader.next()
    with Admin(address) as admin:
        admin.delete_topics(["live"])
    item = reader.records.get(timeout=15)
    assert isinstance(item, BaseException) and "live-0" in str(item)
    reader.stop()


def test_unreachable_bootstrap_addresses_are_skipped_and_named(two_partitions: EmbeddedBroker) -> None:
    first, second = dead_address(), dead_address()
    with pytest.raises(BrokerUnavailableError) as failed:
        Tail("live", bootstrap=[first, second], request_timeout_ms=5000)
    assert (
        "no broker answered" in str(failed.value)
        and first in str(failed.value)
        and second in str(failed.value)
    )
    reader = Reader(Tail("live", bootstrap=[first, two_partitions.address]))
    produce(two_partitions.address, "live", b"through", partition=1)
    assert [r.value for r in reader.next()] == [b"through"]
    assert reader.stop() is None
