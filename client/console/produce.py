"""``logstore produce TOPIC``: one record per line of stdin (like kafka-console-producer)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from client.console.common import add_bootstrap, bootstrap, fail, friendly, key_values


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "produce",
        help="send lines of stdin as records",
        description="Send each line of stdin as one record (the newline is not part of it).",
    )
    parser.add_argument("topic")
    add_bootstrap(parser)
    parser.add_argument(
        "--key-separator", metavar="SEP", help="split each line at the first SEP into key and value"
    )
    parser.add_argument("--partition", type=int, help="send every record to this partition")
    parser.add_argument("--header", action="append", metavar="KEY=VALUE", help="a header for every record")
    parser.add_argument(
        "--acks", choices=["0", "1", "all"], default="1", help="when the broker answers (default: 1)"
    )
    parser.add_argument("--compression", choices=["none", "gzip", "zstd"], default="none")
    parser.add_argument("--linger-ms", type=float, default=5)
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.set_defaults(handler=friendly(_produce))


def _produce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from client.producer import Producer

    headers = [(k, v.encode()) for k, v in key_values(args.header, "--header").items()]
    separator = args.key_separator.encode() if args.key_separator else None
    acks = "all" if args.acks == "all" else int(args.acks)
    failures: list[BaseException] = []
    sent = 0
    with Producer(
        bootstrap(args),
        acks=acks,
        compression=args.compression,
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        max_request_size=max(1024 * 1024, args.batch_size),
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
        return fail(f"{len(failures)} of {sent} records were not written; first error: {failures[0]}")
    return 0
