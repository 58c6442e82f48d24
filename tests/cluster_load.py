"""A load for failover tests: one idempotent producer writing keyed acks=all batches to one partition,
one batch in flight, each retried with its sequence until acknowledged by whichever broker etcd names
the leader. What it acknowledged is the record of what must survive."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from logstore.wire.logstore.v1 import common_pb2, fetch_pb2, fetch_pb2_grpc, produce_pb2, produce_pb2_grpc

from logstore.manager import LogManager
from logstore.records import Record, build_batch, iter_records
from tests.cluster_support import Cluster

KEYS = 10
RECORDS_PER_BATCH = 5


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
    topic: str
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
        data = produce_pb2.ProducePartitionData(topic=self.topic, partition=0, records=batch)
        request = produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data], timeout_ms=10_000)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            leader = self.cluster.leader(self.topic)
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


def stored_records(data_dir: Path, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record of `topic`-0 on disk, across its segments (a read stops at
    a segment's end). The broker must be stopped."""
    found: list[tuple[int, bytes | None, bytes | None]] = []
    with LogManager(data_dir) as manager:
        partition_log = manager.log(topic, 0)
        while len(found) < partition_log.log_end_offset:
            records = list(iter_records(partition_log.read(len(found), 1 << 30).data))
            assert records, f"nothing readable at {len(found)} in {partition_log.directory}"
            found.extend((r.offset, r.key, r.value) for r in records if r.offset >= len(found))
    return found


def check_acknowledged_records_survived(cluster: Cluster, load: IdempotentLoad) -> list[tuple[int, bytes]]:
    """After the load stopped: wait for a full ISR and a high watermark over every ack, stop the cluster,
    then check each replica's log on disk is exactly the acknowledged batches, each once at the offset it
    was acknowledged at, in per-key order, identical on every replica. Returns the records."""
    state = cluster.wait_for_isr(load.topic, 0, len(cluster.brokers))
    end = sum(len(a.values) for a in load.acked)
    with grpc.insecure_channel(cluster.brokers[state.leader].address) as channel:
        fetch = fetch_pb2_grpc.FetchServiceStub(channel)
        wanted = fetch_pb2.FetchRequest(partitions=[fetch_pb2.FetchPartition(topic=load.topic, partition=0)])
        cluster.wait_for(
            lambda: fetch.Fetch(wanted).results[0].high_watermark >= end,
            "the high watermark covers every ack",
        )
    cluster.stop()
    expected: list[tuple[int, bytes]] = []
    for acked in load.acked:
        expected.extend((acked.base_offset + i, value) for i, value in enumerate(acked.values))
    assert [offset for offset, _ in expected] == list(range(len(expected))), "acks are contiguous, none twice"
    logs = {i: stored_records(b.data_dir, load.topic) for i, b in cluster.brokers.items()}
    first = logs[min(logs)]
    assert all(log == first for log in logs.values()), "the replicas differ"
    assert [(offset, value) for offset, _, value in first] == expected
    per_key: dict[bytes, list[int]] = {}
    for _, key, value in first:
        assert key is not None and value is not None
        per_key.setdefault(key, []).append(int(value.split(b":")[1]))
    assert all(numbers == list(range(len(numbers))) for numbers in per_key.values()), "per-key order"
    return expected
