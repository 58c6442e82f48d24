"""`python -m logstore.broker` as a real process: SIGKILL under acks=all load loses nothing acknowledged; SIGTERM is clean."""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass, field

import grpc
import pytest
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import produce_pb2

from logstore.manager import CLEAN_SHUTDOWN_MARKER
from logstore.records import build_batch, iter_records

THREADS = 4
PARTITIONS = 3
RECORDS_PER_BATCH = 5
KILL_AFTER_ACKS = 150


@dataclass
class Acked:
    """What one producer thread was told: per partition, (base offset, values) of each acknowledged batch."""

    batches: dict[int, list[tuple[int, list[bytes]]]] = field(default_factory=dict)
    error: grpc.RpcError | None = None


class AckCounter:
    """Counts acknowledgements over all threads; `enough` is set once there are KILL_AFTER_ACKS of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.enough = threading.Event()

    def add(self) -> None:
        with self._lock:
            self._count += 1
            if self._count >= KILL_AFTER_ACKS:
                self.enough.set()


def _produce_until_the_broker_dies(stubs, thread: int, acked: Acked, counter: AckCounter) -> None:
    sequence = 0
    while True:
        partition = sequence % PARTITIONS
        values = [f"{thread}:{sequence}:{i}".encode() for i in range(RECORDS_PER_BATCH)]
        data = produce_pb2.ProducePartitionData(topic="t", partition=partition, records=build_batch(values))
        try:
            response = stubs.produce.Produce(
                produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data]), timeout=30
            )
        except grpc.RpcError as exc:
            acked.error = exc
            return
        (result,) = response.results
        assert result.error_code == 0, result.error_message
        acked.batches.setdefault(partition, []).append((result.base_offset, values))
        sequence += 1
        counter.add()


def _stored(stubs, partition: int) -> list[tuple[int, bytes | None]]:
    stored: list[tuple[int, bytes | None]] = []
    offset = 0
    while True:
        result = stubs.fetch_one("t", partition, offset)
        assert result.error_code == 0, result.error_message
        records = [(r.offset, r.value) for r in iter_records(result.records) if r.offset >= offset]
        if not records:
            return stored
        stored.extend(records)
        offset = records[-1][0] + 1


@pytest.mark.slow
def test_sigkill_under_acks_all_load_keeps_every_acknowledged_record_once_and_in_order(
    tmp_path, connect
) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "broker.log"
    first = BrokerProcess(data_dir, log_path)
    first.start()
    stubs = connect(first)
    stubs.create_topic("t", PARTITIONS)

    acked = [Acked() for _ in range(THREADS)]
    counter = AckCounter()
    threads = [
        threading.Thread(target=_produce_until_the_broker_dies, args=(stubs, n, acked[n], counter))
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    assert counter.enough.wait(60), (
        f"the producers never got {KILL_AFTER_ACKS} acknowledgements:\n{first.log_text()}"
    )
    assert first.kill() == -9
    for thread in threads:
        thread.join(60)
    assert all(a.error is not None and a.error.code() == grpc.StatusCode.UNAVAILABLE for a in acked)

    second = BrokerProcess(data_dir, log_path)
    second.start()
    assert "previous shutdown was not clean" in second.log_text()
    stubs = connect(second)
    for partition in range(PARTITIONS):
        stored = _stored(stubs, partition)
        assert [offset for offset, _ in stored] == list(range(len(stored))), "offsets are dense"
        by_offset = dict(stored)
        values = [value for _, value in stored]
        for producer in acked:
            for base_offset, batch in producer.batches.get(partition, []):
                assert [by_offset.get(base_offset + i) for i in range(len(batch))] == batch
                assert all(values.count(value) == 1 for value in batch)
            sequence_order = [base for base, _ in producer.batches.get(partition, [])]
            assert sequence_order == sorted(sequence_order), "one producer's batches keep their order"
    assert sum(len(b) for a in acked for b in a.batches.values()) >= KILL_AFTER_ACKS

    assert second.terminate() == 0
    assert (data_dir / CLEAN_SHUTDOWN_MARKER).exists()
    assert "stopped cleanly" in second.log_text()


@pytest.mark.slow
def test_logstore_serve_stops_cleanly_on_sigint(tmp_path, connect) -> None:
    serve = BrokerProcess(
        tmp_path / "data",
        tmp_path / "broker.log",
        command=(sys.executable, "-m", "logstore.bench.cli", "serve"),
    )
    serve.start()
    stubs = connect(serve)
    assert stubs.produce_one("auto", 0, build_batch([b"v"])).base_offset == 0
    assert serve.terminate(signum=signal.SIGINT) == 0
    assert (tmp_path / "data" / CLEAN_SHUTDOWN_MARKER).exists()
    assert "received SIGINT" in serve.log_text()
