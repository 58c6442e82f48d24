"""A real etcd for tests: Debian's `etcd-server` binary on free loopback ports with its own data directory.

Tests never install system packages; `.ci/run` installs `etcd-server` once, as it does kcat. A test that
needs etcd where the binary is missing fails with the install command, it is not skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

ETCD_BINARY = "etcd"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def etcd_binary() -> str:
    path = shutil.which(ETCD_BINARY)
    if path is None:
        raise RuntimeError("etcd is not installed: apt-get install etcd-server (.ci/run does this in CI)")
    return path


class EtcdServer:
    """One single-member etcd cluster; `kill` and `start` again keep its ports and data directory.

    Not thread-safe: one test drives it.
    """

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> None:
        """`host` to listen on and `prefix` to run the binary under (`ip netns exec NS`): the network
        namespace tests put etcd on a private address of their own."""
        self._host = host
        self.prefix = prefix
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def host(self) -> str:
        return self._host

    @property
    def endpoint(self) -> str:
        """The client URL, as `logstore serve --etcd` takes it."""
        return f"http://{self._host}:{self.client_port}"

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("etcd is already running")
        peer = f"http://{self._host}:{self.peer_port}"
        command = [
            *self.prefix,
            etcd_binary(),
            "--name=logstore-test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=logstore-test={peer}",
            "--initial-cluster-state=new",
            "--log-level=warn",
            "--logger=zap",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        """Return once /health says the member serves; an exit or a deadline fails with etcd's own log."""
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1.0) as answer:
                    if b'"true"' in answer.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not become healthy in {START_TIMEOUT_S}s: {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL, as a crash: the data directory keeps whatever etcd had made durable."""
        self._stop(signal.SIGKILL)

    def stop(self) -> None:
        self._stop(signal.SIGTERM)

    def _stop(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same ports and data: leases survive, their TTLs are reset."""
        self.kill()
        self.start()

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
