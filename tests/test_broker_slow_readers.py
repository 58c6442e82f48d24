"""Clients that never read: the memory held for their answers is bounded, and silent or idle connections close.

The stalled clients are raw HTTP/2 connections that send calls and never read (bench/stalled_reader.py):
gRPC's own clients always read their socket, so they cannot stall a broker this way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from logstore.bench.bench_slow_readers import (
    CLIENT_OPTIONS,
    FETCH_METHOD,
    SUBSCRIBE_METHOD,
    fetch_request,
    fill,
    rss_bytes,
    subscribe_request,
)
from logstore.bench.stalled_reader import StalledReader
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import fetch_pb2, fetch_pb2_grpc, produce_pb2, produce_pb2_grpc

from logstore.records import build_batch

MiB = 1024 * 1024
WAITS = "waits for room"


def _until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a limit for a broken broker, not a pace)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the broker never got there"
        time.sleep(0.02)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def readers() -> Iterator[list[StalledReader]]:
    opened: list[StalledReader] = []
    yield opened
    for reader in opened:
        reader.close()


def _fetch(channel: grpc.Channel, topic: str, max_bytes: int = 0) -> fetch_pb2.PartitionRecords:
    wanted = fetch_pb2.FetchPartition(topic=topic, partition=0, offset=0, max_bytes=max_bytes)
    stub = fetch_pb2_grpc.FetchServiceStub(channel)
    return stub.Fetch(fetch_pb2.FetchRequest(partitions=[wanted]), timeout=60).results[0]


@pytest.mark.slow
def test_stalled_fetches_hold_at_most_the_answer_budget_and_others_still_produce(tmp_path, readers) -> None:
    """60 Fetch calls of 4 MiB answers, never read, on 10 connections: without a bound the broker holds
    all 60 answers (about 12 MB of memory each); with a 16 MiB budget it holds a few and the rest wait."""
    broker = BrokerProcess(
        tmp_path / "data",
        tmp_path / "broker.log",
        [
            "--log-level=DEBUG",
            f"--fetch-max-bytes={4 * MiB}",
            f"--queued-max-response-bytes={16 * MiB}",
            f"--queued-max-response-bytes-per-connection={8 * MiB}",
        ],
    )
    address = broker.start()
    assert broker.process is not None
    pid = broker.process.pid
    try:
        with grpc.insecure_channel(address, options=CLIENT_OPTIONS) as channel:
            fill(channel, "big", 24)
            before = rss_bytes(pid)
            limit = before + 150 * 1000 * 1000
            readers.extend(StalledReader(address) for _ in range(10))
            for i in range(60):
                readers[i % 10].call(FETCH_METHOD, fetch_request("big"))
            # Until at least 30 calls are throttled, or the broker's memory has passed the bound.
            _until(lambda: broker.log_text().count(WAITS) >= 30 or rss_bytes(pid) > limit)
            peak = max(rss_bytes(pid), _peak_rss(pid))
            assert peak < limit, f"RSS went from {before / 1e6:.0f} MB to {peak / 1e6:.0f} MB"

            produce = produce_pb2_grpc.ProduceServiceStub(channel)
            data = produce_pb2.ProducePartitionData(topic="other", partition=0, records=build_batch([b"v"]))
            answer = produce.Produce(
                produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_ALL, partitions=[data]), timeout=60
            )
            assert answer.results[0].error_code == 0, "another client's produce is served meanwhile"

            for reader in readers:
                reader.close()
            # Their answers are let go with their connections: a normal fetch is served again.
            result = _fetch(channel, "big")
            assert result.error_code == 0 and result.records
    finally:
        broker.terminate()


def test_stalled_subscriptions_on_one_connection_hold_at_most_its_budget(
    start_broker, connect, readers
) -> None:
    broker = start_broker(
        queued_max_response_bytes=64 * MiB, queued_max_response_bytes_per_connection=4 * MiB
    )
    stubs = connect(broker)
    fill(stubs.channel, "big", 24)
    stalled = StalledReader(broker.address)
    readers.append(stalled)
    for _ in range(16):
        stalled.call(SUBSCRIBE_METHOD, subscribe_request("big"))
    answers = broker.server.answers
    assert answers is not None
    # Each message is 1 MiB: at most four or five streams get one, the others wait for room.
    _until(lambda: broker.run(lambda: len(answers._waiting)) >= 11)
    held = broker.run(answers.held_by, stalled.peer)
    assert 4 * MiB <= held <= 5 * MiB + MiB
    assert broker.run(lambda: answers.in_use) == held

    # A subscriber on another connection is not held up.
    start = fetch_pb2.SubscribePartition(topic="big", partition=0, start_from=fetch_pb2.START_FROM_EARLIEST)
    stream = stubs.fetch.Subscribe(fetch_pb2.SubscribeRequest(partitions=[start]), timeout=60)
    assert next(stream).partitions[0].records
    stream.cancel()

    stalled.close()
    _until(lambda: broker.run(lambda: answers.in_use) == 0)


def test_a_connection_that_stops_reading_is_closed_and_its_answer_let_go(
    start_broker, connect, readers
) -> None:
    broker = start_broker(keepalive_time_ms=100, keepalive_timeout_ms=300)
    fill(connect(broker).channel, "big", 4)
    stalled = StalledReader(broker.address)
    readers.append(stalled)
    stalled.call(FETCH_METHOD, fetch_request("big"))
    assert stalled.wait_closed_by_peer(timeout_s=30), "the broker kept a connection that answers no ping"
    answers = broker.server.answers
    assert answers is not None
    _until(lambda: broker.run(lambda: answers.in_use) == 0)


def test_an_idle_connection_is_closed(start_broker, readers) -> None:
    broker = start_broker(connections_max_idle_ms=200)
    idle = StalledReader(broker.address)
    readers.append(idle)
    assert idle.wait_closed_by_peer(timeout_s=30), "the broker kept a connection with no calls"


def test_a_fetch_gets_a_smaller_answer_when_its_connection_has_little_room(start_broker, connect) -> None:
    broker = start_broker(queued_max_response_bytes_per_connection=2 * MiB)
    stubs = connect(broker)
    fill(stubs.channel, "big", 8)
    answers = broker.server.answers
    assert answers is not None
    peer = broker.run(lambda: next(iter(answers._per_connection), None))
    assert peer is None, "nothing is held once answers are taken"
    result = _fetch(stubs.channel, "big", max_bytes=8 * MiB)
    assert result.error_code == 0
    assert MiB < len(result.records) <= 2 * MiB, "the answer fits the connection's budget"


@pytest.mark.slow
def test_memory_held_for_stalled_subscriptions_is_given_back_once_they_end(tmp_path) -> None:
    """200 Subscribe streams a gRPC client never iterates, then cancels: while they are open the broker
    holds at most their connection's budget, and once they end its RSS returns to about where it started
    (b76e547 kept some 800 MB mapped: the allocator's thresholds keep freed buffers for reuse)."""
    broker = BrokerProcess(tmp_path / "data", tmp_path / "broker.log")
    address = broker.start()
    assert broker.process is not None
    pid = broker.process.pid
    try:
        with grpc.insecure_channel(address, options=CLIENT_OPTIONS) as channel:
            fill(channel, "big", 220)
            before = rss_bytes(pid)
            stub = fetch_pb2_grpc.FetchServiceStub(channel)
            start = fetch_pb2.SubscribePartition(
                topic="big", partition=0, start_from=fetch_pb2.START_FROM_EARLIEST
            )
            streams = [stub.Subscribe(fetch_pb2.SubscribeRequest(partitions=[start])) for _ in range(200)]
            _until(lambda: rss_bytes(pid) > before + 100 * 1000 * 1000)
            for stream in streams:
                stream.cancel()
            _until(lambda: rss_bytes(pid) < before + 25 * 1000 * 1000, timeout_s=30)
    finally:
        broker.terminate()


def test_a_fetch_waiting_for_room_ends_promptly_when_the_broker_stops(start_broker, connect, readers) -> None:
    broker = start_broker(
        queued_max_response_bytes=2 * MiB,
        queued_max_response_bytes_per_connection=2 * MiB,
        shutdown_grace_ms=3000,
    )
    stubs = connect(broker)
    fill(stubs.channel, "big", 4)
    stalled = StalledReader(broker.address)
    readers.append(stalled)
    stalled.call(FETCH_METHOD, fetch_request("big"))
    stalled.call(FETCH_METHOD, fetch_request("big"))
    answers = broker.server.answers
    assert answers is not None
    _until(lambda: broker.run(lambda: answers.in_use) >= 2 * MiB)
    wanted = fetch_pb2.FetchPartition(topic="big", partition=0, offset=0)
    waiting = stubs.fetch.Fetch.future(fetch_pb2.FetchRequest(partitions=[wanted]), timeout=120)
    _until(lambda: broker.run(lambda: len(answers._waiting)) == 1)
    broker.stop()  # the stalled calls hold it for the grace period; the waiting fetch must end before
    error = waiting.exception()
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert "shutting down" in error.details()
