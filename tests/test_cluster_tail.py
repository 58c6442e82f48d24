"""The live tail (Subscribe streams, no group) against three real brokers and a real etcd: bootstrapped
with one broker, it follows every partition at its leader, carries on through the SIGKILL of a
partition's leader (and that broker's return, when the partition's leadership moves back to it), and
in the end has every record a continuous producer wrote exactly once, in offset order per partition."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.client.admin.api import Admin
from logstore.client.consumer.tail import Tail
from logstore.client.producer.api import Producer
from logstore.client.producer.futures import RecordFuture

from tests.cluster_support import Cluster, cluster_of

pytestmark = pytest.mark.slow

PARTITIONS = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # A short preferred-leader check, so the killed leader's partition moves back to it once it returns:
    # the stream to the interim leader then sees that partition's leadership move mid-stream.
    yield from cluster_of(
        tmp_path,
        3,
        (
            "--default-replication-factor=3",
            "--min-insync-replicas=2",
            "--leader-imbalance-check-interval-ms=1000",
        ),
    )


class Follower(threading.Thread):
    """Iterates a tail in the background, keeping (partition, offset, value) of each record."""

    def __init__(self, tail: Tail) -> None:
        super().__init__(daemon=True)
        self.tail = tail
        self.records: list[tuple[int, int, bytes]] = []
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            for record in self.tail:
                with self.lock:
                    self.records.append((record.partition, record.offset, record.value or b""))
        except BaseException as exc:
            self.error = exc

    def values(self) -> set[bytes]:
        with self.lock:
            return {value for _, _, value in self.records}

    def stop(self) -> None:
        self.tail.close()
        self.join(30)
        assert not self.is_alive(), "the tail did not end on close()"


class Writer(threading.Thread):
    """An idempotent acks=all producer writing to each partition in turn until stopped."""

    def __init__(self, bootstrap: list[str], topic: str) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=5000,
            delivery_timeout_ms=120_000,
        )
        self.topic = topic
        self.sent: list[tuple[bytes, RecordFuture]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            value = b"r%06d" % n
            future = self.producer.send(self.topic, value, partition=n % PARTITIONS)
            with self.lock:
                self.sent.append((value, future))
            n += 1
            self.stopping.wait(0.004)  # pacing only: a steady stream, not a condition waited for

    def count(self) -> int:
        with self.lock:
            return len(self.sent)

    def written_after(self, mark: int) -> set[bytes]:
        """Values of records sent after the first `mark` and already acknowledged."""
        with self.lock:
            return {value for value, future in self.sent[mark:] if future.succeeded()}

    def stop(self) -> dict[bytes, tuple[int, int]]:
        """Stop, flush, and return every record's (partition, offset) as acknowledged."""
        self.stopping.set()
        self.join(30)
        try:
            self.producer.flush(timeout=120)
            return {value: _where(future) for value, future in self.sent}
        finally:
            self.producer.close()


def _where(future: RecordFuture) -> tuple[int, int]:
    metadata = future.get(timeout=0)  # every record acknowledged (none given up)
    return metadata.partition, metadata.offset


def test_a_tail_from_one_broker_follows_every_leader_through_a_leader_kill_and_return(
    cluster: Cluster,
) -> None:
    with Admin(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topic("feed", PARTITIONS, {"min.insync.replicas": "2"}, replication_factor=3)
    leaders = {p: cluster.wait_for_isr("feed", p, 3).leader for p in range(PARTITIONS)}
    assert len(set(leaders.values())) > 1, f"the partitions' leaders should be spread: {leaders}"
    victim = leaders[0]
    # Bootstrapped with the very broker that will be killed: the tail must find the others itself.
    follower = Follower(
        Tail(
            "feed",
            bootstrap=cluster.brokers[victim].address,
            start="earliest",
            request_timeout_ms=5000,
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=500,
        )
    )
    follower.start()
    writer = Writer(cluster.bootstrap, "feed")
    writer.start()
    try:

        def caught_up(mark: int) -> bool:
            """At least 10 records of each partition sent after `mark` are acknowledged, and the tail has
            every acknowledged one of them."""
            wanted = writer.written_after(mark)
            per_partition = [
                sum(1 for v in wanted if int(v[1:]) % PARTITIONS == p) for p in range(PARTITIONS)
            ]
            return min(per_partition) >= 10 and wanted <= follower.values()

        cluster.wait_for(lambda: caught_up(0), "the tail follows every partition's leader", 60)

        cluster.brokers[victim].kill()
        cluster.wait_for(
            lambda: cluster.leader("feed", 0) not in (victim, -1), "partition 0 has a new leader", 60
        )
        mark = writer.count()
        cluster.wait_for(lambda: caught_up(mark), "the tail reads on after the leader's kill", 60)
        assert follower.is_alive(), follower.error

        cluster.brokers[victim].start()
        cluster.wait_for(
            lambda: cluster.leader("feed", 0) == victim, "partition 0's leadership moves back", 90
        )
        mark = writer.count()
        cluster.wait_for(lambda: caught_up(mark), "the tail reads on at the returned leader", 60)
        acknowledged = writer.stop()
        cluster.wait_for(lambda: follower.values() >= set(acknowledged), "the tail received every record", 60)
    finally:
        if writer.is_alive():
            writer.stopping.set()
            writer.join(30)
        follower.stop()
    assert follower.error is None, follower.error
    records = follower.records
    values = [value for _, _, value in records]
    assert len(values) == len(set(values)), "a record was received twice"
    assert set(values) == set(acknowledged), "a record the tail received was never acknowledged"
    for partition, offset, value in records:
        assert acknowledged[value] == (partition, offset), f"{value!r} is not where it was written"
    for p in range(PARTITIONS):
        offsets = [offset for partition, offset, _ in records if partition == p]
        assert offsets == list(range(len(offsets))), f"partition {p} not received in offset order, gapless"
