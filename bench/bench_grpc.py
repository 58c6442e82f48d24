"""Produce and fetch throughput over gRPC with 1 MiB of batches per call, beside an empty gRPC call.

Run: .venv/bin/python -m pytest bench/bench_grpc.py --benchmark-enable -p no:cacheprovider -s

The broker runs as a child process (`python -m logstore.broker`), so it does not share this process's GIL with
the client. Records are 100-byte values in batches of about 16 KiB (Kafka's default batch.size), 1 MiB
of batches per call to one partition. The empty call is a health check: the fixed cost of one gRPC
round trip on this machine, measured in the same run. Each benchmark stores MB/s, records/s and its
cost in empty calls in `extra_info`, and the module prints them side by side at the end.

Both processes raise glibc's mmap and trim thresholds (`logstore.broker.malloc`), as `logstore serve` does:
without it every 1 MiB buffer is mapped and unmapped per call, and page faults cost more than gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from logstore.broker.embedded import BrokerProcess
from logstore.broker.malloc import keep_large_buffers
from logstore.wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    fetch_pb2,
    fetch_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

from logstore.records import BatchBuilder

MiB = 1024 * 1024
VALUE = b"v" * 100
BATCH_BYTES = 16 * 1024
CALL_BYTES = MiB
ROUNDS = 60
FETCH_PRELOAD_CALLS = 32
OPTIONS = [("grpc.max_receive_message_length", 64 * MiB), ("grpc.max_send_message_length", 64 * MiB)]


@dataclass
class Payload:
    records: bytes
    record_count: int


@dataclass
class Setup:
    channel: grpc.Channel
    produce: produce_pb2_grpc.ProduceServiceStub
    fetch: fetch_pb2_grpc.FetchServiceStub
    health: health_pb2_grpc.HealthStub
    payload: Payload
    fetch_offsets: list[int]


RESULTS: dict[str, dict[str, float]] = {}


def _payload() -> Payload:
    """About 1 MiB of ~16 KiB batches of 100-byte records (the batch that would overflow is left out)."""
    batches: list[bytes] = []
    count = 0
    total = 0
    while True:
        builder = BatchBuilder()
        while builder.size_in_bytes() + len(VALUE) + 16 <= BATCH_BYTES:
            builder.append(VALUE, timestamp_ms=1_700_000_000_000)
        batch = builder.build()
        if total + len(batch) > CALL_BYTES:
            return Payload(b"".join(batches), count)
        batches.append(batch)
        total += len(batch)
        count += builder.record_count


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    keep_large_buffers()
    work = tmp_path_factory.mktemp("bench-grpc")
    broker = BrokerProcess(work / "data", work / "broker.log")
    address = broker.start()
    channel = grpc.insecure_channel(address, options=OPTIONS)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    for topic in ("produce-leader", "produce-all", "fetch"):
        admin.CreateTopic(admin_pb2.CreateTopicRequest(name=topic, partitions=1))
    produce = produce_pb2_grpc.ProduceServiceStub(channel)
    payload = _payload()
    offsets = []
    for _ in range(FETCH_PRELOAD_CALLS):
        (result,) = produce.Produce(_produce_request("fetch", payload, produce_pb2.ACKS_LEADER)).results
        offsets.append(result.base_offset)
    yield Setup(
        channel,
        produce,
        fetch_pb2_grpc.FetchServiceStub(channel),
        health_pb2_grpc.HealthStub(channel),
        payload,
        offsets,
    )
    channel.close()
    assert broker.terminate() == 0
    _print_summary()


def _produce_request(topic: str, payload: Payload, acks: produce_pb2.Acks) -> produce_pb2.ProduceRequest:
    data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=payload.records)
    return produce_pb2.ProduceRequest(acks=acks, partitions=[data])


def _record(benchmark, name: str, nbytes: int, records: int) -> None:
    seconds = benchmark.stats.stats.median
    row = {"ms/call": seconds * 1000}
    if nbytes:
        row.update({"MB/s": nbytes / seconds / 1e6, "records/s": records / seconds})
    RESULTS[name] = row
    benchmark.extra_info.update({k: round(v, 3) for k, v in row.items()})


def _print_summary() -> None:
    empty = RESULTS.get("empty call", {}).get("ms/call")
    print("\n\ngRPC throughput, 1 MiB of batches per call, 100-byte records (medians):")
    for name, row in RESULTS.items():
        ratio = f"  = {row['ms/call'] / empty:7.1f} empty calls" if empty else ""
        rates = (
            f"  {row['MB/s']:8.1f} MB/s  {row['records/s'] / 1e6:6.2f} M records/s" if "MB/s" in row else ""
        )
        print(f"  {name:24s} {row['ms/call']:8.3f} ms/call{ratio}{rates}")


def test_empty_call(benchmark, setup: Setup) -> None:
    request = health_pb2.HealthCheckRequest()
    benchmark.pedantic(setup.health.Check, args=(request,), rounds=2000, warmup_rounds=100)
    _record(benchmark, "empty call", 0, 0)


@pytest.mark.parametrize(
    ("acks", "topic"), [(produce_pb2.ACKS_LEADER, "produce-leader"), (produce_pb2.ACKS_ALL, "produce-all")]
)
def test_produce_1mib_per_call(benchmark, setup: Setup, acks: produce_pb2.Acks, topic: str) -> None:
    request = _produce_request(topic, setup.payload, acks)

    def produce() -> None:
        (result,) = setup.produce.Produce(request).results
        assert result.error_code == 0, result.error_message

    benchmark.pedantic(produce, rounds=ROUNDS, warmup_rounds=3)
    name = "produce acks=1" if acks == produce_pb2.ACKS_LEADER else "produce acks=all"
    _record(benchmark, name, len(setup.payload.records), setup.payload.record_count)


def test_fetch_1mib_per_call(benchmark, setup: Setup) -> None:
    requests = [
        fetch_pb2.FetchRequest(
            partitions=[
                fetch_pb2.FetchPartition(topic="fetch", partition=0, offset=offset, max_bytes=CALL_BYTES)
            ]
        )
        for offset in setup.fetch_offsets
    ]
    calls = iter(range(10**9))

    def fetch() -> None:
        (result,) = setup.fetch.Fetch(requests[next(calls) % len(requests)]).results
        assert len(result.records) == len(setup.payload.records), result.error_message

    benchmark.pedantic(fetch, rounds=ROUNDS * 2, warmup_rounds=3)
    _record(benchmark, "fetch", len(setup.payload.records), setup.payload.record_count)
