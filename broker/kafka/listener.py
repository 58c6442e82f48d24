"""The Kafka protocol listener: an asyncio TCP server on the broker's event loop, one `Connection` per
client. Each frame is an int32 size, then a request header (v1, or v2 for flexible versions) and the
body; see `connection` for how requests are handled and answered."""

from __future__ import annotations

import asyncio

from logstore.broker.domain.core import BrokerCore
from logstore.broker.kafka.connection import Connection, peer_name
from logstore.broker.kafka.context import Endpoint, RequestContext
from logstore.broker.kafka.share_sessions import ShareSessions
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.service.answers import AnswerBudget

WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class KafkaListener:
    """Serves Kafka clients over `core`. Not thread-safe: start and stop it on the broker's event loop."""

    def __init__(
        self,
        core: BrokerCore,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        produce_timeout_ms: int,
        fetch_max_bytes: int,
        connections_max_idle_ms: int,
        answers: AnswerBudget,
        metrics: BrokerMetrics = DISABLED,
    ) -> None:
        self._core = core
        self._metrics = metrics
        self._host = host
        self._wanted_port = port
        self._max_request_bytes = max_request_bytes
        self._produce_timeout_ms = produce_timeout_ms
        self._fetch_max_bytes = fetch_max_bytes
        self._idle_s = connections_max_idle_ms / 1000
        self._answers = answers
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._share_sessions = ShareSessions(lambda key: core.share.is_member(*key))
        self.port: int | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, self._host, self._wanted_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; let each connection answer the requests it has read (the domain's long-polls
        answer at once while it shuts down), for up to `grace_s`; then close every connection."""
        if self._server is None:
            return
        self._server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.finish()
        ends = [connection.closed for connection in connections]
        if ends:
            await asyncio.wait(ends, timeout=grace_s)
        for connection in connections:
            connection.abort()
        await asyncio.gather(*ends, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _connection(self) -> Connection:
        connection = Connection(self._context, max_request_bytes=self._max_request_bytes, idle_s=self._idle_s)
        self._connections.add(connection)
        self._metrics.connection_opened("kafka")
        connection.closed.add_done_callback(lambda _: self._closed(connection))
        return connection

    def _closed(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._metrics.connection_closed("kafka")

    def _context(self, transport: asyncio.Transport) -> RequestContext:
        assert self.port is not None
        host = self._host
        if host in WILDCARD_HOSTS:  # tell clients the address they reached us at
            host = transport.get_extra_info("sockname")[0]
        return RequestContext(
            core=self._core,
            endpoint=Endpoint(host, self.port),
            produce_timeout_ms=self._produce_timeout_ms,
            fetch_max_bytes=self._fetch_max_bytes,
            answers=self._answers,
            connection="kafka:" + peer_name(transport),
            share_sessions=self._share_sessions,
            metrics=self._metrics,
        )
