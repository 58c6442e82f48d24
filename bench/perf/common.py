"""What the perf tools share: their common flags, a broker to measure against, topics, and output."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap

REPORTING_INTERVAL_MS = 5000


@dataclass(frozen=True)
class Target:
    """The broker a run measures: its address and, when the tool started it, its data directory."""

    address: str
    data_dir: Path | None
    kafka_address: str | None = None
    """The own broker's Kafka listener, when it was started with one."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    add_bootstrap(parser)
    parser.add_argument(
        "--own-broker",
        action="store_true",
        help="start a broker (a child process on a temporary data directory) for this run and stop it after",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the summary lines"
    )
    parser.add_argument(
        "--reporting-interval",
        type=int,
        default=REPORTING_INTERVAL_MS,
        metavar="MS",
        help=f"milliseconds between status lines on stderr, 0 for none (default: {REPORTING_INTERVAL_MS})",
    )
    parser.add_argument(
        "--ceiling-dir",
        metavar="DIR",
        help="where the file-write ceiling writes (default: the own broker's data directory, else the temp dir)",
    )


@contextlib.contextmanager
def target_broker(args: argparse.Namespace, broker_args: Sequence[str] = ()) -> Iterator[Target]:
    """The broker named by ``--bootstrap``, or with ``--own-broker`` a fresh one (started with
    `broker_args`) stopped on exit."""
    if not args.own_broker:
        yield Target(bootstrap(args), None)
        return
    if getattr(args, "bootstrap", None):
        raise ValueError("give either --bootstrap or --own-broker, not both")
    with own_broker(broker_args) as target:
        yield target


@contextlib.contextmanager
def own_broker(broker_args: Sequence[str] = ()) -> Iterator[Target]:
    """``python -m logstore.broker`` on a free port over a temporary data directory, removed afterwards.

    A child process, not a thread: a broker in this process would share the GIL with the client and
    halve what either can do on a small machine.
    """
    from logstore.broker.embedded import BrokerProcess

    with tempfile.TemporaryDirectory(prefix="logstore-perf-") as work:
        broker = BrokerProcess(Path(work) / "data", Path(work) / "broker.log", args=broker_args)
        address = broker.start()
        try:
            yield Target(address, broker.data_dir, broker.kafka_address)
        finally:
            code = broker.terminate()
            if code != 0:
                print(
                    f"warning: the perf broker exited with {code}; its log:\n{broker.log_text()}",
                    file=sys.stderr,
                )


def ceiling_dir(args: argparse.Namespace, target: Target) -> Path:
    if args.ceiling_dir:
        return Path(args.ceiling_dir)
    return target.data_dir if target.data_dir is not None else Path(tempfile.gettempdir())


def ensure_topic(address: str, topic: str, partitions: int | None) -> int:
    """Create ``topic`` with ``partitions`` if it is missing; returns its partition count.

    With ``partitions`` None an existing topic is used as it is and a missing one gets the broker's
    default count. An existing topic with another count is an error: the run would not measure what
    was asked.
    """
    from logstore.client import Admin
    from logstore.client.shared.errors import UnknownTopicError

    with Admin(address) as admin:
        try:
            (found,) = admin.describe_topics([topic])
        except UnknownTopicError:
            return len(admin.create_topic(topic, partitions or 0).partitions)
    count = len(found.partitions)
    if partitions is not None and count != partitions:
        raise ValueError(
            f"topic {topic!r} already exists with {count} partitions, not the {partitions} asked for: "
            "choose another --topic, or leave out --partitions"
        )
    return count


def end_offsets_total(address: str, topic: str) -> int:
    """The sum of the topic's end offsets: how many records its partitions hold (with none deleted)."""
    from logstore.client import Admin

    with Admin(address) as admin:
        (found,) = admin.describe_topics([topic])
    return sum(p.log_end_offset for p in found.partitions)


def machine() -> dict[str, object]:
    """Where and when a figure was measured, stored with every JSON result."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in load],
    }


def emit(args: argparse.Namespace, lines: list[str], result: dict[str, object]) -> None:
    """The run's result on stdout: the summary and ceiling lines, or with ``--json`` one JSON object."""
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for line in lines:
            print(line)
    sys.stdout.flush()


def parse_props(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["buffer_memory=67108864", "enable_idempotence=false"]`` as keyword arguments with typed values."""
    props: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{flag} {pair!r} is not NAME=VALUE")
        props[name.strip().replace("-", "_").replace(".", "_")] = _typed(text.strip())
    return props


def _typed(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
