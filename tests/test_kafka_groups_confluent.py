"""confluent-kafka (librdkafka) consumer groups over the Kafka listener: two members share a topic, the
survivor takes every partition when the other leaves, and the admin client lists and describes the group."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin

from tests.conftest import StartBroker

PARTITIONS = 4
PER_PARTITION = 25


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def member(broker: EmbeddedBroker, name: str, assigned: dict[str, set[int]]) -> Any:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.kafka_address,
            "group.id": "librdkafka-workers",
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "heartbeat.interval.ms": 300,
            "session.timeout.ms": 6000,
        }
    )

    def on_assign(c: Any, partitions: list[Any]) -> None:
        assigned[name] = {p.partition for p in partitions}

    def on_revoke(c: Any, partitions: list[Any]) -> None:
        assigned[name] = set()

    consumer.subscribe(["tasks"], on_assign=on_assign, on_revoke=on_revoke)
    return consumer


def test_two_members_share_the_partitions_and_the_survivor_takes_all_when_one_leaves(
    kafka_broker: EmbeddedBroker,
) -> None:
    with Admin(kafka_broker.address) as admin:
        admin.create_topic("tasks", PARTITIONS)
    producer = Producer({"bootstrap.servers": kafka_broker.kafka_address})
    for partition in range(PARTITIONS):
        for n in range(PER_PARTITION):
            producer.produce("tasks", value=b"%d" % n, partition=partition)
    assert producer.flush(30) == 0
    assigned: dict[str, set[int]] = {"a": set(), "b": set()}
    a, b = member(kafka_broker, "a", assigned), member(kafka_broker, "b", assigned)
    seen: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}

    def poll_both() -> None:
        for name, consumer in (("a", a), ("b", b)):
            if consumer is None:
                continue
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                seen[name].append((message.partition(), message.offset()))

    try:
        while not (
            assigned["a"] and assigned["b"] and assigned["a"] | assigned["b"] == set(range(PARTITIONS))
        ):
            poll_both()
        assert not assigned["a"] & assigned["b"]  # each partition has one owner
        while not seen["b"]:
            poll_both()
        # What b commits is what librdkafka stored for the records it handed to b (the records of an
        # assignment that a later rebalance replaced are not stored, and come again).
        result = b.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in result or () if tp.offset >= 0}
        assert committed and all(tp.error is None for tp in result or ())
        with Admin(kafka_broker.address) as admin:
            stored = {
                o.partition: o.committed_offset for o in admin.describe_group("librdkafka-workers").offsets
            }
        assert {p: stored.get(p) for p in committed} == committed
        b.close()  # LeaveGroup: a takes everything without waiting for a session timeout
        b = None
        mark = len(seen["a"])
        while assigned["a"] != set(range(PARTITIONS)):
            poll_both()

        def read_since_b_left(partition: int) -> list[int]:
            return [n for p, n in seen["a"][mark:] if p == partition]

        unfinished = {p: offset for p, offset in committed.items() if offset < PER_PARTITION}
        while not all(PER_PARTITION - 1 in read_since_b_left(p) for p in unfinished):
            poll_both()
        # a resumed each of b's partitions exactly at b's commit: nothing b committed came again.
        assert {p: min(read_since_b_left(p)) for p in unfinished} == unfinished
        assert all(not read_since_b_left(p) for p in set(committed) - set(unfinished))
    finally:
        a.close()
        if b is not None:
            b.close()


def test_the_admin_client_lists_and_describes_groups(kafka_broker: EmbeddedBroker) -> None:
    assigned: dict[str, set[int]] = {}
    with Admin(kafka_broker.address) as admin:
        admin.create_topic("tasks", 2)
    consumer = member(kafka_broker, "a", assigned)
    try:
        while assigned.get("a") != {0, 1}:
            consumer.poll(0.1)
        client = AdminClient({"bootstrap.servers": kafka_broker.kafka_address})
        listed = client.list_consumer_groups().result(30)
        assert [g.group_id for g in listed.valid] == ["librdkafka-workers"]
        described = client.describe_consumer_groups(["librdkafka-workers"])["librdkafka-workers"].result(30)
        assert str(described.state).endswith("STABLE")
        assert [m.client_id for m in described.members] == ["a"]
        assignment = described.members[0].assignment.topic_partitions
        assert sorted((tp.topic, tp.partition) for tp in assignment) == [("tasks", 0), ("tasks", 1)]
    finally:
        consumer.close()
