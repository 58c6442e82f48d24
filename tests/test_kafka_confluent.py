"""confluent-kafka (librdkafka) against the Kafka listener: compressed produce, read back, offsets, admin.

librdkafka is the third independent Kafka client here, with its own gzip, snappy (raw), lz4 (frame)
and zstd code, so each codec is checked against a compressor and decompressor that are not ours. Its
Consumer insists on a ``group.id``; with ``assign()`` and no commits it never joins the group, and
``no_group_requests`` checks, from librdkafka's own protocol log, that it sent no group request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from logstore.broker.embedded import EmbeddedBroker
from logstore.broker.kafka.versions import APIS
from logstore.client import Producer as GrpcProducer

from logstore.records import HEADER_SIZE, LZ4, NONE, iter_headers
from logstore.records.compression import decompress
from tests.conftest import StartBroker, Stubs

COUNT = 300
BASE_TIME = 1_700_000_000_000
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
GROUP_APIS = ("JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch")
FIND_COORDINATOR = 10


def librdkafka_compresses_with(codec: str) -> int:
    """The codec librdkafka's producer really uses for ``compression.type=codec`` against this broker.

    librdkafka enables a codec by the APIs the broker advertises (rdkafka_feature.c): lz4 only when
    FindCoordinator v0 is in range, as the mark of Kafka 0.8.2, and it sends uncompressed batches
    otherwise. This listener advertises FindCoordinator once it serves consumer groups; until then
    librdkafka's lz4 batches arrive uncompressed (its lz4 reading is checked by the test after).
    """
    if codec == "lz4" and not (FIND_COORDINATOR in APIS and APIS[FIND_COORDINATOR].advertised[0] == 0):
        return NONE
    return CODECS[codec]


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


class ProtocolLog(logging.Handler):
    """librdkafka's debug log (``debug=protocol``), kept to see which requests the client sent."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"tests.librdkafka.{id(self)}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def sent(self) -> set[str]:
        """The request names the client sent, e.g. {"ApiVersionRequest", "FetchRequest"}."""
        return {line.split("Sent ", 1)[1].split(" ", 1)[0] for line in self.lines if "Sent " in line}


@pytest.fixture
def protocol_log() -> Iterator[ProtocolLog]:
    log = ProtocolLog()
    yield log
    log.logger.removeHandler(log)


def value_of(i: int) -> bytes:
    return b"value-%d " % i * 40  # compressible, and 300 of them fill more than one 64 KiB lz4 block


def expected(count: int = COUNT) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]], int]]:
    return [(i, b"key-%d" % i, value_of(i), [("n", b"%d" % i)], BASE_TIME + i) for i in range(count)]


def produce(broker: EmbeddedBroker, topic: str, **config: Any) -> list[tuple[bytes, int, int]]:
    """Send the expected records; returns each delivery report as (key, partition, offset)."""
    reports: list[tuple[bytes, int, int]] = []
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            reports.append((message.key(), message.partition(), message.offset()))  # type: ignore[arg-type]

    producer = Producer({"bootstrap.servers": broker.kafka_address, "acks": "all", **config})
    for _, key, value, headers, timestamp in expected():
        sent: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(topic, value, key, headers=sent, timestamp=timestamp, on_delivery=delivered)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert errors == []
    return reports


def read_back(broker: EmbeddedBroker, topic: str, count: int, log: ProtocolLog) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.kafka_address,
            "group.id": "never-joined",  # required by the client; assign() and no commits leave it unused
            "enable.auto.commit": False,
            "debug": "protocol",
            "logger": log.logger,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        messages: list[Message] = []
        deadline = time.monotonic() + 60
        while len(messages) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=count, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
        return messages
    finally:
        consumer.close()


def fields(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in messages]


@pytest.mark.parametrize("codec", list(CODECS))
def test_a_compressed_producer_with_linger_is_delivered_and_read_back(
    kafka_broker: EmbeddedBroker,
    connect: Callable[[EmbeddedBroker], Stubs],
    protocol_log: ProtocolLog,
    codec: str,
) -> None:
    topic = f"confluent-{codec}"
    reports = produce(kafka_broker, topic, **{"linger.ms": 50, "compression.type": codec})
    assert reports == [(b"key-%d" % i, 0, i) for i in range(COUNT)]  # auto-created, one partition
    # Stored as librdkafka built them: in few batches (linger), each compressed with the codec.
    stored = connect(kafka_broker).fetch_one(topic, 0, 0, max_bytes=1 << 24).records
    batches = list(iter_headers(stored))
    assert 1 <= len(batches) < COUNT / 10
    assert {header.compression for _, header in batches} == {librdkafka_compresses_with(codec)}
    if (
        librdkafka_compresses_with(codec) == LZ4
    ):  # librdkafka's frames hold several blocks: each read on its own, as Kafka does
        sections = [stored[pos + HEADER_SIZE : pos + header.size] for pos, header in batches]
        assert max(len(decompress(LZ4, section)) for section in sections) > 64 * 1024
    assert fields(read_back(kafka_broker, topic, COUNT, protocol_log)) == expected()
    assert "FetchRequest" in protocol_log.sent()
    assert not {f"{api}Request" for api in GROUP_APIS} & protocol_log.sent()


@pytest.mark.parametrize("codec", list(CODECS))
def test_librdkafka_reads_the_batches_our_codecs_write(
    kafka_broker: EmbeddedBroker,
    connect: Callable[[EmbeddedBroker], Stubs],
    protocol_log: ProtocolLog,
    codec: str,
) -> None:
    """Our compressors against librdkafka's decompressors: xerial-framed snappy, lz4 frames of several
    independent blocks, gzip and zstd, produced over gRPC and consumed over Kafka."""
    topic = f"ours-{codec}"
    with GrpcProducer(kafka_broker.address, compression=codec, linger_ms=50, batch_size=1 << 20) as producer:
        for _, key, value, headers, timestamp in expected():
            producer.send(topic, value, key=key, headers=headers, timestamp_ms=timestamp)
        producer.flush()
    stored = connect(kafka_broker).fetch_one(topic, 0, 0, max_bytes=1 << 24).records
    batches = list(iter_headers(stored))
    assert {header.compression for _, header in batches} == {CODECS[codec]}
    sections = [stored[pos + HEADER_SIZE : pos + header.size] for pos, header in batches]
    assert max(len(decompress(CODECS[codec], section)) for section in sections) > 64 * 1024  # several blocks
    assert fields(read_back(kafka_broker, topic, COUNT, protocol_log)) == expected()


def test_an_idempotent_producer_gets_ordered_offsets_and_the_grpc_client_reads_them(
    kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs]
) -> None:
    reports = produce(
        kafka_broker, "idempotent", **{"enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4"}
    )
    assert reports == [(b"key-%d" % i, 0, i) for i in range(COUNT)]
    stubs = connect(kafka_broker)
    assert stubs.values("idempotent", 0) == [value for _, _, value, _, _ in expected()]
    stored = stubs.fetch_one("idempotent", 0, 0, max_bytes=1 << 24).records
    assert all(header.producer_id >= 0 for _, header in iter_headers(stored))


def test_offsets_for_times_and_watermarks(kafka_broker: EmbeddedBroker) -> None:
    produce(kafka_broker, "times", **{"linger.ms": 0})
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.kafka_address,
            "group.id": "never-joined",
            "enable.auto.commit": False,
        }
    )
    try:

        def offset_for(timestamp: int) -> int:
            (found,) = consumer.offsets_for_times([TopicPartition("times", 0, timestamp)], timeout=10)
            assert found.error is None
            return int(found.offset)

        assert offset_for(BASE_TIME + 42) == 42  # a record's own timestamp: its offset
        assert offset_for(BASE_TIME - 1000) == 0  # before them all: the first
        assert offset_for(BASE_TIME + 10**9) == -1  # no record that late: Kafka's answer is offset -1
        assert consumer.get_watermark_offsets(TopicPartition("times", 0), timeout=10) == (0, COUNT)
    finally:
        consumer.close()


def _result(futures: dict[str, Any]) -> dict[str, KafkaError | None]:
    """Each topic's outcome: None when it succeeded, else the KafkaError the broker answered."""
    outcome: dict[str, KafkaError | None] = {}
    for topic, future in futures.items():
        try:
            future.result(10)
            outcome[topic] = None
        except KafkaException as exc:
            outcome[topic] = exc.args[0]
    return outcome


def test_admin_creates_lists_and_deletes_topics(kafka_broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.kafka_address})
    created = admin.create_topics(
        [
            NewTopic("three", num_partitions=3, replication_factor=1),
            NewTopic("configured", num_partitions=1, replication_factor=1, config={"retention.ms": "60000"}),
        ],
        operation_timeout=10,
    )
    assert _result(created) == {"three": None, "configured": None}
    topics = admin.list_topics(timeout=10).topics
    assert {"three", "configured"} <= set(topics)
    assert sorted(topics["three"].partitions) == [0, 1, 2]
    assert all(p.leader >= 0 and p.error is None for p in topics["three"].partitions.values())

    again = _result(admin.create_topics([NewTopic("three", 1, 1)], operation_timeout=10))["three"]
    assert again is not None and again.code() == KafkaError.TOPIC_ALREADY_EXISTS
    replicated = _result(admin.create_topics([NewTopic("r3", 1, 3)], operation_timeout=10))["r3"]
    assert replicated is not None and replicated.code() == KafkaError.INVALID_REPLICATION_FACTOR

    assert _result(admin.delete_topics(["three", "configured"], operation_timeout=10)) == {
        "three": None,
        "configured": None,
    }
    assert not {"three", "configured", "r3"} & set(admin.list_topics(timeout=10).topics)
    missing = _result(admin.delete_topics(["three"], operation_timeout=10))["three"]
    assert missing is not None and missing.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
