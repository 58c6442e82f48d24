"""`logstore consume` failing out loud, driven as a subprocess against a real broker: an unreachable
broker or a missing topic with --group exits non-zero naming the problem, SIGTERM commits, leaves the group
and prints the summary as Ctrl-C does, and --offset past the end warns."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from logstore.client import Admin


def logstore(address: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args, "--bootstrap", address],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def address(start_broker) -> str:
    broker = start_broker(group_session_timeout_ms=30_000, group_heartbeat_interval_ms=100)
    with Admin(broker.address) as admin:
        admin.create_topic("orders", 1)
    done = logstore(broker.address, "produce", "orders", stdin=b"".join(b"v%d\n" % i for i in range(10)))
    assert done.returncode == 0, done.stderr
    return broker.address


def test_consume_with_a_group_and_no_broker_fails_naming_the_broker() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    done = logstore(
        dead, "consume", "orders", "--group", "g", "--timeout-ms", "2000", "--request-timeout-ms", "1000"
    )
    assert done.returncode != 0
    assert "logstore: error:" in done.stderr
    assert "is the broker running" in done.stderr


def test_consume_with_a_group_on_a_missing_topic_fails_naming_it(address: str) -> None:
    done = logstore(address, "consume", "nope", "--group", "g", "--timeout-ms", "2000")
    assert done.returncode != 0
    assert "logstore: error:" in done.stderr and "'nope'" in done.stderr


def test_sigterm_commits_leaves_the_group_and_prints_the_summary(address: str) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    consumer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "logstore.bench.cli",
            "consume",
            "orders",
            "--group",
            "g",
            "--from-beginning",
            "--bootstrap",
            address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert consumer.stdout is not None
        lines = [consumer.stdout.readline() for _ in range(10)]  # blocks until all ten are printed
        assert lines == [f"v{i}\n" for i in range(10)]
        consumer.send_signal(signal.SIGTERM)
        _, stderr = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 128 + signal.SIGTERM, stderr
    assert "Processed a total of 10 messages" in stderr
    with Admin(address) as admin:
        group = admin.describe_group("g")
    assert group.members == []  # it left instead of waiting out its 30 s session
    assert [(p.partition, p.committed_offset) for p in group.offsets] == [(0, 10)]


def test_offset_past_the_end_warns_and_starts_at_the_end(address: str) -> None:
    done = logstore(
        address, "consume", "orders", "--partition", "0", "--offset", "999", "--timeout-ms", "200"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "--offset 999 is past the end of orders-0 (log end offset 10); starting at offset 10" in done.stderr
    )
    assert done.stdout == ""


def test_offset_within_the_log_starts_there(address: str) -> None:
    done = logstore(address, "consume", "orders", "--partition", "0", "--offset", "7", "--max-messages", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["v7", "v8", "v9"]
    assert "warning" not in done.stderr


def test_sigterm_while_poll_hands_over_records_prints_what_it_commits(
    address: str, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """SIGTERM arriving after poll() moved the positions past records, before they were printed, must not
    commit records nobody saw: what is committed is what was printed."""
    from logstore.bench import cli
    from logstore.client.consumer.api import Consumer

    original = Consumer.poll

    def poll_then_sigterm(self, *args, **kwargs):
        records = original(self, *args, **kwargs)
        if records:
            signal.raise_signal(signal.SIGTERM)  # the positions have moved; the records are not yet printed
        return records

    monkeypatch.setattr(Consumer, "poll", poll_then_sigterm)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = cli.main(["consume", "orders", "--group", "t", "--from-beginning", "--bootstrap", address])
    finally:
        signal.signal(signal.SIGTERM, previous)
    printed = capsysbinary.readouterr().out.splitlines()
    assert code == 128 + signal.SIGTERM
    with Admin(address) as admin:
        group = admin.describe_group("t")
    assert [(p.partition, p.committed_offset) for p in group.offsets] == [(0, len(printed))]
    assert printed == [b"v%d" % i for i in range(len(printed))]
