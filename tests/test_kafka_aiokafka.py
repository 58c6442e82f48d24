"""aiokafka against the Kafka listener: a producer and an assigned consumer round trip in each codec; a
group member's commit, seek and resume."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from logstore.broker.embedded import EmbeddedBroker

from logstore.records import iter_headers
from tests.conftest import StartBroker, Stubs

COUNT = 100


async def round_trip(
    address: str, compression_type: str | None = None
) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=address,
        acks="all",
        enable_idempotence=True,
        compression_type=compression_type,
        linger_ms=20 if compression_type else 0,
    )
    await producer.start()
    try:
        pending = [
            await producer.send("aio", b"value-%d" % i, key=b"key-%d" % i, headers=[("n", b"%d" % i)])
            for i in range(COUNT)
        ]
        sent = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    assert [(m.partition, m.offset) for m in sent] == [(0, i) for i in range(COUNT)]
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition("aio", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records: list[Any] = []
        while len(records) < COUNT:
            batches = await consumer.getmany(tp, timeout_ms=10_000)
            assert batches, "no records within 10 s"
            records.extend(batches[tp])
        return [(r.offset, r.key, r.value, list(r.headers)) for r in records]
    finally:
        await consumer.stop()


CODECS = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.parametrize("compression_type", list(CODECS))
def test_aiokafka_producer_and_consumer_round_trip(
    start_broker: StartBroker, connect: Callable[[EmbeddedBroker], Stubs], compression_type: str | None
) -> None:
    broker: EmbeddedBroker = start_broker(kafka_port=0)
    got = asyncio.run(round_trip(broker.kafka_address, compression_type))
    stored = connect(broker).fetch_one("aio", 0, 0, max_bytes=1 << 24).records
    assert {h.compression for _, h in iter_headers(stored)} == {CODECS[compression_type]}
    assert got == [(i, b"key-%d" % i, b"value-%d" % i, [("n", b"%d" % i)]) for i in range(COUNT)]


async def group_run(address: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait("aio-group", b"job-%d" % i)
    finally:
        await producer.stop()
    tp = TopicPartition("aio-group", 0)

    async def member() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            "aio-group",
            bootstrap_servers=address,
            group_id="aio-workers",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        return consumer

    consumer = await member()
    try:
        first: list[Any] = []
        while len(first) < 10:
            batches = await consumer.getmany(tp, timeout_ms=10_000, max_records=10 - len(first))
            assert batches, "no records within 10 s"
            first.extend(batches[tp])
        assert [r.offset for r in first] == list(range(10))
        await consumer.commit()  # the group's position: 10
        assert await consumer.committed(tp) == 10
        consumer.seek(tp, 15)  # seek moves the position, not the committed offset
        after_seek = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
        assert [r.offset for r in after_seek[tp]] == [15]
        await consumer.commit({tp: 16})
    finally:
        await consumer.stop()
    consumer = await member()  # a new member of the group starts at the commit
    try:
        rest: list[Any] = []
        while len(rest) < 4:
            batches = await consumer.getmany(tp, timeout_ms=10_000)
            assert batches, "no records within 10 s"
            rest.extend(batches[tp])
        assert [r.offset for r in rest] == [16, 17, 18, 19]
    finally:
        await consumer.stop()


def test_a_group_member_commits_seeks_and_a_new_member_resumes_at_the_commit(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(kafka_port=0)
    asyncio.run(group_run(broker.kafka_address))
