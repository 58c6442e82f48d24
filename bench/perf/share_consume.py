"""``logstore perf share-consume``: share-group throughput beside the plain consumer, and redelivery time.

Each run writes ``--num-records`` records of ``--record-size`` bytes to a new topic (untimed), then times,
on that same topic:

- the plain ``Consumer`` reading every record (every partition assigned, no group), as ``perf consume``;
- one ``ShareConsumer`` of a new share group accepting every record on its own
  (``acknowledge(record, ACCEPT)`` in explicit mode; the client coalesces them into ranges per round
  trip) until all are accepted and the last ``commit_sync()`` is answered (so on the broker's disk);
- ``--consumers`` ShareConsumers in separate processes (spawned, started together) of another new group,
  doing the same until they have accepted every record between them.

Rates are records over the time from the consumer's creation (process start-up excluded) to the last
record (plain) or the last answered commit (share). Reported are the medians over ``--runs`` runs, with
every run's figure. Then ``--redelivery-runs`` times a worker's death: a worker process holds a record
and calls ``os._exit(1)``; the time is from its exit to the record reaching another worker that is
polling already, with share.record.lock.duration.ms set to ``--lock-ms``. The protocol promises at most
the lock duration (counted from the acquisition, slightly before the exit) plus the broker's detection.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from logstore.bench.perf.common import (
    add_common_arguments,
    emit,
    machine,
    parse_props,
    positive_int,
    target_broker,
)
from logstore.bench.perf.consume import PREFILL_BATCH_BYTES, ConsumeSettings, prefill, run_consume
from logstore.bench.perf.stats import rate
from logstore.client.console.common import friendly

WORKER_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ShareConsumeSettings:
    num_records: int
    record_size: int = 100
    partitions: int = 2
    batch_bytes: int = PREFILL_BATCH_BYTES
    runs: int = 3
    consumers: int = 3
    redelivery_runs: int = 3
    lock_ms: int = 2000
    timeout_s: float = 120.0
    group_config: dict[str, str] = field(default_factory=dict)
    consumer_props: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    plain: float
    share_one: float
    share_many: float


@dataclass
class ShareConsumeResult:
    runs: list[RunResult]
    redelivery_s: list[float]

    def median(self, name: str) -> float:
        return statistics.median(getattr(run, name) for run in self.runs) if self.runs else 0.0


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "share-consume",
        help="share-group throughput (one and several ShareConsumers) beside the plain consumer, and redelivery time",
        description="Time ShareConsumers accepting every record, the plain Consumer on the same topic, and "
        "how long a task held by a worker that dies takes to reach another worker.",
    )
    parser.add_argument(
        "--num-records", type=positive_int, default=200_000, help="records per run (default: 200000)"
    )
    parser.add_argument(
        "--record-size", type=positive_int, default=100, help="value bytes per record (default: 100)"
    )
    parser.add_argument(
        "--partitions", type=positive_int, default=2, help="partitions of the topic (default: 2)"
    )
    parser.add_argument(
        "--batch-bytes",
        type=positive_int,
        default=PREFILL_BATCH_BYTES,
        help=f"producer batch size of the prefill, in bytes (default: {PREFILL_BATCH_BYTES}; Kafka's "
        "producer default is 16384)",
    )
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="throughput runs, medians reported (default: 3)"
    )
    parser.add_argument(
        "--consumers",
        type=positive_int,
        default=3,
        help="ShareConsumer processes in the shared run (default: 3)",
    )
    parser.add_argument(
        "--redelivery-runs", type=int, default=3, help="worker deaths to time, 0 for none (default: 3)"
    )
    parser.add_argument(
        "--lock-ms",
        type=positive_int,
        default=2000,
        help="share.record.lock.duration.ms for the redelivery runs",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=120.0, help="give up on a run after this long (default: 120)"
    )
    parser.add_argument(
        "--group-config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a share-group config for the throughput groups, e.g. share.partition.max.record.locks=10000",
    )
    parser.add_argument(
        "--consumer-prop",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other ShareConsumer argument, e.g. max_poll_records=2000",
    )
    add_common_arguments(parser)
    parser.set_defaults(handler=friendly(_run))


def _pairs(pairs: Sequence[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{flag} {pair!r} is not NAME=VALUE")
        found[name.strip()] = value.strip()
    return found


def configure_group(address: str, group: str, configs: dict[str, str]) -> None:
    """Set a share group's configs before its first member joins."""
    from logstore.client import Admin

    with Admin(address) as admin:
        admin.alter_group_config(group, configs)


def share_accept_all(
    address: str,
    topic: str,
    group: str,
    target: int,
    props: dict[str, Any],
    timeout_s: float,
    total: Callable[[int], int] | None = None,
) -> tuple[int, float, float]:
    """Accept records one by one until ``target`` are accepted (by this consumer, or by all when ``total``
    adds this one's count to a shared one); returns (accepted here, seconds from creation to the last
    answered commit, time.monotonic() of that answer). close() is not timed (the single run's figure
    never included it; the shared run takes the latest of the workers' last commits, not their exits).
    With ``total`` a poll waits at most 10 ms, so a worker idle at the end notices the others are
    done within that."""
    from logstore.client import AcknowledgeType, ShareConsumer

    poll_ms = 100 if total is None else 10
    started = time.perf_counter()
    accepted = 0
    deadline = time.monotonic() + timeout_s
    options: dict[str, Any] = {"acknowledgement_mode": "explicit", "max_poll_records": 2000}
    options.update(props)
    with ShareConsumer(topic, group_id=group, bootstrap=address, **options) as consumer:
        reached = 0
        while reached < target:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {reached} of {target} records of {topic!r} accepted in {timeout_s:g} s"
                )
            records = consumer.poll(timeout_ms=poll_ms)
            for record in records:
                consumer.acknowledge(record, AcknowledgeType.ACCEPT)
            accepted += len(records)
            reached = total(len(records)) if total is not None else accepted
        failures = consumer.commit_sync()
        seconds = time.perf_counter() - started
        finished_at = time.monotonic()
    if failures:
        raise RuntimeError(f"acknowledgements failed: {failures}")
    return accepted, seconds, finished_at


def _share_worker(
    address: str,
    topic: str,
    group: str,
    target: int,
    props: dict[str, Any],
    timeout_s: float,
    counter: Any,
    barrier: Any,
    results: Any,
) -> None:
    """One of the ``--consumers`` processes: wait for the others, then accept until they have all of them."""

    def total(more: int) -> int:
        with counter.get_lock():
            counter.value += more
            return int(counter.value)

    barrier.wait(WORKER_READY_TIMEOUT_S)
    accepted, _, finished_at = share_accept_all(address, topic, group, target, props, timeout_s, total)
    results.put((accepted, finished_at))


def share_many(address: str, topic: str, group: str, settings: ShareConsumeSettings) -> float:
    """Records/s of ``settings.consumers`` processes sharing the group, from their common start (the
    barrier) to the last of their last answered commits. time.monotonic() is one clock for every
    process on Linux (CLOCK_MONOTONIC)."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    barrier = context.Barrier(settings.consumers + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=_share_worker,
            args=(
                address,
                topic,
                group,
                settings.num_records,
                settings.consumer_props,
                settings.timeout_s,
                counter,
                barrier,
                results,
            ),
        )
        for _ in range(settings.consumers)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(WORKER_READY_TIMEOUT_S)
        started = time.monotonic()
        done = [results.get(timeout=settings.timeout_s) for _ in processes]
        seconds = max(finished_at for _, finished_at in done) - started
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    accepted = sum(count for count, _ in done)
    if accepted < settings.num_records:
        raise RuntimeError(f"the consumers accepted {accepted} of {settings.num_records} records")
    return rate(accepted, seconds)


def _dying_worker(address: str, topic: str, group: str, ready: Any, died: Any) -> None:
    """Hold one record, report the time, and exit without a word (as a crashed worker does)."""
    from logstore.client import ShareConsumer

    consumer = ShareConsumer(
        topic,
        group_id=group,
        bootstrap=address,
        acknowledgement_mode="explicit",
        max_poll_records=1,
        share_acquire_mode="record_limit",
    )
    consumer.poll(timeout_ms=100)
    ready.set()
    while True:
        records = consumer.poll(timeout_ms=500)
        if records:
            died.send((records[0].offset, time.monotonic()))  # a pipe writes at once (a Queue would not)
            os._exit(1)


def redelivery_once(address: str, settings: ShareConsumeSettings, run: int) -> float:
    """Seconds from a worker's exit while holding a record to another worker receiving that record."""
    from logstore.client import AcknowledgeType, Admin, Producer, ShareConsumer

    suffix = f"{os.getpid()}-{time.time_ns()}-{run}"
    topic, group = f"share-perf-redelivery-{suffix}", f"share-perf-redelivery-{suffix}"
    with Admin(address) as admin:
        admin.create_topic(topic, 1)
    configure_group(
        address,
        group,
        {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": str(settings.lock_ms)},
    )
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    died, sender = context.Pipe(duplex=False)
    dying = context.Process(target=_dying_worker, args=(address, topic, group, ready, sender))
    dying.start()
    try:
        if not ready.wait(WORKER_READY_TIMEOUT_S):
            raise TimeoutError("the dying worker did not start")
        with (
            ShareConsumer(
                topic,
                group_id=group,
                bootstrap=address,
                acknowledgement_mode="explicit",
                fetch_max_wait_ms=500,
            ) as survivor,
            Producer(address) as producer,
        ):
            survivor.poll(timeout_ms=100)
            held: tuple[int, float] | None = None
            deadline = time.monotonic() + settings.timeout_s
            while held is None:  # produce until the dying worker (not the survivor) gets a record
                producer.send(topic, b"task")
                producer.flush()
                for record in survivor.poll(timeout_ms=300):
                    survivor.acknowledge(record, AcknowledgeType.ACCEPT)
                survivor.commit_sync()
                if died.poll():
                    held = died.recv()
                if time.monotonic() > deadline:
                    raise TimeoutError("the dying worker never got a record")
            offset, exited_at = held
            while time.monotonic() < deadline:
                for record in survivor.poll(timeout_ms=500):
                    arrived = time.monotonic()
                    survivor.acknowledge(record, AcknowledgeType.ACCEPT)
                    if record.offset == offset:
                        survivor.commit_sync()
                        return arrived - exited_at
                survivor.commit_sync()
            raise TimeoutError(
                f"the record at offset {offset} was not redelivered in {settings.timeout_s:g} s"
            )
    finally:
        dying.join(10)
        if dying.is_alive():
            dying.kill()


def run_share_consume(address: str, settings: ShareConsumeSettings) -> ShareConsumeResult:
    runs: list[RunResult] = []
    for run in range(settings.runs):
        suffix = f"{os.getpid()}-{time.time_ns()}-{run}"
        topic = f"share-perf-{suffix}"
        prefill(
            address,
            topic,
            settings.num_records,
            settings.record_size,
            settings.partitions,
            settings.batch_bytes,
        )
        plain = run_consume(address, ConsumeSettings(topic=topic, num_records=settings.num_records), None)
        configs = {"share.auto.offset.reset": "earliest", **settings.group_config}
        one_group, many_group = f"{topic}-one", f"{topic}-many"
        configure_group(address, one_group, configs)
        configure_group(address, many_group, configs)
        accepted, seconds, _ = share_accept_all(
            address, topic, one_group, settings.num_records, settings.consumer_props, settings.timeout_s
        )
        many = share_many(address, topic, many_group, settings)
        runs.append(RunResult(plain.records_per_s, rate(accepted, seconds), many))
    redelivery = [redelivery_once(address, settings, run) for run in range(settings.redelivery_runs)]
    return ShareConsumeResult(runs, redelivery)


def summary(settings: ShareConsumeSettings, result: ShareConsumeResult) -> list[str]:
    def figures(name: str) -> str:
        return ", ".join(f"{getattr(run, name):,.0f}" for run in result.runs)

    lines = [
        f"{settings.num_records} records of {settings.record_size} B over {settings.partitions} partitions "
        f"in batches of {settings.batch_bytes} B, "
        f"{settings.runs} runs, medians in records/sec:",
        f"plain Consumer:                    {result.median('plain'):,.0f} records/sec (runs: {figures('plain')})",
        f"1 ShareConsumer accepting each:    {result.median('share_one'):,.0f} records/sec (runs: {figures('share_one')})",
        f"{settings.consumers} ShareConsumers (processes):    {result.median('share_many'):,.0f} records/sec "
        f"(runs: {figures('share_many')})",
    ]
    if result.redelivery_s:
        each = ", ".join(f"{s:.2f}" for s in result.redelivery_s)
        lines.append(
            f"redelivery after a worker died holding a record (lock {settings.lock_ms} ms): median "
            f"{statistics.median(result.redelivery_s):.2f} s, max {max(result.redelivery_s):.2f} s (runs: {each})"
        )
    return lines


def result_json(settings: ShareConsumeSettings, result: ShareConsumeResult) -> dict[str, Any]:
    return {
        "tool": "share-consume",
        "settings": asdict(settings),
        "runs": [asdict(run) for run in result.runs],
        "plain_records_per_s": result.median("plain"),
        "share_one_records_per_s": result.median("share_one"),
        "share_many_records_per_s": result.median("share_many"),
        "redelivery_s": result.redelivery_s,
        "machine": machine(),
    }


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = ShareConsumeSettings(
        num_records=args.num_records,
        record_size=args.record_size,
        partitions=args.partitions,
        batch_bytes=args.batch_bytes,
        runs=args.runs,
        consumers=args.consumers,
        redelivery_runs=args.redelivery_runs,
        lock_ms=args.lock_ms,
        timeout_s=args.timeout_s,
        group_config=_pairs(args.group_config, "--group-config"),
        consumer_props=parse_props(args.consumer_prop, "--consumer-prop"),
    )
    with target_broker(args) as target:
        result = run_share_consume(target.address, settings)
    emit(args, summary(settings, result), result_json(settings, result))
    return 0
