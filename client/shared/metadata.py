"""Partition counts of topics, as the producer and consumer need them, cached and refreshed.

The producer must know a topic's partition count before it can place a keyed record. For an unknown
topic it asks with ``DescribeTopic(allow_auto_create=True)`` when ``auto_create`` is on: the broker then
creates the topic exactly as a first produce would, and only if the broker itself auto-creates topics.
"""

from __future__ import annotations

import threading
import time

import grpc
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import (
    BufferExhaustedError,
    ClientError,
    UnknownTopicError,
    error_from_rpc,
)
from logstore.client.shared.types import PartitionInfo, TopicDescription
from logstore.wire.logstore.v1 import admin_pb2


def describe_topic(
    connection: Connection, name: str, timeout_s: float, *, allow_auto_create: bool = False
) -> TopicDescription:
    """One DescribeTopic call, as plain values. Raises the client's errors."""
    request = admin_pb2.DescribeTopicRequest(name=name, allow_auto_create=allow_auto_create)
    try:
        answer = connection.admin.DescribeTopic(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, f"describing topic {name!r}") from None
    return topic_description(answer.topic)


def topic_description(topic: admin_pb2.TopicDescription) -> TopicDescription:
    partitions = [PartitionInfo(p.partition, p.log_start_offset, p.log_end_offset) for p in topic.partitions]
    return TopicDescription(topic.name, dict(topic.config), partitions)


class TopicMetadata:
    """Partition counts by topic. Thread-safe: refreshes take the lock; ``counts`` may be read without
    it (a dict lookup is atomic)."""

    def __init__(
        self, connection: Connection, *, auto_create: bool, max_age_ms: float, request_timeout_ms: float
    ) -> None:
        self._connection = connection
        self.auto_create = auto_create
        self._max_age_s = max_age_ms / 1000.0
        self._request_timeout_s = request_timeout_ms / 1000.0
        self.counts: dict[str, int] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._backoff = Backoff(50, 1000)

    def partition_count(self, topic: str, timeout_s: float) -> int:
        """The topic's partition count, asking the broker (and creating the topic) if need be.

        Retries while the broker is unreachable; raises ``BufferExhaustedError`` after ``timeout_s``
        (Kafka's max.block.ms), ``UnknownTopicError`` if the topic does not exist and may not be created.
        """
        count = self.counts.get(topic)
        if count is not None:
            return count
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                return self.refresh(
                    topic, max(0.001, min(self._request_timeout_s, deadline - time.monotonic()))
                )
            except ClientError as exc:
                if not exc.retriable:
                    raise
                attempt += 1
                pause = self._backoff.delay_s(attempt)
                if time.monotonic() + pause >= deadline:
                    raise BufferExhaustedError(
                        f"could not learn the partitions of topic {topic!r} within {timeout_s * 1000:.0f} ms "
                        f"(max_block_ms; each request waits up to request_timeout_ms, "
                        f"{self._request_timeout_s * 1000:.0f} ms): {exc}"
                    ) from None
                time.sleep(pause)

    def refresh(self, topic: str, timeout_s: float | None = None) -> int:
        """Ask the broker for the topic's partition count now (creating the topic if allowed)."""
        timeout = self._request_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            try:
                description = describe_topic(
                    self._connection, topic, timeout, allow_auto_create=self.auto_create
                )
            except UnknownTopicError as exc:
                raise UnknownTopicError(
                    f"topic {topic!r} does not exist; create it first (logstore topics create {topic})"
                    + ("" if self.auto_create else " or allow auto_create_topics")
                    + f" ({exc})"
                ) from None
            count = len(description.partitions)
            self.counts[topic] = count
            self._fetched_at[topic] = time.monotonic()
            return count

    def stale(self, now: float) -> list[str]:
        """Topics whose count is older than ``metadata_max_age_ms``."""
        return [topic for topic, at in list(self._fetched_at.items()) if now - at >= self._max_age_s]
