"""``logstore produce TOPIC``: one record per line of stdin (like kafka-console-producer)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from logstore.client.console.common import (
    add_bootstrap,
    bootstrap,
    fail,
    friendly,
    key_values,
    security_options,
)
from logstore.client.producer.config import DEFAULT_BATCH_SIZE

_MIB = 1024 * 1024

FLAGS = {
    "max_block_ms": "--max-block-ms",
    "request_timeout_ms": "--request-timeout-ms",
    "delivery_timeout_ms": "--delivery-timeout-ms",
    "max_request_size": "--max-request-size",
    "linger_ms": "--linger-ms",
    "batch_size": "--batch-size",
}
"""The Producer options this tool has a flag for: its error messages name the flag instead."""
_OPTION = re.compile(r"\b(" + "|".join(FLAGS) + r")\b")


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "produce",
        help="send lines of stdin as records",
        description="Send each line of stdin as one record (the newline is not part of it).",
    )
    parser.add_argument("topic", help="the topic to send to (created if the broker auto-creates topics)")
    add_bootstrap(parser)
    parser.add_argument(
        "--key-separator", metavar="SEP", help="split each line at the first SEP into key and value"
    )
    parser.add_argument("--partition", type=int, help="send every record to this partition")
    parser.add_argument("--header", action="append", metavar="KEY=VALUE", help="a header for every record")
    parser.add_argument(
        "--acks", choices=["0", "1", "all"], default="1", help="when the broker answers (default: 1)"
    )
    parser.add_argument(
        "--compression",
        choices=["none", "gzip", "snappy", "lz4", "zstd"],
        default="none",
        help="compress each batch with this codec (default: none)",
    )
    parser.add_argument(
        "--linger-ms", type=float, default=5, help="wait this long for more records per batch (default: 5)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"bytes of records per batch (default: {DEFAULT_BATCH_SIZE}, the Producer's)",
    )
    parser.add_argument(
        "--max-request-size",
        type=int,
        metavar="BYTES",
        help="largest request, and so largest record (default: 1 MiB, or --batch-size if larger)",
    )
    parser.add_argument(
        "--max-block-ms",
        type=float,
        default=60_000,
        metavar="MS",
        help="give up after this long without the topic's partitions or buffer room, e.g. while the "
        "broker is unreachable (default: 60000)",
    )
    parser.add_argument(
        "--request-timeout-ms",
        type=float,
        default=30_000,
        metavar="MS",
        help="wait this long for each answer from the broker (default: 30000)",
    )
    parser.add_argument(
        "--delivery-timeout-ms",
        type=float,
        metavar="MS",
        help="fail a record not acknowledged this long after it was read, retries included (default: "
        "120000, or --linger-ms + --request-timeout-ms if larger)",
    )
    parser.set_defaults(handler=friendly(_produce))


def as_flags(message: str) -> str:
    """``message`` with each Producer option this tool has a flag for named by its flag."""
    return _OPTION.sub(lambda match: FLAGS[match.group(1)], message)


def _produce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.client.shared.errors import ClientError

    try:
        return _send_lines(args)
    except (ClientError, ValueError, TimeoutError) as exc:
        return fail(as_flags(str(exc) or type(exc).__name__))


def _send_lines(args: argparse.Namespace) -> int:
    from logstore.client.producer.api import Producer

    headers = [(k, v.encode()) for k, v in key_values(args.header, "--header").items()]
    separator = args.key_separator.encode() if args.key_separator else None
    acks = "all" if args.acks == "all" else int(args.acks)
    delivery_timeout_ms = args.delivery_timeout_ms
    if delivery_timeout_ms is None:
        delivery_timeout_ms = max(120_000, args.linger_ms + args.request_timeout_ms)
    failures: list[BaseException] = []
    sent = 0
    with Producer(
        bootstrap(args),
        acks=acks,
        compression=args.compression,
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        max_request_size=args.max_request_size or max(_MIB, args.batch_size),
        max_block_ms=args.max_block_ms,
        request_timeout_ms=args.request_timeout_ms,
        delivery_timeout_ms=delivery_timeout_ms,
        **security_options(args),
    ) as producer:
        for number, line in enumerate(sys.stdin.buffer, start=1):
            value = line[:-1] if line.endswith(b"\n") else line
            key = None
            if separator is not None:
                key, found, value = value.partition(separator)
                if not found:
                    return fail(f"line {number} has no key separator {args.key_separator!r}")
            future = producer.send(args.topic, value, key=key, headers=headers, partition=args.partition)
            future.add_errback(failures.append)
            sent += 1
        producer.flush()
    if failures:
        return fail(
            as_flags(f"{len(failures)} of {sent} records were not written; first error: {failures[0]}")
        )
    return 0
