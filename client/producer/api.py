"""The producer: ``send()`` appends to a batch and returns a future; a sender thread does the rest.

    with Producer(bootstrap="127.0.0.1:9093") as producer:
        future = producer.send("orders", b'{"id": 7}', key=b"customer-42")
        print(future.get(timeout=10))  # RecordMetadata(topic='orders', partition=3, offset=17, ...)

Settings follow kafka-python's names and Kafka's defaults. With idempotence on (the default, unless
acks=0) the broker writes each batch once even when it is retried, and per-partition order holds with
up to five requests in flight. With idempotence off, retries may reorder records unless max_in_flight=1.

A future that fails with ``logstore.client.shared.errors.UnknownDeliveryError`` means the record may or may not have been
written (an attempt got no answer before the producer gave up); any other error means it was not.

A producer still open when the interpreter exits is closed then (waiting up to ``request_timeout_ms``),
with a warning: its buffered records are sent rather than lost, but ``close()`` belongs in the program.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

import grpc
import mmh3
from logstore.client.producer.accumulator import RECORD_OVERHEAD, Accumulator, BufferFull, ProducerBatch
from logstore.client.producer.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LINGER_MS,
    DEFAULT_PRODUCE_TRANSPORT,
    ProducerConfig,
)
from logstore.client.producer.futures import RecordFuture
from logstore.client.producer.partitioner import StickyPartitioner, key_partition
from logstore.client.producer.sender import Sender
from logstore.client.producer.unclosed import track, untrack
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Connection, Interceptor
from logstore.client.shared.errors import (
    BufferExhaustedError,
    ClosedError,
    SerializationError,
    UnknownPartitionError,
)
from logstore.client.shared.metadata import TopicMetadata
from logstore.client.shared.options import refuse_unknown_options
from logstore.client.shared.serde import Serializer, serialize

log = logging.getLogger(__name__)

_time_ns = time.time_ns
_new = object.__new__
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_murmur3 = (
    mmh3.hash
)  # the same function as client.producer.partitioner.key_partition, inlined on the hot path


Headers = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


def _agree(value: Any, default: Any, alias: Any, name: str, alias_name: str) -> None:
    """Refuse an option given under both its names with different values."""
    if value != default and value != alias:
        raise ValueError(f"{name}={value!r} and {alias_name}={alias!r} disagree: give one of them")


@refuse_unknown_options
class Producer:
    """Sends records to a logstore broker. Thread-safe: share one producer between threads.

    kafka-python's ``bootstrap_servers``, ``compression_type`` and ``max_in_flight_requests_per_connection``
    are accepted for ``bootstrap``, ``compression`` and ``max_in_flight``; ``client_id`` leads the
    user-agent of every call. An unknown option is refused with a ``TypeError`` naming the close matches.
    ``produce_transport`` (logstore's own) is ``"stream"`` (the default: requests in order on one
    ProduceStream) or ``"unary"`` (one Produce call each); see ``ProducerConfig``.
    """

    def __init__(
        self,
        bootstrap: str | list[str] = DEFAULT_BOOTSTRAP,
        *,
        acks: int | str = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger_ms: float = DEFAULT_LINGER_MS,
        compression: str | None = "none",
        max_in_flight: int = 5,
        retries: int | None = None,
        delivery_timeout_ms: float = 120_000,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        retry_backoff_max_ms: float = 1000,
        buffer_memory: int = 32 * 1024 * 1024,
        max_block_ms: float = 60_000,
        max_request_size: int = 1024 * 1024,
        enable_idempotence: bool | None = None,
        key_serializer: str | Serializer | None = None,
        value_serializer: str | Serializer | None = None,
        auto_create_topics: bool = True,
        metadata_max_age_ms: float = 300_000,
        bootstrap_servers: str | list[str] | None = None,
        compression_type: str | None = None,
        max_in_flight_requests_per_connection: int | None = None,
        client_id: str | None = None,
        interceptors: Sequence[Interceptor] = (),
        security_protocol: str = "PLAINTEXT",
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        produce_transport: str = DEFAULT_PRODUCE_TRANSPORT,
    ) -> None:
        # compression and max_in_flight are this client's shorter names for two kafka-python options;
        # ``spelled`` lets the config's errors name the one the caller wrote.
        spelled: dict[str, str] = {}
        if compression_type is None:
            compression_type, spelled["compression_type"] = compression, "compression"
        else:
            _agree(compression, "none", compression_type, "compression", "compression_type")
        in_flight_name = "max_in_flight_requests_per_connection"
        if max_in_flight_requests_per_connection is None:
            max_in_flight_requests_per_connection, spelled[in_flight_name] = max_in_flight, "max_in_flight"
        else:
            _agree(max_in_flight, 5, max_in_flight_requests_per_connection, "max_in_flight", in_flight_name)
        self.config = config = ProducerConfig(
            bootstrap_servers=bootstrap if bootstrap_servers is None else bootstrap_servers,
            acks=acks,
            batch_size=batch_size,
            linger_ms=linger_ms,
            compression_type=compression_type,
            max_in_flight_requests_per_connection=max_in_flight_requests_per_connection,
            retries=retries,
            delivery_timeout_ms=delivery_timeout_ms,
            request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms,
            retry_backoff_max_ms=retry_backoff_max_ms,
            buffer_memory=buffer_memory,
            max_block_ms=max_block_ms,
            max_request_size=max_request_size,
            enable_idempotence=enable_idempotence,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            auto_create_topics=auto_create_topics,
            metadata_max_age_ms=metadata_max_age_ms,
            client_id=client_id,
            interceptors=interceptors,
            security_protocol=security_protocol,
            ssl_cafile=ssl_cafile,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            channel_credentials=channel_credentials,
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_plain_username,
            sasl_plain_password=sasl_plain_password,
            produce_transport=produce_transport,
            spelled=spelled,
        )
        """Every option, checked, with kafka-python's names (read-only)."""
        self.acks = config.acks
        self.idempotent = config.idempotent
        self._max_block_s = config.max_block_s
        self._key_serializer = cast("Serializer | None", config.key_serializer)  # resolved by the config
        self._value_serializer = cast("Serializer | None", config.value_serializer)
        self._connection = Connection(
            config.bootstrap_servers,
            max_send_bytes=config.max_request_size,
            max_receive_bytes=1024 * 1024,
            interceptors=config.interceptors,
            client_id=config.client_id,
            security=config.security,
        )
        self._metadata = TopicMetadata(
            self._connection,
            auto_create=config.auto_create_topics,
            max_age_ms=config.metadata_max_age_ms,
            request_timeout_ms=config.request_timeout_ms,
        )
        self._counts = self._metadata.counts
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._memory_freed = threading.Condition(self._lock)
        self._accumulator = Accumulator(config, ordered=config.produce_transport == "stream")
        self._sticky = StickyPartitioner()
        self._sticky_batches: dict[str, ProducerBatch] = {}
        """The open batch of each topic's sticky partition, for keyless records on the hot path."""
        self._open_batches = self._accumulator.open_batches
        self._sender = Sender(
            self._accumulator,
            self._connection,
            self._metadata,
            self._lock,
            config,
            memory_freed=self._memory_freed,
        )
        work = self._sender.work
        self._accumulator.new_batch_hook = work.notify
        self._closed = False
        self._prepare = self._key_serializer is not None or self._value_serializer is not None
        """Whether send() must look at more than the hot path does (serializers, or closed)."""
        self._sender.start()
        track(self, config.request_timeout_s)  # closed (flushed) at interpreter exit if still open

    # --- sending --------------------------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Headers = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Queue a record and return its future (``.get(timeout)`` gives its ``RecordMetadata``).

        Blocks up to ``max_block_ms`` when the buffer is full or the topic's partitions are not yet known.
        A record that can never be sent (too large) gets a failed future; bad arguments raise at once.
        """
        if self._prepare:  # closed, or serializers to run
            value, key = self._prepared(topic, value, key)
        if timestamp_ms is None:
            timestamp_ms = _time_ns() // 1_000_000
        elif type(timestamp_ms) is not int or not _INT64_MIN <= timestamp_ms <= _INT64_MAX:
            # Checked now: the hot path below defers encoding, so the builder would see it too late.
            return self._send(topic, value, key, headers, partition, timestamp_ms)
        if type(value) is bytes and not headers:
            # The hot path: straight into the partition's open batch while its room lasts (a lower bound
            # kept by the accumulator, which decides everything else in _send below).
            batch = None
            if key is None:
                size = RECORD_OVERHEAD + len(value)
                if partition is None:
                    batch = self._sticky_batches.get(topic)
                else:
                    batch = self._open_batches.get((topic, partition))
            elif partition is None and type(key) is bytes:
                count = self._counts.get(topic)
                if count is not None:
                    size = RECORD_OVERHEAD + len(value) + len(key)
                    partition = _murmur3(key, 0, False) % count
                    batch = self._open_batches.get((topic, partition))
            if batch is not None:
                self._acquire()  # cheaper than `with` on this path
                try:
                    room = batch.room - size
                    if room >= 0 and not batch.closed:
                        batch.room = room
                        future = _new(RecordFuture)  # three slot stores: no __init__ frame
                        future._outcome = batch.outcome
                        pending = batch.pending  # encoded later, a batch at a time (ProducerBatch.settle)
                        future._delta = batch.settled + len(pending) // 3
                        pending += (value, key, timestamp_ms)
                        future._timestamp = timestamp_ms
                        return future
                finally:
                    self._release()
        return self._send(topic, value, key, headers, partition, timestamp_ms)

    def _prepared(self, topic: str, value: Any, key: Any) -> tuple[Any, Any]:
        """Refuse a closed producer; run the serializers."""
        if self._closed:
            raise ClosedError("send() on a closed producer")
        if self._value_serializer is not None:
            value = serialize(self._value_serializer, value, "value", topic)
        if key is not None and self._key_serializer is not None:
            key = serialize(self._key_serializer, key, "key", topic)
        return value, key

    def _send(
        self, topic: str, value: Any, key: Any, headers: Headers, partition: int | None, timestamp_ms: int
    ) -> RecordFuture:
        """Everything the hot path leaves: metadata, partitioning, new batches, waiting for memory."""
        if not headers:
            headers = ()
        elif isinstance(headers, Mapping):
            headers = list(headers.items())
        count = self._counts.get(topic)
        if count is None:
            count = self._metadata.partition_count(topic, self._max_block_s)
        sticky = False
        if partition is None:
            if key is None:
                partition = self._sticky.partition(topic, count)
                sticky = True
            else:
                partition = key_partition(key, count)
        elif not 0 <= partition < count:
            raise UnknownPartitionError(
                f"topic {topic!r} has partitions 0 to {count - 1}; partition {partition} does not exist"
            )
        accumulator = self._accumulator
        with self._lock:
            try:
                future = accumulator.append(
                    topic, partition, value, key, headers, timestamp_ms, time.monotonic(), sticky
                )
                if future is None:  # the sticky partition's batch completed: move on, then append
                    partition = self._sticky.on_new_batch(topic, count, partition)
                    future = accumulator.append(
                        topic, partition, value, key, headers, timestamp_ms, time.monotonic()
                    )
                    assert future is not None  # only a sticky append declines a record
            except BufferFull:
                future = self._append_when_memory_frees(topic, partition, value, key, headers, timestamp_ms)
            except TypeError as exc:
                raise SerializationError(f"cannot send to {topic!r}: {exc}") from None
            if sticky:
                batch = accumulator.open_batch(topic, partition)
                if batch is None:
                    self._sticky_batches.pop(topic, None)
                else:
                    self._sticky_batches[topic] = batch
        return future

    def _append_when_memory_frees(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        timestamp_ms: int,
    ) -> RecordFuture:
        """Wait (holding the lock's condition) until a batch's memory is released, up to max_block_ms."""
        accumulator = self._accumulator
        deadline = time.monotonic() + self._max_block_s
        accumulator.add_memory_waiter()
        try:
            while True:
                self._sender.work.notify()  # with a waiter, every batch is ready at once
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferExhaustedError(
                        f"buffer_memory ({accumulator.buffer_memory} bytes) stayed full for max_block_ms "
                        f"({self._max_block_s * 1000:.0f} ms): the broker is slower than the sends, or "
                        "unreachable; raise buffer_memory or max_block_ms, or send less"
                    )
                self._memory_freed.wait(remaining)
                if self._closed:
                    raise ClosedError("the producer was closed while send() waited for buffer memory")
                try:
                    future = accumulator.append(
                        topic, partition, value, key, headers, timestamp_ms, time.monotonic()
                    )
                except BufferFull:
                    continue
                assert future is not None
                return future
        finally:
            accumulator.remove_memory_waiter()

    def metrics(self) -> dict[str, dict[str, float]]:
        """The producer's counters, as kafka-python's ``metrics()``: ``{"producer-metrics": {name: value}}``
        with ``record-send-total``, ``record-retry-total``, ``record-error-total``, ``request-total``,
        ``request-latency-avg``/``-max`` (ms), ``batch-size-avg``/``-max`` (bytes) and
        ``records-per-batch-avg``/``-max``; totals since the start (see docs/client-metrics.md)."""
        return self._accumulator.metrics.snapshot()

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition numbers (creating the topic if it is unknown and auto-creation is on)."""
        return set(range(self._metadata.partition_count(topic, self._max_block_s)))

    # --- flush and close ------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now and wait until each record is acknowledged or has failed.

        Raises ``TimeoutError`` if records are still in flight after ``timeout`` seconds.
        """
        with self._lock:
            outcomes = self._accumulator.begin_flush()
            self._sender.work.notify()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            for outcome in outcomes:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not outcome.wait(remaining):
                    raise TimeoutError(f"flush() timed out after {timeout} s with records still in flight")
        finally:
            with self._lock:
                self._accumulator.end_flush()

    def close(self, timeout: float | None = None) -> None:
        """Send what is buffered and stop. After ``timeout`` seconds (None: no limit) records still
        unsent fail with ``ClosedError``; ``close(0)`` fails them at once. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._prepare = True
            self._accumulator.close()
            self._memory_freed.notify_all()
        if timeout is None or timeout > 0:
            self._sender.stop()
            self._sender.join(timeout)
        if self._sender.is_alive() or timeout == 0:
            with self._lock:
                finished = self._accumulator.abort(
                    ClosedError("the producer was closed before this record was acknowledged")
                )
            self._sender.stop(abort=True)
            for batch, error in finished:
                batch.outcome.fail(error)
            self._sender.join()
        self._connection.close()
        untrack(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            log.warning("a Producer was garbage-collected without close(); buffered records may be lost")
