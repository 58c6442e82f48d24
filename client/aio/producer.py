"""``AsyncProducer``: the threaded ``Producer``'s accumulator driven by one asyncio task on ``grpc.aio``.

Everything that decides what is sent (batches, idempotent sequence numbers, retries, expiry) is the
threaded client's ``Accumulator``; this module only appends to it, drains it into Produce calls and
feeds the answers back, all on the event loop's thread, so no lock is needed.

Cancelling an ``await producer.send(...)`` cancels the wait only: the record is already in a batch and
is written once, like a record whose ``RecordFuture`` nobody waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import grpc
import grpc.aio
from logstore.client.aio.futures import AsyncRecordFuture, async_future
from logstore.client.producer.accumulator import (
    RECORD_OVERHEAD,
    Accumulator,
    BufferFull,
    Finished,
    ProducerBatch,
)
from logstore.client.producer.calls import Acked, answered, by_partition, call_failed, produce_request
from logstore.client.producer.config import ProducerConfig
from logstore.client.producer.futures import BatchOutcome, RecordFuture
from logstore.client.producer.partitioner import StickyPartitioner, key_partition
from logstore.client.producer.sender import ACKS
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import Connection, channel_options, parse_bootstrap
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    BufferExhaustedError,
    ClientError,
    ClosedError,
    InvalidMetadataError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    SerializationError,
    UnknownPartitionError,
    error_from_code,
    error_from_rpc,
)
from logstore.client.shared.metadata import TopicMetadata, describe_cluster
from logstore.client.shared.serde import Serializer, serialize
from logstore.client.shared.types import RecordMetadata
from logstore.wire.logstore.v1 import produce_pb2, produce_pb2_grpc

log = logging.getLogger(__name__)

_time_ns = time.time_ns
_new = object.__new__

Headers = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


class AsyncProducer:
    """Sends records from one event loop. Options are ``ProducerConfig``'s (kafka-python's names).
    Not thread-safe: call it from its event loop only (as aiokafka's); the loop serialises its sends.

    ``start()`` (or ``async with``) before the first send; ``stop()`` sends what is buffered and closes.
    """

    def __init__(self, bootstrap_servers: str | list[str] = "127.0.0.1:9093", **options: Any) -> None:
        if options.get("produce_transport", "unary") != "unary":
            raise ValueError(
                "AsyncProducer sends unary Produce calls only: produce_transport="
                f"{options['produce_transport']!r} is the threaded Producer's option"
            )
        options["produce_transport"] = "unary"
        self.config = config = ProducerConfig(bootstrap_servers=bootstrap_servers, **options)
        self._key_serializer = cast("Serializer | None", config.key_serializer)
        self._value_serializer = cast("Serializer | None", config.value_serializer)
        self._accumulator = Accumulator(config)
        self._sticky = StickyPartitioner()
        self._acks = ACKS[config.acks]  # type: ignore[index]  # normalised to 0, 1 or -1
        self._backoff = Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms)
        # Partition counts: looked up rarely, through the threaded client's metadata cache (in a thread).
        self._sync = Connection(
            bootstrap_servers,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=1024 * 1024,
            client_id=config.client_id,
            security=config.security,
        )
        self._metadata = TopicMetadata(
            self._sync,
            auto_create=config.auto_create_topics,
            max_age_ms=config.metadata_max_age_ms,
            request_timeout_ms=config.request_timeout_ms,
        )
        self._address = parse_bootstrap(bootstrap_servers)
        self._channel: grpc.aio.Channel | None = None
        self._stub: produce_pb2_grpc.ProduceServiceStub | None = None
        self._stubs: dict[str, produce_pb2_grpc.ProduceServiceStub] = {}
        """The stub of each broker address produce calls went to (partition leaders, in a cluster)."""
        self._extra_channels: list[grpc.aio.Channel] = []
        self._refreshing: set[str] = set()
        self._work: asyncio.Event | None = None
        self._memory_freed: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._aborted = False
        self._closed = False
        self._prepare = self._key_serializer is not None or self._value_serializer is not None
        self._sticky_batches: dict[str, ProducerBatch] = {}
        """The open batch of each topic's sticky partition, for keyless records on the hot path."""

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the channel and start the sender task (on the running loop)."""
        if self._sender is not None:
            return
        config = self.config
        self._channel = config.security.aio_channel(
            self._address, channel_options(config.max_request_size, 1024 * 1024, config.client_id)
        )
        self._stub = produce_pb2_grpc.ProduceServiceStub(self._channel)
        self._stubs[self._address] = self._stub
        self._work = asyncio.Event()
        self._memory_freed = asyncio.Event()
        self._accumulator.new_batch_hook = self._work.set
        self._sender = asyncio.create_task(self._run(), name="logstore-aio-sender")

    async def stop(self, timeout: float | None = None) -> None:
        """Send what is buffered and close. After ``timeout`` seconds, records still unsent fail with
        ``ClosedError``. Idempotent."""
        if self._closed:
            return
        self._closed = self._prepare = True
        self._accumulator.close()
        if self._sender is not None:
            assert self._work is not None and self._memory_freed is not None
            self._stopping = True
            self._work.set()
            self._memory_freed.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), timeout)
            except TimeoutError:
                self._abort(ClosedError("the producer was stopped before this record was acknowledged"))
                await self._sender
            if self._calls:
                await asyncio.gather(*self._calls, return_exceptions=True)
            assert self._channel is not None
            await self._channel.close()
        for channel in self._extra_channels:
            await channel.close()
        await asyncio.to_thread(self._sync.close)

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- sending --------------------------------------------------------------------------------------

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Queue a record and wait for its ``RecordMetadata`` (raises the record's error)."""
        future = await self.send_nowait_async(topic, value, key, headers, partition, timestamp_ms)
        return await future

    def send_nowait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> AsyncRecordFuture:
        """Queue a record without waiting; await its future (``AsyncRecordFuture``) for the ``RecordMetadata``.

        The topic's partition count must be known (an earlier send to it, or ``partitions_for``), and
        the buffer must have room: otherwise ``await send()`` waits for them and this raises.
        """
        if (
            type(value) is bytes
            and key is None
            and partition is None
            and not headers
            and timestamp_ms is None
            and not self._prepare
        ):
            # The hot path, as in the threaded Producer.send: straight into the sticky partition's open
            # batch while the room the accumulator keeps for it lasts.
            batch = self._sticky_batches.get(topic)
            if batch is not None and not batch.closed:
                room = batch.room - RECORD_OVERHEAD - len(value)
                if room >= 0:
                    batch.room = room
                    pending = batch.pending
                    now_ms = _time_ns() // 1_000_000
                    future = _new(AsyncRecordFuture)  # three slot stores: no __init__ frame
                    future._outcome = batch.outcome
                    future._delta = batch.settled + len(pending) // 3
                    future._timestamp = now_ms
                    pending += (value, None, now_ms)
                    return future
        record = self._record(topic, value, key, headers, partition, timestamp_ms)
        count = self._metadata.counts.get(topic)
        if count is None:
            raise UnknownPartitionError(
                f"the partitions of {topic!r} are not known yet: await send() or partitions_for() first"
            )
        return self._append(record, count)

    async def send_nowait_async(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> AsyncRecordFuture:
        """Like ``send_nowait``, but waits (up to ``max_block_ms``) for metadata and buffer memory."""
        record = self._record(topic, value, key, headers, partition, timestamp_ms)
        count = self._metadata.counts.get(topic)
        if count is None:
            count = await self._partition_count(topic)
        deadline = time.monotonic() + self.config.max_block_s
        self._accumulator.add_memory_waiter()
        try:
            while True:
                try:
                    return self._append(record, count)
                except BufferFull:
                    pass
                assert self._work is not None and self._memory_freed is not None
                self._work.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferExhaustedError(
                        f"buffer_memory ({self._accumulator.buffer_memory} bytes) stayed full for "
                        f"max_block_ms ({self.config.max_block_s * 1000:.0f} ms)"
                    )
                self._memory_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._memory_freed.wait(), remaining)
                if self._closed:
                    raise ClosedError("the producer was stopped while send() waited for buffer memory")
        finally:
            self._accumulator.remove_memory_waiter()

    def _record(
        self,
        topic: str,
        value: Any,
        key: Any,
        headers: Headers,
        partition: int | None,
        timestamp_ms: int | None,
    ) -> tuple[str, Any, Any, Sequence[tuple[str, bytes | None]], int | None, int]:
        """Refuse a closed or unstarted producer; run the serializers; fill the defaults."""
        if self._closed:
            raise ClosedError("send() on a stopped producer")
        if self._sender is None:
            raise ClosedError("send() before start(): await producer.start() or use `async with`")
        if self._value_serializer is not None:
            value = serialize(self._value_serializer, value, "value", topic)
        if key is not None and self._key_serializer is not None:
            key = serialize(self._key_serializer, key, "key", topic)
        if not headers:
            headers = ()
        elif isinstance(headers, Mapping):
            headers = list(headers.items())
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        return topic, value, key, headers, partition, timestamp_ms

    def _append(
        self, record: tuple[str, Any, Any, Sequence[tuple[str, bytes | None]], int | None, int], count: int
    ) -> AsyncRecordFuture:
        """Partition the record and append it to the accumulator (raises ``BufferFull``)."""
        topic, value, key, headers, partition, timestamp_ms = record
        sticky = False
        if partition is None:
            if key is None:
                partition, sticky = self._sticky.partition(topic, count), True
            else:
                partition = key_partition(key, count)
        elif not 0 <= partition < count:
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0 to {count - 1}; partition {partition} does not exist"
            )
        accumulator = self._accumulator
        now = time.monotonic()
        try:
            future = accumulator.append(topic, partition, value, key, headers, timestamp_ms, now, sticky)
            if future is None:  # the sticky partition's batch completed: move on, then append
                partition = self._sticky.on_new_batch(topic, count, partition)
                future = accumulator.append(topic, partition, value, key, headers, timestamp_ms, now)
                assert future is not None
        except TypeError as exc:
            raise SerializationError(f"cannot send to {topic!r}: {exc}") from None
        if sticky:
            batch = accumulator.open_batch(topic, partition)
            if batch is None:
                self._sticky_batches.pop(topic, None)
            else:
                self._sticky_batches[topic] = batch
        return async_future(future)

    async def _partition_count(self, topic: str) -> int:
        return await asyncio.to_thread(self._metadata.partition_count, topic, self.config.max_block_s)

    def metrics(self) -> dict[str, dict[str, float]]:
        """The producer's counters (the threaded Producer's), as kafka-python's ``metrics()``: ``{"producer-metrics": {name: value}}``
        with ``record-send-total``, ``record-retry-total``, ``record-error-total``, ``request-total``,
        ``request-latency-avg``/``-max`` (ms), ``batch-size-avg``/``-max`` (bytes) and
        ``records-per-batch-avg``/``-max``; totals since the start (see docs/client-metrics.md)."""
        return self._accumulator.metrics.snapshot()

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition numbers (creating the topic if it is unknown and auto-creation is on)."""
        return set(range(await self._partition_count(topic)))

    async def flush(self) -> None:
        """Send everything buffered now and wait until each record is acknowledged or has failed."""
        assert self._work is not None
        outcomes = self._accumulator.begin_flush()
        self._work.set()
        try:
            for outcome in outcomes:
                if not outcome.done:
                    await _outcome_done(outcome)
        finally:
            self._accumulator.end_flush()

    # --- the sender task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            self._abort(ClosedError("the producer's sender task was cancelled"))
            raise
        except BaseException as exc:  # a bug: fail what is left rather than hang every flush()
            log.exception("the async producer's sender failed; failing all buffered records")
            self._abort(ClientError(f"the producer's sender task failed: {exc!r}"))

    async def _loop(self) -> None:
        accumulator = self._accumulator
        work, memory_freed = self._work, self._memory_freed
        assert work is not None and memory_freed is not None
        if accumulator.idempotent:
            await self._init_producer_id()
        max_in_flight = self.config.max_in_flight_requests_per_connection
        while True:
            work.clear()
            if self._aborted or (self._stopping and not self._calls and not accumulator.has_unfinished()):
                return
            now = time.monotonic()
            finished = accumulator.expire(now)
            if finished:
                memory_freed.set()
                self._finish(finished)
            wake: float | None = None
            while len(self._calls) < max_in_flight:
                batches, wake = accumulator.drain(now)
                if not batches:
                    break
                call = asyncio.create_task(self._send(batches))
                self._calls.add(call)
                call.add_done_callback(self._call_done)
            timeout = None if wake is None else max(0.0, wake - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(work.wait(), timeout)

    async def _init_producer_id(self) -> None:
        """Get an idempotent producer id; retried with backoff while the broker is away."""
        assert self._stub is not None and self._work is not None
        attempt = 0
        while not self._aborted and not (self._stopping and not self._accumulator.has_unfinished()):
            try:
                stub = self._stub if attempt == 0 else self._stub_for(self._sync.address)
                answer = await stub.InitProducerId(
                    produce_pb2.InitProducerIdRequest(), timeout=self.config.request_timeout_s
                )
            except grpc.RpcError as exc:
                # the broker may be away: the next attempt asks one that answers (a broker alone: it)
                await asyncio.to_thread(self._find_live_broker)
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("could not get a producer id (attempt %d, retrying): %s", attempt, exc)
                self._finish(self._accumulator.expire(time.monotonic()))
                await asyncio.sleep(self._backoff.delay_s(attempt))
                continue
            self._accumulator.set_producer_id(answer.producer_id, answer.producer_epoch)
            return

    async def _send(self, batches: list[ProducerBatch]) -> None:
        """One drained request: a Produce call per partition leader (one call for a broker alone). A
        partition without a known leader fails this attempt as retriable, and has its leaders looked up
        again (in a thread) before the retry."""
        by_leader: dict[str, list[list[ProducerBatch]]] = {}
        unroutable: list[list[ProducerBatch]] = []
        for group in by_partition(batches):
            found = self._sync.leader(group[0].topic, group[0].partition)
            if found is None:
                unroutable.append(group)
            else:
                by_leader.setdefault(found[1].address, []).append(group)
        if unroutable:
            error = NotLeaderOrFollowerError(
                f"no known leader for {', '.join(f'{g[0].topic}-{g[0].partition}' for g in unroutable)} "
                "right now: looking it up again"
            )
            now = time.monotonic()
            finished = [
                done
                for g in unroutable
                for b in g
                for done in self._accumulator.fail(b, error, now, uncertain=False)
            ]
            for topic in {g[0].topic for g in unroutable}:
                self._refresh_soon(topic)
            assert self._memory_freed is not None and self._work is not None
            self._memory_freed.set()
            self._work.set()
            self._finish(finished)
        await asyncio.gather(*(self._send_to(address, groups) for address, groups in by_leader.items()))

    def _find_live_broker(self) -> None:
        """Make the metadata connection's current broker one that answers (in a thread)."""
        with contextlib.suppress(ClientError):
            describe_cluster(self._sync, self.config.request_timeout_s)

    def _stub_for(self, address: str) -> produce_pb2_grpc.ProduceServiceStub:
        """The stub of the channel to one broker (the bootstrap broker's is made by ``start``)."""
        stub = self._stubs.get(address)
        if stub is None:
            config = self.config
            channel = config.security.aio_channel(
                address, channel_options(config.max_request_size, 1024 * 1024, config.client_id)
            )
            self._extra_channels.append(channel)
            stub = self._stubs[address] = produce_pb2_grpc.ProduceServiceStub(channel)
        return stub

    def _refresh_soon(self, topic: str) -> None:
        """Look the topic's leaders up again, in a thread, unless that is under way."""
        if topic in self._refreshing:
            return
        self._refreshing.add(topic)

        async def refresh() -> None:
            try:
                await asyncio.to_thread(self._metadata.refresh, topic)
            except ClientError as exc:
                log.debug("looking up the leaders of %s failed (the retry looks again): %s", topic, exc)
            finally:
                self._refreshing.discard(topic)

        task = asyncio.create_task(refresh())
        self._calls.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, call: asyncio.Task[None]) -> None:
        """A call (or look-up) task ended: the sender loop may have been waiting for it alone (a stop
        waits for the calls in flight)."""
        self._calls.discard(call)
        if self._work is not None:
            self._work.set()

    def _note_stale(self, groups: list[list[ProducerBatch]], error: ClientError, failed_call: bool) -> None:
        """Forget what a failure showed stale (the leader, or every partition of an unreachable broker)."""
        cluster = self._sync.cluster
        if not cluster.clustered:
            return
        if failed_call and isinstance(error, BrokerUnavailableError | RequestTimedOutError):
            for group in groups:
                leader = cluster.leader_of(group[0].topic, group[0].partition)
                if leader is not None:
                    cluster.forget_broker(leader)
        elif isinstance(error, InvalidMetadataError | NotEnoughReplicasError) or failed_call:
            for group in groups:
                cluster.forget_leader(group[0].topic, group[0].partition)
        else:
            return
        for topic in {g[0].topic for g in groups}:
            self._refresh_soon(topic)

    async def _send_to(self, address: str, groups: list[list[ProducerBatch]]) -> None:
        """One Produce call to one broker, its answer fed back to the accumulator."""
        assert self._work is not None and self._memory_freed is not None
        accumulator = self._accumulator
        request = produce_request(groups, accumulator.producer_id, self._acks)
        finished: Finished = []
        acked: Acked = []
        try:
            response = await self._stub_for(address).Produce(request, timeout=self.config.request_timeout_s)
        except grpc.RpcError as exc:
            if self._aborted:
                return
            self._note_stale(groups, error_from_rpc(exc, "Produce"), True)
            finished = call_failed(accumulator, groups, exc, time.monotonic())
        else:
            if self._aborted:
                return
            for group, result in zip(groups, response.results, strict=False):
                if result.error_code:
                    self._note_stale([group], error_from_code(result.error_code, ""), False)
            finished, acked = answered(accumulator, groups, list(response.results), time.monotonic())
        finally:
            self._memory_freed.set()
            self._work.set()
        for batch, base_offset, append_time in acked:
            batch.outcome.resolve(base_offset, append_time)  # its records' futures and callbacks
        self._finish(finished)

    def _finish(self, finished: Finished) -> None:
        for batch, error in finished:
            batch.outcome.fail(error)

    def _abort(self, error: BaseException) -> None:
        """Fail every unfinished record at once (a stop that ran out of time, or a cancelled task)."""
        if self._aborted:
            return
        self._aborted = True
        self._finish(self._accumulator.abort(error))
        for call in self._calls:
            call.cancel()
        if self._work is not None:
            self._work.set()


def _outcome_done(outcome: BatchOutcome) -> asyncio.Future[None]:
    """Wait for a batch's outcome without a thread: a callback of one of its records' futures."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    probe = RecordFuture(outcome, 0, -1)

    def done(_: RecordFuture) -> None:
        if not future.done():
            future.set_result(None)

    probe.add_done_callback(done)
    return future
