"""Metadata: the brokers, each partition's leader, epoch and replicas, and the topics asked for, created
if allowed. A single broker is the one node and leads everything; in a cluster the answer is the cluster's
(`cluster_answers`), the same from every broker, so clients send each request to its partition's leader."""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.domain.errors import NotLeaderOrFollowerError
from logstore.broker.kafka import cluster_answers, sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import CLUSTER_ID, RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import METADATA

from logstore.errors import LogStoreError, UnknownTopicError

NO_TOPIC_ID = uuid.UUID(int=0)
"""Kafka's zero uuid: a topic asked for by name (v10+), or an answer for a topic the broker does not know."""


def _names(request: Any, version: int, ctx: RequestContext) -> list[str | uuid.UUID]:
    """The topics asked for, by name, or by id where v12+ names none: null (v1+) or an empty list (v0)
    means every topic."""
    if request.topics is None or (version == 0 and not request.topics):  # those it may Describe
        return [
            summary.name
            for summary in ctx.core.admin.list()
            if sasl.permitted(ctx.auth, Operation.DESCRIBE, ResourceType.TOPIC, summary.name)
        ]
    return [
        topic.name if topic.name is not None else getattr(topic, "topic_id", None) or NO_TOPIC_ID
        for topic in request.topics
    ]


def topic_uuid(hex_id: str) -> uuid.UUID:
    return uuid.UUID(hex=hex_id) if hex_id else NO_TOPIC_ID


def _describe(ctx: RequestContext, name: str, auto_create: bool) -> tuple[range, uuid.UUID]:
    """The topic's partitions and id. In a cluster the partitions are those the cluster knows, also on a
    broker that holds no replica of the topic (whose id is then not known here: the zero uuid)."""
    in_cluster = cluster_answers.partition_count(ctx.core.cluster, name)
    if in_cluster:
        try:
            return range(in_cluster), topic_uuid(ctx.core.admin.describe(name).topic_id)
        except UnknownTopicError:
            return range(in_cluster), NO_TOPIC_ID
    try:
        view = ctx.core.admin.describe(name)
    except UnknownTopicError:
        if not auto_create:
            raise
        view = ctx.core.admin.describe(name, allow_auto_create=True)
    return range(len(view.partitions)), topic_uuid(view.topic_id)


def _topic_error(exc: LogStoreError) -> int:
    """A topic's error code. A topic being created by the cluster's controller (the domain says
    NOT_LEADER_OR_FOLLOWER) is LEADER_NOT_AVAILABLE here, as Kafka answers a Metadata request that
    auto-creates a topic: the client retries its metadata."""
    if isinstance(exc, NotLeaderOrFollowerError):
        return ErrorCode.leader_not_available
    return error_code(exc)


def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(METADATA, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    # Before v4 a metadata request always let the broker auto-create; since then the client says.
    auto_create = getattr(request, "allow_auto_topic_creation", True)
    nodes = cluster_answers.brokers(ctx.core.cluster, ctx.endpoint)
    live = {n.node_id for n in nodes}
    topics = []
    for asked in _names(request, version, ctx):
        if isinstance(asked, uuid.UUID):
            by_id = {topic_uuid(hex_id): name for name, hex_id in ctx.core.topics.ids().items()}
            if asked not in by_id:
                topics.append(
                    build(
                        topic_cls,
                        error_code=ErrorCode.unknown_topic_id,
                        name=None,
                        topic_id=asked,
                        partitions=(),
                    )
                )
                continue
            asked = by_id[asked]
        name = asked
        try:
            sasl.require(ctx.auth, Operation.DESCRIBE, ResourceType.TOPIC, name)
            numbers, topic_id = _describe(ctx, name, auto_create and sasl.may_create(ctx.auth, name))
        except LogStoreError as exc:
            topics.append(
                build(topic_cls, error_code=_topic_error(exc), name=name, topic_id=NO_TOPIC_ID, partitions=())
            )
            continue
        partitions = []
        for number in numbers:
            found = cluster_answers.partition(ctx.core.cluster, live, name, number)
            partitions.append(
                build(
                    partition_cls,
                    error_code=found.error,
                    partition_index=number,
                    leader_id=found.leader,
                    leader_epoch=found.leader_epoch,
                    replica_nodes=found.replicas,
                    isr_nodes=found.isr,
                    offline_replicas=found.offline,
                )
            )
        topics.append(
            build(
                topic_cls,
                error_code=error_code(None),
                name=name,
                topic_id=topic_id,
                is_internal=name in ctx.core.topics.internal,
                partitions=tuple(partitions),
                topic_authorized_operations=-2147483648,
            )
        )
    broker_cls = element(cls, "brokers")
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        brokers=tuple(
            build(broker_cls, node_id=n.node_id, host=n.host, port=n.port, rack=None) for n in nodes
        ),
        cluster_id=CLUSTER_ID,
        controller_id=cluster_answers.controller_id(ctx.core.cluster),
        topics=tuple(topics),
        cluster_authorized_operations=-2147483648,
    )
