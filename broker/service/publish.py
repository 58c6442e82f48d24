"""PublishRecords: plain records in; the broker partitions them, builds the RecordBatch v2 batches with the
one codec (`logstore.records`) and appends them through the same domain call as Produce.

So a client in any language can produce with nothing but its gRPC stubs. The partitioning and batch
building here are pure (the clock comes in as `now_ms`); `Publisher` is the driver that looks up the
topic and appends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import mmh3
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.values import Acks, AppendOutcome, ProduceEntry
from logstore.broker.errors import partition_error
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.service.calls import check_not_negative, require
from logstore.wire.logstore.v1 import common_pb2
from logstore.wire.logstore.v1 import produce_pb2 as pb

from logstore.errors import InvalidTimestampError, UnknownTopicError
from logstore.records import BatchBuilder

RECORD_OVERHEAD = 40
"""Upper bound of a record's framing in a batch beside its key, value and headers: the length, attributes,
timestamp and offset deltas, key and value lengths and header count (varints of at most 10 bytes for the
timestamp delta, 5 for the others)."""
HEADER_OVERHEAD = 10
"""Upper bound of one header's two length varints."""


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: murmur3_x86_32 (seed 0) of the key as an unsigned 32-bit integer,
    modulo the partition count. The logstore client's rule (client/producer/partitioner.py); a test
    holds the two, and the vectors in proto/README.md, together."""
    return mmh3.hash(key, 0, False) % partitions


class KeylessRoundRobin:
    """Where the records without a key of a call go: all to one partition (so they fill one batch), and
    each such call of a topic to the next partition, so calls spread evenly."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def partition(self, topic: str, partitions: int) -> int:
        chosen = self._next.get(topic, 0) % partitions
        self._next[topic] = chosen + 1
        return chosen


def place(
    records: Sequence[common_pb2.Record], partitions: int, keyless: Callable[[], int]
) -> dict[int, list[common_pb2.Record]]:
    """Each partition's records in request order: keyed ones by `key_partition`, the others to the one
    partition `keyless()` names (asked once, and only if some record has no key)."""
    placed: dict[int, list[common_pb2.Record]] = {}
    keyless_partition = -1
    for record in records:
        if record.HasField("key"):
            number = mmh3.hash(record.key, 0, False) % partitions
        else:
            if keyless_partition < 0:
                keyless_partition = keyless()
            number = keyless_partition
        found = placed.get(number)
        if found is None:
            placed[number] = [record]
        else:
            found.append(record)
    return placed


MAX_TIMESTAMP_MS = 253_402_300_799_999
"""The last millisecond of the year 9999. A batch stores its records' timestamps as deltas from the
first, so timestamps beyond ±this could not even be encoded together; those refuse the call. Negative
ones within it reach the append, which answers INVALID_TIMESTAMP for the partition as Produce does."""


def build_batches(records: Iterable[common_pb2.Record], now_ms: int, max_batch_bytes: int) -> bytes:
    """The records as uncompressed RecordBatch v2 batches back to back, each at most `max_batch_bytes`
    (a record too large for any batch gets one of its own, which the append then refuses as
    RECORD_TOO_LARGE, exactly as Produce would). Records without a timestamp get `now_ms`; one beyond
    ±MAX_TIMESTAMP_MS refuses the call (INVALID_TIMESTAMP).

    Runs of records without headers go to the builder's `append_many` (its bulk encoder: the same bytes
    as `append`, a few C-level passes instead of a Python call per record); the rest to `append`."""
    batches: list[bytes] = []
    builder = BatchBuilder()
    empty_size = size = builder.size_in_bytes()
    run: list[bytes | int | None] = []  # value, key, timestamp of each record of a headerless run
    for record in records:
        # HasField only where the field reads as its default: half the cost per record of asking always.
        key: bytes | None = record.key
        value: bytes | None = record.value
        timestamp = record.timestamp_ms
        headers = record.headers
        record_size = RECORD_OVERHEAD + len(record.key) + len(record.value)
        if not key and not record.HasField("key"):
            key = None
        if not value and not record.HasField("value"):
            value = None
        if not timestamp and not record.HasField("timestamp_ms"):
            timestamp = now_ms
        elif not -MAX_TIMESTAMP_MS <= timestamp <= MAX_TIMESTAMP_MS:
            raise InvalidTimestampError(
                f"timestamp_ms {timestamp} is beyond the year 9999 ({MAX_TIMESTAMP_MS} ms since 1970); give "
                "milliseconds since 1970, or leave it unset for the broker's time"
            )
        if headers:
            record_size += sum(HEADER_OVERHEAD + len(h.key.encode()) + len(h.value) for h in headers)
        if size != empty_size and size + record_size > max_batch_bytes:
            builder.append_many(run)
            run.clear()
            batches.append(builder.build())
            builder = BatchBuilder()
            size = empty_size
        size += record_size
        if headers or value is None:
            builder.append_many(run)
            run.clear()
            header_pairs = [(h.key, h.value if h.HasField("value") else None) for h in headers]
            builder.append(value, key, header_pairs, timestamp)
        else:
            run += (value, key, timestamp)
    builder.append_many(run)
    batches.append(builder.build())
    return b"".join(batches)


def partition_result(outcome: AppendOutcome) -> pb.ProducePartitionResult:
    """An append's outcome as Produce answers it."""
    code, message = partition_error(outcome.error)
    return pb.ProducePartitionResult(
        topic=outcome.topic,
        partition=outcome.partition,
        error_code=code,
        error_message=message,
        base_offset=outcome.base_offset,
        log_append_time_ms=outcome.log_append_time_ms,
        log_start_offset=outcome.log_start_offset,
    )


class Publisher:
    """Serves PublishRecords over the domain: the topic's partition count and batch limit, placement,
    batches, then `BrokerCore.produce` as a Produce call with one entry per partition."""

    def __init__(self, core: BrokerCore, default_timeout_ms: int, metrics: BrokerMetrics = DISABLED) -> None:
        self._core = core
        self._default_timeout_ms = default_timeout_ms
        self._metrics = metrics
        self._keyless = KeylessRoundRobin()

    def _topic(self, name: str) -> tuple[int, int]:
        """The topic's partition count and max.message.bytes, auto-creating it as a produce would."""
        topics = self._core.admin  # refused while the broker stops, before anything is auto-created
        try:
            info = topics.info(name)
        except UnknownTopicError:
            topics.describe(name, allow_auto_create=True)
            info = topics.info(name)
        return info.partitions, info.config.max_message_bytes

    async def publish(
        self, request: pb.PublishRecordsRequest, acks: Acks, now_ms: int
    ) -> pb.PublishRecordsResponse:
        require(len(request.records) > 0, "the publish request has no records; send at least one")
        check_not_negative(request.timeout_ms, "timeout_ms")
        partitions, max_batch_bytes = self._topic(request.topic)
        if request.HasField("partition"):
            placed = {request.partition: list(request.records)}
        else:
            placed = place(
                request.records, partitions, lambda: self._keyless.partition(request.topic, partitions)
            )
        entries = [
            ProduceEntry(request.topic, number, build_batches(records, now_ms, max_batch_bytes))
            for number, records in sorted(placed.items())
        ]
        timeout_s = (request.timeout_ms or self._default_timeout_ms) / 1000
        outcomes = await self._core.produce(entries, acks, timeout_s)
        self._metrics.produced("grpc", entries, outcomes)
        return pb.PublishRecordsResponse(results=[partition_result(outcome) for outcome in outcomes])
