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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, security_options

REPORTING_INTERVAL_MS = 5000


@dataclass(frozen=True)
class Target:
    """The broker a run measures: its address and, when the tool started it, its data directory."""

    address: str
    data_dir: Path | None
    kafka_address: str | None = None
    """The own broker's Kafka listener, when it was started with one."""
    client_options: Mapping[str, Any] = field(default_factory=dict)
    """The clients' security options (``security_protocol``, ``ssl_cafile``, ...) for this broker."""


def add_common_arguments(parser: argparse.ArgumentParser, *, security: bool = False) -> None:
    """The flags every perf tool has; with ``security`` (a tool whose clients take them) the security
    flags and ``--own-broker-tls`` too."""
    add_bootstrap(parser, security=security)
    parser.add_argument(
        "--own-broker",
        action="store_true",
        help="start a broker (a child process on a temporary data directory) for this run and stop it after",
    )
    if security:
        parser.add_argument(
            "--own-broker-tls",
            action="store_true",
            help="with --own-broker: serve TLS with a throwaway CA and certificate, which the clients trust",
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
    tls = getattr(args, "own_broker_tls", False)
    if not args.own_broker:
        if tls:
            raise ValueError("--own-broker-tls goes with --own-broker")
        yield Target(bootstrap(args), None, client_options=security_options(args))
        return
    if getattr(args, "bootstrap", None):
        raise ValueError("give either --bootstrap or --own-broker, not both")
    with own_broker(broker_args, tls=tls) as target:
        yield target


@contextlib.contextmanager
def own_broker(broker_args: Sequence[str] = (), *, tls: bool = False) -> Iterator[Target]:
    """``python -m logstore.broker`` on a free port over a temporary data directory, removed afterwards;
    with ``tls`` serving a throwaway certificate whose CA the Target's client options trust.

    A child process, not a thread: a broker in this process would share the GIL with the client and
    halve what either can do on a small machine.
    """
    from logstore.broker.embedded import BrokerProcess

    with tempfile.TemporaryDirectory(prefix="logstore-perf-") as work:
        client_options: dict[str, Any] = {}
        if tls:
            from logstore.bench.certs import CertificateAuthority

            ca = CertificateAuthority.create(Path(work) / "pki")
            pair = ca.server(Path(work) / "pki")
            broker_args = [*broker_args, "--tls-cert", str(pair.cert), "--tls-key", str(pair.key)]
            client_options = {"security_protocol": "SSL", "ssl_cafile": str(ca.cert)}
        broker = BrokerProcess(Path(work) / "data", Path(work) / "broker.log", args=broker_args)
        address = broker.start()
        try:
            yield Target(address, broker.data_dir, broker.kafka_address, client_options)
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


def ensure_topic(
    address: str, topic: str, partitions: int | None, client_options: Mapping[str, Any] | None = None
) -> int:
    """Create ``topic`` with ``partitions`` if it is missing; returns its partition count.

    With ``partitions`` None an existing topic is used as it is and a missing one gets the broker's
    default count. An existing topic with another count is an error: the run would not measure what
    was asked.
    """
    from logstore.client import Admin
    from logstore.client.shared.errors import UnknownTopicError

    with Admin(address, **(client_options or {})) as admin:
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


def end_offsets_total(address: str, topic: str, client_options: Mapping[str, Any] | None = None) -> int:
    """The sum of the topic's end offsets: how many records its partitions hold (with none deleted)."""
    from logstore.client import Admin

    with Admin(address, **(client_options or {})) as admin:
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
