"""The broker's HTTP endpoint: `/metrics` (Prometheus text, or OpenMetrics when asked), `/healthz` (the
process is up and its event loop answers) and `/readyz` (the log is recovered and the listeners are
bound, and the broker is not stopping).

A small asyncio server on the broker's own event loop, so a scrape reads the domain where it lives (see
`collector`). It answers GET (and HEAD) only, one request per connection, and gives up on a client that
does not send its request head within `READ_TIMEOUT_S` or sends more than `MAX_HEAD_BYTES` of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("logstore.broker.http")

READ_TIMEOUT_S: Final = 10.0
MAX_HEAD_BYTES: Final = 16 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class Readiness:
    """What /readyz answers: `starting` until the log is recovered and every listener is bound, then
    `ready`, and `stopping` from the start of shutdown. Not thread-safe: the event loop only."""

    def __init__(self) -> None:
        self.state = "starting"

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class HttpEndpoint:
    """Serves /metrics from `registry`, /healthz and /readyz. Not thread-safe: start and stop it on the
    broker's event loop."""

    def __init__(self, registry: CollectorRegistry, readiness: Readiness, *, host: str, port: int) -> None:
        self._registry = registry
        self._readiness = readiness
        self._host = host
        self._wanted_port = port
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._wanted_port, limit=MAX_HEAD_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            status, content_type, body, head_only = self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        headers = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(headers.encode("ascii") + (b"" if head_only else body))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, str, bytes, bool]:
        """(status, content type, body, whether to leave the body out) for one request head."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request line\n", False
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET and HEAD\n", False
        head_only = method == "HEAD"
        path = target.split("?", 1)[0]
        if path == "/metrics":
            accept = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "accept":
                    accept = value.strip()
            encoder, content_type = choose_encoder(accept)
            return 200, content_type, encoder(self._registry), head_only
        if path == "/healthz":
            return 200, "text/plain", b"ok\n", head_only
        if path == "/readyz":
            state = self._readiness.state
            return (200 if self._readiness.ready else 503), "text/plain", f"{state}\n".encode(), head_only
        return 404, "text/plain", b"try /metrics, /healthz or /readyz\n", head_only
