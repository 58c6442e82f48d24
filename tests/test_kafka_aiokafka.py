"""aiokafka against the Kafka listener: a producer and an assigned consumer round trip."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from logstore.broker.embedded import EmbeddedBroker

from tests.conftest import StartBroker

COUNT = 100


async def round_trip(address: str) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                "aio", b"value-%d" % i, key=b"key-%d" % i, headers=[("n", b"%d" % i)]
            )
            for i in range(COUNT)
        ]
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


def test_aiokafka_producer_and_consumer_round_trip(start_broker: StartBroker) -> None:
    broker: EmbeddedBroker = start_broker(kafka_port=0)
    got = asyncio.run(round_trip(broker.kafka_address))
    assert got == [(i, b"key-%d" % i, b"value-%d" % i, [("n", b"%d" % i)]) for i in range(COUNT)]
