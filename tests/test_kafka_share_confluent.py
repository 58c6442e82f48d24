"""confluent-kafka's ShareConsumer (librdkafka, KIP-932) against the Kafka listener's share groups.

librdkafka speaks ShareGroupHeartbeat, ShareFetch and ShareAcknowledge v1, learns topic ids from
Metadata v10+, and keeps a share session per broker: an independent implementation of the client side.
The share groups are the same the gRPC ShareService serves, so the broker's view is read back through
the logstore Admin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import AcknowledgeType, Message, Producer, ShareConsumer
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin
from logstore.client import ShareConsumer as GrpcShareConsumer
from logstore.client.admin.share import SharePartitionState

from tests.conftest import StartBroker
from tests.waiting import wait_until

COUNT = 60


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def produce(broker: EmbeddedBroker, topic: str, count: int, partitions: int = 1) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(topic, partitions=partitions)
    producer = Producer({"bootstrap.servers": broker.kafka_address, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=b"v%d" % i, key=b"k%d" % i, partition=i % partitions)
    assert producer.flush(30) == 0


def start_group(broker: EmbeddedBroker, group: str, **configs: object) -> None:
    """A share group starts at the log's end (Kafka's default); these tests read what was there."""
    with Admin(broker.address) as admin:
        admin.alter_group_config(group, {"share.auto.offset.reset": "earliest", **configs})


@pytest.fixture
def share_consumers(kafka_broker: EmbeddedBroker) -> Iterator[list[ShareConsumer]]:
    made: list[ShareConsumer] = []
    yield made
    for consumer in made:
        consumer.close()


def share_consumer(
    made: list[ShareConsumer], broker: EmbeddedBroker, group: str, explicit: bool = False
) -> ShareConsumer:
    consumer = ShareConsumer(
        {
            "bootstrap.servers": broker.kafka_address,
            "group.id": group,
            "share.acknowledgement.mode": "explicit" if explicit else "implicit",
        }
    )
    made.append(consumer)
    return consumer


def poll_until(consumer: ShareConsumer, count: int, timeout_s: float = 30.0) -> list[Message]:
    got: list[Message] = []

    def more() -> bool:
        for message in consumer.poll(0.2):
            assert message.error() is None, message.error()
            got.append(message)
        return len(got) >= count

    wait_until(more, f"{count} records reached the share consumer (got {len(got)})", timeout_s)
    return got


def offset(message: Message) -> int:
    found = message.offset()
    assert found is not None
    return found


def place(message: Message) -> tuple[int, int]:
    partition = message.partition()
    assert partition is not None
    return partition, offset(message)


def partition_state(broker: EmbeddedBroker, group: str, topic: str) -> list[SharePartitionState]:
    with Admin(broker.address) as admin:
        return [p for p in admin.describe_share_group(group).partitions if p.topic == topic]


def all_done(broker: EmbeddedBroker, group: str, topic: str, count: int) -> bool:
    states = partition_state(broker, group, topic)
    return sum(p.start_offset for p in states) == count and all(p.in_flight == 0 for p in states)


def test_a_share_consumer_gets_every_record_once_and_its_implicit_acks_finish_them(
    kafka_broker: EmbeddedBroker, share_consumers: list[ShareConsumer]
) -> None:
    produce(kafka_broker, "jobs", COUNT)
    start_group(kafka_broker, "workers")
    consumer = share_consumer(share_consumers, kafka_broker, "workers")
    consumer.subscribe(["jobs"])
    got = poll_until(consumer, COUNT)
    assert sorted(offset(m) for m in got) == list(range(COUNT))
    assert {offset(m): (m.key(), m.value()) for m in got} == {
        i: (b"k%d" % i, b"v%d" % i) for i in range(COUNT)
    }
    assert {m.delivery_count() for m in got} == {1}
    consumer.commit_sync()  # implicit mode: what the last poll returned is accepted
    wait_until(lambda: all_done(kafka_broker, "workers", "jobs", COUNT), "every record is acknowledged")
    with Admin(kafka_broker.address) as admin:
        members = admin.describe_share_group("workers").members
    assert [m.subscribed_topics for m in members] == [["jobs"]]


def test_released_records_come_back_with_a_higher_delivery_count_and_rejected_ones_do_not(
    kafka_broker: EmbeddedBroker, share_consumers: list[ShareConsumer]
) -> None:
    produce(kafka_broker, "tasks", 10)
    start_group(kafka_broker, "careful")
    consumer = share_consumer(share_consumers, kafka_broker, "careful", explicit=True)
    consumer.subscribe(["tasks"])
    first = poll_until(consumer, 10)
    for message in first:
        kind = AcknowledgeType.REJECT if offset(message) < 3 else AcknowledgeType.RELEASE
        consumer.acknowledge(message, kind)
    consumer.commit_sync()
    again = poll_until(consumer, 7)
    assert sorted(offset(m) for m in again) == list(range(3, 10))
    assert {m.delivery_count() for m in again} == {2}
    for message in again:
        consumer.acknowledge(message, AcknowledgeType.ACCEPT)
    consumer.commit_sync()
    wait_until(lambda: all_done(kafka_broker, "careful", "tasks", 10), "every record is done")
    assert [p.archived for p in partition_state(kafka_broker, "careful", "tasks")] == [3]


def test_two_share_consumers_split_the_records_of_one_group_without_duplicates(
    kafka_broker: EmbeddedBroker, share_consumers: list[ShareConsumer]
) -> None:
    produce(kafka_broker, "queue", COUNT * 2, partitions=2)
    start_group(kafka_broker, "pool")
    one = share_consumer(share_consumers, kafka_broker, "pool")
    two = share_consumer(share_consumers, kafka_broker, "pool")
    one.subscribe(["queue"])
    two.subscribe(["queue"])
    seen: dict[tuple[int, int], int] = {}

    def drained() -> bool:
        for index, consumer in enumerate((one, two)):
            for message in consumer.poll(0.1):
                assert message.error() is None, message.error()
                key = place(message)
                assert key not in seen, f"{key} delivered twice"
                seen[key] = index
            consumer.commit_async()
        return len(seen) >= COUNT * 2

    wait_until(drained, "both members together got every record", 60)
    assert sorted(seen) == [(i % 2, i // 2) for i in sorted(range(COUNT * 2), key=lambda i: (i % 2, i // 2))]
    wait_until(lambda: all_done(kafka_broker, "pool", "queue", COUNT * 2), "every record is acknowledged")


def test_a_kafka_share_consumer_and_a_grpc_one_work_the_same_share_group(
    kafka_broker: EmbeddedBroker, share_consumers: list[ShareConsumer]
) -> None:
    produce(kafka_broker, "mixed", COUNT)
    start_group(kafka_broker, "both")
    kafka = share_consumer(share_consumers, kafka_broker, "both")
    kafka.subscribe(["mixed"])
    seen: set[int] = set()
    with GrpcShareConsumer("mixed", bootstrap_servers=kafka_broker.address, group_id="both") as grpc:

        def drained() -> bool:
            for message in kafka.poll(0.1):
                assert offset(message) not in seen
                seen.add(offset(message))
            kafka.commit_async()
            for record in grpc.poll(timeout_ms=100):
                assert record.offset not in seen
                seen.add(record.offset)
            grpc.commit_sync()
            return len(seen) >= COUNT

        wait_until(drained, "the two members together got every record", 60)
    assert seen == set(range(COUNT))
