"""The broker's HTTP endpoint: `/metrics` (Prometheus text, or OpenMetrics when asked), `/healthz` (the
process is up and its event loop answers) and `/readyz` (the log is recovered and the listeners are
bound, and the broker is not stopping).

An aiohttp server on the broker's own event loop, so a scrape reads the domain where it lives (see
`collector`). Other parts of the broker (the web console) add their routes through `extend` before the
endpoint starts; aiohttp gives them routing, request bodies and static files.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("logstore.broker.http")

MAX_HEAD_BYTES = 16 * 1024
IDLE_TIMEOUT_S = 10.0
"""A connection that sends no request (or only part of one) for this long is closed, as is one idle
this long between requests: a client cannot hold connections open by saying nothing."""
"""Longest request line and header field accepted (aiohttp answers 400 past it)."""


class Readiness:
    """What /readyz answers: `starting` until the log is recovered and every listener is bound, then
    `ready`, and `stopping` from the start of shutdown. Not thread-safe: the event loop only."""

    def __init__(self) -> None:
        self.state = "starting"

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class HttpEndpoint:
    """Serves /metrics from `registry`, /healthz and /readyz, plus what `extend` adds to the application.
    Not thread-safe: start and stop it on the broker's event loop."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        host: str,
        port: int,
        extend: Callable[[web.Application], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        """`ssl_context`: serve HTTPS with the broker's certificate (and, with mutual TLS, require the
        client certificates the other listeners require)."""
        self._ssl_context = ssl_context
        self._idle_timeout_s = idle_timeout_s
        self._registry = registry
        self._readiness = readiness
        self._host = host
        self._wanted_port = port
        self._extend = extend
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = web.Application(
            handler_args={"max_line_size": MAX_HEAD_BYTES, "max_field_size": MAX_HEAD_BYTES}
        )
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._extend is not None:
            self._extend(app)
        # aiohttp's keep-alive timer also runs from the connection's start, so it bounds a silent client
        # or a half-sent request head, not only the wait between requests.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=self._idle_timeout_s
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self._host, self._wanted_port, reuse_address=True, ssl_context=self._ssl_context
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]  # the port chosen, when asked for port 0

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self._runner.cleanup()
        self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        mime, _, params = content_type.partition(";")
        response = web.Response(body=encoder(self._registry))
        response.headers["Content-Type"] = content_type if params else mime
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        state = self._readiness.state
        return web.Response(status=200 if self._readiness.ready else 503, text=f"{state}\n")
