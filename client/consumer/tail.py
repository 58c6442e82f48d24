"""A live tail without a group: records pushed by the broker as they are appended (pub/sub style).

    with tail("orders", bootstrap="127.0.0.1:9093") as records:
        for record in records:   # blocks for the next record; close() from another thread ends it
            print(record.value)

It uses the broker's ``Subscribe`` stream, starts at the end of each partition (or the beginning, or a
time), keeps no state on the broker and commits nothing. Start offsets are looked up when the tail
opens, and it follows by offset from then on, so if the broker restarts the tail reconnects and carries on
from the next offset of each partition without losing or repeating records.

In a cluster it keeps one stream per partition leader (``tail_streams``), and when a leader goes away
or stops leading a partition, it finds the new leader and subscribes there from the partition's next
offset, with the same guarantee.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import grpc
from logstore.client.consumer.fetcher import CompletedFetch
from logstore.client.consumer.offsets import EARLIEST, LATEST, TIMESTAMP, list_offsets
from logstore.client.consumer.records import DECODE_CHUNK, ConsumerRecord, with_deserializers
from logstore.client.consumer.tail_streams import Stream, Streams
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import DEFAULT_BOOTSTRAP, Connection
from logstore.client.shared.errors import ClosedError, CorruptRecordError, error_from_code
from logstore.client.shared.metadata import describe_topic
from logstore.client.shared.security import Security
from logstore.client.shared.serde import Deserializer, resolve_deserializer
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import fetch_pb2


class Tail:
    """Iterate to receive records as they arrive; ``close()`` (from any thread) ends the iteration.

    A corrupt batch ends the iteration with a CorruptRecordError once the records before it were
    delivered; ``positions`` then holds the corrupt batch's offset. Set it past the batch (the error's
    ``next_offset``) and iterate again to go on.

    Not thread-safe: iterate from one thread; only ``close()`` may come from another.
    """

    def __init__(
        self,
        *topics: str,
        bootstrap: str | list[str] = DEFAULT_BOOTSTRAP,
        partitions: Iterable[TopicPartition] | None = None,
        start: str = "latest",
        from_time_ms: int | None = None,
        key_deserializer: str | Deserializer | None = None,
        value_deserializer: str | Deserializer | None = None,
        max_bytes: int = 1024 * 1024,
        request_timeout_ms: float = 30_000,
        reconnect_backoff_ms: float = 100,
        reconnect_backoff_max_ms: float = 2000,
        security_protocol: str = "PLAINTEXT",
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
    ) -> None:
        if start not in ("latest", "earliest"):
            raise ValueError(f"start must be 'latest' or 'earliest', got {start!r}")
        if not topics and partitions is None:
            raise ValueError("name the topics (or partitions) to follow")
        self._timeout_s = request_timeout_ms / 1000.0
        self._max_bytes = max_bytes
        self._key_deserializer = resolve_deserializer(key_deserializer, "key_deserializer")
        self._value_deserializer = resolve_deserializer(value_deserializer, "value_deserializer")
        self._backoff = Backoff(reconnect_backoff_ms, reconnect_backoff_max_ms)
        self._connection = Connection(
            bootstrap,
            max_send_bytes=1024 * 1024,
            max_receive_bytes=max_bytes,
            security=Security(
                security_protocol=security_protocol,
                ssl_cafile=ssl_cafile,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                channel_credentials=channel_credentials,
                sasl_mechanism=sasl_mechanism,
                sasl_plain_username=sasl_plain_username,
                sasl_plain_password=sasl_plain_password,
            ),
        )
        self._lock = threading.Lock()
        self._streams: Streams | None = None
        self._closed = False
        try:
            wanted = [TopicPartition(*tp) for tp in partitions or ()]
            for topic in topics:
                count = len(describe_topic(self._connection, topic, self._timeout_s).partitions)
                wanted.extend(TopicPartition(topic, p) for p in range(count))
            self.positions = self._start_offsets(wanted, start, from_time_ms)
            """The next offset the tail will deliver, per partition."""
        except BaseException:
            self._connection.close()
            raise

    def _start_offsets(
        self, partitions: list[TopicPartition], start: str, from_time_ms: int | None
    ) -> dict[TopicPartition, int]:
        if from_time_ms is not None:
            found = list_offsets(
                self._connection, [(tp, TIMESTAMP, from_time_ms) for tp in partitions], self._timeout_s
            )
            ends = list_offsets(self._connection, [(tp, LATEST, 0) for tp in partitions], self._timeout_s)
            return {tp: (found[tp] or ends[tp]).offset for tp in partitions}  # type: ignore[union-attr]
        spec = LATEST if start == "latest" else EARLIEST
        found = list_offsets(self._connection, [(tp, spec, 0) for tp in partitions], self._timeout_s)
        return {tp: found[tp].offset for tp in partitions}  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[ConsumerRecord]:
        with self._lock:
            if self._closed:
                return
            streams = self._streams = Streams(
                self._connection,
                self.positions,
                max_bytes=self._max_bytes,
                timeout_s=self._timeout_s,
                backoff=self._backoff,
                closing=lambda: self._closed,
            )
        try:
            while True:
                taken = streams.next()
                if taken is None:
                    return
                stream, message = taken
                yield from self._records(message, stream)
        finally:  # closed, a corrupt batch, or the application stopped iterating: end every stream
            streams.close()
            with self._lock:
                if self._streams is streams:
                    self._streams = None

    def _records(
        self, message: fetch_pb2.SubscribeResponse, stream: Stream | None = None
    ) -> Iterator[ConsumerRecord]:
        streams = self._streams if stream is not None else None
        for result in message.partitions:
            tp = TopicPartition(result.topic, result.partition)
            if result.error_code:
                error = error_from_code(result.error_code, result.error_message, where=str(tp))
                if stream is not None and streams is not None and streams.reroute(stream, tp, error):
                    continue  # leadership moved (or the broker had a moment): subscribed again elsewhere
                self.positions.pop(tp, None)
                raise error
            # Decoded as the consumer does: the records before a corrupt batch are delivered first, then
            # a CorruptRecordError (not the storage engine's raw error) names the partition and offset.
            fetched = CompletedFetch(tp, 0, result.records, self.positions[tp])
            while True:
                try:
                    records = fetched.take(DECODE_CHUNK, self.positions[tp])
                except CorruptRecordError as exc:
                    raise _for_tail(exc, tp) from None
                if not records:
                    break
                self.positions[tp] = records[-1].offset + 1
                if streams is not None:
                    streams.arrived(tp)
                if self._key_deserializer is not None or self._value_deserializer is not None:
                    with_deserializers(records, self._key_deserializer, self._value_deserializer)
                yield from records

    def close(self) -> None:
        """End the tail (an iteration in another thread returns). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            streams = self._streams
        if streams is not None:
            streams.close()
        self._connection.close()

    def __enter__(self) -> Tail:
        if self._closed:
            raise ClosedError("this tail is closed")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _for_tail(error: CorruptRecordError, tp: TopicPartition) -> CorruptRecordError:
    """The consumer's corrupt-batch error, saying how a tail moves past: there is no seek()."""
    skip_to = error.next_offset if error.next_offset >= 0 else error.offset + 1
    return CorruptRecordError(
        f"{error}. This tail stopped there; to skip the batch set tail.positions[{tp!r}] = {skip_to} and "
        "iterate again",
        topic=error.topic,
        partition=error.partition,
        offset=error.offset,
        next_offset=error.next_offset,
    )


def tail(*topics: str, bootstrap: str | list[str] = DEFAULT_BOOTSTRAP, **options: object) -> Tail:
    """Follow ``topics`` live from their ends (see ``Tail`` for the options)."""
    return Tail(*topics, bootstrap=bootstrap, **options)  # type: ignore[arg-type]
