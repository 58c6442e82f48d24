"""aiokafka against the Kafka listener: a producer and an assigned consumer round trip, each codec."""

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
