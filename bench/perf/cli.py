"""``logstore perf ...``: the perf tools as one subcommand group of the ``logstore`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from logstore.bench.perf import consume, e2e, kafka_clients, produce, publish_records, share_consume, sweep

TOOLS = (
    produce.add_parser,
    consume.add_parser,
    share_consume.add_parser,
    e2e.add_parser,
    sweep.add_parser,
    kafka_clients.add_parser,
    publish_records.add_parser,
)


def add_parser(subcommands: Any) -> None:
    """Register ``perf`` and its tools under ``subcommands`` (``logstore``'s subparsers)."""
    parser = subcommands.add_parser(
        "perf",
        help="throughput and latency tools: produce, consume, share-consume, e2e, sweep, kafka-clients, "
        "publish-records",
        description="Measure what the broker and client do on this machine, beside what the machine allows.",
    )
    tools = parser.add_subparsers(dest="perf_tool", metavar="TOOL", required=True)
    for add in TOOLS:
        add(tools)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m logstore.bench.perf TOOL ...`` (the same as ``logstore perf TOOL ...``)."""
    parser = argparse.ArgumentParser(prog="python -m logstore.bench.perf", description="logstore perf tools")
    tools = parser.add_subparsers(dest="perf_tool", metavar="TOOL", required=True)
    for add in TOOLS:
        add(tools)
    args = parser.parse_args(argv)
    return args.handler(args, parser)


if __name__ == "__main__":
    sys.exit(main())
