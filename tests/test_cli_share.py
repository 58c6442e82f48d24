"""`logstore share consume` and `logstore groups ...` on share groups, as subprocesses against a real broker."""

from __future__ import annotations

import pytest
from logstore.client import Admin, Consumer

from tests.test_cli_groups import logstore
from tests.waiting import wait_until


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def address(start_broker) -> str:
    broker = start_broker()
    with Admin(broker.address) as admin:
        admin.create_topic("jobs", 1)
    logstore(broker.address, "produce", "jobs", stdin=b"".join(b"job-%d\n" % i for i in range(6)))
    return broker.address


def test_configure_consume_describe_list_and_delete_a_share_group(address: str) -> None:
    set_up = logstore(
        address,
        "groups",
        "alter-config",
        "workers",
        "--set",
        "share.auto.offset.reset=earliest",
        "--set",
        "share.record.lock.duration.ms=5000",
    )
    assert set_up.returncode == 0
    configs = {
        row[0]: row[1:] for row in table(logstore(address, "groups", "describe-config", "workers").stdout)
    }
    assert configs["share.auto.offset.reset"][0] == "earliest"
    assert configs["share.record.lock.duration.ms"][0] == "5000"

    first = logstore(address, "share", "consume", "jobs", "--group", "workers", "--max-messages", "4")
    assert first.stdout.splitlines() == [f"job-{i}" for i in range(4)]
    rest = logstore(
        address,
        "share",
        "consume",
        "jobs",
        "--group",
        "workers",
        "--timeout-ms",
        "1500",
        "--print-offset",
        "--print-delivery-count",
    )
    assert table(rest.stdout) == [
        ["DeliveryCount:1", "Offset:4", "job-4"],
        ["DeliveryCount:1", "Offset:5", "job-5"],
    ], "accepted ones never come back; the two the first run held but did not print came back uncounted"

    described = logstore(address, "groups", "describe", "workers").stdout
    assert "Share group 'workers' is Empty with 0 members" in described
    (row,) = [r for r in table(described) if r[:2] == ["workers", "jobs"]]
    assert row[2:6] == ["0", "6", "6", "6"], "partition 0: the window starts and ends at the log end"
    assert ["workers", "share", "Empty", "0"] in table(logstore(address, "groups", "list").stdout)

    logstore(address, "groups", "delete", "workers")
    assert "workers" not in logstore(address, "groups", "list").stdout


def test_rejected_records_go_to_the_dead_letter_topic(address: str) -> None:
    logstore(
        address,
        "groups",
        "alter-config",
        "picky",
        "--set",
        "share.auto.offset.reset=earliest",
        "--set",
        "errors.deadletterqueue.topic.name=jobs.dlq",
    )
    rejected = logstore(
        address, "share", "consume", "jobs", "--group", "picky", "--ack", "reject", "--max-messages", "6"
    )
    assert len(rejected.stdout.splitlines()) == 6
    letters: list = []
    with Consumer("jobs.dlq", bootstrap=address, auto_offset_reset="earliest") as consumer:

        def six() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                letters.extend(records)
            return len(letters) >= 6

        wait_until(six, "6 dead letters")
    assert [r.value for r in letters] == [b"job-%d" % i for i in range(6)]
    assert all(dict(r.headers)["__dlq.errors.reason"] == b"REJECTED" for r in letters)


def test_a_bad_config_is_refused_with_its_allowed_range(address: str) -> None:
    done = logstore(
        address, "groups", "alter-config", "g", "--set", "share.delivery.count.limit=99", check=False
    )
    assert done.returncode != 0
    assert "share.delivery.count.limit" in done.stderr and "2" in done.stderr and "10" in done.stderr
