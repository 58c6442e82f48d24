"""The clients' ``metrics()`` (kafka-python's habit): counts that match what was sent and read, against
a real broker, for the threaded and the asyncio producer and consumer; retries counted in the pure core."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Consumer, Producer
from logstore.client.aio import AsyncConsumer, AsyncProducer
from logstore.client.shared.errors import NotAvailableError
from logstore.client.shared.metrics import consumer_meter, producer_meter

from tests.test_client_accumulator import make, three_in_flight

COUNT = 1000


def size_of(broker: EmbeddedBroker, topic: str) -> int:
    return broker.run(lambda: broker.server.core.manager.log(topic, 0).size_in_bytes)  # type: ignore[union-attr]


def check_producer(metrics: dict[str, dict[str, float]]) -> None:
    values = metrics["producer-metrics"]
    assert values["record-send-total"] == COUNT
    assert values["record-error-total"] == values["record-retry-total"] == 0
    assert values["request-total"] >= 1
    assert 0 < values["request-latency-avg"] <= values["request-latency-max"]
    assert 0 < values["batch-size-avg"] <= values["batch-size-max"]
    assert values["records-per-batch-max"] <= COUNT


def check_consumer(metrics: dict[str, dict[str, float]], size: int) -> None:
    values = metrics["consumer-fetch-manager-metrics"]
    assert values["records-consumed-total"] == COUNT
    assert values["bytes-fetched-total"] == size, "every batch fetched once"
    assert values["fetch-total"] >= 1 and values["fetch-error-total"] == 0
    assert values["fetch-latency-max"] >= values["fetch-latency-avg"] > 0


def test_the_threaded_clients_count_what_they_sent_and_read(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic("counted", 1)
    with Producer(broker.address) as producer:
        assert producer.metrics()["producer-metrics"]["record-send-total"] == 0
        for i in range(COUNT):
            producer.send("counted", b"value-%d" % i)
        producer.flush()
        check_producer(producer.metrics())
    with Consumer("counted", bootstrap=broker.address, auto_offset_reset="earliest") as consumer:
        got = 0
        deadline = time.monotonic() + 60
        while got < COUNT:
            assert time.monotonic() < deadline
            got += sum(len(records) for records in consumer.poll(timeout_ms=100).values())
        check_consumer(consumer.metrics(), size_of(broker, "counted"))


def test_the_asyncio_clients_count_what_they_sent_and_read(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:
        admin.create_topic("counted", 1)

    async def main() -> None:
        async with AsyncProducer(broker.address) as producer:
            for i in range(COUNT):
                await producer.send("counted", b"value-%d" % i)
            await producer.flush()
            check_producer(producer.metrics())
        async with AsyncConsumer(
            "counted", bootstrap_servers=broker.address, auto_offset_reset="earliest"
        ) as consumer:
            got = 0
            while got < COUNT:
                got += sum(len(records) for records in (await consumer.getmany(timeout_ms=100)).values())
            check_consumer(consumer.metrics(), size_of(broker, "counted"))

    asyncio.run(asyncio.wait_for(main(), 60))


def test_records_refused_for_good_are_errors(broker: EmbeddedBroker) -> None:
    with Admin(broker.address) as admin:  # a compacted topic refuses records without a key
        admin.create_topic("keyed", 1, config={"cleanup.policy": "compact"})
    with Producer(broker.address) as producer:
        futures = [producer.send("keyed", b"no key") for _ in range(10)]
        producer.flush()
        assert all(future.exception() is not None for future in futures)
        values = producer.metrics()["producer-metrics"]
    assert values["record-error-total"] == 10 and values["record-send-total"] == 0


def test_a_retried_batch_counts_its_records_as_retries() -> None:
    acc = make()
    a = three_in_flight(acc)[0]
    acc.fail(a, NotAvailableError("closing"), 1.0, uncertain=False)
    values = acc.metrics.snapshot()["producer-metrics"]
    assert values["record-retry-total"] == a.record_count
    assert values["record-error-total"] == 0


def test_the_documented_client_metrics_are_the_ones_returned() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "client-metrics.md").read_text()
    sections = dict(re.findall(r"group `([\w-]+)`\n\n((?:.*\n)+?)\n", text))
    for meter in (producer_meter(), consumer_meter()):
        rows = re.findall(r"^\| (`[\w-]+`(?:, `[\w-]+`)*) \|", sections[meter.group], re.MULTILINE)
        documented = {name for row in rows for name in re.findall(r"`([\w-]+)`", row)}
        assert documented == set(meter.snapshot()[meter.group]), meter.group
