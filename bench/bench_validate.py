"""What checking a produced batch's records costs: validation alone, and Log.append with and without it.

Run: .venv/bin/python -m pytest bench/bench_validate.py --benchmark-enable --benchmark-only -p no:cacheprovider

Payload: what the broker gets in a 1 MiB produce request of 100-byte records, either as ~16 KiB batches
(Kafka's default batch.size, 9,5xx records in 64 batches) or as one ~1 MiB batch; timestamps advance by
1 ms every 200 records, as a producer sending 200,000 records/s stamps them.

- "check_batch": framing, magic and CRC of every batch (all the broker ran before issue 9 item 2);
  "validate": the same plus `validate_records` (what `Log.validate` runs now).
- "append, no validation": `Log.append` of 32 such requests into a fresh partition per round with
  `validate_records` replaced by a no-op in this process, the baseline in the same run;
  "append": the real `Log.append`.
- "broker produce": the whole produce path over gRPC, acks=1, into two brokers in child processes
  started together, one with `validate_records` replaced by a no-op (the baseline), called in turn in
  blocks of 10 calls so both see the same load. Besides wall-clock time per call it reads each broker's
  CPU time (user + system, all threads, from /proc) before and after: records per CPU-second is what one
  core of broker can take, and holds on a machine shared with other work, where wall-clock time does not.

Every case stores records/s in `extra_info`; the module prints medians (and best rounds) side by side
and the ratio to its baseline at the end.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from logstore.broker.embedded import BrokerProcess
from logstore.broker.malloc import keep_large_buffers
from logstore.wire.logstore.v1 import admin_pb2, admin_pb2_grpc, produce_pb2, produce_pb2_grpc

import logstore.log
from logstore.config import TopicConfig
from logstore.log import Log
from logstore.records import BatchBuilder, check_batch, iter_headers
from logstore.records.validate import validate_records

MiB = 1024 * 1024
VALUE = b"v" * 100
REQUEST_BYTES = MiB
REQUESTS_PER_ROUND = 32
BATCH_SIZES = {"16 KiB": 16 * 1024, "1 MiB": MiB - 1024}
CONFIG = TopicConfig(segment_bytes=1024 * MiB, max_message_bytes=2 * MiB)
TS = 1_700_000_000_000

_results: dict[tuple[str, str], dict[str, float]] = {}


def request_payload(batch_bytes: int) -> tuple[bytes, int]:
    """About 1 MiB of batches of at most ``batch_bytes``, and how many records they hold."""
    batches: list[bytes] = []
    total = count = 0
    while True:
        builder = BatchBuilder()
        while builder.size_in_bytes() + len(VALUE) + 16 <= batch_bytes:
            builder.append(VALUE, timestamp_ms=TS + count // 200)
            count += 1
        batch = builder.build()
        if total + len(batch) > REQUEST_BYTES:
            return b"".join(batches), count - builder.record_count
        batches.append(batch)
        total += len(batch)


@pytest.fixture(scope="module", params=list(BATCH_SIZES), ids=list(BATCH_SIZES))
def payload(request: pytest.FixtureRequest) -> tuple[str, bytes, int]:
    data, count = request_payload(BATCH_SIZES[request.param])
    assert sum(header.record_count for _, header in iter_headers(data)) == count
    return request.param, data, count


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not _results:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(
            "Validation cost, 1 MiB requests of 100-byte records (M records/s: median | best)"
        )
        for (case, size), row in sorted(_results.items()):
            base = {
                "validate": "check_batch",
                "append": "append, no validation",
                "broker produce": "broker produce, no validation",
            }.get(case)
            ratio = ""
            if base and (base, size) in _results:
                ratio = f"  {row['median'] / _results[(base, size)]['median']:5.2f} of {base}"
            cpu = f"  {row['cpu'] / 1e6:6.2f} per broker CPU-second" if "cpu" in row else ""
            reporter.write_line(
                f"  {case + ', ' + size + ' batches':45s} {row['median'] / 1e6:7.2f} | {row['best'] / 1e6:7.2f}"
                f"{ratio}{cpu}"
            )


def _record(benchmark: Any, case: str, size: str, records: int) -> None:
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is None:  # --benchmark-disable: ran once, untimed
        return
    _results[(case, size)] = {"median": records / stats.median, "best": records / stats.min}
    benchmark.extra_info["M records/s (median)"] = round(records / stats.median / 1e6, 2)


# --- validation alone ----------------------------------------------------------------------------------


def _check_all(data: bytes) -> None:
    view = memoryview(data)
    position = 0
    while position < len(data):
        position += check_batch(view, position).size


def _validate_all(data: bytes) -> None:
    view = memoryview(data)
    position = 0
    while position < len(data):
        header = check_batch(view, position)
        validate_records(view, position, header)
        position += header.size


@pytest.mark.parametrize("case", ["check_batch", "validate"])
def test_validation(benchmark: Any, payload: tuple[str, bytes, int], case: str) -> None:
    size, data, count = payload
    benchmark.group = f"validation, {size} batches"
    run = _check_all if case == "check_batch" else _validate_all
    benchmark.pedantic(run, args=(data,), rounds=200, warmup_rounds=5)
    _record(benchmark, case, size, count)


# --- the append path ----------------------------------------------------------------------------------


def _no_validation(*args: object, **kwargs: object) -> None:
    return None


@pytest.mark.parametrize("case", ["append, no validation", "append"])
def test_append(
    benchmark: Any,
    payload: tuple[str, bytes, int],
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size, data, count = payload
    benchmark.group = f"append, {size} batches"
    if case == "append, no validation":
        monkeypatch.setattr(logstore.log, "validate_records", _no_validation)
    rounds: list[Path] = []
    cleanups: list[Callable[[], None]] = []

    def setup() -> tuple[tuple[Log], dict[str, Any]]:
        for cleanup in cleanups:
            cleanup()
        cleanups.clear()
        directory = tmp_path / f"round-{len(rounds)}"
        rounds.append(directory)
        log = Log(directory / "bench-0", "bench", 0, CONFIG)
        cleanups.append(log.delete)
        cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        return (log,), {}

    def append_all(log: Log) -> None:
        append = log.append
        for _ in range(REQUESTS_PER_ROUND):
            append(data)

    benchmark.pedantic(append_all, setup=setup, rounds=15, warmup_rounds=1, iterations=1)
    for cleanup in cleanups:
        cleanup()
    _record(benchmark, case, size, count * REQUESTS_PER_ROUND)


# --- the broker's produce path ----------------------------------------------------------------------------

_WITHOUT_VALIDATION = (
    "import runpy, logstore.log; logstore.log.validate_records = lambda *args, **kwargs: None; "
    "runpy.run_module('broker', run_name='__main__', alter_sys=True)"
)
BROKER_CALLS = 200
BLOCK = 10


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads broker CPU time from /proc")
def test_broker_produce(payload: tuple[str, bytes, int], tmp_path: Path) -> None:
    size, data, count = payload
    keep_large_buffers()
    options = [("grpc.max_send_message_length", 64 * MiB), ("grpc.max_receive_message_length", 64 * MiB)]
    sides: dict[str, dict[str, Any]] = {}
    for name, command in (
        ("broker produce, no validation", (sys.executable, "-c", _WITHOUT_VALIDATION)),
        ("broker produce", (sys.executable, "-m", "logstore.broker")),
    ):
        process = BrokerProcess(tmp_path / name / "data", tmp_path / f"{name}.log", command=command)
        (tmp_path / name).mkdir()
        channel = grpc.insecure_channel(process.start(), options=options)
        admin_pb2_grpc.AdminServiceStub(channel).CreateTopic(
            admin_pb2.CreateTopicRequest(name="p", partitions=1)
        )
        stub = produce_pb2_grpc.ProduceServiceStub(channel)
        request = produce_pb2.ProduceRequest(
            acks=produce_pb2.ACKS_LEADER,
            partitions=[produce_pb2.ProducePartitionData(topic="p", partition=0, records=data)],
        )
        sides[name] = {"process": process, "channel": channel, "stub": stub, "request": request, "wall": []}
    try:
        for side in sides.values():  # warm up, and prove the no-op broker still appends what it gets
            for _ in range(5):
                (result,) = side["stub"].Produce(side["request"]).results
                assert result.error_code == 0, result.error_message
            side["cpu"] = -_cpu_seconds(side["process"].process.pid)
        for _ in range(BROKER_CALLS // BLOCK):
            for side in sides.values():
                produce, request, wall = side["stub"].Produce, side["request"], side["wall"]
                for _ in range(BLOCK):
                    started = time.perf_counter()
                    produce(request)
                    wall.append(time.perf_counter() - started)
        for name, side in sides.items():
            side["cpu"] += _cpu_seconds(side["process"].process.pid)
            per_call = statistics.median(side["wall"])
            _results[(name, size)] = {
                "median": count / per_call,
                "best": count / min(side["wall"]),
                "cpu": count * BROKER_CALLS / side["cpu"],
            }
    finally:
        for side in sides.values():
            side["channel"].close()
            assert side["process"].terminate() == 0
