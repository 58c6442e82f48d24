"""The producer against a real broker: delivery, partitioning, ordering, idempotent retries, limits."""

from __future__ import annotations

import itertools
import socket
from collections import defaultdict

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Producer, RecordMetadata
from logstore.client.producer.partitioner import key_partition
from logstore.client.shared.errors import (
    BufferExhaustedError,
    ClosedError,
    DeliveryTimeoutError,
    RecordTooLargeError,
    SerializationError,
    UnknownPartitionError,
    UnknownTopicError,
)

from tests.test_client_support import LoseAnswers, read_partition, read_topic


def create(broker: EmbeddedBroker, name: str, partitions: int, **config: str) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic(name, partitions, config)


def test_send_returns_metadata_and_records_read_back(broker: EmbeddedBroker) -> None:
    create(broker, "t", 1)
    with Producer(broker.address) as producer:
        first = producer.send("t", b"a", headers=[("trace", b"1")], timestamp_ms=1_700_000_000_000).get(10)
        second = producer.send("t", b"b", key=b"k").get(10)
    assert first == RecordMetadata("t", 0, 0, 1_700_000_000_000)
    assert (second.offset, second.partition) == (1, 0)
    records = read_partition(broker.address, "t", 0)
    assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
        (0, None, b"a", [("trace", b"1")]),
        (1, b"k", b"b", []),
    ]
    assert records[0].timestamp == 1_700_000_000_000


def test_keys_go_to_murmur3_partitions_in_order(broker: EmbeddedBroker) -> None:
    create(broker, "keyed", 4)
    keys = [f"customer-{i}".encode() for i in range(12)]
    with Producer(broker.address, linger_ms=1, batch_size=1024) as producer:
        futures = [
            (key, n, producer.send("keyed", str(n).encode(), key=key)) for n in range(40) for key in keys
        ]
        producer.flush(timeout=30)
    for key, _, future in futures:
        assert future.get(0).partition == key_partition(key, 4)
    per_key = defaultdict(list)
    for partition, records in read_topic(broker.address, "keyed", 4).items():
        for record in records:
            assert record.key is not None and record.value is not None
            assert key_partition(record.key, 4) == partition
            per_key[record.key].append(int(record.value))
    assert all(values == list(range(40)) for values in per_key.values())


def test_keyless_records_stick_to_a_partition_per_batch(broker: EmbeddedBroker) -> None:
    create(broker, "spread", 4)
    with Producer(broker.address, batch_size=1024, linger_ms=1000) as producer:
        futures = [producer.send("spread", b"x" * 100) for _ in range(200)]
        producer.flush(timeout=30)
    partitions = [f.get(0).partition for f in futures]
    runs = sum(1 for a, b in itertools.pairwise(partitions) if a != b) + 1
    batches = len({id(f._outcome) for f in futures})
    assert batches > 10 and len(set(partitions)) > 1
    assert runs == batches  # a new partition exactly when a batch completes


def test_explicit_partition_and_unknown_partition(broker: EmbeddedBroker) -> None:
    create(broker, "p", 3)
    with Producer(broker.address) as producer:
        assert producer.send("p", b"x", partition=2).get(10).partition == 2
        with pytest.raises(UnknownPartitionError, match="partitions 0 to 2"):
            producer.send("p", b"x", partition=3)
        assert producer.partitions_for("p") == {0, 1, 2}


@pytest.mark.parametrize("acks", [0, 1, "all"])
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_acks_and_compression(broker: EmbeddedBroker, acks: int | str, compression: str) -> None:
    topic = f"c-{compression}-{acks}"
    create(broker, topic, 1)
    with Producer(broker.address, acks=acks, compression=compression) as producer:
        futures = [producer.send(topic, f"value-{i}".encode() * 10) for i in range(100)]
        producer.flush(timeout=30)
    offsets = [f.get(0).offset for f in futures]
    assert offsets == ([-1] * 100 if acks == 0 else list(range(100)))
    assert [r.value for r in read_partition(broker.address, topic, 0)] == [
        f"value-{i}".encode() * 10 for i in range(100)
    ]


def test_serializers(broker: EmbeddedBroker) -> None:
    create(broker, "json", 1)
    with Producer(broker.address, key_serializer="str", value_serializer="json") as producer:
        producer.send("json", {"n": 1}, key="k1").get(10)
        producer.send("json", None, key="gone").get(10)  # a tombstone stays a null value
        with pytest.raises(SerializationError, match="json"):
            producer.send("json", {1, 2})
    records = read_partition(broker.address, "json", 0)
    assert [(r.key, r.value) for r in records] == [(b"k1", b'{"n":1}'), (b"gone", None)]


def test_wrong_value_type_without_serializer_is_refused_at_once(broker: EmbeddedBroker) -> None:
    with Producer(broker.address) as producer, pytest.raises(SerializationError, match="must be bytes"):
        producer.send("t2", "text")


def test_record_too_large_fails_only_its_own_future(broker: EmbeddedBroker) -> None:
    create(broker, "big", 1)
    with Producer(broker.address, max_request_size=10_000, batch_size=5000) as producer:
        small = producer.send("big", b"ok")
        large = producer.send("big", b"x" * 20_000)
        assert large.failed()
        with pytest.raises(RecordTooLargeError, match="max_request_size=10000"):
            large.get(0)
        assert small.get(10).offset == 0


def test_batch_larger_than_the_topic_limit_fails_with_the_brokers_reason(broker: EmbeddedBroker) -> None:
    create(broker, "small-limit", 1, **{"max.message.bytes": "2000"})
    with Producer(broker.address, batch_size=8000, linger_ms=50) as producer:
        futures = [producer.send("small-limit", b"y" * 500) for _ in range(10)]
        producer.flush(timeout=30)
    with pytest.raises(RecordTooLargeError, match="small-limit-0"):
        futures[0].get(0)


def test_new_topic_is_created_with_the_brokers_default_partitions(start_broker) -> None:
    broker = start_broker(default_partitions=3)
    with Producer(broker.address) as producer:
        assert producer.send("fresh", b"x", key=b"k").get(10).partition == key_partition(b"k", 3)
    with Admin(broker.address) as admin:
        assert admin.list_topics()["fresh"] == 3


def test_unknown_topic_without_auto_creation(broker: EmbeddedBroker) -> None:
    with Producer(broker.address, auto_create_topics=False) as producer, pytest.raises(UnknownTopicError):
        producer.send("nope", b"x")


def test_a_producer_never_creates_topics_behind_a_broker_that_does_not(start_broker) -> None:
    broker = start_broker(auto_create_topics=False)
    with Producer(broker.address, max_block_ms=2000) as producer, pytest.raises(UnknownTopicError):
        producer.send("nope", b"x", key=b"k")
    with Admin(broker.address) as admin:
        assert "nope" not in admin.list_topics()


def test_flush_waits_for_everything_and_close_is_idempotent(broker: EmbeddedBroker) -> None:
    create(broker, "f", 2)
    producer = Producer(broker.address, linger_ms=60_000, delivery_timeout_ms=120_000)
    futures = [producer.send("f", b"x", key=bytes([i])) for i in range(50)]
    assert not any(f.done() for f in futures)  # lingering: nothing sent yet
    producer.flush(timeout=30)
    assert all(f.succeeded() for f in futures)
    last = producer.send("f", b"last")
    producer.close()
    assert last.succeeded()
    producer.close()
    with pytest.raises(ClosedError):
        producer.send("f", b"x")


def test_close_zero_fails_what_is_unsent(broker: EmbeddedBroker) -> None:
    producer = Producer(broker.address, linger_ms=60_000, delivery_timeout_ms=120_000)
    future = producer.send("z", b"x")
    producer.close(0)
    with pytest.raises(ClosedError, match="closed before"):
        future.get(5)


def test_callbacks_run_on_delivery(broker: EmbeddedBroker) -> None:
    create(broker, "cb", 1)
    seen: list[object] = []
    with Producer(broker.address) as producer:
        producer.send("cb", b"x").add_callback(seen.append).add_errback(seen.append)
    assert isinstance(seen[0], RecordMetadata)
    assert seen == [RecordMetadata("cb", 0, 0, seen[0].timestamp)]


def test_several_batches_of_a_partition_in_one_call_get_consecutive_offsets(broker: EmbeddedBroker) -> None:
    """Batches waiting while a call is in flight go together in the next call, as one entry: each
    record's offset is still its place in the partition."""
    create(broker, "grouped", 1)
    values = [b"%04d" % n + b"x" * 60 for n in range(400)]
    with Producer(broker.address, batch_size=512) as producer:
        futures = [producer.send("grouped", value) for value in values]
        producer.flush(timeout=30)
    assert [future.get(0).offset for future in futures] == list(range(len(values)))
    assert [r.value for r in read_partition(broker.address, "grouped", 0)] == values


# --- idempotence under faults ---------------------------------------------------------------------------------------


def test_lost_answers_are_retried_without_duplicates(broker: EmbeddedBroker) -> None:
    create(broker, "dedup", 1)
    faults = LoseAnswers(lambda n: n in (1, 3))  # the broker appends, the producer never hears
    with Producer(
        broker.address, linger_ms=0, retry_backoff_ms=1, interceptors=[faults], produce_transport="unary"
    ) as producer:
        futures = [producer.send("dedup", f"{i}".encode()) for i in range(5)]
        producer.flush(timeout=30)
        futures += [producer.send("dedup", f"{i}".encode()) for i in range(5, 10)]
        producer.flush(timeout=30)
    assert faults.lost == 2
    assert [f.get(0).offset for f in futures] == list(range(10))  # the retried batch got its original offsets
    assert [r.value for r in read_partition(broker.address, "dedup", 0)] == [
        str(i).encode() for i in range(10)
    ]


def test_order_per_key_survives_faults_with_five_requests_in_flight(broker: EmbeddedBroker) -> None:
    create(broker, "chaos", 3)
    faults = LoseAnswers(lambda n: n % 4 == 0)
    faults_before = LoseAnswers(lambda n: n % 7 == 0, before=True)
    keys = [f"k{i}".encode() for i in range(9)]
    with Producer(
        broker.address,
        batch_size=512,
        max_request_size=1536,  # small requests: many calls, so many faults, with batches grouped
        linger_ms=0,
        max_in_flight=5,
        retry_backoff_ms=1,
        interceptors=[faults, faults_before],
        produce_transport="unary",  # faults in unary calls (the stream: test_client_producer_stream.py)
    ) as producer:
        for n in range(150):
            for key in keys:
                producer.send("chaos", b"%d" % n, key=key)
        producer.flush(timeout=60)
    # 1,350 records of about 13 bytes in requests of at most 1,536 bytes need at least 13 calls however
    # the adaptive batching groups them, so calls 4, 8, 12 and 7 are always among them.
    assert faults.lost >= 3 and faults_before.lost >= 1
    per_key = defaultdict(list)
    for records in read_topic(broker.address, "chaos", 3).values():
        for record in records:
            assert record.value is not None
            per_key[record.key].append(int(record.value))
    assert {key: values for key, values in per_key.items()} == {key: list(range(150)) for key in keys}


# --- the broker is away ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metadata_wait_gives_up_after_max_block_ms() -> None:
    with Producer(f"127.0.0.1:{free_port()}", max_block_ms=200) as producer:
        with pytest.raises(BufferExhaustedError, match="max_block_ms"):
            producer.send("t", b"x")
        producer.close(0)


def test_records_expire_after_delivery_timeout_when_the_broker_is_gone(start_broker) -> None:
    broker = start_broker()
    create(broker, "gone", 1)
    producer = Producer(broker.address, request_timeout_ms=200, delivery_timeout_ms=600, retry_backoff_ms=20)
    producer.send("gone", b"first").get(10)
    broker.stop()
    future = producer.send("gone", b"second")
    with pytest.raises(DeliveryTimeoutError, match="delivery_timeout_ms=600"):
        future.get(30)
    producer.close(0)


def test_full_buffer_blocks_then_raises(start_broker) -> None:
    broker = start_broker()
    create(broker, "full", 1)
    producer = Producer(
        broker.address,
        batch_size=1024,
        buffer_memory=2048,
        max_block_ms=300,
        linger_ms=0,
        request_timeout_ms=30_000,
    )
    producer.send("full", b"x").get(10)
    broker.stop()
    with pytest.raises(BufferExhaustedError, match="buffer_memory"):
        for _ in range(100):
            producer.send("full", b"y" * 600)
    producer.close(0)
