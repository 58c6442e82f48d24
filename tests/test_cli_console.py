"""The console tools driven as subprocesses (`python -m logstore.bench.cli ...`) against a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin, Producer


def logstore(*args: str, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "logstore.bench.cli", *args], input=stdin, capture_output=True, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


def assert_one_line_error(done: subprocess.CompletedProcess[bytes], *fragments: str) -> None:
    err = done.stderr.decode()
    assert done.returncode != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_topics_lifecycle(broker: EmbeddedBroker) -> None:
    at = ("--bootstrap", broker.address)
    created = logstore(
        "topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000", *at
    )
    assert created.stdout == b"created topic orders with 3 partitions\n"
    assert logstore("topics", "list", *at).stdout == b"orders\t3\n"
    described = logstore("topics", "describe", "orders", *at).stdout.decode()
    assert "topic: orders\tpartitions: 3" in described and "retention.ms=60000" in described
    assert described.count("start offset: 0\tend offset: 0") == 3
    logstore("topics", "alter", "orders", "--partitions", "4", "--config", "cleanup.policy=compact", *at)
    with Admin(broker.address) as admin:
        [orders] = admin.describe_topics(["orders"])
    assert len(orders.partitions) == 4 and orders.config["cleanup.policy"] == "compact"
    assert logstore("topics", "delete", "orders", *at).stdout == b"deleted topic orders\n"
    assert logstore("topics", "list", *at).stdout == b""


def test_produce_lines_then_consume_them_with_fields(broker: EmbeddedBroker) -> None:
    at = ("--bootstrap", broker.address)
    logstore("topics", "create", "lines", "--partitions", "1", *at)
    logstore(
        "produce",
        "lines",
        "--key-separator",
        ":",
        "--acks",
        "all",
        "--compression",
        "zstd",
        *at,
        stdin=b"a:first\nb:second\nc:with:colon\n",
    )
    done = logstore("consume", "lines", "--from-beginning", "--max-messages", "3", *at)
    assert done.stdout == b"first\nsecond\nwith:colon\n"
    assert b"Processed a total of 3 messages" in done.stderr
    fields = logstore(
        "consume",
        "lines",
        "--partition",
        "0",
        "--offset",
        "1",
        "--max-messages",
        "1",
        "--print-key",
        "--print-partition",
        "--print-offset",
        "--print-timestamp",
        "--print-headers",
        *at,
    ).stdout
    timestamp, rest = fields.split(b"\t", 1)
    assert timestamp.startswith(b"CreateTime:") and rest == b"Partition:0\tOffset:1\tNO_HEADERS\tb\tsecond\n"


def test_consume_from_a_time_and_stop_when_idle(broker: EmbeddedBroker) -> None:
    with Producer(broker.address, linger_ms=0) as producer:
        for i in range(4):
            producer.send("timed", b"%d" % i, timestamp_ms=1_700_000_000_000 + i * 60_000).get(10)
    at = ("--bootstrap", broker.address)
    by_ms = logstore("consume", "timed", "--from-time", "1700000060000", "--timeout-ms", "300", *at)
    assert by_ms.stdout == b"1\n2\n3\n"
    by_iso = logstore("consume", "timed", "--from-time", "2023-11-14T22:15:20Z", "--timeout-ms", "300", *at)
    assert by_iso.stdout == b"2\n3\n"  # 1700000120000 ms is 2023-11-14T22:15:20Z
    new_only = logstore("consume", "timed", "--timeout-ms", "300", *at)
    assert new_only.stdout == b""


def test_errors_are_one_line_and_a_non_zero_exit(broker: EmbeddedBroker) -> None:
    at = ("--bootstrap", broker.address)
    assert_one_line_error(logstore("topics", "describe", "missing", *at, check=False), "missing")
    logstore("topics", "create", "dup", *at)
    assert_one_line_error(logstore("topics", "create", "dup", *at, check=False), "exists")
    assert_one_line_error(
        logstore("topics", "create", "x", "--config", "oops", *at, check=False), "key=value"
    )
    assert_one_line_error(logstore("consume", "dup", "--offset", "3", *at, check=False), "--partition")
    assert_one_line_error(
        logstore("consume", "dup", "--from-time", "yesterday", *at, check=False), "ISO 8601"
    )
    assert_one_line_error(
        logstore("produce", "dup", "--key-separator", "=", *at, stdin=b"no separator\n", check=False),
        "line 1",
    )
    assert_one_line_error(logstore("topics", "list", "--bootstrap", "nonsense", check=False), "host:port")


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    done = logstore("topics", "list", "--bootstrap", "127.0.0.1:1", check=False)
    assert_one_line_error(done, "UNAVAILABLE")


def test_dump_log_prints_and_checks_batches(broker: EmbeddedBroker, tmp_path: Path) -> None:
    with Producer(broker.address, linger_ms=0) as producer:
        for i in range(3):
            producer.send("dump", b"value-%d" % i, key=b"k").get(10)
    segment = Path(broker.settings.data_dir) / "dump-0" / "00000000000000000000.log"
    done = logstore("dump-log", str(segment), "--print-values")
    out = done.stdout.decode()
    assert out.count("isValid: true") == 3
    assert "| offset: 2 " in out and "value: b'value-2'" in out and "producerId: " in out
    assert "Summary: 3 batches, 3 records" in out

    with segment.open("rb") as file:  # the segment is preallocated: read only its start
        data = bytearray(file.read(1 << 16).rstrip(b"\0"))
    first_batch_end = 61 + data[61:].index(b"value-0") + 7
    data[first_batch_end - 3] ^= 0xFF  # corrupt a byte inside the first batch's records
    copy = tmp_path / "corrupt.log"
    copy.write_bytes(bytes(data) + b"junk")
    stopped = logstore("dump-log", str(copy), check=False)
    assert "isValid: false (batch at byte 0: CRC mismatch" in stopped.stdout.decode()
    assert_one_line_error(stopped, "position 0 (offsets 0-0) is invalid", "CRC mismatch", "--skip-corrupt")
    corrupt = logstore("dump-log", str(copy), "--skip-corrupt", check=False)
    text = corrupt.stdout.decode()
    assert corrupt.returncode == 1
    assert "isValid: false (batch at byte 0: CRC mismatch" in text
    assert "not a whole batch" in text and "Traceback" not in corrupt.stderr.decode()
    assert (
        "warning: " in corrupt.stderr.decode()
        and "skipped: batch at byte 0: CRC mismatch" in corrupt.stderr.decode()
    )


def test_dump_log_of_a_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(logstore("dump-log", str(tmp_path / "none.log"), check=False), "is not a file")


@pytest.mark.parametrize("tool", ["topics list", "produce t", "consume t", "groups list"])
def test_every_tool_takes_bootstrap_after_its_name(tool: str) -> None:
    done = logstore(*tool.split(), "--bootstrap", "127.0.0.1:9093", "--help")
    assert b"--bootstrap HOST:PORT" in done.stdout
