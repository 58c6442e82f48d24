"""The read path: fetch with long-polling, and list-offsets lookups.

Reads run on the event loop: a read slices the memory-mapped segment and copies once, so it is cheaper
than a hop to a thread. Bytes are returned as stored; records are never decoded here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from logstore.broker.domain.topics import Topics
from logstore.broker.domain.values import FetchSpec, OffsetAnswer, OffsetQuery, OffsetSpec, PartitionRead
from logstore.broker.domain.waiters import AppendWaiters

from logstore.errors import InvalidRequestError, InvalidTimestampError, LogStoreError, OffsetOutOfRangeError

EXPECTED_ERRORS = LogStoreError  # the one root: the broker's own errors (BrokerError) extend it


def read_partition(topics: Topics, spec: FetchSpec, budget: int, have_data: bool) -> PartitionRead:
    """Read one partition within `budget` bytes.

    The first partition with data (`have_data` False) always gets at least one whole batch, even a larger
    one, so a consumer can never get stuck; later partitions give up data that would exceed the budget.
    """
    topic, partition = spec.topic, spec.partition
    try:
        if spec.max_bytes <= 0:
            raise InvalidRequestError(
                f"{topic}-{partition}: max_bytes must be positive, not {spec.max_bytes}"
            )
        topics.cluster.check_leader(topic, partition)
        partition_log = topics.log(topic, partition)
        if have_data and budget <= 0:
            start, end = partition_log.log_start_offset, topics.visible_end(topic, partition, partition_log)
            return PartitionRead(topic, partition, high_watermark=end, log_start_offset=start)
        visible = topics.replicas.visible_end(topic, partition)
        if visible is None:
            result = partition_log.read(spec.offset, min(spec.max_bytes, budget))
        else:  # a cluster: clients read only what every in-sync replica holds
            result = partition_log.read(spec.offset, min(spec.max_bytes, budget), max_offset=visible)
    except OffsetOutOfRangeError as exc:
        return PartitionRead(
            topic,
            partition,
            high_watermark=exc.log_end_offset,
            log_start_offset=exc.log_start_offset,
            error=exc,
        )
    except EXPECTED_ERRORS as exc:
        return PartitionRead(topic, partition, error=exc)
    data = result.data
    if have_data and len(data) > budget:
        data = b""
    return PartitionRead(topic, partition, data, result.high_watermark, result.log_start_offset)


class Reader:
    """Answers fetch and list-offsets calls."""

    def __init__(self, topics: Topics, waiters: AppendWaiters) -> None:
        self._topics = topics
        self._waiters = waiters
        self.closing = False
        """Set at shutdown: long-polls answer at once with what they have."""

    def read(self, specs: Sequence[FetchSpec], max_bytes: int) -> tuple[list[PartitionRead], int]:
        """Read every partition once; returns the results and the total bytes of batches."""
        results = []
        total = 0
        for spec in specs:
            result = read_partition(self._topics, spec, max_bytes - total, total > 0)
            total += len(result.records)
            results.append(result)
        return results, total

    async def fetch(
        self, specs: Sequence[FetchSpec], *, min_bytes: int, max_wait_s: float, max_bytes: int
    ) -> list[PartitionRead]:
        """Read until `min_bytes` are available, an error shows up, or `max_wait_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        keys = [(spec.topic, spec.partition) for spec in specs]
        while True:
            results, total = self.read(specs, max_bytes)
            if total >= min_bytes or self.closing or any(result.error for result in results):
                return results
            remaining = deadline - loop.time()
            if remaining <= 0:
                return results
            await self._waiters.wait(keys, remaining)

    def list_offsets(self, queries: Sequence[OffsetQuery]) -> list[OffsetAnswer]:
        return [self._lookup(query) for query in queries]

    def _lookup(self, query: OffsetQuery) -> OffsetAnswer:
        topic, partition = query.topic, query.partition
        try:
            self._topics.cluster.check_leader(topic, partition)
            partition_log = self._topics.log(topic, partition)
            if query.spec is OffsetSpec.EARLIEST:
                return OffsetAnswer(topic, partition, partition_log.log_start_offset)
            if query.spec is OffsetSpec.LATEST:
                return OffsetAnswer(
                    topic, partition, self._topics.visible_end(topic, partition, partition_log)
                )
            if query.spec is OffsetSpec.TIMESTAMP:
                if query.timestamp_ms < 0:
                    raise InvalidTimestampError(
                        f"timestamp_ms must be a time in milliseconds since the epoch, not {query.timestamp_ms}"
                    )
                found = partition_log.offset_for_timestamp(query.timestamp_ms)
                return OffsetAnswer(topic, partition, *(found or (-1, -1)))
            raise InvalidRequestError("say what to look up: spec must be EARLIEST, LATEST or TIMESTAMP")
        except EXPECTED_ERRORS as exc:
            return OffsetAnswer(topic, partition, error=exc)
