"""What the machine allows, measured in the same run as the figure it frames.

- A plain sequential file write of the same bytes (``os.write`` of 1 MiB chunks, plus one ``fsync`` at
  the end when the run asked for durability): no broker can store faster than this.
- An empty gRPC call (the standard health check) to the same broker: the fixed cost of one round trip,
  which bounds per-call latency and calls per second from below.
- A loopback TCP round trip between two processes (100 bytes there and back, blocking sockets, no
  protocol at all): the floor under any end-to-end latency here, which crosses processes at least twice.
  On a shared machine it moves several-fold from minute to minute, so it is measured in the same run.

Every tool prints these beside its result so a figure reads as a fraction of the ceiling, which stays
meaningful on a noisy shared machine where absolute figures move from run to run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from logstore.bench.perf.stats import MB, NS_PER_MS

CHUNK = 1024 * 1024
MAX_WRITE_BYTES = 1024 * MB
"""A larger run is compared with a 1 GiB write: the rate, not the total, is what the ceiling gives."""
GRPC_CALLS = 1000
GRPC_WARMUP_CALLS = 50
TCP_TRIPS = 2000
TCP_WARMUP_TRIPS = 100
TCP_MESSAGE = b"x" * 100

_ECHO_SERVER = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
peer, _ = server.accept()
peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while data := peer.recv(65536):
    peer.sendall(data)
"""


@dataclass(frozen=True)
class Ceilings:
    write_bytes: int
    write_seconds: float
    write_fsync: bool
    write_directory: str
    grpc_calls: int
    grpc_p50_us: float
    grpc_p99_us: float
    grpc_calls_per_s: float
    tcp_trips: int = 0
    tcp_p50_us: float = 0.0
    tcp_p99_us: float = 0.0

    @property
    def write_mb_per_s(self) -> float:
        return self.write_bytes / self.write_seconds / MB if self.write_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "write_mb_per_s": self.write_mb_per_s}

    def lines(self, mb_per_s: float | None = None, latency_p50_ms: float | None = None) -> list[str]:
        """The two ceiling lines, each with the run's figure as a fraction (or multiple) of it."""
        fsync = " and one fsync" if self.write_fsync else ""
        write = (
            f"ceiling: plain sequential write{fsync} of {self.write_bytes} bytes in {self.write_directory}: "
            f"{self.write_mb_per_s:.2f} MB/sec"
        )
        if mb_per_s is not None and self.write_mb_per_s > 0:
            write += f"; this run = {mb_per_s / self.write_mb_per_s:.3f} of it"
        call = (
            f"ceiling: empty gRPC call (health check), {self.grpc_calls} calls: {self.grpc_p50_us:.0f} us 50th, "
            f"{self.grpc_p99_us:.0f} us 99th ({self.grpc_calls_per_s:.0f} calls/sec)"
        )
        if latency_p50_ms is not None and self.grpc_p50_us > 0:
            call += f"; this run's 50th = {latency_p50_ms * 1000 / self.grpc_p50_us:.1f} round trips"
        tcp = (
            f"ceiling: loopback TCP round trip between two processes, {self.tcp_trips} trips of "
            f"{len(TCP_MESSAGE)} bytes: {self.tcp_p50_us:.0f} us 50th, {self.tcp_p99_us:.0f} us 99th"
        )
        if latency_p50_ms is not None and self.tcp_p50_us > 0:
            tcp += f"; this run's 50th = {latency_p50_ms * 1000 / self.tcp_p50_us:.1f} of them"
        return [write + ".", call + ".", tcp + "."]


def file_write_seconds(nbytes: int, directory: Path, fsync: bool) -> float:
    """Seconds to write ``nbytes`` (1 MiB per ``os.write``) to a new file in ``directory``, then delete it."""
    chunk = os.urandom(CHUNK)
    view = memoryview(chunk)
    fd, path = tempfile.mkstemp(prefix="ceiling-", suffix=".bin", dir=directory)
    try:
        started = time.perf_counter()
        left = nbytes
        while left > 0:
            left -= os.write(fd, view[: min(left, CHUNK)])
        if fsync:
            os.fsync(fd)
        return time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)


def empty_call_latencies_ns(
    address: str, calls: int = GRPC_CALLS, client_options: Mapping[str, Any] | None = None
) -> list[int]:
    """Round trips of ``calls`` health checks to ``address`` (after a warm-up), in nanoseconds."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from logstore.client.shared.security import Security

    security = Security(**(client_options or {}))
    with security.intercept(security.channel(address, [])) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        request = health_pb2.HealthCheckRequest()
        for _ in range(GRPC_WARMUP_CALLS):
            check(request, timeout=10)
        clock = time.perf_counter_ns
        latencies = []
        for _ in range(calls):
            started = clock()
            check(request, timeout=10)
            latencies.append(clock() - started)
    return latencies


def tcp_round_trips_ns(trips: int = TCP_TRIPS) -> list[int]:
    """Round trips of 100 bytes to an echo server in another process over loopback TCP, in nanoseconds."""
    echo = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            size = len(TCP_MESSAGE)
            clock = time.perf_counter_ns
            latencies = []
            for trip in range(TCP_WARMUP_TRIPS + trips):
                started = clock()
                sock.sendall(TCP_MESSAGE)
                got = 0
                while got < size:
                    chunk = sock.recv(size - got)
                    if not chunk:
                        raise ConnectionError("the loopback echo process ended early")
                    got += len(chunk)
                if trip >= TCP_WARMUP_TRIPS:
                    latencies.append(clock() - started)
        return latencies
    finally:
        echo.kill()
        echo.wait()
        if echo.stdout is not None:
            echo.stdout.close()


def measure(
    address: str,
    nbytes: int,
    *,
    fsync: bool = False,
    directory: Path | str | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> Ceilings:
    """The ceilings for a run that moved ``nbytes`` through the broker at ``address`` (over a channel
    with the run's security options, so the empty call pays what the run's calls pay)."""
    folder = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    written = max(CHUNK, min(nbytes, MAX_WRITE_BYTES))
    seconds = file_write_seconds(written, folder, fsync)
    latencies = sorted(empty_call_latencies_ns(address, client_options=client_options))
    count = len(latencies)
    us = NS_PER_MS / 1000
    trips = sorted(tcp_round_trips_ns())
    return Ceilings(
        write_bytes=written,
        write_seconds=seconds,
        write_fsync=fsync,
        write_directory=str(folder),
        grpc_calls=count,
        grpc_p50_us=latencies[count // 2] / us,
        grpc_p99_us=latencies[min(count - 1, int(count * 0.99))] / us,
        grpc_calls_per_s=count / (sum(latencies) / 1e9),
        tcp_trips=len(trips),
        tcp_p50_us=trips[len(trips) // 2] / us,
        tcp_p99_us=trips[min(len(trips) - 1, int(len(trips) * 0.99))] / us,
    )
