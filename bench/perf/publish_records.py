"""``logstore perf publish-records``: PublishRecords throughput from a raw Python gRPC stub.

What a client in another language gets without writing RecordBatch v2 itself: the tool builds one
``PublishRecordsRequest`` of ``--records-per-call`` plain ``Record`` messages per call (values from a pool
of random upper-case payloads, as ``perf produce``; keys, if any, used in turn) and keeps
``--in-flight`` calls outstanding on one channel. Throughput is records over the time from the first
call to the last answer; latency is per call, from sending it to its answer. Building the messages is
part of what is measured, as it is part of what such a client does.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from logstore.bench.perf import ceilings
from logstore.bench.perf.common import (
    add_common_arguments,
    ceiling_dir,
    emit,
    end_offsets_total,
    ensure_topic,
    machine,
    positive_int,
    target_broker,
)
from logstore.bench.perf.stats import Latency, rate, summarize
from logstore.client.console.common import friendly

PAYLOAD_POOL = 1000
ACKS = {"0": "ACKS_NONE", "1": "ACKS_LEADER", "all": "ACKS_ALL", "-1": "ACKS_ALL"}
"""--acks as the names of the wire's Acks values."""
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 256 * 1024 * 1024)]


@dataclass(frozen=True)
class PublishSettings:
    topic: str
    num_records: int
    record_size: int = 100
    records_per_call: int = 1000
    in_flight: int = 2
    acks: str = "1"
    partitions: int | None = None
    key_cardinality: int = 0
    key_size: int = 16


@dataclass(frozen=True)
class PublishResult:
    records: int
    nbytes: int
    calls: int
    seconds: float
    latency: Latency
    """Per call, in milliseconds."""
    errors: int
    first_error: str | None
    log_records: int

    @property
    def records_per_s(self) -> float:
        return rate(self.records, self.seconds)

    @property
    def mb_per_s(self) -> float:
        return rate(self.nbytes, self.seconds) / (1024 * 1024)


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "publish-records",
        help="PublishRecords throughput from a raw gRPC stub (plain records, batched by the broker)",
        description="Send records as PublishRecords calls of plain Record messages from a generated Python "
        "stub, and report records/s and per-call latency.",
    )
    parser.add_argument("--topic", required=True, help="the topic to write to")
    parser.add_argument("--num-records", type=positive_int, required=True, help="how many records to send")
    parser.add_argument(
        "--record-size", type=positive_int, default=100, help="value bytes per record (default: 100)"
    )
    parser.add_argument(
        "--records-per-call",
        type=positive_int,
        default=1000,
        help="records per PublishRecords call (default: 1000)",
    )
    parser.add_argument(
        "--in-flight", type=positive_int, default=2, help="calls outstanding at once (default: 2)"
    )
    parser.add_argument("--acks", choices=sorted(ACKS), default="1", help="(default: 1)")
    parser.add_argument(
        "--partitions",
        type=positive_int,
        help="create the topic with this many partitions if it does not exist",
    )
    parser.add_argument(
        "--key-cardinality", type=int, default=0, help="distinct keys, used in turn; 0 (default) sends no key"
    )
    parser.add_argument("--key-size", type=positive_int, default=16, help="bytes per key (default: 16)")
    add_common_arguments(parser)
    parser.set_defaults(handler=friendly(_run))


def settings_from(args: argparse.Namespace) -> PublishSettings:
    if args.key_cardinality < 0:
        raise ValueError(f"--key-cardinality must be 0 (no key) or more, got {args.key_cardinality}")
    return PublishSettings(
        topic=args.topic,
        num_records=args.num_records,
        record_size=args.record_size,
        records_per_call=args.records_per_call,
        in_flight=args.in_flight,
        acks=args.acks,
        partitions=args.partitions,
        key_cardinality=args.key_cardinality,
        key_size=args.key_size,
    )


def run_publish(address: str, settings: PublishSettings) -> PublishResult:
    """Send ``settings.num_records`` records in PublishRecords calls and measure them."""
    import grpc
    from logstore.wire.logstore.v1 import common_pb2, produce_pb2, produce_pb2_grpc

    ensure_topic(address, settings.topic, settings.partitions)
    before = end_offsets_total(address, settings.topic)
    rng = random.Random(0)
    letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    payloads = [bytes(rng.choices(letters, k=settings.record_size)) for _ in range(PAYLOAD_POOL)]
    keys = [rng.randbytes(settings.key_size) for _ in range(settings.key_cardinality)]
    Record = common_pb2.Record
    Request = produce_pb2.PublishRecordsRequest
    acks = ACKS[settings.acks]
    per_call = settings.records_per_call
    samples: list[int] = []
    errors = 0
    first_error: str | None = None
    sent = 0
    calls = 0
    clock_ns = time.perf_counter_ns

    def request(first: int, count: int) -> produce_pb2.PublishRecordsRequest:
        values = [payloads[i % PAYLOAD_POOL] for i in range(first, first + count)]
        if keys:
            records = [Record(key=keys[i % len(keys)], value=value) for i, value in enumerate(values, first)]
        else:
            records = [Record(value=value) for value in values]
        return Request(topic=settings.topic, acks=acks, records=records)

    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        publish = produce_pb2_grpc.ProduceServiceStub(channel).PublishRecords
        pending: deque[tuple[int, Any]] = deque()
        started = clock_ns()

        def settle() -> None:
            nonlocal errors, first_error
            call_started, future = pending.popleft()
            try:
                response = future.result()
            except grpc.RpcError as error:
                errors += 1
                first_error = first_error or f"{error.code().name}: {error.details()}"
                return
            samples.append(clock_ns() - call_started)
            for result in response.results:
                if result.error_code:
                    errors += 1
                    first_error = first_error or result.error_message

        while sent < settings.num_records:
            count = min(per_call, settings.num_records - sent)
            message = request(sent, count)
            while len(pending) >= settings.in_flight:
                settle()
            pending.append((clock_ns(), publish.future(message)))
            sent += count
            calls += 1
        while pending:
            settle()
        seconds = (clock_ns() - started) / 1e9
    log_records = end_offsets_total(address, settings.topic) - before
    return PublishResult(
        records=sent,
        nbytes=sent * settings.record_size,
        calls=calls,
        seconds=seconds,
        latency=summarize(samples),
        errors=errors,
        first_error=first_error,
        log_records=log_records,
    )


def summary(result: PublishResult, settings: PublishSettings) -> str:
    latency = result.latency
    return (
        f"{result.records} records published in {result.calls} PublishRecords calls of "
        f"{settings.records_per_call}, {result.records_per_s:.1f} records/sec "
        f"({result.mb_per_s:.2f} MB/sec), per call {latency.avg:.2f} ms avg, {latency.p50:.2f} ms 50th, "
        f"{latency.p99:.2f} ms 99th, {latency.max:.2f} ms max."
    )


def result_json(
    settings: PublishSettings, result: PublishResult, limits: ceilings.Ceilings
) -> dict[str, Any]:
    return {
        "tool": "publish-records",
        "settings": asdict(settings),
        "records": result.records,
        "bytes": result.nbytes,
        "calls": result.calls,
        "seconds": result.seconds,
        "records_per_s": result.records_per_s,
        "mb_per_s": result.mb_per_s,
        "call_latency_ms": result.latency.as_dict(),
        "errors": result.errors,
        "first_error": result.first_error,
        "log_records": result.log_records,
        "ceilings": limits.as_dict(),
        "machine": machine(),
    }


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = settings_from(args)
    with target_broker(args) as target:
        result = run_publish(target.address, settings)
        limits = ceilings.measure(
            target.address,
            result.nbytes,
            fsync=settings.acks in ("all", "-1"),
            directory=ceiling_dir(args, target),
        )
    lines = [summary(result, settings)]
    lines += limits.lines(mb_per_s=result.mb_per_s, latency_p50_ms=result.latency.p50)
    if result.errors:
        lines.append(f"{result.errors} calls or partitions failed; the first: {result.first_error}")
    emit(args, lines, result_json(settings, result, limits))
    return 1 if result.errors else 0
