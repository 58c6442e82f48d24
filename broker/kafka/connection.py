"""One Kafka client connection: read frames, handle requests, answer in request order.

An asyncio Protocol: frames are cut from the bytes as they arrive and handled right there. Most
requests are answered at once (metadata, produce with acks 0 or 1, a fetch that finds data), and their
answer is written in the same call when nothing before it is still unanswered: no task and no loop
iteration per request, which is most of the end-to-end latency a Python broker adds. What must wait
is either a `Later` (a long-poll fetch, answered from inside the append that wakes it, before the
producer's own answer goes out) or a task (acks=all, group rounds).

Clients pipeline requests (kafka-python and librdkafka keep several in flight) and match answers to
them by order as well as correlation id, so answers go out strictly in the order the requests came;
fetches, which take room in the answer budget, also start in that order, each after the one before it
has its answer. At most MAX_IN_FLIGHT requests, and at most max_request_bytes of them (or one larger
request alone), are unanswered; past that the connection is not read until one is answered, which
bounds what one client can make the broker hold. An answer's batches count against the answer budget
until the socket has taken them (the transport's buffer below its high-water mark). A frame that cannot
be read closes this connection only, with a log line naming the peer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from logstore.broker.kafka import (
    acls_admin,
    admin,
    api_versions,
    configs,
    describe_cluster,
    epochs,
    fetch,
    group_admin,
    groups,
    metadata,
    offsets,
    produce,
    records_admin,
    sasl,
    scram_admin,
    share,
)
from logstore.broker.kafka.codec import (
    Header,
    MalformedRequestError,
    frame_response,
    read_header_prefix,
    read_request,
)
from logstore.broker.kafka.context import Held, Later, RequestContext
from logstore.broker.kafka.hot_answers import Encoded
from logstore.broker.kafka.versions import (
    ALTER_CONFIGS,
    ALTER_USER_SCRAM_CREDENTIALS,
    API_VERSIONS,
    APIS,
    CREATE_ACLS,
    CREATE_PARTITIONS,
    CREATE_TOPICS,
    DELETE_ACLS,
    DELETE_GROUPS,
    DELETE_RECORDS,
    DELETE_TOPICS,
    DESCRIBE_ACLS,
    DESCRIBE_CLUSTER,
    DESCRIBE_CONFIGS,
    DESCRIBE_GROUPS,
    DESCRIBE_USER_SCRAM_CREDENTIALS,
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
    OFFSET_FOR_LEADER_EPOCH,
    PRODUCE,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    SHARE_ACKNOWLEDGE,
    SHARE_FETCH,
    SHARE_GROUP_HEARTBEAT,
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
    OFFSET_FOR_LEADER_EPOCH: epochs.handle,
    DESCRIBE_CLUSTER: describe_cluster.handle,
    SHARE_GROUP_HEARTBEAT: share.share_group_heartbeat,
    SHARE_FETCH: share.share_fetch,
    SHARE_ACKNOWLEDGE: share.share_acknowledge,
    DESCRIBE_ACLS: acls_admin.describe_acls,
    CREATE_ACLS: acls_admin.create_acls,
    DELETE_ACLS: acls_admin.delete_acls,
    DESCRIBE_USER_SCRAM_CREDENTIALS: scram_admin.describe_user_scram_credentials,
    ALTER_USER_SCRAM_CREDENTIALS: scram_admin.alter_user_scram_credentials,
}
"""Each served key's handler: (request, version, context) -> the answer, None for no answer (acks=0),
a `Later` of either, or a coroutine of either."""

SASL_HANDLERS: dict[int, Callable[[Any, int, sasl.ConnectionAuth], Any]] = {
    SASL_HANDSHAKE: sasl.sasl_handshake,
    SASL_AUTHENTICATE: sasl.sasl_authenticate,
}
"""The log-in requests, answered by the connection itself (they change its state)."""
PER_ACL = frozenset(
    {
        PRODUCE,
        FETCH,
        LIST_OFFSETS,
        METADATA,
        CREATE_TOPICS,
        DELETE_TOPICS,
        INIT_PRODUCER_ID,
        FIND_COORDINATOR,
        JOIN_GROUP,
        SYNC_GROUP,
        HEARTBEAT,
        LEAVE_GROUP,
        OFFSET_COMMIT,
        OFFSET_FETCH,
        DESCRIBE_GROUPS,
        LIST_GROUPS,
        DELETE_GROUPS,
        CREATE_PARTITIONS,
        DELETE_RECORDS,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        INCREMENTAL_ALTER_CONFIGS,
        OFFSET_FOR_LEADER_EPOCH,
        DESCRIBE_CLUSTER,
        SHARE_GROUP_HEARTBEAT,
        SHARE_FETCH,
        SHARE_ACKNOWLEDGE,
        DESCRIBE_ACLS,
        CREATE_ACLS,
        DELETE_ACLS,
        DESCRIBE_USER_SCRAM_CREDENTIALS,
        ALTER_USER_SCRAM_CREDENTIALS,
    }
)
"""The keys whose handlers check ACLs per topic, group and cluster: all served keys. A key added to
HANDLERS without its checks is served to super-users only while auth is on (the connection of anyone
else is closed, with a log line), so a new API cannot open a hole."""

_COUNTS: dict[int, int] = {}
MIN_FRAME_BYTES = 10
"""The smallest request header: api key, version, correlation id (2 + 2 + 4) and a null client id (2)."""
MAX_IN_FLIGHT = 32
"""Requests of one connection unanswered at once."""
_PREFIX = 4


class ConnectionClosing(Exception):
    """The peer sent something unreadable; the message says what, for the log line."""


class _Slot:
    """One request's place in the answer order."""

    __slots__ = ("answer", "api", "correlation_id", "error", "pending", "ready", "size", "started")

    def __init__(self, correlation_id: int, size: int) -> None:
        self.correlation_id = correlation_id
        self.size = size
        self.api: str | None = None
        """The API's name while the request is timed for the metrics (None: not timed)."""
        self.started = 0.0
        self.ready = False
        self.answer: Any = None
        self.error: BaseException | None = None
        self.pending: asyncio.Task[Any] | Later | None = None

    def settle(self, answer: Any, error: BaseException | None) -> None:
        self.ready, self.answer, self.error, self.pending = True, answer, error, None

    def drop(self) -> None:
        """This answer will not be sent: stop its work and give back the budget it holds."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.cancel()  # a task's handler, or a Later's clean-up, gives back what it holds
        elif self.ready and isinstance(self.answer, Held):
            self.answer.lease.release_all()
        self.answer = None


class Connection(asyncio.Protocol):
    """One client's requests and answers. Not thread-safe: it runs on the broker's event loop only."""

    def __init__(
        self,
        make_context: Callable[[asyncio.Transport], RequestContext],
        *,
        max_request_bytes: int,
        idle_s: float,
    ) -> None:
        self._make_context = make_context
        self._max_request_bytes = max_request_bytes
        self._idle_s = idle_s
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Done once the connection has ended, for whatever reason."""
        self.peer = "?"
        self._transport: asyncio.Transport | None = None
        self._ctx: RequestContext | None = None
        self._buffer = bytearray()
        self._slots: deque[_Slot] = deque()
        self.unanswered_bytes = 0
        """Bytes of the requests read and not answered yet: at most max_request_bytes, or one request."""
        self._fetches: deque[tuple[_Slot, Any, int]] = deque()
        """Fetches read but not started: each starts once the one before it has its answer."""
        self._fetching: _Slot | None = None
        self.reading_paused = False
        """True while requests already read fill the connection's limits (its socket is not read)."""
        self._write_paused = False
        self._written_leases: list[Any] = []
        self._processing = False
        self._resume_scheduled = False
        self._finishing = False
        self._raw_pending = False
        """A bare SASL token's answer (PLAIN's password check) is being made."""
        self._last_read = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._half_close = True
        """Whether the transport stays open for answers after the peer's EOF (TLS cannot half-close)."""

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.peer = peer_name(transport)
        self._half_close = transport.get_extra_info("ssl_object") is None
        self._ctx = self._make_context(transport)
        self._idle_timer = self._loop.call_later(self._idle_s, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        self._buffer += data
        self._process()

    def eof_received(self) -> bool:
        """The peer will send no more: answer what it asked, then close (a partial frame is garbage)."""
        left = len(self._buffer)
        if left:
            if left < _PREFIX:
                self._close_for(f"the connection ended inside a size prefix ({left} of 4 bytes)")
            else:
                size = int.from_bytes(self._buffer[:_PREFIX], "big", signed=True)
                self._close_for(f"truncated request: {left - _PREFIX} of {size} bytes came before the end")
            return False
        self.finish()
        return self._half_close  # keep the transport open for the answers (TCP; TLS closes it now)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finishing = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for slot in self._slots:
            slot.drop()
        self._slots.clear()
        self._fetches.clear()
        self._release_written()
        self._buffer.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_written()
        self._flush()

    # --- control ------------------------------------------------------------------------------------------

    def finish(self) -> None:
        """Read no more requests; answer those already read, then close (for a stopping broker)."""
        self._finishing = True
        self._buffer.clear()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            if not self._slots:
                transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _close_for(self, reason: str) -> None:
        log.warning("closing Kafka connection from %s: %s", self.peer, reason)
        self._close()

    def _close(self) -> None:
        self._finishing = True
        self._buffer.clear()
        for slot in self._slots:
            slot.drop()
        self._slots.clear()
        self._fetches.clear()
        if self._transport is not None:
            self._transport.close()

    def _check_idle(self) -> None:
        """Kafka's connections.max.idle.ms: close a connection with nothing to answer and nothing read."""
        quiet = self._loop.time() - self._last_read
        if quiet >= self._idle_s and not self._slots and not self._finishing:
            log.info("closing Kafka connection from %s: idle for %.0f s", self.peer, self._idle_s)
            self._close()
            return
        wait = self._idle_s - quiet if quiet < self._idle_s else self._idle_s
        self._idle_timer = self._loop.call_later(wait, self._check_idle)

    # --- requests -----------------------------------------------------------------------------------------

    def _process(self) -> None:
        """Handle every whole frame in the buffer that fits in the connection's limits now; stop reading
        the socket while the limits are full."""
        if self._processing:
            return
        self._processing = True
        try:
            full = self._cut_frames()
        except ConnectionClosing as exc:
            self._close_for(str(exc))
            return
        finally:
            self._processing = False
        transport = self._transport
        if transport is None or self._finishing or full == self.reading_paused:
            return
        self.reading_paused = full
        if full:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _cut_frames(self) -> bool:
        """Dispatch the buffer's whole frames; True if one waits for room (the limits are full)."""
        buffer = self._buffer
        while not self._finishing and len(buffer) >= _PREFIX:
            size = int.from_bytes(buffer[:_PREFIX], "big", signed=True)
            if not MIN_FRAME_BYTES <= size <= self._max_request_bytes:
                raise ConnectionClosing(
                    f"request size {size} is outside {MIN_FRAME_BYTES}..{self._max_request_bytes} bytes "
                    "(max_request_bytes)"
                )
            # Requests in flight hold their bytes (a produce's batches) until answered: take this one only
            # once it fits beside them in max_request_bytes (alone, any request fits), as Kafka, which
            # serves one request per connection at a time, holds at most one.
            if len(self._slots) >= MAX_IN_FLIGHT or (
                self.unanswered_bytes and self.unanswered_bytes + size > self._max_request_bytes
            ):
                return True
            if len(buffer) < _PREFIX + size:
                return False
            frame = bytes(buffer[_PREFIX : _PREFIX + size])
            del buffer[: _PREFIX + size]
            self._dispatch(frame)
        return False

    def _dispatch(self, frame: bytes) -> None:
        """Decode one request, start handling it, and answer it if it is ready and first in line."""
        auth = self._ctx.auth if self._ctx is not None else None
        if auth is not None and auth.raw_tokens and auth.principal is None:
            self._raw_token(frame, auth)
            return
        header, api_version, request = self._decode(frame)
        slot = _Slot(header.correlation_id, len(frame))
        self._slots.append(slot)
        self.unanswered_bytes += len(frame)
        assert self._ctx is not None
        metrics = self._ctx.metrics
        if metrics.enabled:
            slot.api = APIS[header.api_key].name
            slot.started = time.perf_counter()
            metrics.request_started("kafka", slot.api)
        if request is _API_VERSIONS:
            slot.settle(api_versions.answer(api_version), None)
            self._timed(slot)
        elif header.api_key in SASL_HANDLERS:
            assert auth is not None
            result = SASL_HANDLERS[header.api_key](request, api_version, auth)
            if asyncio.iscoroutine(result):  # PLAIN's password check
                task = self._loop.create_task(result)
                slot.pending = task
                task.add_done_callback(lambda done: self._task_done(slot, done))
            else:
                slot.settle(result, None)
                self._timed(slot)
        elif auth is not None and not auth.admitted:
            self._close_for(f"{APIS[header.api_key].name} before authentication (SASL is required)")
            return
        elif (
            auth is not None
            and auth.required
            and header.api_key not in PER_ACL
            and not (auth.security is not None and auth.who in auth.security.super_users)
        ):
            self._close_for(
                f"{auth.who} may not use {APIS[header.api_key].name}: over the Kafka listener with "
                "authentication on it is served to super-users only"
            )
            return
        elif header.api_key == FETCH and (self._fetching is not None or self._fetches):
            self._fetches.append((slot, request, api_version))
        else:
            self._run(slot, header.api_key, request, api_version)
        self._flush()

    def _raw_token(self, token: bytes, auth: sasl.ConnectionAuth) -> None:
        """A bare SASL token after a v0 handshake: answered with a bare token; a failed log-in closes."""
        if self._slots or self._raw_pending:
            self._close_for("a SASL token came before the previous request or token was answered")
            return
        answer = sasl.raw_token(token, auth)
        if asyncio.iscoroutine(answer):
            self._raw_pending = True
            self.reading_paused = True
            if self._transport is not None:
                self._transport.pause_reading()
            task = self._loop.create_task(answer)
            task.add_done_callback(self._raw_done)
            return
        self._write_raw(answer)

    def _raw_done(self, task: asyncio.Task[Any]) -> None:
        self._raw_pending = False
        answer = None if task.cancelled() or task.exception() is not None else task.result()
        self._write_raw(answer)
        if not self._finishing:
            self.reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()
            self._process()

    def _write_raw(self, answer: bytes | None) -> None:
        if answer is None:
            self._close_for("SASL authentication failed")
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(len(answer).to_bytes(_PREFIX, "big") + answer)

    def _decode(self, frame: bytes) -> tuple[Header, int, Any]:
        """The header, the version and the request; raises ConnectionClosing for what cannot be read."""
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
                return header, header.api_version, _API_VERSIONS
            if not api.serves(header.api_version):
                raise ConnectionClosing(
                    f"{api.name} v{header.api_version} is not served (versions {api.served[0]}-{api.served[1]})"
                )
            request = read_request(frame, header, header_size)
        except MalformedRequestError as exc:
            raise ConnectionClosing(str(exc)) from None
        ctx = self._ctx
        assert ctx is not None
        if header.client_id != ctx.client_id:
            self._ctx = dataclasses.replace(ctx, client_id=header.client_id)
        return header, header.api_version, request

    def _run(self, slot: _Slot, api_key: int, request: Any, version: int) -> None:
        """Call the handler; its answer is ready now, later (a Later), or when its task ends."""
        ctx = self._ctx
        assert ctx is not None
        if api_key == FETCH:
            self._fetching = slot
        try:
            result = HANDLERS[api_key](request, version, ctx)
        except Exception as exc:
            self._settled(slot, None, exc)
            return
        if isinstance(result, Later):
            slot.pending = result
            result.then(lambda later: self._later_done(slot, later))
        elif asyncio.iscoroutine(result):
            task = self._loop.create_task(result)
            slot.pending = task
            task.add_done_callback(lambda done: self._task_done(slot, done))
        else:
            self._settled(slot, result, None)

    def _later_done(self, slot: _Slot, later: Later) -> None:
        if slot.pending is not later:
            return  # dropped meanwhile
        try:
            self._settled(slot, later.result(), None)
        except Exception as exc:
            self._settled(slot, None, exc)
        self._flush()

    def _task_done(self, slot: _Slot, task: asyncio.Task[Any]) -> None:
        if slot.pending is not task:
            return  # dropped meanwhile
        if task.cancelled():
            self._settled(slot, None, asyncio.CancelledError())
        elif task.exception() is not None:
            self._settled(slot, None, task.exception())
        else:
            self._settled(slot, task.result(), None)
        self._flush()

    def _timed(self, slot: _Slot) -> None:
        if slot.api is not None and self._ctx is not None:
            self._ctx.metrics.request_done("kafka", slot.api, time.perf_counter() - slot.started)

    def _settled(self, slot: _Slot, answer: Any, error: BaseException | None) -> None:
        slot.settle(answer, error)
        self._timed(slot)
        if slot is self._fetching:
            self._fetching = None
            if self._fetches:  # the next fetch reads now that this one's answer is made
                next_slot, request, version = self._fetches.popleft()
                self._run(next_slot, FETCH, request, version)

    # --- answers ------------------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write every answer that is ready and has no unanswered request before it."""
        transport = self._transport
        if transport is None:
            return
        slots = self._slots
        while slots and slots[0].ready and not self._write_paused:
            slot = slots.popleft()
            if slot.error is not None:
                self._failed(slot)
                return
            answer = slot.answer
            held = answer.lease if isinstance(answer, Held) else None
            if answer is not None and not transport.is_closing():
                payload = answer.answer if held is not None else answer
                if isinstance(payload, Encoded):
                    frame: bytearray | memoryview = payload.framed(slot.correlation_id)
                else:
                    frame = frame_response(slot.correlation_id, payload)
                transport.write(frame)
                del frame
            if held is not None:
                if self._write_paused:  # the socket has not taken it all: hold it until it has
                    self._written_leases.append(held)
                else:
                    held.release_all()
            self.unanswered_bytes -= slot.size
            auth = self._ctx.auth if self._ctx is not None else None
            if auth is not None and auth.close_after_answer and not self._finishing:
                self.finish()  # a failed log-in: its answer is out, nothing more is read
        if self._finishing:
            if not slots and not transport.is_closing():
                transport.close()
        elif self.reading_paused and not self._resume_scheduled:
            # Read on from the loop, not from here: this may run inside another connection's append.
            self._resume_scheduled = True
            self._loop.call_soon(self._resume)

    def _resume(self) -> None:
        self._resume_scheduled = False
        if not self._finishing and self.reading_paused:
            self._process()  # resumes reading once the buffer's next frame fits

    def _failed(self, slot: _Slot) -> None:
        """A handler failed: close the connection (its earlier answers are out), with a log line."""
        error = slot.error
        if isinstance(error, LogStoreError):  # a whole request refused, such as while shutting down
            log.info("Kafka request from %s refused (%s); closing the connection", self.peer, error)
        elif not isinstance(error, asyncio.CancelledError):
            log.error(
                "Kafka request from %s (correlation id %d) failed; closing the connection",
                self.peer,
                slot.correlation_id,
                exc_info=error,
            )
        self._close()

    def _release_written(self) -> None:
        leases, self._written_leases = self._written_leases, []
        for lease in leases:
            lease.release_all()


_API_VERSIONS = object()
"""Stands for an ApiVersions request, answered by the connection itself."""


def peer_name(transport: asyncio.BaseTransport) -> str:
    name = transport.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)
