"""Produce and Fetch over the Kafka listener, at the wire: error codes, acks=0, long-polls, size caps."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from kafka.protocol.consumer import FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from logstore.broker.embedded import EmbeddedBroker

from logstore.records import Record, build_batch, iter_records
from tests.conftest import StartBroker
from tests.kafka_wire import is_closed, kafka_socket, receive, send_request
from tests.waiting import broker_waiters, wait_until

NONE, OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION = 0, 1, 2, 3
MESSAGE_TOO_LARGE, INVALID_TOPIC_EXCEPTION, INVALID_REQUIRED_ACKS = 10, 17, 21
OUT_OF_ORDER_SEQUENCE_NUMBER = 45


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def produce_request(topic: str, records: bytes, acks: int = -1, partition: int = 0) -> ProduceRequest:
    data = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)
        ],
    )
    return ProduceRequest(version=7, acks=acks, timeout_ms=30_000, topic_data=[data])


def produce(
    broker: EmbeddedBroker, topic: str, records: bytes, acks: int = -1, partition: int = 0
) -> tuple[int, int]:
    """(error code, base offset) of one partition's produce."""
    with kafka_socket(broker) as sock:
        send_request(sock, produce_request(topic, records, acks, partition), 1)
        _, body = receive(sock)
    answer = ProduceResponse.decode(body, version=7).responses[0].partition_responses[0]
    return answer.error_code, answer.base_offset


def fetch_request(topic: str, offset: int, *, max_wait_ms: int = 0, min_bytes: int = 0, max_bytes: int = 1 << 20,
                  partition_max_bytes: int = 1 << 20) -> FetchRequest:  # fmt: skip
    partition = FetchRequest.FetchTopic.FetchPartition(
        partition=0, fetch_offset=offset, partition_max_bytes=partition_max_bytes, log_start_offset=-1
    )
    topics = [FetchRequest.FetchTopic(topic=topic, partitions=[partition])]
    return FetchRequest(
        version=11, replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
        isolation_level=0, session_id=0, session_epoch=-1, topics=topics, forgotten_topics_data=[], rack_id="",
    )  # fmt: skip


def test_produce_errors_carry_kafkas_codes(start_broker: StartBroker) -> None:
    broker = start_broker(
        kafka_port=0, auto_create_topics=False, topic_defaults={"max.message.bytes": "2000"}
    )
    core = broker.server.core
    assert core is not None
    broker.run(lambda: core.admin.create("t", 1))
    good = build_batch([b"x"])
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF  # the CRC no longer matches
    assert produce(broker, "t", good) == (NONE, 0)
    assert produce(broker, "t", bytes(corrupt))[0] == CORRUPT_MESSAGE
    assert produce(broker, "t", build_batch([b"y" * 5000]))[0] == MESSAGE_TOO_LARGE
    assert produce(broker, "missing", good)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert produce(broker, "t", good, partition=7)[0] == UNKNOWN_TOPIC_OR_PARTITION
    assert produce(broker, "__consumer_offsets", good)[0] == INVALID_TOPIC_EXCEPTION
    assert produce(broker, "t", good, acks=2)[0] == INVALID_REQUIRED_ACKS


def test_acks_0_gets_no_answer_and_the_next_request_is_answered_next_and_appended_after(
    kafka_broker: EmbeddedBroker,
) -> None:
    with kafka_socket(kafka_broker) as sock:
        send_request(sock, produce_request("t", build_batch([b"a", b"b"]), acks=0), 1)
        send_request(sock, produce_request("t", build_batch([b"c"]), acks=1), 2)
        correlation_id, body = receive(sock)
    assert correlation_id == 2
    answer = ProduceResponse.decode(body, version=7).responses[0].partition_responses[0]
    # Both frames came in one read: the acks=1 request still lands after the acks=0 one before it.
    assert (answer.error_code, answer.base_offset) == (NONE, 2)
    core = kafka_broker.server.core
    assert core is not None
    assert kafka_broker.run(lambda: core.topics.log("t", 0).log_end_offset) == 3


def test_a_long_poll_fetch_is_answered_when_data_arrives(kafka_broker: EmbeddedBroker) -> None:
    produce(kafka_broker, "t", build_batch([b"first"]))
    with kafka_socket(kafka_broker, timeout_s=60) as sock:
        send_request(sock, fetch_request("t", 1, max_wait_ms=60_000, min_bytes=1), 5)
        wait_until(lambda: broker_waiters(kafka_broker) == 1, "the fetch waits inside the broker")
        produce(kafka_broker, "t", build_batch([b"second"]))
        correlation_id, body = receive(sock)
    partition = FetchResponse.decode(body, version=11).responses[0].partitions[0]
    assert correlation_id == 5 and partition.error_code == NONE and partition.high_watermark == 2
    assert [r.value for r in iter_records(partition.records)] == [b"second"]


def test_fetch_returns_whole_batches_within_the_size_caps_and_at_least_one(
    kafka_broker: EmbeddedBroker,
) -> None:
    for i in range(5):
        produce(kafka_broker, "t", build_batch([b"%d-%d" % (i, j) for j in range(10)]))  # offsets 10*i ..
    with kafka_socket(kafka_broker) as sock:
        send_request(sock, fetch_request("t", 23, partition_max_bytes=1), 1)  # smaller than any batch
        one = FetchResponse.decode(receive(sock)[1], version=11).responses[0].partitions[0]
        send_request(sock, fetch_request("t", 0, max_bytes=1 << 20), 2)
        every = FetchResponse.decode(receive(sock)[1], version=11).responses[0].partitions[0]
        send_request(sock, fetch_request("t", 99), 3)
        beyond = FetchResponse.decode(receive(sock)[1], version=11).responses[0].partitions[0]
    assert [r.offset for r in iter_records(one.records)] == list(range(20, 30))  # the batch holding 23, whole
    assert [r.offset for r in iter_records(every.records)] == list(range(50))
    assert (beyond.error_code, beyond.high_watermark, beyond.log_start_offset) == (OFFSET_OUT_OF_RANGE, 50, 0)


def test_list_offsets_earliest_latest_and_by_time(kafka_broker: EmbeddedBroker) -> None:
    for i in range(3):
        produce(
            kafka_broker, "t", build_batch([Record(0, 1_000 * (i + 1), value=b"v")])
        )  # times 1000, 2000, 3000
    queries = [(-2, 0, -1), (-1, 3, -1), (1_500, 1, 2_000), (9_999, -1, -1)]
    with kafka_socket(kafka_broker) as sock:
        for n, (timestamp, offset, found_time) in enumerate(queries):
            partition = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=0, timestamp=timestamp
            )
            topic = ListOffsetsRequest.ListOffsetsTopic(name="t", partitions=[partition])
            send_request(
                sock, ListOffsetsRequest(version=5, replica_id=-1, isolation_level=0, topics=[topic]), n
            )
            answer = ListOffsetsResponse.decode(receive(sock)[1], version=5).topics[0].partitions[0]
            assert (answer.error_code, answer.offset, answer.timestamp) == (NONE, offset, found_time), (
                timestamp
            )


def test_a_client_that_does_not_read_its_answers_is_held_to_its_answer_budget(
    start_broker: StartBroker,
) -> None:
    budget = 1024 * 1024
    broker = start_broker(kafka_port=0, queued_max_response_bytes_per_connection=budget)
    batch = 900 * 1024
    for i in range(16):
        produce(broker, "t", build_batch([bytes([i]) * batch]))
    answers = broker.server.answers
    assert answers is not None
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # the kernel holds little for it
    slow.settimeout(30)
    slow.connect(("127.0.0.1", broker.kafka_port))
    with slow:
        for offset in range(16):  # sixteen fetches, none of whose answers are read yet
            send_request(slow, fetch_request("t", offset, partition_max_bytes=batch), offset)
        waiting = lambda: broker.run(lambda: len(answers._waiting))  # noqa: E731
        wait_until(lambda: waiting() > 0, "fetches of the slow client wait for room in its budget")
        host, port = slow.getsockname()[:2]
        held = broker.run(answers.held_by, f"kafka:{host}:{port}")
        assert 0 < held <= budget + batch + 1024  # past the budget by at most one batch
        # Another client is served meanwhile.
        with kafka_socket(broker) as other:
            send_request(other, fetch_request("t", 15, partition_max_bytes=batch), 99)
            assert receive(other)[0] == 99
        # Once the slow client reads, every answer comes, in order, each with its batch.
        for offset in range(16):
            correlation_id, body = receive(slow)
            partition = FetchResponse.decode(body, version=11).responses[0].partitions[0]
            assert correlation_id == offset
            assert [r.offset for r in iter_records(partition.records)] == [offset]
    wait_until(lambda: broker.run(lambda: answers.in_use) == 0, "every byte held is given back")


def test_an_idempotent_retry_is_answered_with_the_first_offsets_and_a_gap_is_out_of_order(
    kafka_broker: EmbeddedBroker,
) -> None:
    core = kafka_broker.server.core
    assert core is not None
    producer_id, epoch = kafka_broker.run(core.init_producer_id)
    produce(kafka_broker, "t", build_batch([b"other"]))  # offset 0, so the retried batch is not at 0
    first = build_batch([b"a", b"b"], producer_id=producer_id, producer_epoch=epoch, base_sequence=0)
    assert produce(kafka_broker, "t", first) == (NONE, 1)
    assert produce(kafka_broker, "t", first) == (NONE, 1)  # a retry: deduplicated, not appended again
    gap = build_batch([b"c"], producer_id=producer_id, producer_epoch=epoch, base_sequence=5)
    assert produce(kafka_broker, "t", gap)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert kafka_broker.run(lambda: core.topics.log("t", 0).log_end_offset) == 3


def test_a_stopping_broker_answers_a_waiting_long_poll_before_it_closes_the_connection(
    kafka_broker: EmbeddedBroker,
) -> None:
    produce(kafka_broker, "t", build_batch([b"only"]))
    with kafka_socket(kafka_broker, timeout_s=60) as sock:
        send_request(sock, fetch_request("t", 1, max_wait_ms=60_000, min_bytes=1), 8)
        wait_until(lambda: broker_waiters(kafka_broker) == 1, "the fetch waits inside the broker")
        stopping = threading.Thread(target=kafka_broker.stop)
        stopping.start()
        correlation_id, body = receive(sock)
        partition = FetchResponse.decode(body, version=11).responses[0].partitions[0]
        assert (correlation_id, partition.error_code, partition.records) == (8, NONE, b"")
        assert is_closed(sock)
        stopping.join()


def test_a_connection_reads_no_request_that_would_not_fit_beside_unanswered_ones(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(
        kafka_port=0, max_request_bytes=256 * 1024, topic_defaults={"max.message.bytes": "200000"}
    )
    core, listener = broker.server.core, broker.server.kafka
    assert core is not None and listener is not None
    release: asyncio.Event = broker.run(asyncio.Event)
    started: list[int] = []
    append = core.produce

    async def held_produce(*args: Any) -> Any:  # the first produce waits until the test lets it go on
        # (acks=all's path: acks 1 is appended and answered at once, with nothing to hold)
        started.append(len(started))
        await release.wait()
        return await append(*args)

    broker.run(setattr, core, "produce", held_produce)
    with kafka_socket(broker) as sock:
        for n in range(3):  # 150 KB each: two do not fit in 256 KiB
            send_request(sock, produce_request("t", build_batch([bytes([n]) * 150_000]), acks=-1), n)
        wait_until(lambda: started == [0], "the first produce is held")
        (connection,) = broker.run(lambda: list(listener._connections))
        wait_until(lambda: broker.run(lambda: connection.reading_paused), "the reader waits for room")
        assert started == [0] and 150_000 < broker.run(lambda: connection.unanswered_bytes) < 256 * 1024
        broker.run(release.set)
        answers = [receive(sock) for _ in range(3)]
    offsets = [
        ProduceResponse.decode(body, version=7).responses[0].partition_responses[0].base_offset
        for _, body in answers
    ]
    assert [correlation_id for correlation_id, _ in answers] == [0, 1, 2] and offsets == [0, 1, 2]
