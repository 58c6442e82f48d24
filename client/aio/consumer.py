"""``AsyncConsumer``: the threaded ``Consumer``'s fetch buffer and subscription state, fetched on ``grpc.aio``.

What is read and handed out is the threaded client's: ``SubscriptionState`` (positions, resets,
generations) and ``Fetcher``'s buffer (``plan``, ``store``, ``take``), here never started as a thread.
One asyncio task makes the Fetch calls. A group is ``AsyncGroupCoordinator`` (``group.py``): the threaded
``GroupCoordinator``'s steps over the same ``Membership`` core, with a heartbeat task and its Heartbeat,
CommitOffsets and FetchOffsets calls on ``grpc.aio``; rebalance steps run inside ``getmany``.

Cancelling a task waiting in ``getone``/``getmany`` hands out nothing and loses nothing: records are taken
only after the last await of a call, and a rebalance step cancelled half-way is taken again by the next
call, so positions (and explicit commits) never pass a record the application did not get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import grpc
import grpc.aio
from logstore.client.aio.group import AsyncGroupCoordinator
from logstore.client.consumer.config import ConsumerConfig
from logstore.client.consumer.fetcher import Fetcher
from logstore.client.consumer.offsets import SPECS, list_offsets
from logstore.client.consumer.records import ConsumerRecord, deserialize
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.groups.driver import ConsumerRebalanceListener
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import Connection, channel_options
from logstore.client.shared.errors import (
    ClosedError,
    IllegalStateError,
    NoOffsetForPartitionError,
    error_from_rpc,
)
from logstore.client.shared.metadata import note_failure, route
from logstore.client.shared.metrics import consumer_meter
from logstore.client.shared.serde import Deserializer
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2_grpc

log = logging.getLogger(__name__)

Records = dict[TopicPartition, list[ConsumerRecord]]

_GETONE_WAIT_S = 0.5
"""How long one of getone's polls waits before it looks again (for stop())."""


class _LoopFetcher(Fetcher):
    """The threaded ``Fetcher``'s buffer, woken on the event loop instead of running a thread. Not
    thread-safe beyond the Fetcher's own lock: only its event loop fills and drains it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        """Set (on the loop) when positions or the assignment change: the fetch task plans again."""
        self.ready = asyncio.Event()
        """Set (on the loop) when records or errors were buffered."""
        self.call: grpc.aio.UnaryUnaryCall | None = None
        self.calls: list[grpc.aio.UnaryUnaryCall] = []
        """In a cluster: the Fetch calls in flight, at most one per partition leader."""
        self.in_flight: dict[int, tuple[list[tuple[TopicPartition, int, int]], asyncio.Task[None]]] = {}
        """In a cluster: broker id -> the targets of its Fetch call in flight, and the task reading it."""
        self.crashed: BaseException | None = None
        """An unexpected error of a call's task, raised by the fetch task (as an error of a call it
        awaited itself would be)."""

    def interrupt(self) -> None:  # any thread, lock held
        super().interrupt()
        self._on_loop(self._interrupted)

    def _on_loop(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop; nothing once the loop is closed (no one is left to wake)."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback)

    def _interrupted(self) -> None:
        if self.call is not None:
            self.call.cancel()
        for call in self.calls:
            call.cancel()
        self.wake.set()

    def _fail_partition(self, error: Any) -> None:  # any thread, lock held
        super()._fail_partition(error)
        self._on_loop(self.ready.set)

    async def run_async(
        self,
        stub: fetch_pb2_grpc.FetchServiceStub,
        stub_for: Callable[[str], fetch_pb2_grpc.FetchServiceStub] | None = None,
    ) -> None:
        """The fetch task: the threaded ``run`` loop, with the Fetch call awaited on the loop. In a
        cluster (``stub_for`` gives the stub of a broker address) it keeps a call in flight to every
        partition leader with something to read, as the threaded ``Fetcher`` does, and stores each
        answer as it comes: a leader with nothing to send holds nobody else's records."""
        try:
            await self._run(stub, stub_for)
        finally:
            for _, task in list(self.in_flight.values()):
                task.cancel()

    async def _run(
        self,
        stub: fetch_pb2_grpc.FetchServiceStub,
        stub_for: Callable[[str], fetch_pb2_grpc.FetchServiceStub] | None,
    ) -> None:
        while True:
            if self.crashed is not None:
                raise self.crashed
            with self.lock:
                if self._closed:
                    return
                subscribed = bool(self._state.subscribed_topics)
                resets = bool(self._state.resets_needed() or self._state.without_position())
            if subscribed:
                await asyncio.to_thread(self._refresh_subscription)
            if resets:
                await asyncio.to_thread(self._reset_positions)
            self.wake.clear()
            with self.lock:
                now = self._clock()
                busy = {tp for mine, _ in self.in_flight.values() for tp, _, _ in mine}
                targets, request = self.plan(now, busy)
                idle = None if targets else self._idle_wait(now)
                if self._closed:
                    return
            if not targets:
                if not resets or idle is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), idle)
                continue
            cluster = self._connection.cluster
            if stub_for is not None and (cluster.clustered or not cluster.learned):
                groups, leaderless = await asyncio.to_thread(
                    route, self._connection, [tp for tp, _, _ in targets], self._request_timeout_s
                )
                if cluster.clustered:
                    await self._fetch_from_leaders(targets, groups, leaderless, stub_for)
                    continue
            call = self.call = stub.Fetch(request, timeout=self._timeout_s)
            try:
                response = await call
            except asyncio.CancelledError:
                if not call.cancelled():
                    raise  # the task itself is cancelled (stop)
                continue  # interrupted on purpose
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.CANCELLED:
                    continue
                await asyncio.to_thread(self._failed_call, error_from_rpc(exc, "Fetch"), "fetching")
                continue
            finally:
                self.call = None
            self._call_failures = 0
            self._away_since = None
            with self.lock:
                self.store(targets, response.results)
            self.ready.set()

    async def _fetch_from_leaders(
        self,
        targets: list[tuple[TopicPartition, int, int]],
        groups: dict[int, tuple[Any, list[TopicPartition]]],
        leaderless: list[TopicPartition],
        stub_for: Callable[[str], fetch_pb2_grpc.FetchServiceStub],
    ) -> None:
        """Start a Fetch call to each leader that has none in flight (a partition without a known
        leader backs off and is looked up again), or, if none could start, wait for one to end."""
        now = self._clock()
        with self.lock:
            for tp in leaderless:
                partition = self._state.partitions.get(tp)
                if partition is not None:
                    partition.backoff_until = now + self._backoff.delay_s(1)
        started = False
        for broker_id, (channel, tps) in groups.items():
            if broker_id in self.in_flight:
                continue  # its call in flight comes first; the partition is planned again after it
            chosen = set(tps)
            mine = [target for target in targets if target[0] in chosen]
            call = stub_for(channel.address).Fetch(self.request_for(mine), timeout=self._timeout_s)
            self.calls.append(call)
            task = asyncio.ensure_future(self._answer_of(broker_id, mine, call))
            self.in_flight[broker_id] = (mine, task)
            started = True
        if not started and self.in_flight:
            await self.wake.wait()

    async def _answer_of(
        self, broker_id: int, mine: list[tuple[TopicPartition, int, int]], call: grpc.aio.UnaryUnaryCall
    ) -> None:
        """One leader's answer, stored as soon as it comes; a leader that refused or could not be
        reached backs its partitions off (they find their new leader), the others go on."""
        try:
            response = await call
        except asyncio.CancelledError:
            if not call.cancelled():
                raise  # the fetch task stops
            return  # interrupted on purpose
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.CANCELLED:
                return
            error = error_from_rpc(exc, "Fetch")
            note_failure(self._connection, broker_id, [tp for tp, _, _ in mine], error)
            self._call_failures += 1
            with self.lock:
                until = self._clock() + self._backoff.delay_s(self._call_failures)
                self._state.back_off((tp for tp, _, _ in mine), until)
            log.warning("fetching from broker %d failed (retrying): %s", broker_id, error)
            return
        except Exception as exc:  # a bug: the fetch task raises it, as it would its own call's
            self.crashed = exc
            return
        finally:
            self.in_flight.pop(broker_id, None)
            with contextlib.suppress(ValueError):
                self.calls.remove(call)
            self.wake.set()
        self._call_failures = 0
        with self.lock:
            self.store(mine, response.results)
        self.ready.set()


class AsyncConsumer:
    """Reads from one event loop. Options are ``ConsumerConfig``'s (kafka-python's and aiokafka's names).
    Not thread-safe: call it from its event loop only (as aiokafka's), which is what makes its state
    safe without locks of its own.

    async with AsyncConsumer("orders", group_id="billing", bootstrap_servers=address) as consumer:
        async for record in consumer:
            handle(record)
    """

    def __init__(
        self,
        *topics: str,
        bootstrap_servers: str | list[str] = "127.0.0.1:9093",
        listener: ConsumerRebalanceListener | None = None,
        **options: Any,
    ) -> None:
        self.config = config = ConsumerConfig(bootstrap_servers=bootstrap_servers, **options)
        self._topics = topics
        self._listener = listener
        self._key_deserializer = cast("Deserializer | None", config.key_deserializer)
        self._value_deserializer = cast("Deserializer | None", config.value_deserializer)
        # Rare calls (offset lookups, topic descriptions, group RPCs) use the threaded client's channel.
        self._connection = Connection(
            config.bootstrap_servers,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=max(config.fetch_max_bytes, config.max_partition_fetch_bytes),
            security=config.security,
        )
        self._state = SubscriptionState(config.auto_offset_reset)
        self._lock = threading.Lock()
        self._fetcher: _LoopFetcher | None = None
        self._group: AsyncGroupCoordinator | None = None
        self._channel: grpc.aio.Channel | None = None
        self._leader_channels: dict[str, grpc.aio.Channel] = {}
        """In a cluster: a channel per partition leader's address, made as fetches need them."""
        self._task: asyncio.Task[None] | None = None
        self._records: deque[ConsumerRecord] = deque()
        """Records taken (positions already past them) and not yet handed out by ``getone``."""
        self._closed = False

    # --- life cycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, start fetching, and subscribe to the topics given to the constructor."""
        if self._task is not None:
            return
        config = self.config
        backoff = Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms)
        self._fetcher = fetcher = _LoopFetcher(
            self._connection,
            self._state,
            self._lock,
            fetch_min_bytes=config.fetch_min_bytes,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            max_partition_fetch_bytes=config.max_partition_fetch_bytes,
            fetch_max_bytes=config.fetch_max_bytes,
            request_timeout_ms=config.request_timeout_ms,
            retry_backoff=backoff,
            check_crcs=config.check_crcs,
        )
        self._channel = config.security.aio_channel(
            self._connection.address,
            channel_options(
                1024 * 1024, max(config.fetch_max_bytes, config.max_partition_fetch_bytes), config.client_id
            ),
        )
        self._options = channel_options(
            1024 * 1024, max(config.fetch_max_bytes, config.max_partition_fetch_bytes), config.client_id
        )
        if config.group_id is not None:
            self._group = AsyncGroupCoordinator(
                config.group_id,
                self._connection,
                self._state,
                fetcher,
                self._channel,
                fetcher.ready.set,
                instance_id=config.group_instance_id,
                server_assignor=config.server_assignor,
                rebalance_timeout_ms=config.rebalance_timeout_ms,
                client_id=config.client_id,
                enable_auto_commit=config.enable_auto_commit,
                auto_commit_interval_ms=config.auto_commit_interval_ms,
                request_timeout_s=config.request_timeout_s,
                retry_backoff=backoff,
                session_timeout_ms=config.session_timeout_ms,
                heartbeat_interval_ms=config.heartbeat_interval_ms,
                max_poll_interval_ms=config.max_poll_interval_ms,
            )
        stub = fetch_pb2_grpc.FetchServiceStub(self._channel)
        self._task = asyncio.create_task(fetcher.run_async(stub, self._stub_for), name="logstore-aio-fetcher")
        if self._topics:
            self.subscribe(self._topics, listener=self._listener)

    def _stub_for(self, address: str) -> fetch_pb2_grpc.FetchServiceStub:
        """The Fetch stub of one broker (on the loop): the bootstrap channel's, or one made for it."""
        assert self._channel is not None
        if address == self._connection.bootstrap[0]:
            return fetch_pb2_grpc.FetchServiceStub(self._channel)
        channel = self._leader_channels.get(address)
        if channel is None:
            channel = self._leader_channels[address] = self.config.security.aio_channel(
                address, self._options
            )
        return fetch_pb2_grpc.FetchServiceStub(channel)

    async def stop(self) -> None:
        """Commit (with auto-commit) and leave the group, stop fetching, close. Idempotent."""
        if self._closed:
            return
        self._rewind()
        if self._group is not None:
            await self._group.aclose()
        self._closed = True
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher.wake.set()
            self._fetcher.ready.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()
        for channel in self._leader_channels.values():
            await channel.close()
        await asyncio.to_thread(self._connection.close)

    def _rewind(self) -> None:
        """Move each position back to the first record taken but not handed out, so the commit at stop
        (auto-commit) covers only what the application got."""
        first: dict[TopicPartition, int] = {}
        for record in self._records:
            first.setdefault(record.topic_partition, record.offset)
        self._records.clear()
        with self._lock:
            for tp, offset in first.items():
                if tp in self._state.partitions:
                    self._state.seek(tp, offset)

    async def __aenter__(self) -> AsyncConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _started(self) -> _LoopFetcher:
        if self._closed:
            raise ClosedError("this consumer is stopped")
        if self._fetcher is None:
            raise IllegalStateError("the consumer is not started: await consumer.start() or use `async with`")
        return self._fetcher

    # --- what to read --------------------------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Read exactly these partitions; new ones start per ``auto_offset_reset`` unless you ``seek()``."""
        fetcher = self._started()
        wanted = [TopicPartition(*tp) for tp in partitions]
        with self._lock:
            if self._state.subscribed_topics or (self._group is not None and self._group.subscribed):
                raise IllegalStateError("this consumer follows topics (subscribe); unsubscribe() first")
            dropped = set(self._state.partitions) - set(wanted)
            self._state.assign(wanted)
            fetcher.clear(dropped)
            fetcher.interrupt()

    def subscribe(
        self,
        topics: Iterable[str] = (),
        pattern: str | None = None,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        """With a group: share the topics' partitions with its members. Without: read all their partitions."""
        fetcher = self._started()
        names = list(topics)
        if not all(isinstance(t, str) and t for t in names) or not (names or (pattern and self._group)):
            raise ValueError(f"subscribe() needs topic names (or a pattern, with a group_id), got {names!r}")
        if self._group is not None:
            if self._state.partitions and not self._group.subscribed:
                raise IllegalStateError("this consumer has assigned partitions; unsubscribe() first")
            self._group.subscribe(names, pattern, listener)
            return
        if pattern or listener:
            raise IllegalStateError("subscribe(pattern=..., listener=...) needs a consumer with a group_id")
        with self._lock:
            if self._state.partitions and not self._state.subscribed_topics:
                raise IllegalStateError("this consumer has assigned partitions; unsubscribe() first")
            self._state.subscribe(names)
            fetcher.interrupt()

    def assignment(self) -> set[TopicPartition]:
        with self._lock:
            return self._state.assignment()

    # --- reading -------------------------------------------------------------------------------------------

    async def getmany(self, timeout_ms: float = 0, max_records: int | None = None) -> Records:
        """Records fetched so far, up to ``max_records`` (default ``max_poll_records``), waiting up to
        ``timeout_ms`` for some. Raises the errors the threaded ``Consumer.poll`` raises. Positions move
        past every record returned (auto-commit included), as with ``Consumer.poll``."""
        fetcher = self._started()
        limit = self.config.max_poll_records if max_records is None else max_records
        if limit < 1:
            raise ValueError(f"max_records must be at least 1, got {limit}")
        timeout_s = timeout_ms / 1000.0
        if self._group is not None:
            records = await self._group.poll_async(self._take_for_group, limit, timeout_s)
        else:
            records = await self._take(fetcher, limit, timeout_s)
        if records and (self._key_deserializer is not None or self._value_deserializer is not None):
            for chunk in records.values():
                self._deserialize(chunk)
        return records

    async def _take(self, fetcher: _LoopFetcher, limit: int, timeout_s: float) -> Records:
        """Records buffered, waiting up to ``timeout_s`` for some (and, in a group, for group work)."""
        group = self._group
        deadline = time.monotonic() + timeout_s
        while True:
            fetcher.ready.clear()
            with self._lock:
                self._check_reading()
                records = fetcher.take(limit)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0 or (group is not None and group.has_work()):
                return records
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fetcher.ready.wait(), remaining)
            if self._closed:
                return {}

    async def _take_for_group(self, limit: int, timeout_s: float) -> Records:
        assert self._fetcher is not None
        return await self._take(self._fetcher, limit, timeout_s)

    def _check_reading(self) -> None:
        """Lock held: refuse a closed consumer, or one with nothing to read."""
        if self._closed:
            raise ClosedError("this consumer is stopped")
        if (
            not self._state.partitions
            and not self._state.subscribed_topics
            and not (self._group is not None and self._group.subscribed)
        ):
            raise IllegalStateError("no partitions to read: call assign() or subscribe() first")

    async def getone(self) -> ConsumerRecord:
        """The next record, waiting as long as it takes (raises ``ClosedError`` once stopped)."""
        while not self._records:
            taken = await self.getmany(timeout_ms=_GETONE_WAIT_S * 1000)
            for chunk in taken.values():
                self._records.extend(chunk)
            if self._closed and not self._records:
                raise ClosedError("this consumer is stopped")
        return self._records.popleft()

    def __aiter__(self) -> AsyncConsumer:
        return self

    async def __anext__(self) -> ConsumerRecord:
        try:
            return await self.getone()
        except ClosedError:
            raise StopAsyncIteration from None

    def _deserialize(self, records: list[ConsumerRecord]) -> None:
        deserialize(records, self._key_deserializer, self._value_deserializer)

    # --- positions and commits -------------------------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` on."""
        fetcher = self._started()
        tp = TopicPartition(*partition)
        with self._lock:
            self._assigned(tp)
            self._state.seek(tp, offset)
            self._forget(tp)
            fetcher.interrupt()

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read from the earliest offset still stored (of the given partitions, or all assigned)."""
        self._request_reset(partitions, "earliest")

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Read only what is appended from now on (of the given partitions, or all assigned)."""
        self._request_reset(partitions, "latest")

    def _request_reset(self, partitions: tuple[TopicPartition, ...], strategy: str) -> None:
        fetcher = self._started()
        with self._lock:
            tps = [TopicPartition(*tp) for tp in partitions] or list(self._state.partitions)
            for tp in tps:
                self._assigned(tp)
            for tp in tps:
                self._state.request_reset(tp, strategy)
                self._forget(tp)
            fetcher.interrupt()

    def _forget(self, tp: TopicPartition) -> None:
        """A seek: records of ``tp`` taken but not handed out are not the application's any more."""
        if any(record.topic_partition == tp for record in self._records):
            self._records = deque(r for r in self._records if r.topic_partition != tp)

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``getone``/``getmany`` returns for ``partition``."""
        fetcher = self._started()
        tp = TopicPartition(*partition)
        with self._lock:
            state = self._assigned(tp)
            if state.position is not None:
                return state.position - self._unhanded(tp)
            if state.reset not in SPECS:
                raise NoOffsetForPartitionError(
                    f"{tp} has no position and auto_offset_reset is 'none': seek() to an offset first"
                )
            strategy, generation = state.reset, state.generation
        found = await asyncio.to_thread(
            list_offsets, self._connection, [(tp, SPECS[strategy], 0)], self.config.request_timeout_s
        )
        with self._lock:
            answer = found.get(tp)
            if answer is not None:
                self._state.complete_reset(tp, answer.offset, generation)
                fetcher.interrupt()
        return await self.position(tp)

    def _unhanded(self, tp: TopicPartition) -> int:
        """Records of ``tp`` the consumer took but ``getone`` has not handed out yet."""
        return sum(1 for r in self._records if r.topic_partition == tp)

    def _assigned(self, tp: TopicPartition) -> Any:
        try:
            return self._state.state(tp)
        except KeyError:
            raise IllegalStateError(
                f"{tp} is not assigned to this consumer; assigned: {sorted(self._state.partitions)}"
            ) from None

    def metrics(self) -> dict[str, dict[str, float]]:
        """The consumer's counters (the threaded Consumer's), as kafka-python's ``metrics()``:
        ``{"consumer-fetch-manager-metrics": {name: value}}`` with ``fetch-total``, ``fetch-error-total``,
        ``fetch-latency-avg``/``-max`` (ms), ``fetch-size-avg``/``-max`` and ``bytes-fetched-total`` (bytes
        of batches), and ``records-consumed-total`` (records handed out); see docs/client-metrics.md."""
        return (self._fetcher.metrics if self._fetcher is not None else consumer_meter()).snapshot()

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (the next record to read, per partition), or what was handed out so far."""
        self._started()
        group = self._group
        if group is None:
            raise IllegalStateError(
                "commit() needs a consumer with a group_id (offsets are committed per group)"
            )
        if offsets is None:
            with self._lock:
                offsets = group.positions_locked(None)
                for tp in offsets:
                    offsets[tp] -= self._unhanded(tp)
        await group.acommit(offsets)

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of ``partition`` (the next record to read), or None."""
        self._started()
        if self._group is None:
            raise IllegalStateError("committed() needs a consumer with a group_id")
        tp = TopicPartition(*partition)
        found = await self._group.acommitted([tp])
        return found.get(tp)
