"""Failover under load: one idempotent producer writes keyed acks=all batches to a partition with
replication factor 3 and min.insync.replicas 2 while the test kills its leader with SIGKILL 20 times
(restarting it each time), freezes a follower off the cluster and back, and kills the controller.

After each fault a new leader must be elected within the lease time plus 2 s, and at the end the log must
hold exactly the acknowledged batches, each once at the offset it was acknowledged at, per-key order
kept, and be identical on all three replicas. Each fault's figures (election and first write on the new
leader, from the kill) go to `build/cluster-failover.json` for the note and `docs/cluster.md`.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from logstore.wire.logstore.v1 import common_pb2, produce_pb2, produce_pb2_grpc

from logstore.manager import LogManager
from logstore.records import Record, build_batch, iter_records
from tests.cluster_support import SESSION_TIMEOUT_MS, Cluster, cluster_of
from tests.conftest import Stubs

pytestmark = pytest.mark.slow

TOPIC = "events"
KEYS = 10
RECORDS_PER_BATCH = 5
KILLS = 20
ELECTION_BOUND_S = SESSION_TIMEOUT_MS / 1000 + 2
FIGURES = Path(__file__).resolve().parent.parent / "build" / "cluster-failover.json"


@dataclass
class Acked:
    base_offset: int
    values: list[bytes]
    broker: int
    at: float


@dataclass
class IdempotentLoad:
    """One producer, one batch in flight: a batch is retried (same sequence) until acknowledged, on
    whichever broker etcd names the leader. Runs in a thread; not otherwise thread-safe."""

    cluster: Cluster
    producer_id: int
    acked: list[Acked] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        self._stubs: dict[int, produce_pb2_grpc.ProduceServiceStub] = {}
        self._per_key = [0] * KEYS
        self._thread = threading.Thread(target=self._run, name="idempotent-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the load did not stop"
        if self.failure is not None:
            raise self.failure

    def acked_since(self, since: float, other_than: int) -> Acked | None:
        return next((a for a in reversed(self.acked) if a.at > since and a.broker != other_than), None)

    def _stub(self, broker_id: int) -> produce_pb2_grpc.ProduceServiceStub:
        if broker_id not in self._stubs:
            channel = grpc.insecure_channel(self.cluster.brokers[broker_id].address)
            self._stubs[broker_id] = produce_pb2_grpc.ProduceServiceStub(channel)
        return self._stubs[broker_id]

    def _next_batch(self, sequence: int) -> tuple[bytes, list[bytes]]:
        values, records = [], []
        for i in range(RECORDS_PER_BATCH):
            key = (sequence + i) % KEYS
            value = f"k{key}:{self._per_key[key]}".encode()
            self._per_key[key] += 1
            values.append(value)
            records.append(Record(0, 0, key=f"k{key}".encode(), value=value))
        batch = build_batch(records, producer_id=self.producer_id, producer_epoch=0, base_sequence=sequence)
        return batch, values

    def _run(self) -> None:
        try:
            sequence = 0
            while not self.stop.is_set():
                batch, values = self._next_batch(sequence)
                self._send_until_acked(batch, values)
                sequence += RECORDS_PER_BATCH
        except BaseException as exc:  # reported by join()
            self.failure = exc

    def _send_until_acked(self, batch: bytes, values: list[bytes]) -> None:
        data = produce_pb2.ProducePartitionData(topic=TOPIC, partition=0, records=batch)
        request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data], timeout_ms=10_000)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            leader = self.cluster.leader(TOPIC)
            if leader > 0 and self.cluster.brokers[leader].running:
                try:
                    result = self._stub(leader).Produce(request, timeout=15).results[0]
                except grpc.RpcError as exc:
                    self._count(exc.code().name)
                else:
                    if result.error_code == common_pb2.ERROR_CODE_NONE:
                        self.acked.append(Acked(result.base_offset, values, leader, time.monotonic()))
                        return
                    self._count(common_pb2.ErrorCode.Name(result.error_code))
                    assert result.error_code in RETRIABLE, result.error_message
            time.sleep(0.02)  # a retry backoff, as a client's retry.backoff.ms
        raise AssertionError(f"a batch was not acknowledged within 120 s; errors so far {self.errors}")

    def _count(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1


RETRIABLE = {
    common_pb2.ERROR_CODE_NOT_LEADER_OR_FOLLOWER,
    common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS,
    common_pb2.ERROR_CODE_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    common_pb2.ERROR_CODE_REQUEST_TIMED_OUT,
    common_pb2.ERROR_CODE_NOT_AVAILABLE,
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, 3, ("--default-replication-factor=3", "--min-insync-replicas=2"))


def stored(data_dir: Path) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of the partition on disk, across its segments (a read stops at a segment's end)."""
    found: list[tuple[int, bytes | None, bytes | None]] = []
    with LogManager(data_dir) as manager:
        partition_log = manager.log(TOPIC, 0)
        while len(found) < partition_log.log_end_offset:
            records = list(iter_records(partition_log.read(len(found), 1 << 30).data))
            assert records, f"nothing readable at {len(found)} in {partition_log.directory}"
            found.extend((r.offset, r.key, r.value) for r in records if r.offset >= len(found))
    return found


def fault(cluster: Cluster, load: IdempotentLoad, victim: int, kind: str, act: object) -> dict[str, float]:
    """Apply a fault that takes `victim` away, then measure: new leader in etcd, first write there."""
    started = time.monotonic()
    act()  # type: ignore[operator]
    if kind != "follower-frozen":
        elected = cluster.wait_for(
            lambda: cluster.leader(TOPIC) not in (-1, victim), f"a new leader after {kind}", ELECTION_BOUND_S
        )
    else:
        elected = 0.0
    cluster.wait_for(
        lambda: load.acked_since(started, victim) is not None, f"a write acknowledged after {kind}"
    )
    first = load.acked_since(started, victim)
    assert first is not None
    return {"kind": kind, "victim": victim, "elected_s": elected, "first_write_s": first.at - started}  # type: ignore[dict-item]


def test_no_acknowledged_record_is_lost_across_leader_kills_a_frozen_follower_and_the_controller(
    cluster: Cluster,
) -> None:
    admin = Stubs.connect(cluster.brokers[1].address)
    admin.create_topic(TOPIC, partitions=1)
    cluster.wait_for_isr(TOPIC, 0, 3)
    producer_id = admin.produce.InitProducerId(produce_pb2.InitProducerIdRequest()).producer_id
    load = IdempotentLoad(cluster, producer_id)
    load.start()
    figures: list[dict[str, float]] = []
    try:
        cluster.wait_for(lambda: len(load.acked) >= 20, "the load is running")
        for _ in range(KILLS):
            leader = cluster.wait_for_isr(TOPIC, 0, 3).leader
            figures.append(fault(cluster, load, leader, "leader-killed", cluster.brokers[leader].kill))
            cluster.brokers[leader].start()

        state = cluster.wait_for_isr(TOPIC, 0, 3)
        follower = next(r for r in state.replicas if r != state.leader)
        process = cluster.brokers[follower].process
        assert process is not None
        figures.append(
            fault(cluster, load, follower, "follower-frozen", lambda: os.kill(process.pid, signal.SIGSTOP))
        )
        cluster.wait_for(
            lambda: follower not in (cluster.partition(TOPIC, 0) or state).isr,
            "the frozen follower leaves the ISR",
        )
        os.kill(process.pid, signal.SIGCONT)
        cluster.wait_for_isr(TOPIC, 0, 3, timeout_s=60)

        controller = cluster.controller()
        assert controller is not None
        figures.append(
            fault(cluster, load, controller, "controller-killed", cluster.brokers[controller].kill)
        )
        cluster.wait_for(
            lambda: cluster.controller() not in (None, controller), "a new controller", ELECTION_BOUND_S
        )
        cluster.brokers[controller].start()
        cluster.wait_for_isr(TOPIC, 0, 3)
        acked_before_stop = len(load.acked)
        cluster.wait_for(lambda: len(load.acked) > acked_before_stop + 10, "writes continue after the faults")
    finally:
        load.join()

    state = cluster.wait_for_isr(TOPIC, 0, 3)
    leader_stubs = Stubs.connect(cluster.brokers[state.leader].address)
    end = sum(len(a.values) for a in load.acked)
    cluster.wait_for(
        lambda: leader_stubs.fetch_one(TOPIC, 0, 0).high_watermark >= end,
        "the high watermark covers every ack",
    )
    cluster.stop()

    expected: list[tuple[int, bytes]] = []
    for acked in load.acked:
        expected.extend((acked.base_offset + i, value) for i, value in enumerate(acked.values))
    assert [offset for offset, _ in expected] == list(range(len(expected))), "acks are contiguous, none twice"
    logs = {i: stored(b.data_dir) for i, b in cluster.brokers.items()}
    assert logs[1] == logs[2] == logs[3], "the replicas differ"
    assert [(offset, value) for offset, _, value in logs[1]] == expected
    per_key: dict[bytes, list[int]] = {}
    for _, key, value in logs[1]:
        assert key is not None and value is not None
        per_key.setdefault(key, []).append(int(value.split(b":")[1]))
    assert all(numbers == list(range(len(numbers))) for numbers in per_key.values()), "per-key order"

    kills = [f for f in figures if f["kind"] == "leader-killed"]
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "records_acknowledged": len(expected),
                "retried_errors": load.errors,
                "leader_kill_election_s": {
                    "median": statistics.median(f["elected_s"] for f in kills),
                    "max": max(f["elected_s"] for f in kills),
                },
                "leader_kill_first_write_s": {
                    "median": statistics.median(f["first_write_s"] for f in kills),
                    "max": max(f["first_write_s"] for f in kills),
                },
                "faults": figures,
            },
            indent=1,
        )
    )
