"""A cluster on one machine for tests: a real etcd and real broker processes (`python -m logstore.broker
--broker-id N --etcd URL`) on free loopback ports, each with its own data directory.

Brokers can be killed with SIGKILL and started again on the same ports and data. The cluster's metadata
is read straight from etcd (what the controller wrote), never from a broker's answer about itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.etcd_support import EtcdServer, free_port

SESSION_TIMEOUT_MS = 3000
"""Short leases so failovers take seconds; the brokers' `--broker-session-timeout-ms`."""
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PartitionState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]


class ClusterBroker:
    """One broker process. Not thread-safe: one test drives it."""

    def __init__(
        self,
        broker_id: int,
        root: Path,
        etcd: EtcdServer,
        cluster_root: str,
        extra: tuple[str, ...],
        *,
        host: str = "127.0.0.1",
        prefix: tuple[str, ...] = (),
    ) -> None:
        """`host` to listen on and advertise, `prefix` to run the broker under (`ip netns exec NS`)."""
        self.host = host
        self.prefix = prefix
        self.broker_id = broker_id
        self.data_dir = root / f"broker-{broker_id}"
        self.log_path = root / f"broker-{broker_id}.log"
        self.etcd = etcd
        self.cluster_root = cluster_root
        self.port = free_port()
        self.kafka_port = free_port()
        self.http_port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def kafka_address(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def command(self) -> list[str]:
        return [
            *self.prefix,
            sys.executable,
            "-m",
            "logstore.broker",
            f"--host={self.host}",
            f"--broker-id={self.broker_id}",
            f"--etcd={self.etcd.endpoint}",
            f"--cluster-root={self.cluster_root}",
            f"--data-dir={self.data_dir}",
            f"--port={self.port}",
            f"--kafka-port={self.kafka_port}",
            f"--http-port={self.http_port}",
            f"--broker-session-timeout-ms={SESSION_TIMEOUT_MS}",
            "--replica-lag-time-max-ms=2000",
            "--shutdown-grace-ms=2000",
            *self.extra,
        ]

    def start(self, *, wait: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"broker {self.broker_id} is running already")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_serving()

    def wait_serving(self) -> None:
        """Until the gRPC health check says SERVING (it is set once the broker has joined the cluster)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"broker {self.broker_id} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with grpc.insecure_channel(self.address) as channel:
                    answer = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"broker {self.broker_id} did not serve in {START_TIMEOUT_S}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean stop (gives up leadership and the lease first)."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Cluster:
    """etcd and `size` brokers. Not thread-safe: one test drives it."""

    def __init__(self, root: Path, size: int = 3, extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.etcd = EtcdServer(root / "etcd")
        self.cluster_root = "/logstore-test"
        self.brokers = {
            i: ClusterBroker(i, root, self.etcd, self.cluster_root, extra) for i in range(1, size + 1)
        }

    def start(self) -> None:
        self.etcd.start()
        for broker in self.brokers.values():
            broker.start(wait=False)
        for broker in self.brokers.values():
            broker.wait_serving()
        self.wait_for(lambda: len(self.live_brokers()) == len(self.brokers), "every broker registered")

    def stop(self) -> None:
        for broker in self.brokers.values():
            broker.stop()
        self.etcd.stop()

    @property
    def bootstrap(self) -> list[str]:
        return [b.address for b in self.brokers.values()]

    # --- reading etcd --------------------------------------------------------------------------------

    def _etcd(self, work: Callable[[aetcd.Client], Any]) -> Any:
        async def run() -> Any:
            async with aetcd.Client(host=self.etcd.host, port=self.etcd.client_port) as client:
                return await work(client)

        return asyncio.run(run())

    def _json_prefix(self, prefix: str) -> dict[str, Any]:
        async def read(client: aetcd.Client) -> dict[str, Any]:
            found = await client.get_prefix(f"{self.cluster_root}/{prefix}".encode())
            return {kv.key.decode(): json.loads(kv.value) for kv in found}

        result: dict[str, Any] = self._etcd(read)
        return result

    def live_brokers(self) -> set[int]:
        return {int(key.rsplit("/", 1)[1]) for key in self._json_prefix("brokers/")}

    def controller(self) -> int | None:
        found = self._json_prefix("controller")
        return next(iter(found.values()))["broker_id"] if found else None

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        found = self._json_prefix(f"partitions/{topic}/{partition}")
        value = found.get(f"{self.cluster_root}/partitions/{topic}/{partition}")
        if value is None:
            return None
        return PartitionState(
            value["leader"], value["leader_epoch"], tuple(value["isr"]), tuple(value["replicas"])
        )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> float:
        """Poll `condition` until true; returns the seconds it took. Fails naming `what` and the logs."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout_s:
                tails = "\n".join(f"--- broker {i}:\n{b.log_tail(1500)}" for i, b in self.brokers.items())
                raise AssertionError(f"not within {timeout_s}s: {what}\n{tails}")
            time.sleep(0.05)
        return time.monotonic() - started

    def leader(self, topic: str, partition: int = 0) -> int:
        state = self.partition(topic, partition)
        assert state is not None, f"{topic}-{partition} is not in the cluster"
        return state.leader

    def wait_for_isr(self, topic: str, partition: int, size: int, timeout_s: float = 30.0) -> PartitionState:
        def full() -> bool:
            state = self.partition(topic, partition)
            return state is not None and state.leader > 0 and len(state.isr) >= size

        self.wait_for(full, f"{topic}-{partition} has {size} in-sync replicas", timeout_s)
        state = self.partition(topic, partition)
        assert state is not None
        return state


def cluster_of(root: Path, size: int = 3, extra: tuple[str, ...] = ()) -> Iterator[Cluster]:
    cluster = Cluster(root, size, extra)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
