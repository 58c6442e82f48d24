"""`python -m logstore.broker` under `ulimit -n 1024` with 1,000 partitions and 10,000 segments: it stays up,
appends and reads work, and it restarts (cleanly and after SIGKILL) over the same data.

Before, each segment held six descriptors for life: the broker ran out at about 170 segments here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2, produce_pb2

from logstore.records import build_batch, iter_records
from tests.conftest import Stubs

PARTITIONS = 1000
ROUNDS = 10  # one segment per partition per round: every append rolls (segment.bytes is below a batch)
LIMIT = 1024
# The broker itself, with its descriptor limit set as `ulimit -n 1024` would (soft and hard, so the
# broker's own raise to the hard limit changes nothing).
UNDER_LIMIT = (
    "import resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, {LIMIT}))\n"
    "from logstore.broker.server import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def value(partition: int, round_: int) -> bytes:
    return f"p{partition} r{round_} ".encode() * 8


def produce_round(stubs: Stubs, round_: int) -> None:
    entries = [
        produce_pb2.ProducePartitionData(topic="t", partition=p, records=build_batch([value(p, round_)]))
        for p in range(PARTITIONS)
    ]
    request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_LEADER, partitions=entries)
    results = stubs.produce.Produce(request, timeout=120).results
    bad = [(r.partition, r.error_message) for r in results if r.error_code != common_pb2.ERROR_CODE_NONE]
    assert not bad, bad[:3]
    assert {r.base_offset for r in results} == {round_}


def fetch_all(stubs: Stubs, offset: int) -> dict[int, list[bytes | None]]:
    """Every partition's values from `offset`, in one Fetch of all 1,000 partitions."""
    wanted = [fetch_pb2.FetchPartition(topic="t", partition=p, offset=offset) for p in range(PARTITIONS)]
    answer = stubs.fetch.Fetch(fetch_pb2.FetchRequest(partitions=wanted), timeout=120)
    found: dict[int, list[bytes | None]] = {}
    for result in answer.results:
        assert result.error_code == common_pb2.ERROR_CODE_NONE, result.error_message
        found[result.partition] = [r.value for r in iter_records(result.records) if r.offset >= offset]
    return found


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def started() -> Iterator[list[BrokerProcess]]:
    """Brokers started by the test; any still running at the end (a failed test) is killed."""
    brokers: list[BrokerProcess] = []
    yield brokers
    for broker in brokers:
        if broker.process is not None and broker.process.poll() is None:
            broker.kill()


def start(data_dir: Path, log_path: Path, started: list[BrokerProcess]) -> tuple[BrokerProcess, Stubs]:
    broker = BrokerProcess(data_dir, log_path, command=[sys.executable, "-c", UNDER_LIMIT])
    started.append(broker)
    address = broker.start(timeout_s=300)
    return broker, Stubs.connect(address)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """On tmpfs when there is one: 10,000 segments' first index writes and fsyncs cost minutes on disk."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path / "data"
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="logstore-fd-limit-") as directory:
        yield Path(directory)


@pytest.mark.slow
def test_a_broker_under_ulimit_1024_serves_10000_segments_and_restarts(
    tmp_path: Path, data_dir: Path, started: list[BrokerProcess]
) -> None:
    log_path = tmp_path / "broker.log"
    broker, stubs = start(data_dir, log_path, started)
    try:
        stubs.admin.CreateTopic(
            admin_create("t", PARTITIONS, {"segment.bytes": "100", "index.interval.bytes": "50"}), timeout=120
        )
        for round_ in range(ROUNDS):
            produce_round(stubs, round_)
        assert broker.process is not None
        pid = broker.process.pid
        assert open_descriptors(pid) < LIMIT // 2 + 100  # segments take at most half the limit
        # Reading the oldest segment of every partition reopens 1,000 released segments.
        first = fetch_all(stubs, 0)
        assert all(first[p] == [value(p, 0)] for p in range(PARTITIONS))
        assert broker.process.poll() is None
    finally:
        stubs.channel.close()
    assert broker.terminate() == 0
    text = broker.log_text()
    assert "Too many open files" not in text, text[-3000:]

    # A clean restart opens every segment (one after another), then serves and appends.
    broker, stubs = start(data_dir, log_path, started)
    try:
        assert fetch_all(stubs, ROUNDS - 1) == {p: [value(p, ROUNDS - 1)] for p in range(PARTITIONS)}
        produce_round(stubs, ROUNDS)
        assert fetch_all(stubs, 3) == {p: [value(p, 3)] for p in range(PARTITIONS)}
    finally:
        stubs.channel.close()
    broker.terminate(signum=signal.SIGKILL)

    # And after a crash, the unclean start recovers the same data within the same limit.
    broker, stubs = start(data_dir, log_path, started)
    try:
        assert fetch_all(stubs, ROUNDS) == {p: [value(p, ROUNDS)] for p in range(PARTITIONS)}
        produce_round(stubs, ROUNDS + 1)
    finally:
        stubs.channel.close()
    assert broker.terminate() == 0
    assert "Too many open files" not in broker.log_text()


def admin_create(name: str, partitions: int, config: dict[str, str]):
    from logstore.wire.logstore.v1 import admin_pb2

    return admin_pb2.CreateTopicRequest(name=name, partitions=partitions, config=config)


RAISE_SOFT_LIMIT = """
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))
from logstore.broker.server import raise_open_files_limit
raise_open_files_limit()
from logstore.manager import LogManager
import sys, tempfile
with tempfile.TemporaryDirectory() as data_dir, LogManager(data_dir, background=False) as mgr:
    print(*resource.getrlimit(resource.RLIMIT_NOFILE), mgr.open_segments.limit)
"""


def test_the_broker_raises_its_soft_descriptor_limit_to_the_hard_one() -> None:
    """A soft 1,024 limit under a higher hard one is for interactive programs; a broker lifts it at start,
    and the bound on open segments (half the limit, six descriptors each) follows."""
    child = subprocess.run([sys.executable, "-c", RAISE_SOFT_LIMIT], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["1024", "1024", str(1024 // 2 // 6)]
