"""Metadata: one broker (node 0, leader of everything), and the topics asked for, created if allowed."""

from __future__ import annotations

from typing import Any

from logstore.broker.domain.values import TopicView
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import CLUSTER_ID, NODE_ID, RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import METADATA

from logstore.errors import LogStoreError, UnknownTopicError


def _names(request: Any, version: int, ctx: RequestContext) -> list[str]:
    """The topics asked for: null (v1+) or an empty list (v0) means every topic."""
    if request.topics is None or (version == 0 and not request.topics):
        return [summary.name for summary in ctx.core.admin.list()]
    return [topic.name for topic in request.topics]


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
    for name in _names(request, version, ctx):
        try:
            view = _describe(ctx, name, auto_create)
        except LogStoreError as exc:
            topics.append(build(topic_cls, error_code=error_code(exc), name=name, partitions=()))
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
