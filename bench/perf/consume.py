"""``logstore perf consume``: consumer throughput, like Kafka's ``kafka-consumer-perf-test``.

A new ``Consumer`` reads ``--num-records`` records from the beginning of the topic (every partition
assigned to it, or with ``--group`` through a consumer group) and hands each one to the application,
which here counts it and reads its value's length. Reported: records and MB consumed, records/s and
MB/s from the consumer's creation to the last record, time to the first record (connection, offset
lookup, first fetch; with a group, also joining it), and the rate after the first record.

The topic must already hold the records (``perf produce`` writes them); ``--prefill`` (implied by
``--own-broker``) writes them first, untimed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from logstore.bench.perf import ceilings
from logstore.bench.perf.common import (
    add_common_arguments,
    ceiling_dir,
    emit,
    machine,
    parse_props,
    positive_int,
    target_broker,
)
from logstore.bench.perf.progress import StatusReporter
from logstore.bench.perf.stats import MB, rate
from logstore.client.console.common import friendly

PREFILL_BATCH_BYTES = 1024 * 1024
REPORT_EVERY = 4096
"""Records between two looks at the clock for the status line."""


@dataclass(frozen=True)
class ConsumeSettings:
    topic: str
    num_records: int
    group: str | None = None
    timeout_ms: float = 10_000
    consumer_props: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConsumeResult:
    records: int
    nbytes: int
    seconds: float
    first_record_seconds: float

    @property
    def records_per_s(self) -> float:
        return rate(self.records, self.seconds)

    @property
    def mb_per_s(self) -> float:
        return rate(self.nbytes, self.seconds) / MB

    @property
    def records_per_s_after_first(self) -> float:
        return rate(self.records - 1, self.seconds - self.first_record_seconds)


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "consume",
        help="consumer throughput (like kafka-consumer-perf-test)",
        description="Read records from the beginning of a topic and report records/s, MB/s and the time to "
        "the first record, beside this machine's ceilings.",
    )
    parser.add_argument("--topic", required=True, help="the topic to read")
    parser.add_argument("--num-records", type=positive_int, required=True, help="how many records to read")
    parser.add_argument(
        "--group", help="consume through this consumer group (default: assign every partition)"
    )
    parser.add_argument(
        "--timeout-ms",
        type=float,
        default=10_000,
        help="give up when no record came for this long (default: 10000)",
    )
    parser.add_argument(
        "--consumer-prop",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other Consumer argument, e.g. max_poll_records=10000",
    )
    parser.add_argument(
        "--prefill", action="store_true", help="first write --num-records records to the topic (not timed)"
    )
    parser.add_argument(
        "--record-size", type=positive_int, default=100, help="value bytes per prefilled record"
    )
    parser.add_argument(
        "--partitions", type=positive_int, help="with --prefill: create the topic with this many partitions"
    )
    parser.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="read through logstore.client.aio.AsyncConsumer (getmany) in one event loop",
    )
    add_common_arguments(parser, security=True)
    parser.set_defaults(handler=friendly(_run))


def run_consume(
    address: str,
    settings: ConsumeSettings,
    reporter: StatusReporter | None,
    client_options: Mapping[str, Any] | None = None,
) -> ConsumeResult:
    """Read ``settings.num_records`` records with a new Consumer (with the security options
    ``client_options``); raises TimeoutError if they do not come."""
    from logstore.client import Consumer, TopicPartition

    options: dict[str, Any] = {"auto_offset_reset": "earliest", "consumer_timeout_ms": settings.timeout_ms}
    options.update(settings.consumer_props)
    options.update(client_options or {})
    n = settings.num_records
    count = 0
    nbytes = 0
    first = 0.0
    started = time.perf_counter()
    if settings.group is None:
        consumer = Consumer(bootstrap=address, **options)
    else:
        consumer = Consumer(settings.topic, bootstrap=address, group_id=settings.group, **options)
    with consumer:
        if settings.group is None:
            consumer.assign(
                [
                    TopicPartition(settings.topic, p)
                    for p in sorted(consumer.partitions_for_topic(settings.topic))
                ]
            )
        if reporter is not None:
            reporter.start(started)
        for record in consumer:
            value = record.value
            if value is not None:
                nbytes += len(value)
            count += 1
            if count == 1:
                first = time.perf_counter() - started
            if count == n:
                break
            if reporter is not None and not count % REPORT_EVERY:
                now = time.perf_counter()
                if reporter.due(now):
                    reporter.report(now, count, nbytes)
        seconds = time.perf_counter() - started
    if count < n:
        raise TimeoutError(
            f"only {count} of {n} records of {settings.topic!r} arrived, then none for {settings.timeout_ms:g} ms: "
            "write them first (perf produce, or --prefill), or ask for fewer"
        )
    return ConsumeResult(count, nbytes, seconds, first)


def prefill(
    address: str,
    topic: str,
    num_records: int,
    record_size: int,
    partitions: int | None,
    batch_bytes: int = PREFILL_BATCH_BYTES,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Write the records the run will read, in batches of about `batch_bytes` (large by default), untimed."""
    from logstore.bench.perf.produce import ProduceSettings, run_produce

    settings = ProduceSettings(
        topic=topic,
        num_records=num_records,
        record_size=record_size,
        batch_size=batch_bytes,
        partitions=partitions,
        producer_props={"max_request_size": 4 * max(batch_bytes, PREFILL_BATCH_BYTES)},
    )
    result = run_produce(address, settings, None, client_options)
    if result.errors:
        raise RuntimeError(f"prefilling {topic!r} failed: {result.first_error}")


def summary(result: ConsumeResult) -> str:
    return (
        f"{result.records} records consumed, {result.records_per_s:.1f} records/sec ({result.mb_per_s:.2f} MB/sec), "
        f"{result.nbytes / MB:.2f} MB, {result.first_record_seconds * 1000:.2f} ms to first record, "
        f"{result.records_per_s_after_first:.1f} records/sec after it."
    )


def result_json(
    settings: ConsumeSettings, result: ConsumeResult, limits: ceilings.Ceilings
) -> dict[str, Any]:
    return {
        "tool": "consume",
        "settings": asdict(settings),
        "records": result.records,
        "bytes": result.nbytes,
        "seconds": result.seconds,
        "records_per_s": result.records_per_s,
        "mb_per_s": result.mb_per_s,
        "first_record_ms": result.first_record_seconds * 1000,
        "records_per_s_after_first": result.records_per_s_after_first,
        "ceilings": limits.as_dict(),
        "ratio_to_file_write": result.mb_per_s / limits.write_mb_per_s if limits.write_mb_per_s else 0.0,
        "machine": machine(),
    }


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = ConsumeSettings(
        topic=args.topic,
        num_records=args.num_records,
        group=args.group,
        timeout_ms=args.timeout_ms,
        consumer_props=parse_props(args.consumer_prop, "--consumer-prop"),
    )
    reporter = (
        StatusReporter("consumed", args.reporting_interval / 1000) if args.reporting_interval > 0 else None
    )
    with target_broker(args) as target:
        if args.prefill or args.own_broker:
            prefill(
                target.address,
                args.topic,
                args.num_records,
                args.record_size,
                args.partitions,
                client_options=target.client_options,
            )
        if args.use_async:
            from logstore.bench.perf.aio_runs import run_consume_async

            result = run_consume_async(target.address, settings, target.client_options)
        else:
            result = run_consume(target.address, settings, reporter, target.client_options)
        limits = ceilings.measure(
            target.address,
            result.nbytes,
            directory=ceiling_dir(args, target),
            client_options=target.client_options,
        )
    lines = [summary(result), *limits.lines(mb_per_s=result.mb_per_s)]
    emit(args, lines, result_json(settings, result, limits))
    return 0
