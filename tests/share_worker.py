"""A share-group worker process for tests/test_share_workers_integration.py: poll, work, acknowledge, report.

Usage: python tests/share_worker.py --bootstrap HOST:PORT --group G --topic T --report FILE --stop FILE
[--mode accept|die|hold] [--max-poll-records N] [--work-ms MS].

Every event is one line appended to --report, written before the next step so that a kill loses nothing
the test relies on: ``got T P O COUNT VALUE MONOTONIC`` when poll() hands a record over, ``acking`` just
before commit_sync() sends its ACCEPT, ``confirmed`` once commit_sync() answered it without an error (the
broker has the acceptance on stable storage), ``exit MONOTONIC`` just before ``--mode die`` calls
``os._exit(1)``. Times are ``time.monotonic()``, one clock for every process of the machine (Linux).

Modes: ``accept`` accepts every record (explicit mode and commit_sync, so acceptances are confirmed);
``die`` exits with os._exit(1) as soon as it holds a record, without acknowledging it; ``hold`` keeps what
its first poll gave and never answers (until killed). ``accept`` stops, closing the consumer, once the
--stop file exists.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from logstore.client import AcknowledgeType, ShareConsumer


def failed(record: Any, failures: Mapping[Any, Exception]) -> bool:
    """Whether commit_sync's failures name this record, by offset or by its whole partition."""
    for key in failures:
        if isinstance(key, tuple):
            if tuple(key[:3]) == (record.topic, record.partition, record.offset):
                return True
            if len(key) == 2 and tuple(key) == (record.topic, record.partition):
                return True
        elif (getattr(key, "topic", None), getattr(key, "partition", None)) == (
            record.topic,
            record.partition,
        ):
            return True
    return False


def line(report: IO[str], event: str, record: Any | None = None, *extra: object) -> None:
    words: list[object] = [event]
    if record is not None:
        value = record.value.decode() if record.value is not None else "-"
        words += [record.topic, record.partition, record.offset, record.delivery_count, value]
    words += list(extra)
    report.write(" ".join(map(str, words)) + "\n")  # line-buffered: in the kernel before the next step


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--stop", type=Path, required=True)
    parser.add_argument("--mode", choices=("accept", "die", "hold"), default="accept")
    parser.add_argument("--max-poll-records", type=int, default=10)
    parser.add_argument("--work-ms", type=float, default=0.0)
    # RabbitMQ-style workers: max_poll_records is their prefetch, kept even when tasks came in one batch
    parser.add_argument("--acquire-mode", choices=("batch_optimized", "record_limit"), default="record_limit")
    args = parser.parse_args()
    report = args.report.open("a", buffering=1)
    consumer = ShareConsumer(
        args.topic,
        group_id=args.group,
        bootstrap=args.bootstrap,
        acknowledgement_mode="explicit",
        max_poll_records=args.max_poll_records,
        share_acquire_mode=args.acquire_mode,
        fetch_max_wait_ms=200,
    )
    line(report, "joined")
    while not args.stop.exists():
        records = consumer.poll(timeout_ms=200)
        for record in records:
            line(report, "got", record, time.monotonic())
        if not records:
            continue
        if args.mode == "die":
            line(report, "exit", None, time.monotonic())
            os._exit(1)
        if args.mode == "hold":
            while True:  # until the test kills this process
                time.sleep(1)
        for record in records:
            if args.work_ms:
                time.sleep(args.work_ms / 1000)
            consumer.acknowledge(record, AcknowledgeType.ACCEPT)
            line(report, "acking", record)
        failures = consumer.commit_sync()
        for record in records:
            if failed(record, failures):
                line(report, "failed", record, repr(failures))
            else:
                line(report, "confirmed", record)
    consumer.close()
    line(report, "closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
