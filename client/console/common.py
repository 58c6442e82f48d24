"""What every console tool shares: the ``--bootstrap`` flag, ``key=value`` parsing, and turning errors into
one line on stderr and an exit code (never a traceback)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

DEFAULT_BOOTSTRAP = "127.0.0.1:9093"
BOOTSTRAP_ENV = "LOGSTORE_BOOTSTRAP"

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help=f"the broker's address (default: ${BOOTSTRAP_ENV} or {DEFAULT_BOOTSTRAP})",
    )


def bootstrap(args: argparse.Namespace) -> str:
    return getattr(args, "bootstrap", None) or os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP


def key_values(pairs: list[str] | None, what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` as a dict; raises ValueError naming the bad item."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} is not key=value")
        out[key.strip()] = value
    return out


def fail(message: str, code: int = 1) -> int:
    print(f"logstore: error: {message}", file=sys.stderr)
    return code


def friendly(handler: Handler) -> Handler:
    """Run a tool; expected errors become one line on stderr and a non-zero exit code."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
        from logstore.client.shared.errors import (
            ClientError,  # imported here: `logstore serve` does not need the client
        )

        try:
            return handler(args, parser)
        except KeyboardInterrupt as exc:
            return getattr(exc, "exit_code", 130)  # 143 after SIGTERM (client.console.consume)
        except BrokenPipeError:  # e.g. `logstore consume t | head`
            _silence_stdout()
            return 0
        except (ClientError, ValueError, OSError, TimeoutError) as exc:
            return fail(str(exc) or type(exc).__name__)

    return run


def _silence_stdout() -> None:
    """After the reader of stdout went away, keep Python from complaining while it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
