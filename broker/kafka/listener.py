"""The Kafka protocol listener: asyncio TCP on the broker's event loop, Kafka's framing, in-order answers.

Each frame is an int32 size, then a request header (v1, or v2 for flexible versions) and the body.
Requests of one connection are handled concurrently, as clients pipeline them (a long-poll fetch need
not hold up a produce), and answered strictly in the order they came, which Kafka clients rely on to
match correlation ids. A frame this broker cannot read (a size out of bounds, a truncated request, an
unknown key or version) closes that connection only, with a log line naming the peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from logstore.broker.domain.core import BrokerCore
from logstore.broker.kafka import admin, api_versions, fetch, metadata, produce
from logstore.broker.kafka.codec import (
    Header,
    MalformedRequestError,
    frame_response,
    read_header_prefix,
    read_request,
)
from logstore.broker.kafka.context import Endpoint, RequestContext
from logstore.broker.kafka.versions import (
    API_VERSIONS,
    APIS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    FETCH,
    INIT_PRODUCER_ID,
    LIST_OFFSETS,
    METADATA,
    PRODUCE,
)

from logstore.errors import LogStoreError

log = logging.getLogger("logstore.broker.kafka")


async def _call(handler: Callable[..., Any], request: Any, version: int, ctx: RequestContext) -> Any | None:
    result = handler(request, version, ctx)
    if asyncio.iscoroutine(result):
        return await result
    return result


HANDLERS: dict[int, Callable[..., Any]] = {
    PRODUCE: produce.handle,
    FETCH: fetch.handle,
    LIST_OFFSETS: fetch.list_offsets,
    METADATA: metadata.handle,
    CREATE_TOPICS: admin.create_topics,
    DELETE_TOPICS: admin.delete_topics,
    INIT_PRODUCER_ID: produce.init_producer_id,
}

MIN_FRAME_BYTES = 10
"""The smallest request header: api key, version, correlation id (2 + 2 + 4) and a null client id (2)."""
MAX_IN_FLIGHT = 32
"""Requests of one connection handled at once; past it the connection is not read until one is answered."""
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class ConnectionClosing(Exception):
    """The peer sent something unreadable; the message says what, for the log line."""


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
    ) -> None:
        self._core = core
        self._host = host
        self._wanted_port = port
        self._max_request_bytes = max_request_bytes
        self._produce_timeout_ms = produce_timeout_ms
        self._fetch_max_bytes = fetch_max_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self._host, self._wanted_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, then close every connection (answers not yet sent are dropped: clients retry)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def _context(self, writer: asyncio.StreamWriter) -> RequestContext:
        assert self.port is not None
        host = self._host
        if host in WILDCARD_HOSTS:  # tell clients the address they reached us at
            host = writer.get_extra_info("sockname")[0]
        return RequestContext(
            core=self._core,
            endpoint=Endpoint(host, self.port),
            produce_timeout_ms=self._produce_timeout_ms,
            fetch_max_bytes=self._fetch_max_bytes,
        )

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = _peer(writer)
        ctx = self._context(writer)
        pending: asyncio.Queue[tuple[int, asyncio.Task[Any]] | None] = asyncio.Queue(MAX_IN_FLIGHT)
        sender = asyncio.create_task(self._send_answers(pending, writer, peer))
        clean = False
        try:
            while not sender.done():
                frame = await self._read_frame(reader)
                if frame is None:
                    clean = True
                    break
                header, work = self._start(frame, ctx)
                await pending.put((header.correlation_id, work))
        except ConnectionClosing as exc:
            log.warning("closing Kafka connection from %s: %s", peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if clean:
                await pending.put(None)
                await asyncio.gather(sender, return_exceptions=True)
            sender.cancel()
            _cancel_pending(pending)
            writer.close()
            self._connections.discard(task)

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request's bytes; None when the peer closed between requests."""
        try:
            prefix = await reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionClosing(
                    f"the connection ended inside a size prefix ({len(exc.partial)} of 4 bytes)"
                ) from None
            return None
        size = int.from_bytes(prefix, "big", signed=True)
        if not MIN_FRAME_BYTES <= size <= self._max_request_bytes:
            raise ConnectionClosing(
                f"request size {size} is outside {MIN_FRAME_BYTES}..{self._max_request_bytes} bytes (max_request_bytes)"
            )
        try:
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosing(
                f"truncated request: {len(exc.partial)} of {size} bytes came before the end"
            ) from None

    def _start(self, frame: bytes, ctx: RequestContext) -> tuple[Header, asyncio.Task[Any]]:
        """Decode one request and start handling it; raises ConnectionClosing for what cannot be read."""
        try:
            header, header_size = read_header_prefix(frame)
            api = APIS.get(header.api_key)
            if api is None:
                raise ConnectionClosing(
                    f"unknown API key {header.api_key} (correlation id {header.correlation_id})"
                )
            if header.api_key == API_VERSIONS:
                # Answered whatever the version: one it does not serve gets the v0 answer saying so.
                if api.serves(header.api_version):
                    read_request(frame, header, header_size)
                answer = api_versions.answer(header.api_version)
                return header, asyncio.create_task(_ready(answer))
            if not api.serves(header.api_version):
                raise ConnectionClosing(
                    f"{api.name} v{header.api_version} is not served (versions {api.served[0]}-{api.served[1]})"
                )
            request = read_request(frame, header, header_size)
        except MalformedRequestError as exc:
            raise ConnectionClosing(str(exc)) from None
        handler = HANDLERS[header.api_key]
        return header, asyncio.create_task(_call(handler, request, header.api_version, ctx))

    async def _send_answers(
        self,
        pending: asyncio.Queue[tuple[int, asyncio.Task[Any]] | None],
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        """Write each answer when it and every earlier one are ready; a failed handler closes the connection."""
        while True:
            item = await pending.get()
            if item is None:
                return
            correlation_id, work = item
            try:
                answer = await work
            except LogStoreError as exc:  # a whole request refused, such as while shutting down
                log.info("Kafka request from %s refused (%s); closing the connection", peer, exc)
                writer.close()
                return
            except Exception:
                log.exception(
                    "Kafka request from %s (correlation id %d) failed; closing the connection",
                    peer,
                    correlation_id,
                )
                writer.close()
                return
            if answer is not None:
                writer.write(frame_response(correlation_id, answer))
                await writer.drain()


async def _ready(value: Any) -> Any:
    return value


def _cancel_pending(pending: asyncio.Queue[tuple[int, asyncio.Task[Any]] | None]) -> None:
    while not pending.empty():
        item = pending.get_nowait()
        if item is not None:
            item[1].cancel()


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)
