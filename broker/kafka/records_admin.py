"""DeleteRecords: move partitions' log start offsets forward, answering each one's new low watermark."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import DELETE_RECORDS

from logstore.errors import LogStoreError

NO_WATERMARK = -1
"""The low watermark answered with an error."""


def _delete_one(topic: str, partition: Any, ctx: RequestContext) -> tuple[int, ErrorCode]:
    try:
        sasl.require(ctx.auth, Operation.DELETE, ResourceType.TOPIC, topic)
        return ctx.core.admin.delete_records(
            topic, partition.partition_index, partition.offset
        ), ErrorCode.none
    except LogStoreError as exc:
        return NO_WATERMARK, error_code(exc)


def delete_records(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(DELETE_RECORDS, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    topics = []
    for topic in request.topics:
        partitions = []
        for partition in topic.partitions:
            low, code = _delete_one(topic.name, partition, ctx)
            partitions.append(
                build(
                    partition_cls,
                    partition_index=partition.partition_index,
                    low_watermark=low,
                    error_code=code,
                )
            )
        topics.append(build(topic_cls, name=topic.name, partitions=tuple(partitions)))
    return build(cls, throttle_time=NO_THROTTLE, topics=tuple(topics))
