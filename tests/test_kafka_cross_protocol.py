"""One storage, two protocols: records written over gRPC read over Kafka and the reverse, field by field."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Consumer, Producer
from logstore.client import TopicPartition as LogstoreTopicPartition

from tests.conftest import StartBroker

COUNT = 50
BASE_TIME = 1_700_000_000_000


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def expected() -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]], int]]:
    return [(i, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)], BASE_TIME + i) for i in range(COUNT)]


def test_records_produced_over_grpc_are_read_over_kafka(kafka_broker: EmbeddedBroker) -> None:
    with Admin(kafka_broker.address) as admin:
        admin.create_topic("g2k", 1)
    with Producer(kafka_broker.address) as producer:
        for _, key, value, headers, timestamp in expected():
            producer.send("g2k", value, key=key, headers=headers, timestamp_ms=timestamp)
        producer.flush()
    tp = TopicPartition("g2k", 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.kafka_address, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records: list[object] = []
        for _ in range(100):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
            if len(records) >= COUNT:
                break
    finally:
        consumer.close()
    got = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records]  # type: ignore[attr-defined]
    assert got == expected()


def test_records_produced_over_kafka_are_read_over_grpc(kafka_broker: EmbeddedBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_broker.kafka_address, acks="all")
    try:
        for _, key, value, headers, timestamp in expected():
            producer.send("k2g", value=value, key=key, headers=headers, timestamp_ms=timestamp)
        producer.flush(30)
    finally:
        producer.close(30)
    tp = LogstoreTopicPartition("k2g", 0)
    with Consumer(bootstrap=kafka_broker.address, auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        records: list[object] = []
        for _ in range(100):
            records.extend(consumer.poll(timeout_ms=1000).get(tp, []))
            if len(records) >= COUNT:
                break
    got = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records]  # type: ignore[attr-defined]
    assert got == expected()
