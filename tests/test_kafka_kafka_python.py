"""kafka-python 3 (idempotent by default) against the Kafka listener: produce, read back, admin, offsets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from logstore.broker.embedded import EmbeddedBroker

from logstore.records.layout import iter_headers
from tests.conftest import StartBroker, Stubs

GZIP = 1

COUNT = 200


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def produce(broker: EmbeddedBroker, topic: str, count: int, **config: object) -> list[tuple[int, int]]:
    """Send `count` keyed records with a header and a timestamp each; returns (partition, offset) per record."""
    producer = KafkaProducer(bootstrap_servers=broker.kafka_address, **config)
    try:
        futures = [
            producer.send(
                topic,
                key=b"key-%d" % i,
                value=b"value-%d" % i,
                headers=[("n", b"%d" % i), ("empty", b"")],
                timestamp_ms=1_700_000_000_000 + i,
            )
            for i in range(count)
        ]
        producer.flush(30)
        metadata = [future.get(30) for future in futures]
    finally:
        producer.close(30)
    return [(m.partition, m.offset) for m in metadata]


def read_all(broker: EmbeddedBroker, tp: TopicPartition, want: int) -> list[object]:
    consumer = KafkaConsumer(bootstrap_servers=broker.kafka_address, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records: list[object] = []
        for _ in range(100):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
            if len(records) >= want:
                break
        return records
    finally:
        consumer.close()


def test_an_idempotent_gzip_producer_with_acks_all_and_an_assigned_consumer_see_the_same_records(
    kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    placed = produce(kafka_broker, "orders", COUNT, acks="all", compression_type="gzip", linger_ms=5)
    assert placed == [(0, i) for i in range(COUNT)]  # auto-created with one partition, offsets in order
    records = read_all(kafka_broker, TopicPartition("orders", 0), COUNT)
    got = [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in records]  # type: ignore[attr-defined]
    assert got == [
        (i, b"key-%d" % i, b"value-%d" % i, [("n", b"%d" % i), ("empty", b"")], 1_700_000_000_000 + i)
        for i in range(COUNT)
    ]
    # The batches were stored as the producer built them: gzip, with the id InitProducerId gave it.
    stored = connect(kafka_broker).fetch_one("orders", 0, 0, max_bytes=1 << 24).records
    headers = [header for _, header in iter_headers(stored)]
    assert headers and {h.compression for h in headers} == {GZIP}
    assert all(h.producer_id >= 0 and h.base_sequence >= 0 for h in headers)


@pytest.mark.parametrize(("codec", "codec_id"), [("snappy", 2), ("lz4", 3), ("zstd", 4)])
def test_each_codec_kafka_python_writes_is_stored_as_sent_and_read_back(
    kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs], codec: str, codec_id: int
) -> None:
    """kafka-python's xerial snappy, lz4 frames (python-lz4) and zstd, written and read by kafka-python."""
    placed = produce(kafka_broker, codec, COUNT, compression_type=codec, linger_ms=20)
    assert placed == [(0, i) for i in range(COUNT)]
    stored = connect(kafka_broker).fetch_one(codec, 0, 0, max_bytes=1 << 24).records
    assert {h.compression for _, h in iter_headers(stored)} == {codec_id}
    records = read_all(kafka_broker, TopicPartition(codec, 0), COUNT)
    assert [(r.offset, r.key, r.value) for r in records] == [  # type: ignore[attr-defined]
        (i, b"key-%d" % i, b"value-%d" % i) for i in range(COUNT)
    ]


def test_seek_into_the_middle_of_a_batch_reads_from_that_offset(kafka_broker: EmbeddedBroker) -> None:
    produce(kafka_broker, "t", 50, linger_ms=50, batch_size=1 << 20)  # few, large batches
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.kafka_address, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek(tp, 37)
        records: list[object] = []
        while len(records) < 13:
            for batch in consumer.poll(timeout_ms=10_000).values():
                records.extend(batch)
        assert [r.offset for r in records] == list(range(37, 50))  # type: ignore[attr-defined]
    finally:
        consumer.close()


def test_beginning_end_and_time_offsets(kafka_broker: EmbeddedBroker) -> None:
    produce(kafka_broker, "t", 10, linger_ms=0)
    tp = TopicPartition("t", 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.kafka_address, enable_auto_commit=False)
    try:
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 10}
        found = consumer.offsets_for_times({tp: 1_700_000_000_004})[tp]
        assert (found.offset, found.timestamp) == (4, 1_700_000_000_004)
        assert consumer.offsets_for_times({tp: 1_800_000_000_000})[tp] is None
    finally:
        consumer.close()


def test_admin_creates_lists_and_deletes_topics(kafka_broker: EmbeddedBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.kafka_address)
    try:
        admin.create_topics(
            [NewTopic("a", 3, 1), NewTopic("b", 1, 1, topic_configs={"retention.ms": "60000"})]
        )
        assert {"a", "b"} <= set(admin.list_topics())
        described = {t["name"]: t for t in admin.describe_topics(["a"])}
        assert sorted(p["partition_index"] for p in described["a"]["partitions"]) == [0, 1, 2], described
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("a", 1, 1)], raise_errors=True)
        admin.delete_topics(["a", "b"])
        assert not {"a", "b"} & set(admin.list_topics())
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["a"], raise_errors=True)
    finally:
        admin.close()


# Tutorials pass plain callables as serializers, which kafka-python 3 deprecates (it wants
# kafka.serializer.Serializer instances); the programs are kept as users write them.
@pytest.mark.filterwarnings("ignore:(key|value)_(de)?serializer does not implement:DeprecationWarning")
def test_the_tutorial_programs_without_a_group(kafka_broker: EmbeddedBroker) -> None:
    """The quick start most users copy, minus group_id (consumer groups come in a later milestone)."""
    producer = KafkaProducer(
        bootstrap_servers=[kafka_broker.kafka_address],
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
    )
    try:
        for i in range(20):
            producer.send("orders", key=f"customer-{i % 3}", value={"order": i}).get(timeout=30)
        producer.flush()
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "orders",
        bootstrap_servers=[kafka_broker.kafka_address],
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        value_deserializer=lambda b: json.loads(b),
    )
    try:
        assert sorted(m.value["order"] for m in consumer) == list(range(20))
    finally:
        consumer.close()


def test_admin_refuses_a_replication_factor_above_one(kafka_broker: EmbeddedBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.kafka_address)
    try:
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic("r3", 1, 3)], raise_errors=True)
        assert "r3" not in admin.list_topics()
    finally:
        admin.close()
