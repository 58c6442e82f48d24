"""Run a broker inside this process (on a background thread) or as a child process.

For tests, benchmarks and tools that need a real broker on real ports. Both bind 127.0.0.1 port 0 by
default for the gRPC API, the Kafka protocol listener and the HTTP endpoint (never the fixed
9093/9092/9094, so runs in parallel and a broker of `make run` do not collide) and report the ports they
got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from logstore.broker.server import BrokerServer
from logstore.broker.settings import Settings

_LISTENING = re.compile(rb"listening on (\S+):(\d+) ")
_KAFKA_LISTENING = re.compile(rb"Kafka protocol listener on (\S+):(\d+)")
_HTTP_LISTENING = re.compile(rb"HTTP endpoint on (\S+):(\d+) ")


class EmbeddedBroker:
    """A broker on its own event loop in a daemon thread; `with EmbeddedBroker(settings) as broker: ...`.

    Thread-safe: `start`, `stop` and `run` may be called from any thread; `run` hands work to the loop.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = BrokerServer(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="embedded-broker", daemon=True)

    @classmethod
    def on(cls, data_dir: Path | str, **overrides: Any) -> EmbeddedBroker:
        """A broker over `data_dir` on free loopback ports (gRPC, Kafka, HTTP), with other settings changed
        as given (`kafka_listener=False` for no Kafka listener, `http=False` for no HTTP endpoint)."""
        overrides.setdefault("port", 0)
        overrides.setdefault("kafka_port", 0)
        overrides.setdefault("http_port", 0)
        return cls(dataclasses.replace(Settings(), data_dir=Path(data_dir), **overrides))

    @property
    def address(self) -> str:
        """`host:port` of the gRPC API, as a logstore client's bootstrap."""
        return self.server.address

    @property
    def kafka_port(self) -> int:
        """The Kafka protocol listener's port (`on` picks a free one)."""
        assert self.server.kafka is not None and self.server.kafka.port is not None, "no Kafka listener"
        return self.server.kafka.port

    @property
    def kafka_address(self) -> str:
        """`host:port` of the Kafka protocol listener, as a Kafka client's bootstrap server."""
        return f"{self.settings.host}:{self.kafka_port}"

    @property
    def http_url(self) -> str:
        """`http://host:port` of the HTTP endpoint (/metrics, /healthz, /readyz, the console); `https` when
        the broker serves TLS."""
        assert self.server.http is not None and self.server.http.port is not None, "no HTTP endpoint"
        scheme = "https" if self.server.tls is not None else "http"
        return f"{scheme}://{self.settings.host}:{self.server.http.port}"

    def start(self) -> EmbeddedBroker:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the way SIGTERM does: finish calls, flush, write the clean-shutdown marker."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def run(self, function: Any, *args: Any) -> Any:
        """Call `function(*args)` on the broker's event loop and return its result (for inspection)."""
        assert self._loop is not None

        async def call() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BrokerProcess:
    """`python -m logstore.broker` as a child process on free ports (gRPC and Kafka), its log written to
    `log_path`; `args` may override them (`--no-kafka-listener`, `--kafka-port N`)."""

    def __init__(
        self,
        data_dir: Path | str,
        log_path: Path | str,
        args: Sequence[str] = (),
        command: Sequence[str] = (sys.executable, "-m", "logstore.broker"),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.args = list(args)
        self.command = list(command)
        """How to start a broker; `(sys.executable, "-m", "logstore.bench.cli", "serve")` runs `logstore serve`."""
        self.process: subprocess.Popen[bytes] | None = None
        self.address: str | None = None
        self.kafka_address: str | None = None
        """`host:port` of its Kafka protocol listener; None when started with `--no-kafka-listener`."""
        self.http_address: str | None = None
        """`host:port` of its HTTP endpoint (/metrics); None when started with `--no-http`."""
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the broker and wait until it listens; returns its address."""
        self._log = self.log_path.open("ab")
        start_of_run = self.log_path.stat().st_size
        command = [
            *self.command,
            *("--data-dir", str(self.data_dir), "--port", "0", "--kafka-port", "0", "--http-port", "0"),
            *self.args,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command, stdout=self._log, stderr=self._log, env=env)
        deadline = time.monotonic() + timeout_s
        while True:
            run_log = self.log_path.read_bytes()[start_of_run:]
            found = _LISTENING.search(run_log)
            if found:
                self.address = f"{found[1].decode()}:{found[2].decode()}"
                kafka = _KAFKA_LISTENING.search(run_log)  # logged before the gRPC line, if at all
                self.kafka_address = f"{kafka[1].decode()}:{kafka[2].decode()}" if kafka else None
                http = _HTTP_LISTENING.search(run_log)  # logged first, if at all
                self.http_address = f"{http[1].decode()}:{http[2].decode()}" if http else None
                return self.address
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the broker did not start; its log:\n{self.log_text()}")
            time.sleep(0.02)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 30.0, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or `signum`), then wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self._wait(timeout_s)

    def kill(self) -> int:
        """SIGKILL: no flush, no marker; the next start must recover."""
        assert self.process is not None
        self.process.kill()
        return self._wait(30.0)

    def _wait(self, timeout_s: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code
