"""Small value types shared by the producer, consumer and admin client (kafka-python's names)."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was written.

    ``offset`` is -1 with acks=0 (the broker does not say). ``timestamp`` is the record's create time, or
    the broker's append time for a topic with ``message.timestamp.type=LogAppendTime``.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int


class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times``: the first offset at or after a time, and its batch timestamp."""

    offset: int
    timestamp: int


class PartitionInfo(NamedTuple):
    """A partition as the admin client describes it."""

    partition: int
    log_start_offset: int
    log_end_offset: int


class TopicDescription(NamedTuple):
    """A topic's effective configuration and its partitions' offsets."""

    name: str
    config: dict[str, str]
    partitions: list[PartitionInfo]
