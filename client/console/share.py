"""``logstore share consume TOPIC [TOPIC...] --group G``: print records as a member of a share group (like
Kafka's kafka-console-share-consumer), acknowledging each printed record with ``--ack``.

Records are acknowledged one by one after they are printed (explicit mode), so ``--max-messages`` never
acknowledges a record it did not print: what the last poll acquired beyond that is given back at exit
without counting a delivery attempt. Where a new group starts is its ``share.auto.offset.reset`` config
(`logstore groups alter-config G --set share.auto.offset.reset=earliest` before the first member joins).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from logstore.client.console.common import add_bootstrap, bootstrap, friendly, security_options

ACKS = ("accept", "release", "reject")


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser("share", help="consume as a member of a share group (a queue)")
    add_bootstrap(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    consume = actions.add_parser(
        "consume",
        help="print records of topics, acknowledging each",
        description="Join share group GROUP and print each record it hands this member, then acknowledge "
        "it (--ack). Topics are read in the order given with --priority. A new group starts at its "
        "share.auto.offset.reset (default latest: only new records); set it with `logstore groups "
        "alter-config GROUP --set share.auto.offset.reset=earliest`.",
    )
    consume.add_argument("topics", nargs="+", metavar="TOPIC", help="the topics to read")
    consume.add_argument("--group", required=True, metavar="GROUP", help="the share group to join")
    consume.add_argument(
        "--ack", choices=ACKS, default="accept", help="the outcome for every printed record (default: accept)"
    )
    consume.add_argument(
        "--release-delay-ms", type=int, default=0, help="with --ack release: keep records back this long"
    )
    consume.add_argument("--priority", action="store_true", help="serve the topics in the order given")
    consume.add_argument("--max-messages", type=int, help="exit after printing this many records")
    consume.add_argument("--timeout-ms", type=float, help="exit when no record came for this long")
    consume.add_argument(
        "--request-timeout-ms",
        type=float,
        default=30_000,
        help="fail when the broker has not answered for this long (default: 30000)",
    )
    consume.add_argument("--print-key", action="store_true", help="print each record's key before its value")
    consume.add_argument("--print-partition", action="store_true", help="print each record's partition")
    consume.add_argument("--print-offset", action="store_true", help="print each record's offset")
    consume.add_argument(
        "--print-timestamp", action="store_true", help="print each record's timestamp (ms) and its type"
    )
    consume.add_argument(
        "--print-headers", action="store_true", help="print each record's headers as k:v,..."
    )
    consume.add_argument(
        "--print-delivery-count", action="store_true", help="print how often each record was delivered"
    )
    consume.add_argument("--separator", default="\t", help="between printed fields (default: tab)")
    add_bootstrap(consume)
    consume.set_defaults(handler=friendly(_consume))


def _consume(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.admin.api import Admin
    from logstore.client.console.consume import Terminated, _formatter, _on_sigterm
    from logstore.client.share.acks import AcknowledgeType
    from logstore.client.share.api import ShareConsumer

    if args.max_messages is not None and args.max_messages < 1:
        raise ValueError(f"--max-messages must be at least 1, got {args.max_messages}")
    if args.request_timeout_ms <= 0:
        raise ValueError(f"--request-timeout-ms must be positive, got {args.request_timeout_ms}")
    if args.release_delay_ms and args.ack != "release":
        raise ValueError("--release-delay-ms goes with --ack release")
    ack = AcknowledgeType[args.ack.upper()]
    # Fails at once, naming what is wrong, for an unknown topic or an unreachable broker (the member alone
    # would wait for the topic to be created).
    security = security_options(args)
    with Admin(bootstrap(args), request_timeout_ms=args.request_timeout_ms, **security) as admin:
        admin.describe_topics(args.topics)
    base = _formatter(args)
    line = _with_delivery_count(base, args.separator.encode()) if args.print_delivery_count else base
    consumer = ShareConsumer(
        *args.topics,
        group_id=args.group,
        bootstrap=bootstrap(args),
        acknowledgement_mode="explicit",
        priority=args.priority,
        request_timeout_ms=args.request_timeout_ms,
        **security,
    )
    printed = 0
    stop = _Stop()
    previous = _on_sigterm(stop.handle)
    out = sys.stdout.buffer
    try:
        idle_since = time.monotonic()
        while printed != args.max_messages and not stop.received:
            wait_ms = 200.0
            if args.timeout_ms is not None:
                wait_ms = max(0.0, min(wait_ms, args.timeout_ms - (time.monotonic() - idle_since) * 1000))
            records = consumer.poll(timeout_ms=wait_ms)
            if not records:
                if args.timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= args.timeout_ms:
                    break
                continue
            idle_since = time.monotonic()
            for record in records:
                if printed == args.max_messages or stop.received:
                    break  # the rest are given back by close(), not counted as an attempt
                out.write(line(record))
                printed += 1
                consumer.acknowledge(record, ack, args.release_delay_ms)
            out.flush()
        if stop.received:
            raise Terminated()
    finally:
        _on_sigterm(signal.SIG_IGN)
        try:
            consumer.close()
        finally:
            _on_sigterm(previous)
            print(f"Processed a total of {printed} messages", file=sys.stderr)
    return 0


class _Stop:
    """SIGTERM only sets a flag: the records printed so far are acknowledged by close() first."""

    def __init__(self) -> None:
        self.received = False

    def handle(self, signum: int, frame: Any) -> None:
        self.received = True


def _with_delivery_count(line: Any, separator: bytes) -> Any:
    def show(record: Any) -> bytes:
        return b"DeliveryCount:%d" % record.delivery_count + separator + line(record)

    return show
