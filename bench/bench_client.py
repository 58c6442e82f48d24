"""The Python client's throughput: one producer, one consumer, 100-byte records, a local broker.

Run: .venv/bin/python -m pytest bench/bench_client.py --benchmark-enable -p no:cacheprovider -s

The broker runs as a child process (`python -m logstore.broker`), so only the client runs in this process. Each
round moves RECORDS records of 100 bytes:

- produce, no key, acks=1, one partition (batch_size 256 KiB and 1 MiB, linger_ms 5): send() in a loop,
  then flush(); records/s over the whole round, from the first send to the last acknowledgement;
- produce with 16-byte keys over 8 partitions (batch_size 256 KiB);
- consume: a fresh Consumer assigned to the 1 MiB-batch topic from offset 0, iterating until it has
  handed RECORDS records to the application (which counts them and reads each value's length).

Baselines measured in the same run, against the same broker:
- an empty gRPC call (health check): the fixed cost of one round trip;
- raw Produce calls of prebuilt 1 MiB payloads (no client, no encoding) and raw Fetch calls of the same
  data (no decoding): the ceiling the broker and gRPC leave for a client, in records/s.

The module prints records/s and the ratio to each raw baseline at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from logstore.broker.embedded import BrokerProcess
from logstore.client import Admin, Consumer, Producer, TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2, fetch_pb2_grpc, produce_pb2, produce_pb2_grpc

from logstore.records import BatchBuilder

MiB = 1024 * 1024
RECORDS = int(os.environ.get("BENCH_CLIENT_RECORDS", 1_000_000))
VALUE = b"v" * 100
ROUNDS = int(os.environ.get("BENCH_CLIENT_ROUNDS", 3))
RAW_CALLS = 40

RESULTS: dict[str, float] = {}
"""records/s (or calls/s for the empty call) by case, medians."""


@dataclass
class Setup:
    address: str
    channel: grpc.Channel
    consume_topic: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("bench-client")
    broker = BrokerProcess(work / "data", work / "broker.log")
    address = broker.start()
    with Admin(address) as admin:
        admin.create_topic("consume", 1)
        admin.create_topic("raw", 1)
    with Producer(address, batch_size=MiB, linger_ms=5, max_request_size=4 * MiB) as producer:
        for _ in range(RECORDS):
            producer.send("consume", VALUE)
    channel = grpc.insecure_channel(
        address,
        options=[("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)],
    )
    yield Setup(address, channel, "consume")
    channel.close()
    assert broker.terminate() == 0
    _print_summary()


def _rate(benchmark, name: str, count: int) -> None:
    rate = count / benchmark.stats.stats.median
    RESULTS[name] = rate
    benchmark.extra_info["per_second"] = round(rate)


def _print_summary() -> None:
    print(f"\n\nClient throughput, {RECORDS:,} records of 100 bytes per round (medians):")
    for name, rate in RESULTS.items():
        unit = "calls/s" if name == "empty gRPC call" else "records/s"
        print(f"  {name:44s} {rate:>12,.0f} {unit}")
    raw_produce, raw_fetch = (
        RESULTS.get("raw Produce, 1 MiB prebuilt"),
        RESULTS.get("raw Fetch, 1 MiB, no decode"),
    )
    empty = RESULTS.get("empty gRPC call")
    for name, rate in RESULTS.items():
        if name.startswith("client produce") and raw_produce:
            print(f"  {name:44s} = {rate / raw_produce:5.2f} x raw Produce")
        if name.startswith("client consume") and raw_fetch:
            print(f"  {name:44s} = {rate / raw_fetch:5.2f} x raw Fetch")
        if name.startswith("client") and empty:
            print(f"  {name:44s} = {rate / empty:7.1f} records per empty-call time")


# --- baselines ---------------------------------------------------------------------------------------------


def test_empty_call(benchmark, setup: Setup) -> None:
    health = health_pb2_grpc.HealthStub(setup.channel)
    request = health_pb2.HealthCheckRequest()
    benchmark.pedantic(health.Check, args=(request,), rounds=2000, warmup_rounds=100)
    _rate(benchmark, "empty gRPC call", 1)


def _prebuilt_payload() -> tuple[bytes, int]:
    builder = BatchBuilder()
    while builder.size_in_bytes() + len(VALUE) + 16 <= MiB:
        builder.append(VALUE)
    return builder.build(), builder.record_count


def test_raw_produce(benchmark, setup: Setup) -> None:
    payload, count = _prebuilt_payload()
    stub = produce_pb2_grpc.ProduceServiceStub(setup.channel)
    data = produce_pb2.ProducePartitionData(topic="raw", partition=0, records=payload)
    request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_LEADER, partitions=[data])
    benchmark.pedantic(lambda: stub.Produce(request), rounds=RAW_CALLS, warmup_rounds=3)
    _rate(benchmark, "raw Produce, 1 MiB prebuilt", count)


def test_raw_fetch(benchmark, setup: Setup) -> None:
    stub = fetch_pb2_grpc.FetchServiceStub(setup.channel)
    offsets = iter(range(0, RECORDS, 1000))
    counted = []

    def fetch() -> None:
        offset = next(offsets, 0)
        request = fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(topic=setup.consume_topic, partition=0, offset=offset, max_bytes=MiB)
            ]
        )
        (result,) = stub.Fetch(request).results
        counted.append(len(result.records) // (len(VALUE) + 7))

    benchmark.pedantic(fetch, rounds=RAW_CALLS, warmup_rounds=3)
    _rate(benchmark, "raw Fetch, 1 MiB, no decode", sorted(counted)[len(counted) // 2])


# --- the client ----------------------------------------------------------------------------------------------


def _produce(address: str, topic: str, keys: list[bytes] | None, **settings: object) -> None:
    with Producer(address, acks=1, linger_ms=5, max_request_size=4 * MiB, **settings) as producer:  # type: ignore[arg-type]
        send = producer.send
        if keys is None:
            for _ in range(RECORDS):
                send(topic, VALUE)
        else:
            count = len(keys)
            for n in range(RECORDS):
                send(topic, VALUE, keys[n % count])
        producer.flush()


@pytest.mark.parametrize("batch_size", [256 * 1024, MiB], ids=["256KiB", "1MiB"])
def test_client_produce_no_key(benchmark, setup: Setup, batch_size: int) -> None:
    topic = f"produce-{batch_size}"
    with Admin(setup.address) as admin:
        admin.create_topic(topic, 1)
    benchmark.pedantic(
        _produce, args=(setup.address, topic, None), kwargs={"batch_size": batch_size}, rounds=ROUNDS
    )
    _rate(benchmark, f"client produce, no key, batch {batch_size // 1024} KiB", RECORDS)


def test_client_produce_keyed(benchmark, setup: Setup) -> None:
    with Admin(setup.address) as admin:
        admin.create_topic("keyed", 8)
    keys = [os.urandom(16) for _ in range(10_000)]
    benchmark.pedantic(
        _produce, args=(setup.address, "keyed", keys), kwargs={"batch_size": 256 * 1024}, rounds=ROUNDS
    )
    _rate(benchmark, "client produce, 16-byte keys, 8 partitions", RECORDS)


def _consume(address: str, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap=address, auto_offset_reset="earliest", max_poll_records=10_000) as consumer:
        consumer.assign([tp])
        total = 0
        for count, record in enumerate(consumer, start=1):
            total += len(record.value or b"")
            if count == RECORDS:
                break
    assert total == RECORDS * len(VALUE)


def test_client_consume(benchmark, setup: Setup) -> None:
    benchmark.pedantic(_consume, args=(setup.address, setup.consume_topic), rounds=ROUNDS, warmup_rounds=1)
    _rate(benchmark, "client consume, iterate", RECORDS)


def _consume_poll(address: str, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    with Consumer(bootstrap=address, auto_offset_reset="earliest", max_poll_records=10_000) as consumer:
        consumer.assign([tp])
        count = 0
        deadline = time.monotonic() + 120
        while count < RECORDS and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000, max_records=RECORDS - count).values():
                count += len(records)
    assert count == RECORDS


def test_client_consume_poll(benchmark, setup: Setup) -> None:
    benchmark.pedantic(
        _consume_poll, args=(setup.address, setup.consume_topic), rounds=ROUNDS, warmup_rounds=1
    )
    _rate(benchmark, "client consume, poll", RECORDS)
