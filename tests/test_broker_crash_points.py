"""SIGKILL a real broker exactly inside a segment roll and inside a compaction, under acks=all load on a
rolling topic and a compacted one, then check every acknowledged record after the restart.

The broker is `tests/hooked_broker.py`: `python -m logstore.broker` that freezes the thread reaching the chosen
point and says so in its log, so the kill lands inside the operation (the other threads keep serving and
acknowledging until then). Rolling topic: every acknowledged record is there once, at its offset, and
offsets are dense. Compacted topic: every record present is the one acknowledged at that offset (or an
unacknowledged one), and each acknowledged record is there unless a later record of its key is.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import produce_pb2

from logstore.records import Record, build_batch, iter_records

HOOKED = Path(__file__).with_name("hooked_broker.py")
SEGMENT = {"segment.bytes": "4096", "index.interval.bytes": "256"}
COMPACTED = {
    **SEGMENT,
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}
KEYS = 7
TS = 1_700_000_000_000


def _produce(stubs, topic: str, stop: threading.Event, acked: dict[int, Record], errors: list) -> None:
    """Produce 3-record batches with acks=all until told to stop or the broker dies; note each ack."""
    n = 0
    while not stop.is_set():
        records = [
            Record(0, TS, key=f"k{(n + i) % KEYS}".encode(), value=f"{topic}:{n + i}".encode() * 8)
            for i in range(3)
        ]
        data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=build_batch(records))
        try:
            response = stubs.produce.Produce(
                produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data]), timeout=30
            )
        except grpc.RpcError as exc:
            errors.append(exc)
            return
        (result,) = response.results
        assert result.error_code == 0, result.error_message
        for i, record in enumerate(records):
            acked[result.base_offset + i] = record
        n += 3


def _wait_for_line(broker: BrokerProcess, text: str, timeout_s: float) -> None:
    """Poll the broker's log until `text` shows up (the broker says it reached the kill point)."""
    deadline = time.monotonic() + timeout_s
    while text not in broker.log_text():
        assert broker.process is not None and broker.process.poll() is None, broker.log_text()
        assert time.monotonic() < deadline, f"never saw {text!r}:\n{broker.log_text()}"
        time.sleep(0.02)


def _stored(stubs, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    stored: list[tuple[int, bytes | None, bytes | None]] = []
    offset = 0
    while True:
        result = stubs.fetch_one(topic, 0, offset)
        assert result.error_code == 0, result.error_message
        records = [r for r in iter_records(result.records) if r.offset >= offset]
        if not records:
            return stored
        stored.extend((r.offset, r.key, r.value) for r in records)
        offset = records[-1].offset + 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "at"),
    [("roll-sealed", 2), ("roll-created", 2), ("compaction-cleaned", 1), ("compaction-swapped", 1)],
)
def test_sigkill_inside_a_roll_or_a_compaction_keeps_every_acknowledged_record(
    tmp_path: Path, connect, monkeypatch: pytest.MonkeyPatch, point: str, at: int
) -> None:
    monkeypatch.setenv("LOGSTORE_TEST_KILL_POINT", point)
    monkeypatch.setenv("LOGSTORE_TEST_KILL_AT", str(at))
    data_dir, log_path = tmp_path / "data", tmp_path / "broker.log"
    hooked = BrokerProcess(data_dir, log_path, command=(sys.executable, str(HOOKED)))
    hooked.start()
    stubs = connect(hooked)
    stubs.create_topic("rolling", 1, **SEGMENT)
    stubs.create_topic("compacted", 1, **COMPACTED)
    acked: dict[str, dict[int, Record]] = {"rolling": {}, "compacted": {}}
    errors: list[grpc.RpcError] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_produce, args=(stubs, topic, stop, acked[topic], errors)) for topic in acked
    ]
    for thread in threads:
        thread.start()
    try:
        _wait_for_line(hooked, f"KILL POINT {point} reached", timeout_s=120)
    finally:
        stop.set()
        code = hooked.kill()  # also when the point was never reached: no broker outlives the test
    assert code == -9
    for thread in threads:
        thread.join(60)
    counts = {topic: len(records) for topic, records in acked.items()}
    assert all(counts.values()) and sum(counts.values()) > 30, counts

    restarted = BrokerProcess(data_dir, log_path)
    restarted.start()
    try:
        _check(connect(restarted), acked)
    finally:
        code = restarted.terminate()
    assert code == 0


def _check(stubs, acked: dict[str, dict[int, Record]]) -> None:
    """Every acknowledged record of both topics is where the acknowledgement said (see the module doc)."""
    rolling = _stored(stubs, "rolling")
    assert [offset for offset, _, _ in rolling] == list(range(len(rolling))), "offsets are dense"
    by_offset = {offset: (key, value) for offset, key, value in rolling}
    for offset, record in acked["rolling"].items():
        assert by_offset.get(offset) == (record.key, record.value), offset

    compacted = _stored(stubs, "compacted")
    offsets = [offset for offset, _, _ in compacted]
    assert offsets == sorted(set(offsets)), "offsets increase"
    by_offset = {offset: (key, value) for offset, key, value in compacted}
    latest_present = {key: offset for offset, key, _ in compacted}
    for offset, record in acked["compacted"].items():
        if offset in by_offset:
            assert by_offset[offset] == (record.key, record.value), offset
        else:
            assert latest_present.get(record.key, -1) > offset, f"acknowledged offset {offset} lost"
