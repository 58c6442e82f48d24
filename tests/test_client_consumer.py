"""The consumer against a real broker: assign, poll and iterate, positions and seeks, replay by time,
pause, out-of-range handling, following topics without a group."""

from __future__ import annotations

import threading

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Consumer, OffsetAndTimestamp, Producer, TopicPartition
from logstore.client.shared.errors import (
    IllegalStateError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    UnknownTopicError,
)

from tests.waiting import wait_until

TP = TopicPartition("t", 0)


def fill(
    broker: EmbeddedBroker, topic: str = "t", partitions: int = 1, count: int = 100, **send: object
) -> None:
    """Create ``topic`` and write ``count`` records per partition, values b"0", b"1", ... in order."""
    with Admin(broker.address) as admin:
        admin.create_topic(topic, partitions)
    with Producer(broker.address, linger_ms=0, batch_size=1024) as producer:
        for partition in range(partitions):
            for i in range(count):
                producer.send(topic, str(i).encode(), partition=partition, **send)  # type: ignore[arg-type]


def consumer_for(broker: EmbeddedBroker, *partitions: TopicPartition, **settings: object) -> Consumer:
    settings.setdefault("auto_offset_reset", "earliest")
    consumer = Consumer(bootstrap=broker.address, **settings)  # type: ignore[arg-type]
    if partitions:
        consumer.assign(partitions)
    return consumer


def poll_values(consumer: Consumer, tp: TopicPartition = TP, want: int = 1, **poll: object) -> list[bytes]:
    """Poll until ``want`` records of ``tp`` came (each poll waits up to 10 s), returning their values."""
    got: list[bytes] = []
    while len(got) < want:
        records = consumer.poll(timeout_ms=10_000, **poll).get(tp)  # type: ignore[arg-type]
        assert records, f"no records of {tp} within 10 s"
        got.extend(r.value for r in records)  # type: ignore[misc]
    return got


def test_poll_returns_records_by_partition_and_moves_the_position(broker: EmbeddedBroker) -> None:
    fill(broker, count=30)
    with consumer_for(broker, TP) as consumer:
        assert consumer.assignment() == {TP}
        records = consumer.poll(timeout_ms=10_000, max_records=10)
        assert list(records) == [TP]
        assert [r.offset for r in records[TP]][:1] == [0] and len(records[TP]) <= 10
        assert consumer.position(TP) == records[TP][-1].offset + 1
        rest = poll_values(consumer, want=30 - len(records[TP]))
        assert rest[-1] == b"29" and consumer.position(TP) == 30
        assert consumer.highwater(TP) == 30 and consumer.lag(TP) == 0
        assert consumer.poll(timeout_ms=0) == {}


def test_iteration_until_consumer_timeout(broker: EmbeddedBroker) -> None:
    fill(broker, count=250)
    with consumer_for(broker, TP, consumer_timeout_ms=300, max_poll_records=100) as consumer:
        values = [r.value for r in consumer]
        assert values == [str(i).encode() for i in range(250)]
        assert next(iter(consumer), None) is None  # still nothing: the iteration ends again


def test_poll_without_assignment_and_seek_outside_it_are_refused(broker: EmbeddedBroker) -> None:
    with consumer_for(broker) as consumer, pytest.raises(IllegalStateError, match="assign"):
        consumer.poll()
    with consumer_for(broker, TP) as consumer, pytest.raises(IllegalStateError, match="not assigned"):
        consumer.seek(TopicPartition("t", 5), 0)


def test_seek_into_a_batch_skips_the_records_before(broker: EmbeddedBroker) -> None:
    fill(broker, count=50)
    with consumer_for(broker, TP) as consumer:
        consumer.seek(TP, 17)
        assert consumer.position(TP) == 17
        assert poll_values(consumer)[0] == b"17"
        consumer.seek(TP, 3)
        assert poll_values(consumer)[0] == b"3"


def test_seek_to_beginning_and_end(broker: EmbeddedBroker) -> None:
    fill(broker, count=20)
    with consumer_for(broker, TP, auto_offset_reset="latest") as consumer:
        assert consumer.position(TP) == 20
        consumer.seek_to_beginning(TP)
        assert consumer.position(TP) == 0
        assert poll_values(consumer)[0] == b"0"
        consumer.seek_to_end()
        assert consumer.position(TP) == 20
        with Producer(broker.address) as producer:
            producer.send("t", b"new").get(10)
        assert poll_values(consumer) == [b"new"]


def test_offset_lookups_and_replay_by_time(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic("t", 1)
    with Producer(broker.address, linger_ms=0) as producer:
        for i in range(10):  # one batch per timestamp
            producer.send("t", b"%d" % i, timestamp_ms=1_000_000 + i * 1000).get(10)
    with consumer_for(broker, TP) as consumer:
        assert consumer.beginning_offsets([TP]) == {TP: 0}
        assert consumer.end_offsets([TP]) == {TP: 10}
        found = consumer.offsets_for_times({TP: 1_004_500})
        assert found == {TP: OffsetAndTimestamp(5, 1_005_000)}
        assert consumer.offsets_for_times({TP: 9_999_999_999}) == {TP: None}
        consumer.seek(TP, found[TP].offset)  # type: ignore[union-attr]
        assert poll_values(consumer, want=5) == [b"%d" % i for i in range(5, 10)]
        with pytest.raises(ValueError, match="non-negative"):
            consumer.offsets_for_times({TP: -1})
        with pytest.raises(UnknownTopicError):
            consumer.end_offsets([TopicPartition("missing", 0)])


def test_pause_keeps_a_partition_back_until_resume(broker: EmbeddedBroker) -> None:
    fill(broker, partitions=2, count=10)
    one, two = TopicPartition("t", 0), TopicPartition("t", 1)
    with consumer_for(broker, one, two) as consumer:
        consumer.pause(one)
        assert consumer.paused() == {one}
        assert poll_values(consumer, two, want=10) == [b"%d" % i for i in range(10)]
        assert consumer.poll(timeout_ms=200) == {}
        assert consumer.position(one) == 0
        consumer.resume(one)
        assert consumer.paused() == set()
        assert poll_values(consumer, one, want=10)[0] == b"0"


@pytest.mark.parametrize(("strategy", "first"), [("earliest", b"0"), ("latest", b"late")])
def test_out_of_range_position_is_reset_by_auto_offset_reset(
    broker: EmbeddedBroker, strategy: str, first: bytes
) -> None:
    fill(broker, count=5)
    with consumer_for(broker, TP, auto_offset_reset=strategy) as consumer:
        consumer.seek(TP, 1000)
        if strategy == "latest":
            # The record sent next must land after the reset, so wait for the reset itself (the
            # fetcher's out-of-range answer moves the position to the end, 5), not for a fixed time.
            def reset_to_the_end() -> bool:
                assert consumer.poll(timeout_ms=50) == {}
                return consumer.position(TP) == 5

            wait_until(reset_to_the_end, "the out-of-range position is reset to the end")
            with Producer(broker.address) as producer:
                producer.send("t", b"late").get(10)
        assert poll_values(consumer)[0] == first


def test_without_a_reset_strategy_errors_reach_the_application(broker: EmbeddedBroker) -> None:
    fill(broker, count=5)
    with consumer_for(broker, TP, auto_offset_reset="none") as consumer:
        with pytest.raises(NoOffsetForPartitionError, match="seek"):
            consumer.position(TP)
        with pytest.raises(NoOffsetForPartitionError):
            consumer.poll(timeout_ms=10_000)
        consumer.seek(TP, 1000)
        with pytest.raises(OffsetOutOfRangeError, match="t-0") as raised:
            consumer.poll(timeout_ms=10_000)
        assert (raised.value.log_start_offset, raised.value.high_watermark) == (0, 5)
        consumer.seek(TP, 2)
        assert poll_values(consumer)[0] == b"2"


def test_unknown_topic_is_reported(broker: EmbeddedBroker) -> None:
    with consumer_for(broker, TopicPartition("missing", 0)) as consumer, pytest.raises(UnknownTopicError):
        consumer.poll(timeout_ms=10_000)


def test_following_topics_without_a_group_reads_every_partition(broker: EmbeddedBroker) -> None:
    fill(broker, "a", partitions=2, count=5)
    with Consumer("a", bootstrap=broker.address, auto_offset_reset="earliest") as consumer:
        assert consumer.subscription() == {"a"}
        seen: dict[int, list[bytes]] = {0: [], 1: []}
        while sum(map(len, seen.values())) < 10:
            for tp, records in consumer.poll(timeout_ms=10_000).items():
                seen[tp.partition].extend(r.value for r in records)  # type: ignore[misc]
        assert seen == {p: [b"%d" % i for i in range(5)] for p in (0, 1)}
        with Admin(broker.address) as admin:
            admin.create_partitions({"a": 3})
        with Producer(broker.address) as producer:
            producer.send("a", b"in-new", partition=2).get(10)
        assert poll_values(consumer, TopicPartition("a", 2)) == [b"in-new"]
        with pytest.raises(IllegalStateError, match="unsubscribe"):
            consumer.assign([TP])
        consumer.unsubscribe()
        consumer.assign([TopicPartition("a", 0)])


def test_deserializers(broker: EmbeddedBroker) -> None:
    with Producer(broker.address, key_serializer="str", value_serializer="json") as producer:
        producer.send("j", {"n": 1}, key="a").get(10)
    with consumer_for(
        broker,
        TopicPartition("j", 0),
        key_deserializer="str",
        value_deserializer="json",
        consumer_timeout_ms=300,
    ) as consumer:
        assert [(r.key, r.value) for r in consumer] == [("a", {"n": 1})]


def test_long_poll_returns_when_a_record_arrives(broker: EmbeddedBroker) -> None:
    fill(broker, count=0)
    with consumer_for(broker, TP, fetch_max_wait_ms=60_000) as consumer:
        assert consumer.poll(timeout_ms=100) == {}
        with Producer(broker.address) as producer:
            producer.send("t", b"wake").get(10)
        assert poll_values(consumer) == [b"wake"]


def test_close_from_another_thread_ends_a_waiting_iteration(broker: EmbeddedBroker) -> None:
    fill(broker, count=1)
    consumer = consumer_for(broker, TP)
    got: list[bytes] = []
    ended = threading.Event()

    def read() -> None:
        for record in consumer:
            got.append(record.value)  # type: ignore[arg-type]
        ended.set()

    reader = threading.Thread(target=read)
    reader.start()
    while not got:
        ended.wait(0.01)
    consumer.close()
    reader.join(10)
    assert ended.is_set() and got == [b"0"]
    consumer.close()
