"""`logstore`: the command line, in the manner of Kafka's console tools.

It lives in `bench`, the top of the stack, because it is the one module that imports every layer: the
client's console tools, the broker (`serve`), the engine (`verify`) and the perf tools. Nothing imports
it, so no layer below imports one above it (in `client/` it made client -> bench -> client a cycle).

Each tool is a subcommand that registers its own flags and a handler returning the exit code:

    def add_parser(subcommands) -> None:
        parser = subcommands.add_parser("topics", help="...")
        parser.add_argument(...)
        parser.set_defaults(handler=run_topics)

and is listed in COMMANDS below.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

# gRPC's C core logs each failed TLS handshake on stderr at INFO; a tool's error is its own one line
# (which says why). Set before grpc is first imported; GRPC_VERBOSITY in the environment still wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from logstore.client.console import COMMANDS as CONSOLE_COMMANDS

Subcommands = Any  # argparse's private _SubParsersAction


def _add_serve(subcommands: Subcommands) -> None:
    from logstore.broker.settings import add_arguments

    parser = subcommands.add_parser(
        "serve",
        help="run a broker",
        description="Run a logstore broker. Flags override LOGSTORE_* environment variables, which override "
        "the config file, which overrides the defaults.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # The broker (and grpc's server side) is imported only by the command that needs it.
    from logstore.broker.server import run
    from logstore.broker.settings import SettingsError, from_arguments

    try:
        settings = from_arguments(args)
    except SettingsError as exc:
        parser.error(str(exc))
    return run(settings)


def _add_perf(subcommands: Subcommands) -> None:
    from logstore.bench.perf.cli import add_parser

    add_parser(subcommands)


def _add_groups(subcommands: Subcommands) -> None:
    from logstore.client.console.groups import add_parser

    add_parser(subcommands)


def _add_share(subcommands: Subcommands) -> None:
    from logstore.client.console.share import add_parser

    add_parser(subcommands)


def _add_users(subcommands: Subcommands) -> None:
    from logstore.bench.security_cli import add_users_parser

    add_users_parser(subcommands)


def _add_acls(subcommands: Subcommands) -> None:
    from logstore.bench.security_cli import add_acls_parser

    add_acls_parser(subcommands)


def _add_verify(subcommands: Subcommands) -> None:
    from pathlib import Path

    from logstore.client.console.common import friendly

    parser = subcommands.add_parser(
        "verify",
        help="check every batch of a data directory offline",
        description="Check the framing, offsets, CRC and records of every batch of every segment under a "
        "(stopped) broker's data directory, like kafka-dump-log --deep-iteration. Prints one line per "
        "segment file; the exit code is 1 if anything does not check out. Repairs nothing.",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the broker's --data-dir")
    parser.add_argument("--problems-only", action="store_true", help="print only the files with problems")
    parser.set_defaults(handler=friendly(_verify))


def _verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from logstore.verify import main as verify

    return verify(args.data_dir, problems_only=args.problems_only)


COMMANDS: Sequence[Callable[[Subcommands], None]] = (
    _add_serve,
    *CONSOLE_COMMANDS,
    _add_groups,
    _add_share,
    _add_users,
    _add_acls,
    _add_verify,
    _add_perf,
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("logstore")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logstore", description="A Kafka-style partitioned commit log.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args, parser)


if __name__ == "__main__":
    sys.exit(main())
