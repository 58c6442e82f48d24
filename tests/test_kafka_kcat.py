"""kcat (Debian's package, on librdkafka) against the Kafka listener: metadata, produce lines, consume them.

kcat is a system package: tests never install one, `.ci/run` does. Without it these tests fail, saying
how to get it, rather than skip: a green run must have driven kcat.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Admin

from logstore.records import iter_headers
from tests.conftest import StartBroker, Stubs

CODECS = {
    "none": 0,
    "snappy": 2,
    "zstd": 4,
}  # kcat's librdkafka leaves lz4 off here (see test_kafka_confluent)
LINES = [f"key-{i}:value {i} with spaces, and : a colon" for i in range(50)]
"""With ``-K :`` kcat splits each line at its first colon: the key, then the value (colons and all)."""


@pytest.fixture
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not installed: run .ci/run (it installs it when missing) or `apt-get install kcat`"
        )
    return path


@pytest.fixture
def kafka_broker(start_broker: StartBroker) -> EmbeddedBroker:
    return start_broker(kafka_port=0)


def run(kcat: str, broker: EmbeddedBroker, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [kcat, "-b", broker.kafka_address, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kcat {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def test_metadata_lists_the_broker_topics_and_partitions(kcat: str, kafka_broker: EmbeddedBroker) -> None:
    with Admin(kafka_broker.address) as admin:
        admin.create_topic("three", 3)
        admin.create_topic("one", 1)
    metadata = json.loads(run(kcat, kafka_broker, "-L", "-J"))
    host, port = kafka_broker.kafka_address.rsplit(":", 1)
    assert [broker["name"] for broker in metadata["brokers"]] == [f"{host}:{port}"]
    topics = {topic["topic"]: topic for topic in metadata["topics"]}
    assert {"three", "one"} <= set(topics)
    assert sorted(p["partition"] for p in topics["three"]["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == metadata["brokers"][0]["id"] for p in topics["three"]["partitions"])
    assert "error" not in topics["three"]
    text = run(kcat, kafka_broker, "-L", "-t", "three")  # the plain listing people read
    assert 'topic "three" with 3 partitions:' in text


@pytest.mark.parametrize("codec", list(CODECS))
def test_lines_produced_with_keys_are_stored_and_consumed_back_exactly(
    kcat: str, kafka_broker: EmbeddedBroker, connect: Callable[[EmbeddedBroker], Stubs], codec: str
) -> None:
    with Admin(kafka_broker.address) as admin:
        admin.create_topic("lines", 1)
    run(kcat, kafka_broker, "-P", "-t", "lines", "-K", ":", "-z", codec, stdin="\n".join(LINES) + "\n")
    stubs = connect(kafka_broker)
    assert stubs.values("lines", 0) == [line.split(":", 1)[1].encode() for line in LINES]
    stored = stubs.fetch_one("lines", 0, 0, max_bytes=1 << 24).records
    assert {header.compression for _, header in iter_headers(stored)} == {CODECS[codec]}
    consumed = run(kcat, kafka_broker, "-C", "-t", "lines", "-o", "beginning", "-e", "-K", ":")
    assert consumed.splitlines() == LINES
    offsets = run(kcat, kafka_broker, "-C", "-t", "lines", "-o", "beginning", "-e", "-f", "%p %o %k\n")
    assert offsets.splitlines() == [f"0 {i} key-{i}" for i in range(len(LINES))]


def test_consuming_from_an_offset_reads_from_there(kcat: str, kafka_broker: EmbeddedBroker) -> None:
    run(kcat, kafka_broker, "-P", "-t", "auto", "-K", ":", stdin="\n".join(LINES) + "\n")  # auto-created
    tail = run(kcat, kafka_broker, "-C", "-t", "auto", "-p", "0", "-o", "45", "-e", "-f", "%o %s\n")
    assert tail.splitlines() == [f"{i} {LINES[i].split(':', 1)[1]}" for i in range(45, 50)]
