"""OffsetCommit and OffsetFetch: a group's committed offsets, in the same `__consumer_offsets` as gRPC's.

A commit is fenced by the classic group's generation (a member's) or allowed from outside group
management (generation -1) while the group has no members, as Kafka does; each partition gets its own
error code, and a refused commit writes nothing.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.domain.groups import OffsetCommitEntry
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import OFFSET_COMMIT, OFFSET_FETCH

from logstore.errors import LogStoreError

NO_LEADER_EPOCH = -1
TOP_LEVEL_ERROR_VERSION = 2
"""OffsetFetch answers carry a group-level error code from v2."""


async def offset_commit(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(OFFSET_COMMIT, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    entries = [
        OffsetCommitEntry(topic.name, p.partition_index, p.committed_offset, p.committed_metadata or "")
        for topic in request.topics
        for p in topic.partitions
    ]
    codes: dict[tuple[str, int], ErrorCode] = {}
    for topic in {entry.topic for entry in entries}:
        refused_topic = sasl.refusal(ctx.auth, Operation.READ, ResourceType.TOPIC, topic)
        if refused_topic is not None:
            codes.update(
                {(e.topic, e.partition): error_code(refused_topic) for e in entries if e.topic == topic}
            )
    entries = [entry for entry in entries if (entry.topic, entry.partition) not in codes]
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        outcomes = await ctx.core.classic_groups.commit(
            request.group_id,
            request.generation_id_or_member_epoch,
            request.member_id,
            getattr(request, "group_instance_id", None),
            entries,
        )
        codes.update({(o.topic, o.partition): error_code(o.error) for o in outcomes})
        refused = ErrorCode.none
    except LogStoreError as exc:
        refused = error_code(exc)
    topics = tuple(
        build(
            topic_cls,
            name=topic.name,
            partitions=tuple(
                build(
                    partition_cls,
                    partition_index=p.partition_index,
                    error_code=codes.get((topic.name, p.partition_index), refused),
                )
                for p in topic.partitions
            ),
        )
        for topic in request.topics
    )
    return build(cls, throttle_time=NO_THROTTLE, topics=topics)


def offset_fetch(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(OFFSET_FETCH, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    scope = [] if request.topics is None else [(t.name, tuple(t.partition_indexes)) for t in request.topics]
    try:
        sasl.require(ctx.auth, Operation.DESCRIBE, ResourceType.GROUP, request.group_id)
        committed = [
            found
            for found in ctx.core.groups.fetch_offsets(request.group_id, scope)
            if sasl.permitted(ctx.auth, Operation.DESCRIBE, ResourceType.TOPIC, found.topic)
        ]
    except LogStoreError as exc:
        if version < TOP_LEVEL_ERROR_VERSION:  # v1: the error on every partition asked for
            return build(
                cls,
                topics=tuple(
                    build(
                        topic_cls,
                        name=name,
                        partitions=tuple(
                            build(
                                partition_cls,
                                partition_index=number,
                                committed_offset=-1,
                                metadata="",
                                error_code=error_code(exc),
                            )
                            for number in numbers
                        ),
                    )
                    for name, numbers in scope
                ),
            )
        return build(cls, throttle_time=NO_THROTTLE, topics=(), error_code=error_code(exc))
    by_topic: dict[str, list[Any]] = {}
    for found in committed:
        by_topic.setdefault(found.topic, []).append(
            build(
                partition_cls,
                partition_index=found.partition,
                committed_offset=found.offset,
                committed_leader_epoch=NO_LEADER_EPOCH,
                metadata=found.metadata,
                error_code=ErrorCode.none,
            )
        )
    topics = tuple(build(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())
    return build(cls, throttle_time=NO_THROTTLE, topics=topics, error_code=ErrorCode.none)
