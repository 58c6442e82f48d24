"""One Kafka client connection: read frames, handle requests concurrently, answer in request order.

Clients pipeline requests (kafka-python and librdkafka keep several in flight) and match answers to
them by order as well as correlation id, so each request runs as its own task and one writer sends the
answers strictly in the order the requests came (fetches, which take room in the answer budget, also
read in that order). At most MAX_IN_FLIGHT requests are unanswered; past
that the connection is not read until one is answered, which bounds what one client can make the broker
hold. A frame that cannot be read closes this connection only, with a log line naming the peer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from logstore.broker.kafka import (
    admin,
    api_versions,
    configs,
    fetch,
    group_admin,
    groups,
    metadata,
    offsets,
    produce,
    records_admin,
)
from logstore.broker.kafka.codec import (
    Header,
    MalformedRequestError,
    frame_response,
    read_header_prefix,
    read_request,
)
from logstore.broker.kafka.context import Held, RequestContext
from logstore.broker.kafka.versions import (
    ALTER_CONFIGS,
    API_VERSIONS,
    APIS,
    CREATE_PARTITIONS,
    CREATE_TOPICS,
    DELETE_GROUPS,
    DELETE_RECORDS,
    DELETE_TOPICS,
    DESCRIBE_CONFIGS,
    DESCRIBE_GROUPS,
    FETCH,
    FIND_COORDINATOR,
    HEARTBEAT,
    INCREMENTAL_ALTER_CONFIGS,
    INIT_PRODUCER_ID,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_GROUPS,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    PRODUCE,
    SYNC_GROUP,
)

from logstore.errors import LogStoreError

log = logging.getLogger("logstore.broker.kafka")

HANDLERS: dict[int, Callable[[Any, int, RequestContext], Any]] = {
    PRODUCE: produce.handle,
    FETCH: fetch.handle,
    LIST_OFFSETS: fetch.list_offsets,
    METADATA: metadata.handle,
    CREATE_TOPICS: admin.create_topics,
    DELETE_TOPICS: admin.delete_topics,
    DELETE_RECORDS: records_admin.delete_records,
    INIT_PRODUCER_ID: produce.init_producer_id,
    FIND_COORDINATOR: groups.find_coordinator,
    JOIN_GROUP: groups.join_group,
    SYNC_GROUP: groups.sync_group,
    HEARTBEAT: groups.heartbeat,
    LEAVE_GROUP: groups.leave_group,
    OFFSET_COMMIT: offsets.offset_commit,
    OFFSET_FETCH: offsets.offset_fetch,
    DESCRIBE_GROUPS: group_admin.describe_groups,
    LIST_GROUPS: group_admin.list_groups,
    DELETE_GROUPS: group_admin.delete_groups,
    DESCRIBE_CONFIGS: configs.describe_configs,
    ALTER_CONFIGS: configs.alter_configs,
    CREATE_PARTITIONS: admin.create_partitions,
    INCREMENTAL_ALTER_CONFIGS: configs.incremental_alter_configs,
}
"""Each served key's handler: (request, version, context) -> the answer, None for no answer (acks=0),
or a coroutine of either."""

MIN_FRAME_BYTES = 10
"""The smallest request header: api key, version, correlation id (2 + 2 + 4) and a null client id (2)."""
MAX_IN_FLIGHT = 32
"""Requests of one connection handled at once."""

Pending = tuple[int, int, "asyncio.Task[Any]"]
"""An unanswered request: correlation id, frame size, its handling."""


class ConnectionClosing(Exception):
    """The peer sent something unreadable; the message says what, for the log line."""


class Connection:
    """One client's requests and answers. Not thread-safe: it runs on the broker's event loop only."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ctx: RequestContext,
        *,
        max_request_bytes: int,
        idle_s: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ctx = ctx
        self._max_request_bytes = max_request_bytes
        self._idle_s = idle_s
        self.peer = peer_name(writer)
        self._pending: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._room = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._unanswered = 0
        self.unanswered_bytes = 0
        """Bytes of the requests read and not answered yet: at most max_request_bytes, or one request."""
        self._answered = asyncio.Event()
        self._last_fetch: asyncio.Task[Any] | None = None

    async def serve(self) -> None:
        """Serve until the peer closes, sends garbage, stays idle too long, or the task is cancelled."""
        sender = asyncio.create_task(self._send_answers())
        clean = False
        try:
            while not sender.done():
                await self._room.acquire()
                frame = await self._read_frame()
                if frame is None:
                    clean = True
                    break
                header, work = self._start(frame)
                self._unanswered += 1
                self.unanswered_bytes += len(frame)
                self._pending.put_nowait((header.correlation_id, len(frame), work))
        except ConnectionClosing as exc:
            log.warning("closing Kafka connection from %s: %s", self.peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if clean and not sender.done():
                self._pending.put_nowait(None)  # answer what was asked, then close
                await asyncio.gather(sender, return_exceptions=True)
            sender.cancel()
            while not self._pending.empty():
                item = self._pending.get_nowait()
                if item is not None:
                    _drop(item[2])
            self._writer.close()

    def finish(self) -> None:
        """Read no more requests; answer those already read, then close (for a stopping broker)."""
        transport = self._writer.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.pause_reading()  # no more data for the reader, which now ends where it is
            self._reader.feed_eof()

    async def _read_prefix(self) -> bytes | None:
        """The next size prefix; None at the end of the stream or after `idle_s` with nothing to answer."""
        while True:
            try:
                async with asyncio.timeout(self._idle_s):  # no task per read, unlike wait_for
                    return await self._reader.readexactly(4)
            except TimeoutError:
                if self._unanswered == 0:  # Kafka's connections.max.idle.ms
                    log.info("closing Kafka connection from %s: idle for %.0f s", self.peer, self._idle_s)
                    return None
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise ConnectionClosing(
                        f"the connection ended inside a size prefix ({len(exc.partial)} of 4 bytes)"
                    ) from None
                return None

    async def _read_frame(self) -> bytes | None:
        """One request's bytes; None when the connection is to end quietly."""
        prefix = await self._read_prefix()
        if prefix is None:
            return None
        size = int.from_bytes(prefix, "big", signed=True)
        if not MIN_FRAME_BYTES <= size <= self._max_request_bytes:
            raise ConnectionClosing(
                f"request size {size} is outside {MIN_FRAME_BYTES}..{self._max_request_bytes} bytes "
                "(max_request_bytes)"
            )
        # Requests in flight hold their bytes (a produce's batches) until answered: read this one only
        # once it fits beside them in max_request_bytes (alone, any request fits), as Kafka, which serves
        # one request per connection at a time, holds at most one.
        while self.unanswered_bytes and self.unanswered_bytes + size > self._max_request_bytes:
            self._answered.clear()
            await self._answered.wait()
        try:
            return await self._reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosing(
                f"truncated request: {len(exc.partial)} of {size} bytes came before the end"
            ) from None

    def _start(self, frame: bytes) -> tuple[Header, asyncio.Task[Any]]:
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
                return header, asyncio.create_task(_ready(api_versions.answer(header.api_version)))
            if not api.serves(header.api_version):
                raise ConnectionClosing(
                    f"{api.name} v{header.api_version} is not served (versions {api.served[0]}-{api.served[1]})"
                )
            request = read_request(frame, header, header_size)
        except MalformedRequestError as exc:
            raise ConnectionClosing(str(exc)) from None
        if header.client_id != self._ctx.client_id:
            self._ctx = dataclasses.replace(self._ctx, client_id=header.client_id)
        handler = HANDLERS[header.api_key]
        if header.api_key != FETCH:
            return header, asyncio.create_task(_call(handler, request, header.api_version, self._ctx))
        # Fetches of one connection read one after another, as Kafka serves them: each takes room in
        # the answer budget, and a later one taking the room an earlier one waits for would wait
        # forever, since its own answer can only go out after the earlier one's.
        work = asyncio.create_task(_after(self._last_fetch, handler, request, header.api_version, self._ctx))
        self._last_fetch = work
        return header, work

    async def _send_answers(self) -> None:
        """Write each answer when it and every earlier one are ready; a failed handler closes the connection."""
        while True:
            item = await self._pending.get()
            if item is None:
                return
            correlation_id, size, work = item
            try:
                answer = await work
            except LogStoreError as exc:  # a whole request refused, such as while shutting down
                log.info("Kafka request from %s refused (%s); closing the connection", self.peer, exc)
                self._writer.close()
                return
            except Exception:
                log.exception(
                    "Kafka request from %s (correlation id %d) failed; closing the connection",
                    self.peer,
                    correlation_id,
                )
                self._writer.close()
                return
            held = answer.lease if isinstance(answer, Held) else None
            try:  # a Held answer's batches count against the answer budget until written
                if answer is not None:
                    frame = frame_response(correlation_id, answer.answer if held is not None else answer)
                    self._writer.write(frame)
                    del frame
                    await self._writer.drain()
            except ConnectionError:  # the peer went away; the reader sees the end too
                self._writer.close()
                return
            finally:
                if held is not None:
                    held.release_all()
            self._unanswered -= 1
            self.unanswered_bytes -= size
            self._answered.set()
            self._room.release()


async def _call(
    handler: Callable[[Any, int, RequestContext], Any], request: Any, version: int, ctx: RequestContext
) -> Any | None:
    result = handler(request, version, ctx)
    if asyncio.iscoroutine(result):
        return await result
    return result


async def _after(
    previous: asyncio.Task[Any] | None,
    handler: Callable[[Any, int, RequestContext], Any],
    request: Any,
    version: int,
    ctx: RequestContext,
) -> Any | None:
    """Handle the request once `previous` has finished, however it ended."""
    if previous is not None and not previous.done():
        await asyncio.wait([previous])
    return await _call(handler, request, version, ctx)


def _drop(work: asyncio.Task[Any]) -> None:
    """Cancel an answer that will not be sent, giving back the budget it holds if it is ready."""
    if not work.done():
        work.cancel()  # the handler gives back what it holds
    elif not work.cancelled() and work.exception() is None and isinstance(work.result(), Held):
        work.result().lease.release_all()


async def _ready(value: Any) -> Any:
    return value


def peer_name(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)
