"""`logstore consume --group` and `logstore groups ...` driven as subprocesses against a real broker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from logstore.client import Admin


def logstore(
    address: str, *args: str, stdin: bytes = b"", check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args, "--bootstrap", address],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def address(start_broker) -> str:
    broker = start_broker(group_session_timeout_ms=2000, group_heartbeat_interval_ms=100)
    with Admin(broker.address) as admin:
        admin.create_topic("orders", 2)
    logstore(
        broker.address,
        "produce",
        "orders",
        "--key-separator",
        ":",
        stdin=b"".join(b"k%d:v%d\n" % (i, i) for i in range(10)),
    )
    return broker.address


def table(text: str) -> list[list[str]]:
    """The rows of a printed table (after its header line), split into columns."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    start = next(i for i, row in enumerate(lines) if row[0] == "GROUP")
    return [row for row in lines[start + 1 :] if row[0] != "Dry"]


def test_consume_with_a_group_commits_and_the_next_run_continues(address: str) -> None:
    first = logstore(
        address,
        "consume",
        "orders",
        "--group",
        "g",
        "--from-beginning",
        "--max-messages",
        "6",
        "--timeout-ms",
        "10000",
    )
    assert len(first.stdout.splitlines()) == 6
    second = logstore(
        address, "consume", "orders", "--group", "g", "--from-beginning", "--timeout-ms", "1500"
    )
    values = first.stdout.splitlines() + second.stdout.splitlines()
    assert sorted(values) == sorted(f"v{i}" for i in range(10)), "together: every record exactly once"

    described = logstore(address, "groups", "describe", "g")
    assert "Consumer group 'g' is Empty with 0 members" in described.stdout
    rows = table(described.stdout)
    assert [row[:3] for row in rows] == [["g", "orders", "0"], ["g", "orders", "1"]]
    assert all(row[3] == row[4] and row[5] == "0" and row[6] == "-" for row in rows), (
        "fully committed, no lag"
    )

    listed = table(logstore(address, "groups", "list").stdout)
    assert ["g", "consumer", "Empty", "0"] in listed


def test_reset_offsets_is_a_dry_run_unless_executed(address: str) -> None:
    logstore(
        address,
        "consume",
        "orders",
        "--group",
        "g",
        "--from-beginning",
        "--max-messages",
        "10",
        "--timeout-ms",
        "10000",
    )
    preview = logstore(address, "groups", "reset-offsets", "g", "--topic", "orders", "--to-earliest")
    assert "Dry run" in preview.stdout
    assert all(row[4] == "0" for row in table(preview.stdout))
    assert all(row[5] == "0" for row in table(logstore(address, "groups", "describe", "g").stdout)), (
        "unchanged"
    )

    logstore(address, "groups", "reset-offsets", "g", "--topic", "orders:0", "--shift-by", "-1", "--execute")
    lags = {row[2]: row[5] for row in table(logstore(address, "groups", "describe", "g").stdout)}
    assert lags == {"0": "1", "1": "0"}

    logstore(
        address,
        "groups",
        "reset-offsets",
        "g",
        "--topic",
        "orders",
        "--to-datetime",
        "2000-01-01T00:00:00Z",
        "--execute",
    )
    again = logstore(address, "consume", "orders", "--group", "g", "--timeout-ms", "1500")
    assert len(again.stdout.splitlines()) == 10, "reset to a time before everything: all records again"


def test_delete_and_errors_are_one_line(address: str) -> None:
    logstore(
        address,
        "consume",
        "orders",
        "--group",
        "gone",
        "--from-beginning",
        "--max-messages",
        "1",
        "--timeout-ms",
        "10000",
    )
    assert logstore(address, "groups", "delete", "gone").stdout.strip() == "deleted group gone"
    missing = logstore(address, "groups", "describe", "gone", check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "gone" in missing.stderr
    bad = logstore(
        address, "groups", "reset-offsets", "nobody", "--topic", "orders", "--to-offset", "-2", check=False
    )
    assert bad.returncode == 1 and "must not be negative" in bad.stderr
