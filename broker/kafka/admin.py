"""CreateTopics, DeleteTopics and CreatePartitions: one result per topic, each with Kafka's code for what
went wrong."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.versions import CREATE_PARTITIONS, CREATE_TOPICS, DELETE_TOPICS

from logstore.errors import LogStoreError, TopicExistsError, UnknownTopicError
from logstore.manager import validate_topic_name

DEFAULT = -1
"""num_partitions or replication_factor -1: the broker's default (KIP-464)."""


async def _create_one(topic: Any, validate_only: bool, ctx: RequestContext) -> tuple[ErrorCode, str | None]:
    if topic.replication_factor < 1 and topic.replication_factor != DEFAULT:
        return ErrorCode.invalid_replication_factor, (
            f"replication factor must be at least 1 (or -1 for the default), not {topic.replication_factor}"
        )
    if topic.assignments:
        return (
            ErrorCode.invalid_replica_assignment,
            "replica assignments are not supported: one node holds all",
        )
    partitions = 0 if topic.num_partitions == DEFAULT else topic.num_partitions
    if partitions <= 0 and topic.num_partitions != DEFAULT:
        return ErrorCode.invalid_partitions, f"num_partitions must be positive, not {topic.num_partitions}"
    config = {c.name: c.value for c in topic.configs if c.value is not None}
    try:
        if not sasl.may_create(ctx.auth, topic.name):
            sasl.require(ctx.auth, Operation.CREATE, ResourceType.TOPIC, topic.name)
        if validate_only:
            validate_topic_name(topic.name)
            try:
                ctx.core.admin.info(topic.name)
            except UnknownTopicError:
                return ErrorCode.none, None
            raise TopicExistsError(f"topic {topic.name!r} already exists")
        await ctx.core.create_topic(topic.name, partitions, config, _replication_factor(topic))
    except LogStoreError as exc:
        return error_code(exc), error_message(exc)
    return ErrorCode.none, None


def _replication_factor(topic: Any) -> int:
    """The request's replication factor, 0 for the broker's default (-1 on the wire)."""
    factor = int(getattr(topic, "replication_factor", DEFAULT))
    return 0 if factor == DEFAULT else factor


async def create_topics(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(CREATE_TOPICS, version)
    topic_cls = element(cls, "topics")
    validate_only = getattr(request, "validate_only", False)
    results = []
    for topic in request.topics:
        code, message = await _create_one(topic, validate_only, ctx)
        results.append(build(topic_cls, name=topic.name, error_code=code, error_message=message))
    return build(cls, throttle_time=NO_THROTTLE, topics=tuple(results))


def delete_topics(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DELETE_TOPICS, version)
    result_cls = element(cls, "responses")
    results = []
    for name in request.topic_names:
        try:
            sasl.require(ctx.auth, Operation.DELETE, ResourceType.TOPIC, name)
            ctx.core.admin.delete(name)
            code = ErrorCode.none
        except LogStoreError as exc:
            code = error_code(exc)
        results.append(build(result_cls, name=name, error_code=code))
    return build(cls, throttle_time=NO_THROTTLE, responses=tuple(results))


def _grow_one(topic: Any, validate_only: bool, ctx: RequestContext) -> tuple[ErrorCode, str | None]:
    if topic.assignments:
        return (
            ErrorCode.invalid_replica_assignment,
            "replica assignments are not supported: one node holds all",
        )
    try:
        sasl.require(ctx.auth, Operation.ALTER, ResourceType.TOPIC, topic.name)
        ctx.core.admin.add_partitions(topic.name, topic.count, validate_only=validate_only)
    except LogStoreError as exc:
        return error_code(exc), error_message(exc)
    return ErrorCode.none, None


def create_partitions(request: Any, version: int, ctx: RequestContext) -> Any:
    """Grow each topic to its new count; a count below the current one is INVALID_PARTITIONS."""
    cls = response_type(CREATE_PARTITIONS, version)
    result_cls = element(cls, "results")
    results = []
    for topic in request.topics:
        code, message = _grow_one(topic, request.validate_only, ctx)
        results.append(build(result_cls, name=topic.name, error_code=code, error_message=message))
    return build(cls, throttle_time=NO_THROTTLE, results=tuple(results))
