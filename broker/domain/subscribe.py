"""Subscriptions: push a partition's batches as they are appended, from a chosen start.

A subscription keeps one position per partition. Each round reads every partition from its position
(starting from a different one each round, so a busy partition cannot starve the others), yields what
it found, and sleeps on the append waiters when there was nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from logstore.broker.domain.errors import ShuttingDownError
from logstore.broker.domain.fetch import read_partition
from logstore.broker.domain.topics import Topics
from logstore.broker.domain.values import FetchSpec, PartitionRead, StartFrom, SubscribeStart
from logstore.broker.domain.waiters import AppendWaiters, PartitionKey

from logstore.errors import InvalidRequestError, InvalidTimestampError, OffsetOutOfRangeError
from logstore.records import iter_headers

Room = Callable[[], Awaitable[int]]
"""Waits until a subscription may read and returns how many bytes it may take (the answer budget)."""


class Subscriptions:
    """Starts subscriptions and runs them until the caller stops iterating or the broker stops."""

    def __init__(self, topics: Topics, waiters: AppendWaiters) -> None:
        self._topics = topics
        self._waiters = waiters
        self.closing = False
        """Set at shutdown: every subscription ends with ShuttingDownError."""

    def resolve(self, starts: Sequence[SubscribeStart]) -> dict[PartitionKey, int]:
        """The first offset to read per partition. Raises (ending the call) if any start is unusable."""
        positions: dict[PartitionKey, int] = {}
        for start in starts:
            key = (start.topic, start.partition)
            if key in positions:
                raise InvalidRequestError(f"partition {start.topic}-{start.partition} is listed twice")
            positions[key] = self._start_offset(start)
        return positions

    def _start_offset(self, start: SubscribeStart) -> int:
        self._topics.cluster.check_leader(start.topic, start.partition)
        partition_log = self._topics.log(start.topic, start.partition)
        first, end = (
            partition_log.log_start_offset,
            self._topics.visible_end(start.topic, start.partition, partition_log),
        )
        if start.start_from is StartFrom.EARLIEST:
            return first
        if start.start_from is StartFrom.LATEST:
            return end
        if start.start_from is StartFrom.TIMESTAMP:
            if start.timestamp_ms < 0:
                raise InvalidTimestampError(
                    f"timestamp_ms must be a time in milliseconds since the epoch, not {start.timestamp_ms}"
                )
            found = partition_log.offset_for_timestamp(start.timestamp_ms)
            return end if found is None else found[0]
        # Valid up to the log end, as for Fetch: a new leader's high watermark can lag the one its
        # predecessor showed (it learns its followers' ends at their next fetch), so a client resuming
        # where it stopped reading there must not be refused; it is sent nothing past the watermark.
        last = partition_log.log_end_offset
        if not first <= start.offset <= last:
            raise OffsetOutOfRangeError(
                f"cannot start {start.topic}-{start.partition} at offset {start.offset}: "
                f"valid offsets are {first} to {last}",
                log_start_offset=first,
                log_end_offset=last,
            )
        return start.offset

    async def run(
        self, positions: dict[PartitionKey, int], max_bytes: int, room: Room | None = None
    ) -> AsyncIterator[list[PartitionRead]]:
        """Yield batches as they arrive. A partition that fails is reported once and dropped.

        With `room`, each round first waits for it and reads at most what it allows; nothing is awaited
        between asking and reading, so the caller can account for the bytes read against what it allowed.
        """
        rounds = 0
        configured = max_bytes
        while positions:
            if self.closing:
                raise ShuttingDownError("the broker is shutting down; subscribe again from your next offset")
            if room is not None:
                max_bytes = max(1, min(configured, await room()))
                if self.closing:
                    continue
            keys = list(positions)
            shift = rounds % len(keys)
            rounds += 1
            found: list[PartitionRead] = []
            total = 0
            for key in keys[shift:] + keys[:shift]:
                spec = FetchSpec(key[0], key[1], positions[key], max_bytes)
                result = read_partition(self._topics, spec, max_bytes - total, total > 0)
                if result.error is not None:
                    del positions[key]
                    found.append(result)
                elif result.records:
                    positions[key] = _next_offset(result.records)
                    total += len(result.records)
                    found.append(result)
            if found:
                yield found
            else:
                await self._waiters.wait(keys, None)


def _next_offset(data: bytes) -> int:
    """The offset after the last whole batch in `data`."""
    last = None
    for _, header in iter_headers(data):
        last = header
    assert last is not None, "a read with data holds at least one whole batch"
    return last.last_offset + 1
