"""What every console tool shares: the ``--bootstrap`` and security flags, ``key=value`` parsing, and
turning errors into one line on stderr and an exit code (never a traceback).

The security flags are kafka-python's client options (``--security-protocol SSL`` is
``security_protocol="SSL"``), each also read from a ``LOGSTORE_*`` variable; a flag wins. The SASL
password is never a flag value, which other users of the machine could read in ``ps``: it comes from
``LOGSTORE_SASL_PASSWORD`` or from the file ``--sasl-password-file`` names."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9093"
BOOTSTRAP_ENV = "LOGSTORE_BOOTSTRAP"

Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]


SECURITY_FLAGS = {
    "security_protocol": ("--security-protocol", "LOGSTORE_SECURITY_PROTOCOL"),
    "ssl_cafile": ("--ssl-cafile", "LOGSTORE_SSL_CAFILE"),
    "ssl_certfile": ("--ssl-certfile", "LOGSTORE_SSL_CERTFILE"),
    "ssl_keyfile": ("--ssl-keyfile", "LOGSTORE_SSL_KEYFILE"),
    "sasl_mechanism": ("--sasl-mechanism", "LOGSTORE_SASL_MECHANISM"),
    "sasl_plain_username": ("--sasl-username", "LOGSTORE_SASL_USERNAME"),
}
"""Each client security option: its flag and its environment variable."""
PASSWORD_ENV = "LOGSTORE_SASL_PASSWORD"
_SECURITY_HELP = {
    "security_protocol": "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL",
    "ssl_cafile": "PEM file of the CA that signed the broker's certificate",
    "ssl_certfile": "PEM certificate this client presents (when the broker requires one)",
    "ssl_keyfile": "PEM private key of --ssl-certfile",
    "sasl_mechanism": "PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512",
    "sasl_plain_username": "the SASL user name",
}


def add_bootstrap(parser: argparse.ArgumentParser, *, security: bool = True) -> None:
    """``--bootstrap`` and (unless told not to, for a tool that cannot use them) the security flags:
    everything a tool needs to reach its broker."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help=f"the broker address(es), comma-separated (default: ${BOOTSTRAP_ENV} or {DEFAULT_BOOTSTRAP})",
    )
    if security:
        add_security(parser)


def add_security(parser: argparse.ArgumentParser) -> None:
    """The security flags (``security_options`` reads them)."""
    for option, (flag, env) in SECURITY_FLAGS.items():
        parser.add_argument(
            flag,
            dest=option,
            metavar="PROTOCOL" if option == "security_protocol" else None,
            type=str.upper if option in ("security_protocol", "sasl_mechanism") else str,
            default=argparse.SUPPRESS,
            help=f"{_SECURITY_HELP[option]} (default: ${env})",
        )
    parser.add_argument(
        "--sasl-password-file",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"read the SASL password from the first line of FILE (default: ${PASSWORD_ENV}; never a flag)",
    )
    # Without it, argparse would take `--sasl-password SECRET` for an abbreviation of the file flag.
    parser.add_argument(
        "--sasl-password",
        nargs="?",
        action=_RefusePasswordFlag,
        default=argparse.SUPPRESS,
        help=f"refused: a password on the command line is visible to every user in ps; use ${PASSWORD_ENV} "
        "or --sasl-password-file",
    )


class _RefusePasswordFlag(argparse.Action):
    """``--sasl-password`` given at all: stop before anything uses it (the value is never echoed)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option: str | None = None,
    ) -> None:
        parser.error(
            f"--sasl-password is refused: other users can read it in ps; use ${PASSWORD_ENV} or --sasl-password-file"
        )


def security_options(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The client keyword options the security flags and variables give (flags first), checked: a bad
    combination raises ValueError naming the flags."""
    from logstore.client.shared.security import Security

    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    for option, (_, variable) in SECURITY_FLAGS.items():
        value = getattr(args, option, None) or env.get(variable) or None
        if value is not None:
            options[option] = value.upper() if option in ("security_protocol", "sasl_mechanism") else value
    password_file: Path | None = getattr(args, "sasl_password_file", None)
    if password_file is not None:
        try:
            options["sasl_plain_password"] = (
                password_file.read_text().splitlines()[0] if password_file.stat().st_size else ""
            )
        except OSError as exc:
            raise ValueError(
                f"--sasl-password-file {password_file}: cannot read it ({exc.strerror})"
            ) from None
    elif PASSWORD_ENV in env:
        options["sasl_plain_password"] = env[PASSWORD_ENV]
    try:
        Security(**options)
    except ValueError as exc:
        raise ValueError(as_security_flags(str(exc))) from None
    return options


def as_security_flags(message: str) -> str:
    """``message`` with the client's security option names replaced by this command line's flags."""
    names = {option: flag for option, (flag, _) in SECURITY_FLAGS.items()}
    names["sasl_plain_password"] = f"${PASSWORD_ENV} or --sasl-password-file"
    for option in sorted(names, key=len, reverse=True):
        message = message.replace(option, names[option])
    return message


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
            return fail(as_security_flags(str(exc) or type(exc).__name__))

    return run


def _silence_stdout() -> None:
    """After the reader of stdout went away, keep Python from complaining while it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
