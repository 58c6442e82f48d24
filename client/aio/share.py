"""``AsyncShareConsumer``: a share-group member on ``grpc.aio``, over the threaded ``ShareConsumer``'s cores.

What the member holds and decided is ``Holdings`` (``client/share/holdings.py``) over the pure
``PartitionLedger`` (``acks.py``); its id, epoch and heartbeat pace are the pure ``ShareMember``
(``client/share/membership.py``), driven here by a heartbeat task instead of a thread. The poll is the
threaded one's: one ShareFetch in flight, pipelined (sent again as soon as its records are taken), and
the acknowledgements on their own ShareAcknowledge just before it.

One difference, for ``async for``: records are handed out one by one, so implicit mode accepts what was
handed out, not what was fetched. When every record taken was handed out (the usual case) that is the
ledger's implicit flush, a range per fetch; when some were not (a cancelled task, a ``commit`` or ``stop``
part-way through a fetch) it goes record by record, and a record never handed out is never accepted:
``stop`` gives it back without counting a delivery attempt. Cancelling a task that waits for a record loses
nothing: the fetch it waited for keeps running (it is never awaited directly) and the next call takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from logstore.client.aio.coordinator import AioCoordinator
from logstore.client.groups.coordinator import moved
from logstore.client.share.acks import ACCEPT, AcknowledgeType
from logstore.client.share.config import ShareConsumerConfig
from logstore.client.share.holdings import (
    AcknowledgementCommitCallback,
    FetchRetry,
    Holdings,
    Ranges,
    SentAcks,
    deserialized,
    fetch_request,
    report,
)
from logstore.client.share.membership import ShareMember, heartbeat_request
from logstore.client.share.records import ShareRecord
from logstore.client.share.rpc import Pending, acknowledgements, share_coordinator
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import (
    DEFAULT_BOOTSTRAP,
    Connection,
    channel_options,
    parse_bootstrap_list,
)
from logstore.client.shared.errors import (
    ClientError,
    ClosedError,
    GroupError,
    IllegalStateError,
    error_from_rpc,
)
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import share_pb2, share_pb2_grpc

log = logging.getLogger(__name__)

CLOSE_FETCH_GRACE_S = 0.2
"""How long stop() waits for the fetch in flight before cancelling it (as ShareConsumer.close)."""
_GETONE_WAIT_MS = 1000.0


class AsyncShareConsumer:
    """Reads records of ``topics`` as a member of the share group ``group_id``, from one event loop (not
    thread-safe, as aiokafka's clients: the single loop is what keeps its state safe without locks).
    Options are ``ShareConsumer``'s (``ShareConsumerConfig``), aiokafka's ``bootstrap_servers``.

    async with AsyncShareConsumer("tasks", group_id="workers", bootstrap_servers=address) as consumer:
        async for record in consumer:                   # implicit mode: asking for the next accepts it
            ...
            await consumer.acknowledge(record, AcknowledgeType.RELEASE)  # or decide yourself
        await consumer.commit()                         # send the decisions and wait until durable

    ``clock`` (seconds, monotonic) paces the heartbeats and fetch retries; tests may pass their own.
    """

    def __init__(
        self,
        *topics: str,
        group_id: str,
        bootstrap_servers: str | list[str] = DEFAULT_BOOTSTRAP,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        names = list(topics)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ValueError(f"AsyncShareConsumer needs topic names, got {names!r}")
        if options.get("interceptors"):
            raise ValueError("AsyncShareConsumer takes no interceptors (grpc.aio's differ from grpc's)")
        self.config = config = ShareConsumerConfig(group_id, bootstrap_servers, **options)
        parse_bootstrap_list(config.bootstrap_servers)  # a bad address is refused here, not at start()
        self.group_id = group_id
        self.topics = tuple(dict.fromkeys(names))
        self._implicit = config.implicit
        self._clock = clock
        self._backoff = backoff = Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms)
        self._member = ShareMember(group_id, self.topics, backoff, config.request_timeout_s)
        self._holdings = Holdings(group_id)
        self._retry = FetchRetry(group_id, backoff, config.request_timeout_s)
        self._connection: Connection | None = None
        """The threaded client's connection, for the rare lookups (DescribeCluster, FindCoordinator)."""
        self._channel: grpc.aio.Channel | None = None
        self._coordinator: AioCoordinator | None = None
        """Every ShareService call goes to the group's coordinator (the bootstrap broker, alone)."""
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake_heartbeat = asyncio.Event()
        """Set to make the heartbeat task look again (rejoin, stop); replaced by each wait."""
        self._changed = asyncio.Event()
        """Set (and replaced) when the member joins, is lost or fails; polls that wait for it wake."""
        self._fetch: asyncio.Future[share_pb2.ShareFetchResponse] | None = None
        """The ShareFetch in flight, at most one; never awaited directly, so a cancelled caller leaves it."""
        self._sent: list[SentAcks] = []
        self._records: deque[ShareRecord] = deque()
        """Taken from a fetch (held) and not handed out yet."""
        self._handed: list[ShareRecord] = []
        """Handed out since the last acceptance point (implicit mode: accepted unless decided)."""
        self._commit_callback: AcknowledgementCommitCallback | None = None
        self._closed = False

    # --- life cycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the channel and join the group (the heartbeat task); the first fetch goes once joined."""
        if self._closed:
            raise ClosedError("this share consumer is stopped")
        if self._heartbeat is not None:
            return
        config = self.config
        options = channel_options(4 * 1024 * 1024, config.fetch_max_bytes, config.client_id)
        self._connection = connection = Connection(
            config.bootstrap_servers,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=1024 * 1024,
            client_id=config.client_id,
            security=config.security,
        )
        self._channel = config.security.aio_channel(connection.address, options)
        finder = share_coordinator(connection, self.group_id, config.request_timeout_s)
        self._coordinator = AioCoordinator(
            finder, connection, share_pb2_grpc.ShareServiceStub, self._channel, options
        )
        self._heartbeat = asyncio.create_task(self._heartbeats(), name="logstore-aio-share-heartbeat")

    async def stop(self, timeout_ms: float | None = None) -> None:
        """Send what is decided (implicit mode: accept what was handed out), give back everything else this
        member holds without counting a delivery attempt, leave the group and close. Idempotent."""
        if self._closed or self._heartbeat is None:
            self._closed = True
            return
        self._closed = True
        timeout_s = self.config.request_timeout_s if timeout_ms is None else timeout_ms / 1000.0
        try:
            if not self._member.lost:
                await self._give_back(timeout_s)
        finally:
            await self._leave()

    async def _give_back(self, timeout_s: float) -> None:
        pending = self._decided()
        self._records.clear()  # held, never handed out: released below
        fetch = self._fetch
        if fetch is not None:
            # As ShareConsumer.close: an answer on its way arrives within the grace; past it the fetch is
            # cancelled, and what the broker acquires for it meanwhile is released when the member leaves.
            await asyncio.wait([fetch], timeout=min(timeout_s, CLOSE_FETCH_GRACE_S))
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait([fetch], timeout=timeout_s)
            try:
                self._take()  # held now, released with the rest
            except ClientError as exc:
                log.warning("share group %s: the last fetch failed: %s", self.group_id, exc)
        pending = self._holdings.release_all(pending)
        if pending and self._member.member_id:
            self._send(pending, None)
        for sent in list(self._sent):
            for tp, error in (await self._wait(sent, timeout_s)).items():
                log.warning("share group %s: %s: acknowledgement refused: %s", self.group_id, tp, error)

    async def _leave(self) -> None:
        member = self._member
        member.stopping = True
        self._wake_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        plan = member.leave_plan()
        coordinator, channel, connection = self._coordinator, self._channel, self._connection
        assert coordinator is not None and channel is not None and connection is not None
        if plan is not None:
            request = heartbeat_request(self.group_id, plan, self.config.client_id)
            try:
                await coordinator.call("ShareHeartbeat", request, self.config.request_timeout_s)
            except grpc.RpcError as exc:
                log.warning("%s", member.leave_failed(error_from_rpc(exc, "leaving")))
        for sent in self._sent:
            if sent.call is not None:
                sent.call.cancel()
        await coordinator.aclose()
        await channel.close()
        await asyncio.to_thread(connection.close)

    async def __aenter__(self) -> AsyncShareConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- reading -------------------------------------------------------------------------------------------

    async def getmany(self, timeout_ms: float = 0) -> dict[TopicPartition, list[ShareRecord]]:
        """The records of one fetch (at most ``max_poll_records``), waiting up to ``timeout_ms`` for some.
        Implicit mode first accepts the records handed out before that were not decided otherwise."""
        records = list(self._records) if self._records else await self._poll(timeout_ms / 1000.0)
        self._records.clear()
        if self._implicit:
            self._handed.extend(records)
        out: dict[TopicPartition, list[ShareRecord]] = {}
        for record in records:
            out.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return out

    async def getone(self) -> ShareRecord:
        """The next record, waiting as long as it takes (``ClosedError`` once stopped)."""
        while not self._records:
            self._records.extend(await self._poll(_GETONE_WAIT_MS / 1000.0))
        record = self._records.popleft()
        if self._implicit:
            self._handed.append(record)
        return record

    def __aiter__(self) -> AsyncShareConsumer:
        return self

    async def __anext__(self) -> ShareRecord:
        """The next record; ends once ``consumer_timeout_ms`` passes without one, or when stopped."""
        idle_since = self._clock()
        while not self._records:
            wait_s = min(
                self.config.consumer_timeout_s - (self._clock() - idle_since), _GETONE_WAIT_MS / 1000
            )
            if wait_s < 0 or self._closed:
                raise StopAsyncIteration
            self._records.extend(await self._poll(wait_s))
        record = self._records.popleft()  # getone(), inlined: one coroutine less per record
        if self._implicit:
            self._handed.append(record)
        return record

    async def _poll(self, timeout_s: float) -> list[ShareRecord]:
        """One poll, the threaded ShareConsumer's steps; returns the records taken (held, not handed out)."""
        self._check_open()
        self._member.raise_errors()
        self._lost_check()
        self._report_done()
        if not self._implicit:
            missing = self._holdings.unacknowledged() - len(self._records)
            if missing:
                raise IllegalStateError(
                    f"acknowledgement_mode is 'explicit': acknowledge every record of the last poll before "
                    f"polling again ({missing} not acknowledged; RENEW keeps one past a poll)"
                )
        pending = self._decided()
        try:
            return await self._fetch_records(pending, self._clock() + max(0.0, timeout_s))
        finally:
            if pending:  # not sent with a fetch (backing off, not joined, cancelled): on their own
                self._send(pending, None)

    async def _fetch_records(self, pending: Ranges, deadline: float) -> list[ShareRecord]:
        """The poll's loop; ``pending`` is emptied of what it sends. Only its two waits can be cancelled,
        and neither holds anything taken."""
        member = self._member
        while True:
            if self._closed:  # stopped by another task: start nothing new
                return []
            now = self._clock()
            fetch = self._fetch
            if fetch is not None and fetch.done():
                records = self._take()
                if member.joined and now >= self._retry.retry_at:
                    self._start_fetch(pending)  # pipelined: the broker acquires while the app works
                if records:
                    return deserialized(
                        records,
                        self.config.key_deserializer,  # type: ignore[arg-type]  # resolved by the config
                        self.config.value_deserializer,  # type: ignore[arg-type]
                    )
                continue
            if fetch is None and member.joined and now >= self._retry.retry_at:
                self._start_fetch(pending)
            elif pending and fetch is not None:
                self._send(dict(pending), None)  # frees the locks (and the window) the fetch may wait for
                pending.clear()
            remaining = deadline - now
            if remaining <= 0:
                return []
            if self._fetch is not None:
                await asyncio.wait([self._fetch], timeout=remaining)
            else:  # not joined yet, or backing off after a failed fetch
                changed = self._changed
                wait = remaining if not member.joined else min(remaining, self._retry.retry_at - now)
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
                self._member.raise_errors()
            if (self._fetch is None or not self._fetch.done()) and self._clock() >= deadline:
                return []

    # --- acknowledging ------------------------------------------------------------------------------------

    async def acknowledge(
        self, record: ShareRecord, type: AcknowledgeType = AcknowledgeType.ACCEPT, delay_ms: int = 0
    ) -> None:
        """Decide about one record handed out; sent with the next fetch, ``commit`` or ``stop`` (this only
        records it, as Kafka's acknowledge does). ``delay_ms`` (RELEASE only) keeps the record from being
        delivered again for that long."""
        self._holdings.acknowledge(record, type, delay_ms)

    def set_acknowledgement_commit_callback(self, callback: AcknowledgementCommitCallback | None) -> None:
        """Kafka's setAcknowledgementCommitCallback, called on the loop (see ``ShareConsumer``'s)."""
        self._commit_callback = callback

    async def commit(self, timeout_ms: float | None = None) -> dict[TopicPartition, Exception]:
        """Send the decisions so far (implicit mode: accepting what was handed out) and wait until the
        broker has them on stable storage; the refused ones' errors per partition."""
        self._check_open()
        self._lost_check()
        pending = self._decided()
        if pending:
            self._send(pending, None)
        timeout_s = self.config.request_timeout_s if timeout_ms is None else timeout_ms / 1000.0
        refused: dict[TopicPartition, Exception] = {}
        for sent in list(self._sent):
            refused.update(await self._wait(sent, timeout_s))
        return refused

    # --- the pieces ---------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this share consumer is stopped")
        if self._coordinator is None:
            raise IllegalStateError("the consumer is not started: await consumer.start() or use `async with`")

    def _decided(self) -> Ranges:
        """The decisions to send now. Implicit mode accepts what was handed out and not decided otherwise
        (a RENEWed record too): when every record taken was handed out, that is every held record (the
        ledger's implicit flush, a range per fetch); otherwise it goes record by record, so the records
        not handed out stay held."""
        if self._implicit and not self._records:
            self._handed = []
            return self._holdings.flush(True)
        settle = self._holdings.settle
        for record in self._handed:
            settle(record, ACCEPT)
        self._handed = []
        return self._holdings.flush(False)

    def _lost_check(self) -> None:
        """The broker forgot this member (its records were released): forget them too."""
        if self._member.lost:
            self._member.lost = False
            self._holdings.forget()
            self._records.clear()
            self._handed = []

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _start_fetch(self, pending: Ranges) -> None:
        """Send ``pending`` on its own ShareAcknowledge (emptying it), then the next ShareFetch."""
        if pending:
            self._send(dict(pending), None)
            pending.clear()
        member = self._member
        if not member.joined:
            return
        assert self._coordinator is not None
        request = fetch_request(self.group_id, member.member_id, self.config)
        call = self._coordinator.call(
            "ShareFetch", request, self.config.request_timeout_s + self.config.fetch_max_wait_ms / 1000.0
        )
        self._fetch = asyncio.ensure_future(call)

    def _take(self) -> list[ShareRecord]:
        """The records of the finished ShareFetch, now held; handles its errors."""
        fetch, self._fetch = self._fetch, None
        assert fetch is not None
        if fetch.cancelled():
            return []
        try:
            response = fetch.result()
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.CANCELLED:
                return []
            self._retry.failed(
                error_from_rpc(exc, f"fetching for share group {self.group_id!r}"), self._clock()
            )
            return []
        try:
            records = self._holdings.take(response)
        except ClientError as exc:
            if not moved(exc):
                raise
            self._retry.failed(exc, self._clock())
            return []
        self._retry.succeeded()
        if records is None:  # the broker forgot this member: what it held was released
            self._member.rejoin()
            self._wake_heartbeat.set()
            self._lost_check()
            return []
        return records

    def _send(self, pending: Pending, callback: AcknowledgementCommitCallback | None) -> None:
        """A ShareAcknowledge for ``pending``, without waiting for it."""
        request = share_pb2.ShareAcknowledgeRequest(
            group_id=self.group_id,
            member_id=self._member.member_id,
            acknowledgements=acknowledgements(pending),
        )
        self._sent.append(SentAcks(self._acknowledge(request), request, pending, callback, self._clock()))

    def _acknowledge(self, request: share_pb2.ShareAcknowledgeRequest) -> asyncio.Future[Any]:
        assert self._coordinator is not None
        call = self._coordinator.call("ShareAcknowledge", request, self.config.request_timeout_s)
        return asyncio.ensure_future(call)

    async def _wait(self, sent: SentAcks, timeout_s: float) -> dict[TopicPartition, Exception]:
        """Wait for one ShareAcknowledge (sent again while the coordinator moved; a cancelled caller leaves
        it for the next); report it; the refused partitions' errors."""
        deadline = self._clock() + timeout_s
        while True:
            if sent not in self._sent:  # reported meanwhile by another caller
                return {}
            if sent.call is None:  # to go again, after its backoff
                pause = sent.retry_at - self._clock()
                if pause >= deadline - self._clock():
                    return self._reported(sent, sent.given_up())
                if pause > 0:
                    await asyncio.sleep(pause)
                    continue  # (another caller may have sent it meanwhile)
                sent.call = self._acknowledge(sent.request)
            call = sent.call
            await asyncio.wait([call], timeout=max(0.0, deadline - self._clock()))
            if sent not in self._sent or sent.call is not call:
                continue
            if not call.done():
                call.cancel()
                error = ClientError(
                    f"share group {self.group_id!r}: no answer to the acknowledgements in "
                    f"{timeout_s * 1000:.0f} ms"
                )
                return self._reported(sent, dict.fromkeys(sent.pending, error))
            refused = self._settle(sent)
            if refused is not None:
                return self._reported(sent, refused)

    def _settle(self, sent: SentAcks) -> dict[TopicPartition, Exception] | None:
        """The refused partitions of a finished ShareAcknowledge; None when it goes again."""
        task = sent.call
        if task.cancelled():
            return dict.fromkeys(sent.pending, ClosedError("the acknowledgements were cancelled"))
        exc = task.exception()
        answer: share_pb2.ShareAcknowledgeResponse | ClientError
        if exc is None:
            answer = task.result()
        elif isinstance(exc, grpc.RpcError):
            answer = error_from_rpc(exc, f"acknowledging for share group {self.group_id!r}")
        else:
            answer = ClientError(f"acknowledging for share group {self.group_id!r}: {exc!r}")
        return sent.settle(answer, self._clock(), self._backoff, self.config.request_timeout_s)

    def _reported(self, sent: SentAcks, refused: dict[TopicPartition, Exception]) -> dict:
        self._sent.remove(sent)
        report(self.group_id, sent.pending, refused, sent.callback or self._commit_callback)
        return refused

    def _report_done(self) -> None:
        """Report the ShareAcknowledges that have been answered (callbacks run here, on the loop); send
        again those due to go again."""
        now = self._clock()
        for sent in list(self._sent):
            if sent.call is None:
                if now >= sent.retry_at:
                    sent.call = self._acknowledge(sent.request)
            elif sent.call.done() and (refused := self._settle(sent)) is not None:
                self._reported(sent, refused)

    # --- the heartbeat task -----------------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """Drive the ``ShareMember`` core: send each heartbeat it plans, when due, and give it the answer."""
        member = self._member
        coordinator = self._coordinator
        assert coordinator is not None
        timeout_s = self.config.request_timeout_s
        try:
            while True:
                wait = member.due_in(self._clock())
                if wait is None:
                    return
                if wait > 0:
                    wake = self._wake_heartbeat = asyncio.Event()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                    continue
                request = heartbeat_request(self.group_id, member.plan(), self.config.client_id)
                sent_at = self._clock()
                try:
                    response = await coordinator.call("ShareHeartbeat", request, timeout_s)
                except grpc.RpcError as exc:
                    error = error_from_rpc(exc, f"heartbeat to share group {self.group_id!r}")
                    note = member.on_failure(error, sent_at, self._clock())
                else:
                    note = member.on_answer(response, self._clock())
                self._notify()
                if note:
                    log.warning("%s", note)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: end the membership and say so through the next poll
            log.exception("the share consumer's heartbeat task failed")
            member.fatal = GroupError(f"the share consumer's heartbeat task failed: {exc!r}")
            self._notify()


__all__ = ["AcknowledgeType", "AsyncShareConsumer", "ShareRecord"]
