"""The consumer: ``assign()`` partitions (or follow whole topics), then ``poll()`` or iterate.

    with Consumer(bootstrap="127.0.0.1:9093", auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        for record in consumer:
            print(record.offset, record.value)

A background fetcher reads ahead while the application handles records (see ``logstore.client.consumer.fetcher``); the
subscription state (``logstore.client.consumer.subscription``) is a pure core. With a ``group_id``, ``subscribe()`` joins a
consumer group (``logstore.client.groups.driver``): the broker shares the partitions among the members and the consumer
commits its positions (auto-commit by default, or ``commit()``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import grpc
from logstore.client.consumer.config import FOREVER, ConsumerConfig
from logstore.client.consumer.fetcher import Fetcher
from logstore.client.consumer.offsets import EARLIEST, LATEST, SPECS, TIMESTAMP, list_offsets
from logstore.client.consumer.records import DECODE_CHUNK, ConsumerRecord, deserialize
from logstore.client.consumer.subscription import SubscriptionState
from logstore.client.groups.driver import CommitCallback, ConsumerRebalanceListener, GroupCoordinator
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Connection
from logstore.client.shared.errors import (
    ClosedError,
    IllegalStateError,
    NoOffsetForPartitionError,
)
from logstore.client.shared.metadata import describe_topic
from logstore.client.shared.options import refuse_unknown_options
from logstore.client.shared.serde import Deserializer
from logstore.client.shared.types import OffsetAndTimestamp, TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2

_FOREVER = FOREVER


@refuse_unknown_options
class Consumer:
    """Reads records from assigned partitions. Not thread-safe (like Kafka's): use it from one thread,
    except ``close()`` which may come from another.

    Group timing, as kafka-python names it: ``session_timeout_ms`` is how long the broker waits for a
    heartbeat before it removes this member and hands its partitions on (None: the broker's
    group_session_timeout_ms; the broker refuses values outside its group_min/max_session_timeout_ms);
    ``heartbeat_interval_ms`` caps the pace the broker asks for (None: the broker's); a member that does
    not call poll() for ``max_poll_interval_ms`` (None: no limit) leaves the group, losing its partitions
    without a commit, and rejoins at its next poll."""

    def __init__(
        self,
        *topics: str,
        bootstrap: str | list[str] = DEFAULT_BOOTSTRAP,
        group_id: str | None = None,
        auto_offset_reset: str = "latest",
        fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500,
        max_partition_fetch_bytes: int = 1024 * 1024,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_poll_records: int = 500,
        key_deserializer: str | Deserializer | None = None,
        value_deserializer: str | Deserializer | None = None,
        enable_auto_commit: bool = True,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        retry_backoff_max_ms: float = 1000,
        consumer_timeout_ms: float = _FOREVER,
        bootstrap_servers: str | list[str] | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
        auto_commit_interval_ms: float = 5000,
        group_instance_id: str | None = None,
        server_assignor: str | None = None,
        rebalance_timeout_ms: int = 0,
        client_id: str = "logstore-python",
        check_crcs: bool = True,
        session_timeout_ms: int | None = None,
        heartbeat_interval_ms: int | None = None,
        max_poll_interval_ms: int | None = 300_000,
        security_protocol: str = "PLAINTEXT",
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
    ) -> None:
        self.config = config = ConsumerConfig(
            bootstrap_servers=bootstrap if bootstrap_servers is None else bootstrap_servers,
            group_id=group_id,
            auto_offset_reset=auto_offset_reset,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            fetch_max_bytes=fetch_max_bytes,
            max_poll_records=max_poll_records,
            key_deserializer=key_deserializer,
            value_deserializer=value_deserializer,
            enable_auto_commit=enable_auto_commit,
            request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms,
            retry_backoff_max_ms=retry_backoff_max_ms,
            consumer_timeout_ms=consumer_timeout_ms,
            interceptors=interceptors,
            auto_commit_interval_ms=auto_commit_interval_ms,
            group_instance_id=group_instance_id,
            server_assignor=server_assignor,
            rebalance_timeout_ms=rebalance_timeout_ms,
            client_id=client_id,
            check_crcs=check_crcs,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            security_protocol=security_protocol,
            ssl_cafile=ssl_cafile,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            channel_credentials=channel_credentials,
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_plain_username,
            sasl_plain_password=sasl_plain_password,
        )
        """Every option, checked, with kafka-python's names (read-only)."""
        self.enable_auto_commit = (
            enable_auto_commit  # meaningful with groups only; kept for kafka-python code
        )
        self._max_poll_records = config.max_poll_records
        self._consumer_timeout_s = config.consumer_timeout_s
        self._request_timeout_s = config.request_timeout_s
        self._key_deserializer = cast(
            "Deserializer | None", config.key_deserializer
        )  # resolved by the config
        self._value_deserializer = cast("Deserializer | None", config.value_deserializer)
        self._connection = Connection(
            config.bootstrap_servers,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=max(config.fetch_max_bytes, config.max_partition_fetch_bytes),
            interceptors=config.interceptors,
            security=config.security,
        )
        self._state = SubscriptionState(config.auto_offset_reset)
        self._lock = threading.Lock()
        self._fetcher = Fetcher(
            self._connection,
            self._state,
            self._lock,
            fetch_min_bytes=config.fetch_min_bytes,
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            max_partition_fetch_bytes=config.max_partition_fetch_bytes,
            fetch_max_bytes=config.fetch_max_bytes,
            request_timeout_ms=config.request_timeout_ms,
            retry_backoff=Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms),
            check_crcs=config.check_crcs,
        )
        self._closed = False
        self._iterator: Iterator[ConsumerRecord] | None = None
        self._group: GroupCoordinator | None = None
        if config.group_id is not None:
            self._group = GroupCoordinator(
                config.group_id,
                self._connection,
                self._state,
                self._fetcher,
                instance_id=config.group_instance_id,
                server_assignor=config.server_assignor,
                rebalance_timeout_ms=config.rebalance_timeout_ms,
                client_id=config.client_id,
                enable_auto_commit=config.enable_auto_commit,
                auto_commit_interval_ms=config.auto_commit_interval_ms,
                request_timeout_s=config.request_timeout_s,
                retry_backoff=Backoff(config.retry_backoff_ms, config.retry_backoff_max_ms),
                session_timeout_ms=config.session_timeout_ms,
                heartbeat_interval_ms=config.heartbeat_interval_ms,
                max_poll_interval_ms=config.max_poll_interval_ms,
            )
        self._fetcher.start()
        if topics:
            self.subscribe(topics)

    # --- what to read ---------------------------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Read exactly these partitions (replacing any earlier assignment). New ones start per
        ``auto_offset_reset`` unless you ``seek()``."""
        wanted = [TopicPartition(*tp) for tp in partitions]
        with self._lock:
            self._check_open()
            if self._state.subscribed_topics or (self._group is not None and self._group.subscribed):
                raise IllegalStateError(
                    "this consumer follows topics (subscribe); call unsubscribe() before assign()"
                )
            dropped = set(self._state.partitions) - set(wanted)
            self._state.assign(wanted)
            self._fetcher.clear(dropped)
            self._fetcher.interrupt()

    def subscribe(
        self,
        topics: Iterable[str] = (),
        pattern: str | None = None,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        """With a group: join it, sharing the partitions of ``topics`` (and of topics whose whole name matches
        ``pattern``) with its other members; ``listener`` hears of partitions coming and going.
        Without a group: read every partition of ``topics``, including partitions added later."""
        names = list(topics)
        if not all(isinstance(t, str) and t for t in names) or not (names or (pattern and self._group)):
            raise ValueError(f"subscribe() needs topic names (or a pattern, with a group_id), got {names!r}")
        if self._group is not None:
            self._check_open()
            if self._state.partitions and not self._group.subscribed:
                raise IllegalStateError(
                    "this consumer has assigned partitions; call unsubscribe() before subscribe()"
                )
            self._group.subscribe(names, pattern, listener)
            return
        if pattern or listener:
            raise IllegalStateError("subscribe(pattern=..., listener=...) needs a consumer with a group_id")
        with self._lock:
            self._check_open()
            if self._state.partitions and not self._state.subscribed_topics:
                raise IllegalStateError(
                    "this consumer has assigned partitions; call unsubscribe() before subscribe()"
                )
            self._state.subscribe(names)
            self._fetcher.interrupt()

    def unsubscribe(self) -> None:
        """Stop reading everything (assigned or subscribed); with a group, leave it."""
        if self._group is not None and self._group.subscribed:
            self._group.unsubscribe()
        with self._lock:
            self._state.subscribe(())
            self._state.assign(())
            self._fetcher.clear()
            self._fetcher.interrupt()

    def assignment(self) -> set[TopicPartition]:
        with self._lock:
            return self._state.assignment()

    def subscription(self) -> set[str]:
        group = self._group.subscription() if self._group is not None else None
        return set(group.topics) if group is not None else set(self._state.subscribed_topics)

    # --- reading ---------------------------------------------------------------------------------------------

    def poll(
        self, timeout_ms: float = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records fetched so far, up to ``max_records`` (default ``max_poll_records``), waiting up to
        ``timeout_ms`` for some. Positions move past every record returned. Raises errors the fetcher
        met (an unknown topic, an offset out of range with auto_offset_reset="none", ...).

        A corrupt batch (it fails its CRC, or its records do not decode) raises CorruptRecordError once
        the records before it were returned. It names the partition and the offset where the position
        stays; every poll raises it again until ``seek()`` moves past it (``error.next_offset``, the
        offset after the batch, or ``error.offset + 1`` when that is -1) or back to it to retry."""
        limit = self._max_poll_records if max_records is None else max_records
        if limit < 1:
            raise ValueError(f"max_records must be at least 1, got {limit}")
        records = self._next(limit, timeout_ms / 1000.0)
        if records and (self._key_deserializer is not None or self._value_deserializer is not None):
            for chunk in records.values():
                self._deserialize(chunk)
        return records

    def _next(self, limit: int, timeout_s: float) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records as ``_take`` gives them; a group member also runs its rebalance steps and auto-commit."""
        if self._group is None:
            return self._take(limit, timeout_s)
        return self._group.poll(self._take, limit, timeout_s)

    def _take(self, limit: int, timeout_s: float) -> dict[TopicPartition, list[ConsumerRecord]]:
        fetcher = self._fetcher
        with self._lock:
            self._check_open()
            if (
                not self._state.partitions
                and not self._state.subscribed_topics
                and not self._group_subscribed()
            ):
                raise IllegalStateError("no partitions to read: call assign() or subscribe() first")
            records = fetcher.take(limit)
            if records or timeout_s <= 0:
                return records
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or (self._group is not None and self._group.has_work()):
                    return records
                fetcher.data_ready.wait(min(remaining, 3600.0))
                records = fetcher.take(limit)
                if records:
                    return records

    def _deserialize(self, records: list[ConsumerRecord]) -> None:
        deserialize(records, self._key_deserializer, self._value_deserializer)

    def __iter__(self) -> Iterator[ConsumerRecord]:
        """Records one by one, waiting for more; stops after ``consumer_timeout_ms`` without any (default:
        never) or when the consumer is closed. Positions move past each chunk (up to max_poll_records, and
        at most 512 records) as it is handed out, as with poll()."""
        if self._iterator is None:
            # chain walks each chunk in C: no generator frame to resume per record
            self._iterator = itertools.chain.from_iterable(self._chunks())
        return self._iterator

    def __next__(self) -> ConsumerRecord:
        return next(iter(self))

    def _chunks(self) -> Iterator[list[ConsumerRecord]]:
        deserialize = self._key_deserializer is not None or self._value_deserializer is not None
        timeout = self._consumer_timeout_s
        # Small chunks, each dropped before the next is decoded, keep the garbage collector idle (see
        # client.consumer.records.DECODE_CHUNK); positions still move only past what was handed out.
        limit = min(self._max_poll_records, DECODE_CHUNK)
        try:
            while not self._closed:
                try:
                    taken = self._next(limit, timeout)
                except ClosedError:
                    break
                if not taken:
                    if timeout != _FOREVER or self._closed:
                        break
                    continue
                for chunk in taken.values():
                    if deserialize:
                        self._deserialize(chunk)
                    yield chunk
        finally:
            # A later iteration starts afresh: after a consumer_timeout_ms pause, or after an error (a
            # corrupt batch) that the application handled, e.g. by seeking past it.
            self._iterator = None

    # --- committed offsets (with a group_id) ------------------------------------------------------------------

    def metrics(self) -> dict[str, dict[str, float]]:
        """The consumer's counters, as kafka-python's ``metrics()``:
        ``{"consumer-fetch-manager-metrics": {name: value}}`` with ``fetch-total``, ``fetch-error-total``,
        ``fetch-latency-avg``/``-max`` (ms), ``fetch-size-avg``/``-max`` and ``bytes-fetched-total`` (bytes
        of batches), and ``records-consumed-total`` (records handed out); see docs/client-metrics.md."""
        return self._fetcher.metrics.snapshot()

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (per partition, the next record to read) or the positions of every assigned
        partition, and wait. Raises CommitFailedError if the partitions were reassigned meanwhile, or while
        this consumer (re)joins its group: a subscribed consumer commits only as the member it is."""
        self._check_open()
        self._group_needed("commit()").commit(offsets)

    def commit_async(
        self, offsets: Mapping[TopicPartition, int] | None = None, callback: CommitCallback | None = None
    ) -> Any:
        """Commit without waiting; returns a future and calls ``callback(offsets, error_or_None)``."""
        self._check_open()
        return self._group_needed("commit_async()").commit_async(offsets, callback)

    def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of ``partition`` (the next record to read), or None."""
        self._check_open()
        tp = TopicPartition(*partition)
        return self._group_needed("committed()").committed([tp]).get(tp)

    def _group_needed(self, what: str) -> GroupCoordinator:
        if self._group is None:
            raise IllegalStateError(
                f"{what} needs a consumer with a group_id (offsets are committed per group)"
            )
        return self._group

    def _group_subscribed(self) -> bool:
        return self._group is not None and self._group.subscribed

    # --- positions ------------------------------------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (next poll)."""
        tp = TopicPartition(*partition)
        with self._lock:
            self._assigned(tp)
            self._state.seek(tp, offset)
            self._fetcher.interrupt()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read from the earliest offset still stored (of the given partitions, or all assigned)."""
        self._request_reset(partitions, "earliest")

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Read only what is appended from now on (of the given partitions, or all assigned)."""
        self._request_reset(partitions, "latest")

    def _request_reset(self, partitions: tuple[TopicPartition, ...], strategy: str) -> None:
        with self._lock:
            tps = [TopicPartition(*tp) for tp in partitions] or list(self._state.partitions)
            for tp in tps:
                self._assigned(tp)
            for tp in tps:
                self._state.request_reset(tp, strategy)
            self._fetcher.interrupt()

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record poll() will return for ``partition`` (looking it up if needed)."""
        tp = TopicPartition(*partition)
        with self._lock:
            state = self._assigned(tp)
            if state.position is not None:
                return state.position
            if state.reset not in SPECS:
                raise NoOffsetForPartitionError(
                    f"{tp} has no position and auto_offset_reset is 'none': seek() to an offset first"
                )
            strategy, generation = state.reset, state.generation
        found = list_offsets(self._connection, [(tp, SPECS[strategy], 0)], self._request_timeout_s)[tp]
        with self._lock:
            if found is not None:
                self._state.complete_reset(tp, found.offset, generation)
                self._fetcher.interrupt()
            state = self._assigned(tp)
            if state.position is None:  # seeked or reset again meanwhile: ask afresh
                return self.position(tp)
            return state.position

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as of the last fetch answer (None before the first)."""
        with self._lock:
            return self._assigned(TopicPartition(*partition)).high_watermark

    def lag(self, partition: TopicPartition) -> int | None:
        """Records between the position and the last known end of the partition (None if unknown)."""
        with self._lock:
            state = self._assigned(TopicPartition(*partition))
            if state.high_watermark is None or state.position is None:
                return None
            return max(0, state.high_watermark - state.position)

    def _assigned(self, tp: TopicPartition) -> Any:
        try:
            return self._state.state(tp)
        except KeyError:
            raise IllegalStateError(
                f"{tp} is not assigned to this consumer; assigned: {sorted(self._state.partitions)}"
            ) from None

    # --- offset lookups --------------------------------------------------------------------------------------

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset still stored, per partition (assigned or not)."""
        return self._lookup(partitions, EARLIEST)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next appended record will get, per partition."""
        return self._lookup(partitions, LATEST)

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the first offset whose batch has a timestamp at or after the given time (ms), with
        that timestamp; None when every record is older. Seek to it to replay from a moment."""
        queries = []
        for partition, timestamp in timestamps.items():
            if not isinstance(timestamp, int) or timestamp < 0:
                raise ValueError(
                    f"timestamps must be non-negative ints (ms since the epoch), got {timestamp!r}"
                )
            queries.append((TopicPartition(*partition), TIMESTAMP, timestamp))
        self._check_open()
        return list_offsets(self._connection, queries, self._request_timeout_s)

    def _lookup(
        self, partitions: Iterable[TopicPartition], spec: fetch_pb2.OffsetSpec
    ) -> dict[TopicPartition, int]:
        self._check_open()
        found = list_offsets(
            self._connection, [(TopicPartition(*tp), spec, 0) for tp in partitions], self._request_timeout_s
        )
        return {tp: answer.offset if answer is not None else -1 for tp, answer in found.items()}

    def partitions_for_topic(self, topic: str) -> set[int]:
        """The topic's partition numbers (raises UnknownTopicError if there is no such topic)."""
        self._check_open()
        return {
            p.partition for p in describe_topic(self._connection, topic, self._request_timeout_s).partitions
        }

    # --- pause -----------------------------------------------------------------------------------------------

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop returning (and fetching) records of these partitions until resume(); positions stay."""
        with self._lock:
            tps = [TopicPartition(*tp) for tp in partitions]
            for tp in tps:
                self._assigned(tp)
            for tp in tps:
                self._state.pause(tp)
            self._fetcher.interrupt()

    def resume(self, *partitions: TopicPartition) -> None:
        with self._lock:
            tps = [TopicPartition(*tp) for tp in partitions]
            for tp in tps:
                self._assigned(tp)
            for tp in tps:
                self._state.resume(tp)
            self._fetcher.interrupt()
            self._fetcher.data_ready.notify_all()

    def paused(self) -> set[TopicPartition]:
        with self._lock:
            return self._state.paused()

    # --- life cycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop fetching and release the connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
        if self._group is not None:
            self._group.close()  # commits and leaves while the consumer still works
        with self._lock:
            self._closed = True
        self._fetcher.close()
        self._fetcher.join(self._request_timeout_s)
        self._connection.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this consumer is closed")

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
