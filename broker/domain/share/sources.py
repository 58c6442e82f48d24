"""Where a share group's coordinator reads a data partition from.

On a single broker that is the partition's log. In a cluster the coordinator of a group (the leader of
its `__share_group_state` partition) is often not the leader of the data partitions its members read:
it reads its own log only where it leads the partition (and only up to the high watermark, as any
consumer), and otherwise what the cluster node's remote reader (`logstore.broker.replication.
remote_reads`) has fetched from the leader. Both look the same to the driver: a `PartitionSource`.

A remote source answers from what it has fetched; a read it cannot answer yet returns no bytes and
starts a fetch, whose arrival wakes the long-polls waiting on the partition (the `AppendWaiters` key
`(topic, partition)`, as a local append does).
"""

from __future__ import annotations

from typing import Protocol

from logstore.log import Log


class PartitionSource(Protocol):
    """What the share driver reads of one data partition. Not thread-safe: the broker's loop."""

    @property
    def log_start_offset(self) -> int:
        """The first offset still stored."""
        ...

    @property
    def log_end_offset(self) -> int:
        """The end of what may be delivered (exclusive): the log end alone, the high watermark in a
        cluster."""
        ...

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset` on, about `max_bytes` of them (at least one);
        empty when there is nothing to read yet. Raises OffsetOutOfRangeError outside the log."""
        ...

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """The first offset of a batch with a timestamp at or after `timestamp_ms`; None: none (the
        log end). Raises SourceNotReady when it has to be asked of the leader first."""
        ...


class SourceNotReady(Exception):
    """The remote source has not fetched what was asked yet; it is asking, and wakes the partition's
    waiters when the answer comes. Not a LogStoreError: it never leaves the share driver."""


class RemoteSources(Protocol):
    """The cluster node's reader of partitions other brokers lead."""

    def source(self, topic: str, partition: int) -> PartitionSource | None:
        """The partition as last fetched from its leader; None until the first answer (which wakes
        the partition's waiters)."""
        ...

    def forget_topic(self, topic: str) -> None:
        """The topic was deleted (and may be made again): drop what was fetched of it."""
        ...


class LocalSource:
    """A partition this broker holds: its log, read up to `end` (the high watermark) if given."""

    __slots__ = ("_end", "_log")

    def __init__(self, partition_log: Log, end: int | None = None) -> None:
        self._log = partition_log
        self._end = end

    @property
    def log_start_offset(self) -> int:
        return self._log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        end = self._log.log_end_offset
        return end if self._end is None else min(end, self._end)

    def read(self, offset: int, max_bytes: int) -> bytes:
        if self._end is None:
            return self._log.read(offset, max_bytes).data
        return self._log.read(offset, max_bytes, max_offset=self._end).data

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        found = self._log.offset_for_timestamp(timestamp_ms)
        if found is None or (self._end is not None and found[0] >= self._end):
            return None  # nothing committed at or after it: start at the high watermark, never past it
        return found[0]
