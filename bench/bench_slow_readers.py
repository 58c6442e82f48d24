"""What clients that never read cost the broker: its RSS, and another client's produce latency.

Starts `python -m logstore.broker` as a child process, fills a topic with `--fill-mib` MiB of 100-byte records,
then opens `--calls` Fetch calls (50 MiB answers by default), or Subscribe calls (`--method subscribe`,
1 MiB per message), that are never read, on `--connections`
raw HTTP/2 connections (bench/stalled_reader.py); or, with `--client grpc`, Subscribe streams a gRPC
client never iterates and then cancels. Reports the broker's RSS (VmRSS from /proc) before,
with the calls open, and after they closed; and the median latency of acks=1 produces of 1 KiB from a
normal client before the stalled calls, right after they were sent, and once the broker has settled.

    .venv/bin/python -m logstore.bench.bench_slow_readers --calls 40 --runs 3

Extra broker flags go after `--`, for example `-- --queued-max-response-bytes 268435456`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from logstore.bench.stalled_reader import StalledReader
from logstore.broker.embedded import BrokerProcess
from logstore.wire.logstore.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    fetch_pb2,
    fetch_pb2_grpc,
    produce_pb2,
    produce_pb2_grpc,
)

from logstore.records import build_batch

MiB = 1024 * 1024
FETCH_METHOD = "/logstore.v1.FetchService/Fetch"
SUBSCRIBE_METHOD = "/logstore.v1.FetchService/Subscribe"
CLIENT_OPTIONS = [("grpc.max_receive_message_length", 256 * MiB), ("grpc.max_send_message_length", 256 * MiB)]


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid`, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def fill(channel: grpc.Channel, topic: str, mib: int) -> None:
    """Create `topic` and append `mib` MiB of 100-byte records in 1 MiB batches."""
    admin_pb2_grpc.AdminServiceStub(channel).CreateTopic(
        admin_pb2.CreateTopicRequest(name=topic, partitions=1)
    )
    produce = produce_pb2_grpc.ProduceServiceStub(channel)
    batch = build_batch([b"x" * 100] * 9_000)
    for _ in range(max(1, mib * MiB // len(batch))):
        data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=batch)
        answer = produce.Produce(produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_LEADER, partitions=[data]))
        assert answer.results[0].error_code == 0, answer.results[0].error_message


def produce_latency_ms(channel: grpc.Channel, topic: str, count: int, timeout_s: float) -> float:
    """Median latency of `count` acks=1 produces of one 1 KiB record; a timeout counts as `timeout_s`."""
    produce = produce_pb2_grpc.ProduceServiceStub(channel)
    batch = build_batch([b"y" * 1024])
    took = []
    for _ in range(count):
        data = produce_pb2.ProducePartitionData(topic=topic, partition=0, records=batch)
        start = time.perf_counter()
        try:
            produce.Produce(
                produce_pb2.ProduceRequest(acks=produce_pb2.ACKS_LEADER, partitions=[data]), timeout=timeout_s
            )
            took.append(time.perf_counter() - start)
        except grpc.RpcError:
            took.append(timeout_s)
    return statistics.median(took) * 1000


def fetch_request(topic: str) -> bytes:
    wanted = fetch_pb2.FetchPartition(topic=topic, partition=0, offset=0, max_bytes=256 * MiB)
    return fetch_pb2.FetchRequest(partitions=[wanted], max_bytes=256 * MiB).SerializeToString()


def subscribe_request(topic: str) -> bytes:
    """A subscription from the start of the topic with the default 1 MiB per message."""
    wanted = fetch_pb2.SubscribePartition(topic=topic, partition=0, start_from=fetch_pb2.START_FROM_EARLIEST)
    return fetch_pb2.SubscribeRequest(partitions=[wanted]).SerializeToString()


def settle_rss(pid: int, seconds: float) -> int:
    """The highest RSS seen over `seconds` (the broker builds answers asynchronously)."""
    deadline = time.monotonic() + seconds
    peak = rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        peak = max(peak, rss_bytes(pid))
    return peak


def open_stalled_calls(address: str, channel: grpc.Channel, args: argparse.Namespace) -> Callable[[], None]:
    """Open the stalled calls; returns what ends them (closing their connections, or cancelling them)."""
    if args.client == "grpc":
        # gRPC's own client reads its socket whatever the application does, but a stream the application
        # does not iterate is not given flow-control window: the broker holds what it cannot send.
        assert args.method == "subscribe", "a gRPC client always takes a unary answer"
        stub = fetch_pb2_grpc.FetchServiceStub(channel)
        start = fetch_pb2.SubscribePartition(
            topic="big", partition=0, start_from=fetch_pb2.START_FROM_EARLIEST
        )
        streams = [stub.Subscribe(fetch_pb2.SubscribeRequest(partitions=[start])) for _ in range(args.calls)]

        def cancel() -> None:
            for stream in streams:
                stream.cancel()

        return cancel
    readers = [StalledReader(address) for _ in range(args.connections)]
    if args.method == "subscribe":
        method, request = SUBSCRIBE_METHOD, subscribe_request("big")
    else:
        method, request = FETCH_METHOD, fetch_request("big")
    for i in range(args.calls):
        readers[i % len(readers)].call(method, request)

    def close() -> None:
        for reader in readers:
            reader.close()

    return close


def one_run(args: argparse.Namespace, broker_args: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "data", Path(tmp) / "broker.log", broker_args)
        address = broker.start()
        assert broker.process is not None
        pid = broker.process.pid
        try:
            with grpc.insecure_channel(address, options=CLIENT_OPTIONS) as channel:
                fill(channel, "big", args.fill_mib)
                fill(channel, "small", 1)
                quiet_ms = produce_latency_ms(channel, "small", args.produces, args.timeout_s)
                before = rss_bytes(pid)
                close = open_stalled_calls(address, channel, args)
                # Timed while the broker takes in the stalled calls, then after it has settled.
                loaded_ms = produce_latency_ms(channel, "small", args.produces, args.timeout_s)
                held = settle_rss(pid, args.settle_s)
                settled_ms = produce_latency_ms(channel, "small", args.produces, args.timeout_s)
                held = max(held, rss_bytes(pid))
                close()
                time.sleep(args.settle_s)
                after = rss_bytes(pid)
        finally:
            broker.terminate()
    return {
        "rss_before_mb": before / 1e6,
        "rss_held_mb": held / 1e6,
        "rss_after_close_mb": after / 1e6,
        "produce_ms_quiet": quiet_ms,
        "produce_ms_during_stall": loaded_ms,
        "produce_ms_stalled_settled": settled_ms,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--method", choices=("fetch", "subscribe"), default="fetch", help="what to stall (fetch)"
    )
    parser.add_argument(
        "--client",
        choices=("raw", "grpc"),
        default="raw",
        help="raw: connections that never read (default); grpc: Subscribe streams never iterated, then cancelled",
    )
    parser.add_argument("--calls", type=int, default=40, help="stalled calls (40)")
    parser.add_argument("--connections", type=int, default=40, help="raw connections carrying them (40)")
    parser.add_argument("--fill-mib", type=int, default=64, help="MiB of records in the fetched topic (64)")
    parser.add_argument("--produces", type=int, default=20, help="produces timed per phase (20)")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="produce deadline (10 s)")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait for the broker to react (3 s)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (3)")
    args, broker_args = parser.parse_known_args(argv)
    broker_args = [a for a in broker_args if a != "--"]
    runs = [one_run(args, broker_args) for _ in range(args.runs)]
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(
            f"{key:26} median {statistics.median(values):9.1f}   runs {', '.join(f'{v:.1f}' for v in values)}"
        )


if __name__ == "__main__":
    main()
