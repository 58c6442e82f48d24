"""Dead letters: archived records of a share group copied to its dead-letter topic.

A record is archived when a member rejects it or its delivery count reaches the group's limit. If the
group names a dead-letter topic (errors.deadletterqueue.topic.name), the driver hands the archived
ranges here: the source records are read back (offsets gone to retention or compaction are skipped),
and one record per archived source record is appended to the dead-letter topic with headers naming where
it came from and why. This is the only place the broker decodes records of a share group.

The topic is created with one partition if it does not exist; a record goes to the partition its key
hashes to (unsigned murmur3, as the producer's default partitioner), or partition 0 without a key.
Delivery is at least once: the archive is persisted after the append, so a crash in between sends the
record again after the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import mmh3
from logstore.broker.domain.share.state_store import Written
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.waiters import AppendWaiters
from logstore.broker.share_machine.model import Archived

from logstore.errors import LogStoreError, OffsetOutOfRangeError, UnknownTopicError
from logstore.log import Log
from logstore.records import BatchBuilder, Record, iter_headers, iter_records

log = logging.getLogger(__name__)

HEADER_TOPIC = "__dlq.errors.topic"
HEADER_PARTITION = "__dlq.errors.partition"
HEADER_OFFSET = "__dlq.errors.offset"
HEADER_DELIVERY_COUNT = "__dlq.errors.delivery.count"
HEADER_REASON = "__dlq.errors.reason"
HEADER_GROUP = "__dlq.errors.group.id"
READ_BYTES = 1 << 20
BATCH_BYTES = 512 * 1024
"""A dead-letter batch is cut at about this size (well under any topic's max.message.bytes default)."""


@dataclass(frozen=True, slots=True)
class DeadLetterTarget:
    """Where a group's archived records go."""

    group_id: str
    topic: str
    copy_record: bool


class DeadLetters:
    """Appends archived records to dead-letter topics. Not thread-safe: the broker's event loop only."""

    def __init__(self, topics: Topics, waiters: AppendWaiters) -> None:
        self._topics = topics
        self._waiters = waiters

    def send(
        self, target: DeadLetterTarget, topic: str, partition: int, archived: Sequence[Archived]
    ) -> list[Written]:
        """Append a dead letter per archived record still in the log; returns what to flush."""
        if not archived:
            return []
        try:
            source = self._topics.log(topic, partition)
            partitions = self._dead_letter_partitions(target.topic)
        except LogStoreError as exc:
            log.warning(
                "share group %s: cannot send %d archived ranges of %s-%d to dead-letter topic %s: %s",
                target.group_id,
                len(archived),
                topic,
                partition,
                target.topic,
                exc,
            )
            return []
        spans = ((span, _records(source, span.first_offset, span.last_offset)) for span in archived)
        return [
            self._append(target.topic, number, batch)
            for number, batch in dead_letter_batches(target, topic, partition, spans, partitions)
        ]

    def _dead_letter_partitions(self, name: str) -> int:
        try:
            return self._topics.info(name).partitions
        except UnknownTopicError:
            self._topics.create(name, 1)
            log.info("created dead-letter topic %s with 1 partition", name)
            return 1

    def _append(self, name: str, number: int, batch: bytes) -> Written:
        target_log: Log = self._topics.log(name, number)
        result = target_log.append(batch)
        self._waiters.notify((name, number))
        return Written(target_log, result.last_offset, name, number)


def dead_letter_batches(
    target: DeadLetterTarget,
    topic: str,
    partition: int,
    spans: Iterable[tuple[Archived, Iterable[Record]]],
    partitions: int,
) -> Iterator[tuple[int, bytes]]:
    """(dead-letter partition, batch) for the archived records of `topic`-`partition`, given with the
    span that archived them; batches are cut at about BATCH_BYTES. Pure: the local and the cluster's
    senders both build with it."""
    builders: dict[int, BatchBuilder] = {}
    for span, records in spans:
        for record in records:
            number = _partition_for(record.key, partitions)
            builder = builders.get(number)
            if builder is None:
                builder = builders[number] = BatchBuilder()
            builder.append(
                record.value if target.copy_record else None,
                key=record.key if target.copy_record else None,
                headers=_headers(target, topic, partition, record, span),
            )
            if builder.size_in_bytes() >= BATCH_BYTES:
                yield number, builders.pop(number).build()
    for number, builder in builders.items():
        yield number, builder.build()


def _records(source: Log, first: int, last: int) -> Iterator[Record]:
    """The records of `source` in [first, last] that are still there."""
    offset = first
    while offset <= last:
        try:
            data = source.read(offset, READ_BYTES).data
        except OffsetOutOfRangeError as exc:
            if offset < exc.log_start_offset:  # retention removed the start: go on from what is left
                offset = exc.log_start_offset
                continue
            return
        if not data:
            return
        for record in iter_records(data):
            if record.offset > last:
                return
            if record.offset >= offset:
                yield record
        # past the last batch read (by its header: compaction may have removed its last records)
        offset = max(offset + 1, batches_end(data))


def batches_end(data: bytes) -> int:
    """The offset after the last whole batch in `data` (0 if there is none)."""
    end = 0
    for _, header in iter_headers(data):
        end = header.last_offset + 1
    return end


def _partition_for(key: bytes | None, partitions: int) -> int:
    if key is None or partitions == 1:
        return 0
    return int(mmh3.hash(key, 0, signed=False)) % partitions


def _headers(
    target: DeadLetterTarget, topic: str, partition: int, record: Record, span: Archived
) -> list[tuple[str, bytes | None]]:
    headers: list[tuple[str, bytes | None]] = list(record.headers) if target.copy_record else []
    headers += [
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
        (HEADER_DELIVERY_COUNT, str(span.delivery_count).encode()),
        (HEADER_REASON, span.reason.value.encode()),
        (HEADER_GROUP, target.group_id.encode()),
    ]
    return headers
