"""``--async`` for ``perf produce`` and ``perf consume``: the same runs through ``logstore.client.aio``.

Each mirrors its threaded run (same records, same clock, same sampling): the producer calls
``send_nowait`` for every record and awaits only the sampled futures' callbacks, as the threaded run
ignores the other futures; the consumer reads with ``async for``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from logstore.bench.perf.common import end_offsets_total, ensure_topic
from logstore.bench.perf.stats import summarize

if TYPE_CHECKING:
    from logstore.bench.perf.consume import ConsumeResult, ConsumeSettings
    from logstore.bench.perf.produce import ProduceResult, ProduceSettings
    from logstore.client.producer.futures import RecordFuture


def run_produce_async(address: str, settings: ProduceSettings) -> ProduceResult:
    """``run_produce`` through an ``AsyncProducer`` in one event loop (no throttle, no progress lines)."""
    from logstore.bench.perf.produce import ProduceResult, _chunks

    ensure_topic(address, settings.topic, settings.partitions)
    before = end_offsets_total(address, settings.topic)
    n = settings.num_records
    chunks = _chunks(settings, settings.stride)
    samples: list[int] = []
    errors: list[BaseException] = []
    clock_ns = time.perf_counter_ns

    def sampled(started_ns: int) -> Callable[[RecordFuture], None]:
        def done(future: RecordFuture) -> None:
            error = future.exception()
            if error is not None:
                errors.append(error)
            else:
                samples.append(clock_ns() - started_ns)

        return done

    async def main() -> tuple[float, float]:
        from logstore.client.aio import AsyncProducer

        async with AsyncProducer(address, **_kafka_names(settings.producer_config())) as producer:
            await producer.partitions_for(settings.topic)
            send = producer.send_nowait
            topic = settings.topic
            keyed = settings.key_cardinality > 0
            started = time.perf_counter()
            sent = 0
            chunk_index = 0
            while sent < n:
                first, rest = chunks[chunk_index]
                chunk_index = chunk_index + 1 if chunk_index + 1 < len(chunks) else 0
                if sent + 1 + len(rest) > n:
                    rest = rest[: n - sent - 1]
                send(topic, first[0], first[1]).add_done_callback(sampled(clock_ns()))
                if keyed:
                    for value, key in rest:
                        send(topic, value, key)
                else:
                    for value in rest:
                        send(topic, value)
                sent += 1 + len(rest)
                await asyncio.sleep(0)  # let the sender task drain between chunks, as the sender thread does
            send_seconds = time.perf_counter() - started
            await producer.flush()
            return send_seconds, time.perf_counter() - started

    send_seconds, seconds = asyncio.run(main())
    after = end_offsets_total(address, settings.topic)
    return ProduceResult(
        records=n,
        nbytes=n * settings.record_size,
        seconds=seconds,
        send_seconds=send_seconds,
        latency=summarize(samples),
        errors=len(errors),
        first_error=repr(errors[0]) if errors else None,
        log_records=after - before,
    )


def _kafka_names(config: dict[str, Any]) -> dict[str, Any]:
    """The threaded Producer's short option names as ``ProducerConfig``'s (kafka-python's) names."""
    renamed = {"compression": "compression_type", "max_in_flight": "max_in_flight_requests_per_connection"}
    return {renamed.get(name, name): value for name, value in config.items()}


def run_consume_async(address: str, settings: ConsumeSettings) -> ConsumeResult:
    """``run_consume`` through an ``AsyncConsumer`` in one event loop, ``getmany`` chunk by chunk, every
    record handed to the loop as the threaded run's iterator hands it out."""
    from logstore.bench.perf.consume import ConsumeResult
    from logstore.client import TopicPartition
    from logstore.client.aio import AsyncConsumer

    options: dict[str, Any] = {"auto_offset_reset": "earliest"}
    options.update(settings.consumer_props)
    options.pop("consumer_timeout_ms", None)
    n = settings.num_records

    async def read() -> tuple[int, int, float, float]:
        count = nbytes = 0
        first = 0.0
        started = time.perf_counter()
        topics = () if settings.group is None else (settings.topic,)
        async with AsyncConsumer(
            *topics, bootstrap_servers=address, group_id=settings.group, **options
        ) as consumer:
            if settings.group is None:
                partitions = await asyncio.to_thread(_partitions, address, settings.topic)
                consumer.assign([TopicPartition(settings.topic, p) for p in partitions])
            while count < n:
                taken = await consumer.getmany(timeout_ms=settings.timeout_ms)
                if not taken:
                    break
                for chunk in taken.values():
                    for record in chunk:
                        value = record.value
                        if value is not None:
                            nbytes += len(value)
                        count += 1
                        if count == 1:
                            first = time.perf_counter() - started
            return count, nbytes, time.perf_counter() - started, first

    count, nbytes, seconds, first = asyncio.run(read())
    if count < n:
        raise TimeoutError(
            f"only {count} of {n} records of {settings.topic!r} arrived, then none for {settings.timeout_ms:g} ms"
        )
    return ConsumeResult(count, nbytes, seconds, first)


def _partitions(address: str, topic: str) -> list[int]:
    from logstore.client import Admin

    with Admin(address) as admin:
        return sorted(p.partition for p in admin.describe_topics([topic])[0].partitions)
