"""Metadata: one broker (node 0, leader of everything), and the topics asked for, created if allowed."""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.domain.values import TopicView
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import CLUSTER_ID, NODE_ID, RequestContext
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


def _describe(ctx: RequestContext, name: str, auto_create: bool) -> TopicView:
    try:
        return ctx.core.admin.describe(name)
    except UnknownTopicError:
        if not auto_create:
            raise
    return ctx.core.admin.describe(name, allow_auto_create=True)


def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(METADATA, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    # Before v4 a metadata request always let the broker auto-create; since then the client says.
    auto_create = getattr(request, "allow_auto_topic_creation", True)
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
            view = _describe(ctx, name, auto_create and sasl.may_create(ctx.auth, name))
        except LogStoreError as exc:
            topics.append(
                build(topic_cls, error_code=error_code(exc), name=name, topic_id=NO_TOPIC_ID, partitions=())
            )
            continue
        partitions = tuple(
            build(
                partition_cls,
                error_code=error_code(None),
                partition_index=p.partition,
                leader_id=NODE_ID,
                leader_epoch=-1,
                replica_nodes=(NODE_ID,),
                isr_nodes=(NODE_ID,),
                offline_replicas=(),
            )
            for p in view.partitions
        )
        topics.append(
            build(
                topic_cls,
                error_code=error_code(None),
                name=name,
                topic_id=topic_uuid(view.topic_id),
                is_internal=name in ctx.core.topics.internal,
                partitions=partitions,
                topic_authorized_operations=-2147483648,
            )
        )
    broker = build(
        element(cls, "brokers"), node_id=NODE_ID, host=ctx.endpoint.host, port=ctx.endpoint.port, rack=None
    )
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        brokers=(broker,),
        cluster_id=CLUSTER_ID,
        controller_id=NODE_ID,
        topics=tuple(topics),
        cluster_authorized_operations=-2147483648,
    )
