"""`logstore produce` says which of its flags governs a failure, and has the flags to change it."""

from __future__ import annotations

import socket

from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin

from tests.conftest import Stubs
from tests.test_cli_console import logstore


def dead_address() -> str:
    """An address nothing listens on (a port the system just handed out, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def last_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    return text.strip().splitlines()[-1]


def test_a_dead_broker_fails_within_max_block_ms_and_the_error_names_the_flags() -> None:
    done = logstore(
        "produce", "t", "--bootstrap", dead_address(), "--max-block-ms", "300", "--request-timeout-ms", "100",
        stdin=b"one\n", check=False,
    )  # fmt: skip
    assert done.returncode == 1
    error = last_line(done.stderr)
    assert error.startswith("logstore: error: could not learn the partitions of topic 't' within 300 ms")
    assert "(--max-block-ms; each request waits up to --request-timeout-ms, 100 ms)" in error
    assert "UNAVAILABLE" in error


def test_a_record_too_large_names_max_request_size_then_max_message_bytes(
    broker: EmbeddedBroker, stubs: Stubs
) -> None:
    at = ("--bootstrap", broker.address)
    with Admin(broker.address) as admin:
        admin.create_topic("big", 1)
    line = b"x" * (1536 * 1024) + b"\n"  # 1.5 MiB: over the default request and batch limits

    too_big_to_send = logstore("produce", "big", *at, stdin=line, check=False)
    error = last_line(too_big_to_send.stderr)
    assert "1 of 1 records were not written" in error
    assert "limited by --max-request-size=1048576 bytes" in error and "raise --max-request-size" in error

    larger_requests = ("--max-request-size", str(4 * 1024 * 1024))
    refused = logstore("produce", "big", *at, *larger_requests, stdin=line, check=False)
    error = last_line(refused.stderr)
    assert "big-0: batch at byte 0 is" in error
    assert "the topic's max.message.bytes" in error and "--config max.message.bytes=N" in error

    with Admin(broker.address) as admin:
        admin.alter_configs({"big": {"max.message.bytes": str(2 * 1024 * 1024)}})
    logstore("produce", "big", *at, *larger_requests, stdin=line)
    assert stubs.values("big", 0) == [line[:-1]]
