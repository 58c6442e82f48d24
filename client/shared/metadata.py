"""Partition counts and leaders of topics, as the producer and consumer need them, cached and refreshed.

In a cluster each DescribeTopic answer also tells the connection's ``ClusterMap`` who leads each
partition, and a leader whose address is not known yet makes it ask DescribeCluster too.

The producer must know a topic's partition count before it can place a keyed record. For an unknown
topic it asks with ``DescribeTopic(allow_auto_create=True)`` when ``auto_create`` is on: the broker then
creates the topic exactly as a first produce would, and only if the broker itself auto-creates topics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import grpc
from logstore.client.shared.backoff import Backoff
from logstore.client.shared.connection import BrokerChannel, Connection
from logstore.client.shared.errors import (
    BrokerUnavailableError,
    BufferExhaustedError,
    ClientError,
    InvalidMetadataError,
    NotEnoughReplicasError,
    RequestTimedOutError,
    UnknownTopicError,
    error_from_rpc,
)
from logstore.client.shared.types import (
    BrokerMetadata,
    ClusterDescription,
    PartitionInfo,
    TopicDescription,
    TopicPartition,
)
from logstore.wire.logstore.v1 import admin_pb2

log = logging.getLogger(__name__)


def describe_cluster(connection: Connection, timeout_s: float) -> ClusterDescription:
    """One DescribeCluster call (to any broker that answers), remembered by the connection."""
    request = admin_pb2.DescribeClusterRequest()
    try:
        answer = connection.call_any(
            lambda channel: channel.admin.DescribeCluster(request, timeout=timeout_s), "DescribeCluster"
        )
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, "describing the cluster") from None
    description = cluster_description(answer)
    connection.cluster.learn_cluster(description)
    return description


def cluster_description(answer: admin_pb2.DescribeClusterResponse) -> ClusterDescription:
    brokers = [BrokerMetadata(b.broker_id, dict(b.endpoints)) for b in answer.brokers]
    return ClusterDescription(
        brokers, answer.controller_id, answer.broker_id, answer.clustered, answer.cluster_id
    )


def describe_topic(
    connection: Connection, name: str, timeout_s: float, *, allow_auto_create: bool = False
) -> TopicDescription:
    """One DescribeTopic call (to any broker that answers), as plain values; the partitions' leaders
    are remembered by the connection. Raises the client's errors."""
    request = admin_pb2.DescribeTopicRequest(name=name, allow_auto_create=allow_auto_create)
    try:
        answer = connection.call_any(
            lambda channel: channel.admin.DescribeTopic(request, timeout=timeout_s),
            f"describing topic {name!r}",
        )
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, f"describing topic {name!r}") from None
    description = topic_description(answer.topic)
    learn_leaders(connection, description, timeout_s)
    return description


def learn_leaders(connection: Connection, description: TopicDescription, timeout_s: float) -> None:
    """Remember the topic's leaders; look the cluster up when one of them is a broker not known yet (or
    the first time, to learn whether the brokers form a cluster at all)."""
    cluster = connection.cluster
    cluster.learn_topic(description.name, description.partitions)
    unknown = (
        any(p.leader >= 0 and not cluster.knows(p.leader) for p in description.partitions)
        or not cluster.learned
    )
    if unknown:
        try:
            describe_cluster(connection, timeout_s)
        except ClientError as exc:
            if not exc.retriable:  # a broker without DescribeCluster (an older one): it is alone
                cluster.learned = True
            # otherwise the leaders stay unknown until the next refresh; the sender and fetcher retry


def topic_description(topic: admin_pb2.TopicDescription) -> TopicDescription:
    partitions = [
        PartitionInfo(
            p.partition,
            p.log_start_offset,
            p.log_end_offset,
            p.leader,
            p.leader_epoch,
            tuple(p.replicas) or (p.leader,),
            tuple(p.isr) or (p.leader,),
        )
        for p in topic.partitions
    ]
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


def route(
    connection: Connection,
    tps: Iterable[TopicPartition],
    timeout_s: float,
    *,
    on_error: Callable[[ClientError], None] | None = None,
) -> tuple[dict[int, tuple[BrokerChannel, list[TopicPartition]]], list[TopicPartition]]:
    """The partitions grouped by leader, each group with its leader's channel, and those whose leader is
    still unknown after looking their topics up once (none for a broker alone: it leads everything).
    ``on_error`` is told why a lookup failed (for example no broker answered: it names each address)."""
    wanted = list(tps)
    if not connection.cluster.learned:
        try:  # first: are the brokers a cluster at all (else the one reached leads everything)
            describe_cluster(connection, timeout_s)
        except ClientError as exc:
            if not exc.retriable:
                connection.cluster.learned = True  # a broker without DescribeCluster (an older one)
            log.debug("describing the cluster failed: %s", exc)
            if on_error is not None:
                on_error(exc)
    unknown = {tp.topic for tp in wanted if connection.leader(tp.topic, tp.partition) is None}
    for topic in sorted(unknown):
        try:
            describe_topic(connection, topic, timeout_s)
        except ClientError as exc:
            log.debug("looking up the leaders of %s failed: %s", topic, exc)
            if on_error is not None:
                on_error(exc)
    groups: dict[int, tuple[BrokerChannel, list[TopicPartition]]] = {}
    leaderless: list[TopicPartition] = []
    for tp in wanted:
        found = connection.leader(tp.topic, tp.partition)
        if found is None:
            leaderless.append(tp)
            continue
        broker_id, channel = found
        groups.setdefault(broker_id, (channel, []))[1].append(tp)
    return groups, leaderless


def note_failure(
    connection: Connection, broker_id: int, tps: Iterable[TopicPartition], error: ClientError
) -> None:
    """After an answer that showed the metadata stale (NOT_LEADER_OR_FOLLOWER and the like) or a broker
    that could not be reached: forget those leaders, so the next attempt looks them up again."""
    cluster = connection.cluster
    if not cluster.clustered:
        return
    if isinstance(error, BrokerUnavailableError | RequestTimedOutError):
        cluster.forget_broker(broker_id)
    elif isinstance(error, InvalidMetadataError | NotEnoughReplicasError):
        for tp in tps:
            cluster.forget_leader(tp.topic, tp.partition)
