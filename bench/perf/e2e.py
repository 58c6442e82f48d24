"""``logstore perf e2e``: end-to-end latency, one record at a time, from ``send()`` to the consumer.

A Producer (``linger_ms=0``) sends a record to partition 0, and the same process waits until a consumer
hands that record over; the latency is the time between the two, and the next record goes out only then
(or, with ``--rate``, at the next tick of a fixed schedule). Two ways of receiving are measured:

- ``fetch``: a ``Consumer`` whose fetcher long-polls (the broker answers a waiting Fetch when the
  append lands), the record handed over by ``poll()``;
- ``push``: a live tail (``logstore.client.tail``) over the broker's Subscribe stream, the record handed over by
  its iterator.

Each record carries its sequence number, so a lost, repeated or reordered record fails the run instead
of being timed. A watchdog closes the tail if no record arrives for ``--timeout-ms``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from logstore.bench.perf import ceilings
from logstore.bench.perf.common import (
    add_common_arguments,
    ceiling_dir,
    emit,
    ensure_topic,
    machine,
    positive_int,
    target_broker,
)
from logstore.bench.perf.progress import StatusReporter
from logstore.bench.perf.stats import Latency, summarize
from logstore.client.console.common import friendly

MODES = ("fetch", "push")
SEQUENCE_BYTES = 8


@dataclass(frozen=True)
class E2ESettings:
    topic: str
    num_records: int = 10_000
    record_size: int = 100
    rate: float = 0
    acks: str = "1"
    warmup_records: int = 100
    timeout_ms: float = 10_000
    modes: tuple[str, ...] = MODES


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "e2e",
        help="end-to-end latency from send() to the consumer, over fetch long-poll and push",
        description="Send one record at a time (or at --rate) and time it from send() until a consumer hands "
        "it over, once with a long-polling Consumer and once with a pushed live tail.",
    )
    parser.add_argument("--topic", required=True, help="the topic to write and read")
    parser.add_argument("--num-records", type=positive_int, default=10_000, help="timed records per mode")
    parser.add_argument("--record-size", type=positive_int, default=100, help="value bytes (default: 100)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="records/s on a fixed schedule; 0 (default): the next one after each arrives",
    )
    parser.add_argument("--acks", choices=["0", "1", "all", "-1"], default="1", help="(default: 1)")
    parser.add_argument(
        "--warmup-records", type=int, default=100, help="untimed records first (default: 100)"
    )
    parser.add_argument("--timeout-ms", type=float, default=10_000, help="fail when a record takes longer")
    parser.add_argument(
        "--mode", choices=[*MODES, "both"], default="both", help="how to receive (default: both)"
    )
    add_common_arguments(parser)
    parser.set_defaults(handler=friendly(_run))


class Watchdog(threading.Thread):
    """Calls ``on_stall`` once if ``progress()`` is not called for ``timeout_s``: a lost record then ends
    the run with an error instead of blocking forever (a live tail's iterator has no timeout of its own)."""

    def __init__(self, timeout_s: float, on_stall: Callable[[], None]) -> None:
        super().__init__(name="e2e-watchdog", daemon=True)
        self.timeout_s = timeout_s
        self.on_stall = on_stall
        self._last = time.monotonic()
        self._done = threading.Event()

    def progress(self) -> None:
        self._last = time.monotonic()

    def run(self) -> None:
        while not self._done.wait(min(1.0, self.timeout_s / 4)):
            if time.monotonic() - self._last > self.timeout_s:
                self.on_stall()
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_e2e(address: str, settings: E2ESettings, reporter: StatusReporter | None) -> dict[str, Latency]:
    """Latency per mode, over ``settings.num_records`` timed records each."""
    from logstore.client import Producer

    ensure_topic(address, settings.topic, None)
    acks = "all" if settings.acks in ("all", "-1") else int(settings.acks)
    results = {}
    with Producer(address, acks=acks, linger_ms=0) as producer:
        producer.partitions_for(settings.topic)
        for mode in settings.modes:
            receive = _fetch_receiver if mode == "fetch" else _push_receiver
            results[mode] = receive(address, producer, settings, reporter)
    return results


def _timed_loop(
    producer: Any,
    settings: E2ESettings,
    next_value: Callable[[], bytes | None],
    progress: Callable[[], None],
    reporter: StatusReporter | None,
) -> Latency:
    """Warm up, then time ``num_records`` round trips. ``next_value()`` returns the value handed over (None
    if none came in time); ``progress()`` is called after each."""
    pad = b"x" * max(0, settings.record_size - SEQUENCE_BYTES)
    topic = settings.topic
    clock_ns = time.perf_counter_ns
    interval = 1.0 / settings.rate if settings.rate > 0 else 0.0
    samples: list[int] = []
    total = settings.warmup_records + settings.num_records
    started = time.perf_counter()
    for sequence in range(total):
        if sequence == settings.warmup_records:
            started = time.perf_counter()
            if reporter is not None:
                reporter.start(started)
        if interval and sequence >= settings.warmup_records:
            delay = started + (sequence - settings.warmup_records) * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        value = sequence.to_bytes(SEQUENCE_BYTES, "big") + pad
        sent_ns = clock_ns()
        producer.send(topic, value, partition=0)
        received = next_value()
        elapsed = clock_ns() - sent_ns
        progress()
        if received is None:
            raise TimeoutError(f"record {sequence} did not arrive within {settings.timeout_ms:g} ms")
        if received[:SEQUENCE_BYTES] != value[:SEQUENCE_BYTES]:
            got = int.from_bytes(received[:SEQUENCE_BYTES], "big")
            raise RuntimeError(
                f"expected record {sequence}, the consumer handed over record {got}: lost or reordered"
            )
        if sequence >= settings.warmup_records:
            samples.append(elapsed)
            if reporter is not None and reporter.due(time.perf_counter()):
                timed = len(samples)
                reporter.report(time.perf_counter(), timed, timed * settings.record_size, samples)
    return summarize(samples)


def _fetch_receiver(
    address: str, producer: Any, settings: E2ESettings, reporter: StatusReporter | None
) -> Latency:
    from logstore.client import Consumer, TopicPartition

    partition = TopicPartition(settings.topic, 0)
    timeout_ms = settings.timeout_ms
    with Consumer(bootstrap=address, auto_offset_reset="latest") as consumer:
        consumer.assign([partition])
        consumer.position(partition)  # the end of the partition, before the first send

        def next_value() -> bytes | None:
            for records in consumer.poll(timeout_ms=timeout_ms, max_records=1).values():
                return records[0].value
            return None

        return _timed_loop(producer, settings, next_value, lambda: None, reporter)


def _push_receiver(
    address: str, producer: Any, settings: E2ESettings, reporter: StatusReporter | None
) -> Latency:
    from logstore.client import TopicPartition, tail

    with tail(bootstrap=address, partitions=[TopicPartition(settings.topic, 0)], start="latest") as live:
        records = iter(live)

        def next_value() -> bytes | None:
            record = next(records, None)
            return None if record is None else record.value

        watchdog = Watchdog(settings.timeout_ms / 1000, live.close)
        watchdog.start()
        try:
            return _timed_loop(producer, settings, next_value, watchdog.progress, reporter)
        finally:
            watchdog.stop()


def summary(mode: str, records: int, latency: Latency) -> str:
    how = "fetch long-poll" if mode == "fetch" else "push (subscribe)"
    return (
        f"e2e {how}: {records} records, {latency.avg:.3f} ms avg latency, {latency.p50:.3f} ms 50th, "
        f"{latency.p99:.3f} ms 99th, {latency.p999:.3f} ms 99.9th, {latency.max:.3f} ms max latency."
    )


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = E2ESettings(
        topic=args.topic,
        num_records=args.num_records,
        record_size=args.record_size,
        rate=args.rate,
        acks=args.acks,
        warmup_records=max(1, args.warmup_records),
        timeout_ms=args.timeout_ms,
        modes=MODES if args.mode == "both" else (args.mode,),
    )
    if settings.record_size < SEQUENCE_BYTES:
        raise ValueError(
            f"--record-size must be at least {SEQUENCE_BYTES} (the sequence number), got {settings.record_size}"
        )
    reporter = (
        StatusReporter("received", args.reporting_interval / 1000) if args.reporting_interval > 0 else None
    )
    with target_broker(args) as target:
        results = run_e2e(target.address, settings, reporter)
        nbytes = settings.num_records * settings.record_size * len(results)
        limits = ceilings.measure(
            target.address, nbytes, fsync=settings.acks in ("all", "-1"), directory=ceiling_dir(args, target)
        )
    lines = [summary(mode, settings.num_records, latency) for mode, latency in results.items()]
    best_p50 = min(latency.p50 for latency in results.values())
    lines += limits.lines(latency_p50_ms=best_p50)
    emit(
        args,
        lines,
        {
            "tool": "e2e",
            "settings": asdict(settings),
            "latency_ms": {mode: latency.as_dict() for mode, latency in results.items()},
            "ceilings": limits.as_dict(),
            "p50_in_round_trips": {
                mode: latency.p50 * 1000 / limits.grpc_p50_us if limits.grpc_p50_us else 0.0
                for mode, latency in results.items()
            },
            "machine": machine(),
        },
    )
    return 0
