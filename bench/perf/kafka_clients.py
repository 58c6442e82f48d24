"""``logstore perf kafka-clients``: Kafka's clients through the Kafka listener, beside the gRPC client.

One broker (``--own-broker`` starts it as a child process with both listeners on free ports), and per
run, in this order:

- produce ``--num-records`` x ``--record-size`` with acks=1 through confluent-kafka (librdkafka), then
  ``--python-records`` each through kafka-python and aiokafka (pure Python clients, far slower: fewer
  records keep the run short, and records/s does not depend on the count once batches are full), and
  ``--num-records`` through ``logstore.client.Producer`` over gRPC;
- consume the records confluent-kafka wrote, from offset 0, with confluent-kafka's Consumer and with
  ``logstore.client.Consumer`` over gRPC (the same bytes, both protocols);
- end to end, one record at a time (the next goes out when the last arrived): confluent-kafka with
  ``linger.ms=0`` and a small ``fetch.wait.max.ms`` beside ``logstore perf e2e``'s fetch mode over gRPC.

Every figure is the median of ``--runs`` runs (each run on fresh topics), printed with min and max. The
clients run in this process one after another, the broker in its own; on a 2-core machine the client and
the broker share the cores, so each figure is what one client process gets from one broker process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logstore.bench.perf.ceilings import tcp_round_trips_ns
from logstore.bench.perf.common import emit, machine, positive_int, target_broker
from logstore.bench.perf.stats import Latency, summarize

PRODUCE_BATCH_BYTES = 1024 * 1024
"""The batch size every producer is given: the same for all, large enough that the count per request,
not the request rate, decides throughput."""
LINGER_MS = 5
E2E_WARMUP = 100


@dataclass(frozen=True)
class Settings:
    num_records: int
    python_records: int
    record_size: int
    e2e_records: int
    partitions: int


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "kafka-clients",
        help="confluent-kafka, kafka-python and aiokafka through the Kafka listener, beside the gRPC client",
        description="Produce, consume and end-to-end latency through the Kafka protocol listener with "
        "Kafka's own clients, each beside logstore's gRPC client in the same run. Needs a broker with the "
        "Kafka listener: --own-broker, or --bootstrap (gRPC) with --kafka-bootstrap.",
    )
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="the broker's gRPC address")
    parser.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="the broker's Kafka listener")
    parser.add_argument("--own-broker", action="store_true", help="start a broker for this run")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the summary")
    parser.add_argument(
        "--reporting-interval",
        type=int,
        default=0,
        metavar="MS",
        help="accepted for the other tools' sake; unused",
    )
    parser.add_argument(
        "--num-records",
        type=positive_int,
        default=1_000_000,
        help="records each fast client (confluent-kafka, gRPC) produces and consumes",
    )
    parser.add_argument(
        "--python-records",
        type=positive_int,
        default=200_000,
        help="records for the pure-Python clients (kafka-python, aiokafka), which are slower",
    )
    parser.add_argument("--record-size", type=positive_int, default=100, help="value bytes per record")
    parser.add_argument(
        "--e2e-records",
        type=positive_int,
        default=10_000,
        help="records sent one at a time for the end-to-end latency",
    )
    parser.add_argument("--partitions", type=positive_int, default=1, help="partitions of each run's topic")
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="runs per client; the summary reports medians"
    )
    parser.add_argument(
        "--only",
        choices=("produce", "consume", "e2e"),
        action="append",
        help="measure only these (repeatable)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.own_broker and (args.bootstrap or args.kafka_bootstrap):
        parser.error("give either --own-broker or --bootstrap with --kafka-bootstrap")
    if not args.own_broker and not (args.bootstrap and args.kafka_bootstrap):
        parser.error("give --own-broker, or both --bootstrap and --kafka-bootstrap")
    settings = Settings(
        args.num_records, args.python_records, args.record_size, args.e2e_records, args.partitions
    )
    parts = tuple(args.only or ("produce", "consume", "e2e"))
    args.bootstrap = args.bootstrap if not args.own_broker else None
    with target_broker(args, broker_args=("--kafka-port", "0")) as target:
        kafka = args.kafka_bootstrap or target.kafka_address
        if kafka is None:
            raise SystemExit("the broker serves no Kafka listener")
        runs = [measure(target.address, kafka, settings, parts) for _ in range(args.runs)]
    result: dict[str, object] = {
        "machine": machine(),
        "settings": settings.__dict__,
        "runs": runs,
        "median": medians(runs),
    }
    emit(args, summary_lines(runs), result)
    return 0


Figures = dict[str, float]


def measure(grpc: str, kafka: str, settings: Settings, parts: Sequence[str]) -> Figures:
    """One run: every figure of `parts`, on fresh topics."""
    figures: Figures = {}
    run = uuid.uuid4().hex[:8]
    produced = f"kc-{run}-confluent"
    _create(grpc, produced, settings.partitions)
    if "produce" in parts or "consume" in parts:
        figures["produce_confluent"] = produce_confluent(
            kafka, produced, settings.num_records, settings.record_size
        )
    if "produce" in parts:
        for name, produce in (
            ("produce_kafka_python", produce_kafka_python),
            ("produce_aiokafka", produce_aiokafka),
        ):
            topic = f"kc-{run}-{name}"
            _create(grpc, topic, settings.partitions)
            figures[name] = produce(kafka, topic, settings.python_records, settings.record_size)
        topic = f"kc-{run}-grpc"
        figures["produce_grpc"] = produce_grpc(grpc, topic, settings)
    if "consume" in parts:
        figures["consume_confluent"] = consume_confluent(kafka, produced, settings.num_records)
        figures["consume_confluent_tuned"] = consume_confluent(
            kafka, produced, settings.num_records, TUNED_CONSUMER
        )
        figures["consume_grpc"] = consume_grpc(grpc, produced, settings.num_records)
    if "e2e" in parts:
        topic = f"kc-{run}-e2e"
        _create(grpc, topic, 1)
        latency = e2e_confluent(kafka, topic, settings.e2e_records, settings.record_size)
        figures["e2e_confluent_p50_us"] = latency.p50 * 1000
        figures["e2e_confluent_p99_us"] = latency.p99 * 1000
        grpc_latency = e2e_grpc(grpc, f"kc-{run}-e2e-grpc", settings)
        figures["e2e_grpc_p50_us"] = grpc_latency.p50 * 1000
        figures["e2e_grpc_p99_us"] = grpc_latency.p99 * 1000
        trips = sorted(tcp_round_trips_ns())  # the floor, in the same minute: it moves several-fold
        figures["tcp_round_trip_p50_us"] = trips[len(trips) // 2] / 1000
        figures["tcp_round_trip_p99_us"] = trips[int(len(trips) * 0.99)] / 1000
    return figures


def _create(grpc: str, topic: str, partitions: int) -> None:
    from logstore.client import Admin

    with Admin(grpc) as admin:
        admin.create_topic(topic, partitions)


def produce_confluent(
    kafka: str, topic: str, count: int, size: int, extra: Mapping[str, Any] | None = None
) -> float:
    """Records/s from the first produce() until flush() returned with every delivery confirmed;
    ``extra`` adds librdkafka settings (``security.protocol``, ...)."""
    from confluent_kafka import KafkaException, Producer

    failures: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(
        {
            "bootstrap.servers": kafka,
            "acks": 1,
            "linger.ms": LINGER_MS,
            "batch.size": PRODUCE_BATCH_BYTES,
            "queue.buffering.max.messages": 2 * count,
            "queue.buffering.max.kbytes": 2 * 1024 * 1024,
            "delivery.report.only.error": True,
            "on_delivery": delivered,
            "enable.idempotence": False,
            **(extra or {}),
        }
    )
    value = b"x" * size
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.001)
    left = producer.flush(60)
    seconds = time.perf_counter() - started
    if left or failures:
        raise KafkaException(
            f"confluent-kafka: {left} records undelivered, {len(failures)} failed: {failures[:1]}"
        )
    return count / seconds


def produce_kafka_python(kafka: str, topic: str, count: int, size: int) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=kafka,
        acks=1,
        linger_ms=LINGER_MS,
        batch_size=PRODUCE_BATCH_BYTES,
        enable_idempotence=False,
    )
    value = b"x" * size
    try:
        producer.partitions_for(topic)
        started = time.perf_counter()
        futures = [producer.send(topic, value) for _ in range(count)]
        producer.flush(120)
        seconds = time.perf_counter() - started
        for future in futures[-1:]:
            future.get(0)
        failed = sum(1 for future in futures if future.failed())
    finally:
        producer.close(30)
    if failed:
        raise RuntimeError(f"kafka-python: {failed} of {count} records failed")
    return count / seconds


def produce_aiokafka(kafka: str, topic: str, count: int, size: int) -> float:
    from aiokafka import AIOKafkaProducer

    async def run() -> float:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka, acks=1, linger_ms=LINGER_MS, max_batch_size=PRODUCE_BATCH_BYTES
        )
        await producer.start()
        try:
            await producer.partitions_for(topic)
            value = b"x" * size
            started = time.perf_counter()
            futures = [await producer.send(topic, value) for _ in range(count)]
            await asyncio.gather(*futures)
            return count / (time.perf_counter() - started)
        finally:
            await producer.stop()

    return asyncio.run(run())


def produce_grpc(grpc: str, topic: str, settings: Settings) -> float:
    from logstore.bench.perf.produce import ProduceSettings, run_produce

    result = run_produce(
        grpc,
        ProduceSettings(
            topic=topic,
            num_records=settings.num_records,
            record_size=settings.record_size,
            batch_size=PRODUCE_BATCH_BYTES,
            linger_ms=LINGER_MS,
            acks="1",
            partitions=settings.partitions,
        ),
        None,
    )
    if result.errors:
        raise RuntimeError(f"gRPC producer: {result.errors} records failed: {result.first_error}")
    return result.records / result.seconds


TUNED_CONSUMER = {"fetch.queue.backoff.ms": 10, "max.partition.fetch.bytes": 4 * 1024 * 1024}
"""librdkafka stops fetching for fetch.queue.backoff.ms (1000 by default) once its queue holds
queued.min.messages (100000): with a Python loop draining it, most of a default run is that pause, on any
broker. The tuned run waits 10 ms instead and fetches 4 MiB per partition."""


def consume_confluent(kafka: str, topic: str, count: int, tuning: dict[str, Any] | None = None) -> float:
    """Records/s from assign at offset 0 until the `count`th record was handed over."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"perf-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **(tuning or {}),
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen = 0
        deadline = time.monotonic() + 120
        while seen < count:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            for message in batch:
                if message.error() is not None:
                    raise RuntimeError(f"confluent-kafka consumer: {message.error()}")
            seen += len(batch)
            if time.monotonic() > deadline:
                raise TimeoutError(f"confluent-kafka consumer: {seen} of {count} records in 120 s")
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def consume_grpc(grpc: str, topic: str, count: int) -> float:
    from logstore.bench.perf.consume import ConsumeSettings, run_consume

    result = run_consume(grpc, ConsumeSettings(topic=topic, num_records=count), None)
    return result.records / result.seconds


def e2e_confluent(kafka: str, topic: str, count: int, size: int) -> Latency:
    """From produce() to the consumer handing the same record over, one record in flight at a time."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": kafka, "acks": 1, "linger.ms": 0, "enable.idempotence": False})
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"perf-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1,
        }
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, end)])  # only this run's records
        padding = b"x" * max(0, size - 8)
        samples: list[int] = []
        clock = time.perf_counter_ns
        for sequence in range(E2E_WARMUP + count):
            started = clock()
            producer.produce(topic, sequence.to_bytes(8, "big") + padding, partition=0)
            producer.poll(0)
            _await_record(consumer, sequence)
            if sequence >= E2E_WARMUP:
                samples.append(clock() - started)
        producer.flush(10)
        return summarize(samples)
    finally:
        consumer.close()


def _await_record(consumer: Any, sequence: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error() is not None:
            raise RuntimeError(f"confluent-kafka consumer: {message.error()}")
        got = int.from_bytes(message.value()[:8], "big")
        if got != sequence:
            raise RuntimeError(f"end to end: record {got} arrived where {sequence} was expected")
        return
    raise TimeoutError(f"end to end: record {sequence} did not arrive in 10 s")


def e2e_grpc(grpc: str, topic: str, settings: Settings) -> Latency:
    from logstore.bench.perf.e2e import E2ESettings, run_e2e

    return run_e2e(
        grpc,
        E2ESettings(
            topic=topic, num_records=settings.e2e_records, record_size=settings.record_size, modes=("fetch",)
        ),
        None,
    )["fetch"]


def medians(runs: Sequence[Figures]) -> Figures:
    names = runs[0].keys() if runs else ()
    return {name: statistics.median(run[name] for run in runs) for name in names}


LABELS: dict[str, tuple[str, Callable[[float], str]]] = {
    "produce_confluent": ("produce, confluent-kafka (Kafka listener)", lambda v: f"{v:,.0f} records/s"),
    "produce_kafka_python": ("produce, kafka-python (Kafka listener)", lambda v: f"{v:,.0f} records/s"),
    "produce_aiokafka": ("produce, aiokafka (Kafka listener)", lambda v: f"{v:,.0f} records/s"),
    "produce_grpc": ("produce, logstore.client.Producer (gRPC)", lambda v: f"{v:,.0f} records/s"),
    "consume_confluent": ("consume, confluent-kafka (Kafka listener)", lambda v: f"{v:,.0f} records/s"),
    "consume_confluent_tuned": (
        "consume, confluent-kafka, fetch.queue.backoff.ms=10 (Kafka listener)",
        lambda v: f"{v:,.0f} records/s",
    ),
    "consume_grpc": ("consume, logstore.client.Consumer (gRPC)", lambda v: f"{v:,.0f} records/s"),
    "e2e_confluent_p50_us": ("end to end p50, confluent-kafka", lambda v: f"{v:,.0f} us"),
    "e2e_confluent_p99_us": ("end to end p99, confluent-kafka", lambda v: f"{v:,.0f} us"),
    "e2e_grpc_p50_us": ("end to end p50, gRPC fetch", lambda v: f"{v:,.0f} us"),
    "e2e_grpc_p99_us": ("end to end p99, gRPC fetch", lambda v: f"{v:,.0f} us"),
    "tcp_round_trip_p50_us": (
        "ceiling: loopback TCP round trip p50, two processes",
        lambda v: f"{v:,.0f} us",
    ),
    "tcp_round_trip_p99_us": (
        "ceiling: loopback TCP round trip p99, two processes",
        lambda v: f"{v:,.0f} us",
    ),
}


def summary_lines(runs: Sequence[Figures]) -> list[str]:
    lines = []
    for name, (label, show) in LABELS.items():
        values = [run[name] for run in runs if name in run]
        if values:
            lines.append(
                f"{label}: {show(statistics.median(values))} median of {len(values)} "
                f"(min {show(min(values))}, max {show(max(values))})"
            )
    return lines
