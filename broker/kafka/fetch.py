"""Fetch and ListOffsets: stored batches go out as they are, whole (a fetch offset inside a batch gets
the batch from its start; clients skip the records before the offset they asked for)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.domain.values import FetchSpec, OffsetQuery, OffsetSpec, PartitionRead
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import Held, RequestContext
from logstore.broker.kafka.errors import error_code
from logstore.broker.kafka.versions import FETCH, LIST_OFFSETS
from logstore.broker.service.answers import Lease

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
NO_SESSION = 0


async def handle(request: Any, version: int, ctx: RequestContext) -> Any:
    """A full fetch, long-polling up to max_wait until min_bytes are there. Fetch sessions (KIP-227) are
    not kept: every answer says session 0, which tells the client to send full fetches."""
    cls = response_type(FETCH, version)
    if getattr(request, "session_id", NO_SESSION) != NO_SESSION or getattr(request, "session_epoch", -1) > 0:
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.fetch_session_id_not_found,
            session_id=NO_SESSION,
            responses=(),
        )
    specs = [
        FetchSpec(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
        for t in request.topics
        for p in t.partitions
    ]
    requested_max = getattr(request, "max_bytes", ctx.fetch_max_bytes)
    max_bytes = max(1, min(requested_max, ctx.fetch_max_bytes))
    lease = ctx.answers.lease(ctx.connection)
    try:
        reads = await _read(
            specs, max_bytes, max(0, request.min_bytes), request.max_wait.total_seconds(), ctx, lease
        )
        return Held(_answer(cls, reads), lease)
    except BaseException:
        lease.release_all()
        raise


async def _read(
    specs: list[FetchSpec],
    max_bytes: int,
    min_bytes: int,
    max_wait_s: float,
    ctx: RequestContext,
    lease: Lease,
) -> list[PartitionRead]:
    """Read within the room the answer budget leaves, long-polling (holding none of it) for min_bytes.

    The same steps as the gRPC FetchService: a read and its charge have no await between them, so
    concurrent fetches cannot all take the same room."""
    reads = await _read_now(specs, max_bytes, ctx, lease)
    enough = sum(len(r.records) for r in reads) >= min_bytes or any(r.error for r in reads)
    if enough or max_wait_s <= 0 or ctx.core.shutting_down:
        return reads
    del reads
    lease.release_all()
    reads = await ctx.core.fetch(
        specs, min_bytes=min_bytes, max_wait_s=max_wait_s, max_bytes=max(1, min(min_bytes, max_bytes))
    )
    if ctx.core.shutting_down:  # answer with what is there, as every long-poll does at stop
        lease.charge(sum(len(r.records) for r in reads))
        return reads
    return await _read_now(specs, max_bytes, ctx, lease)


async def _read_now(
    specs: list[FetchSpec], max_bytes: int, ctx: RequestContext, lease: Lease
) -> list[PartitionRead]:
    room = await lease.wait_for_room()
    reads = await ctx.core.fetch(specs, min_bytes=0, max_wait_s=0, max_bytes=max(1, min(max_bytes, room)))
    lease.charge(sum(len(r.records) for r in reads))
    return reads


def _answer(cls: type[Any], reads: list[PartitionRead]) -> Any:
    topic_cls = element(cls, "responses")
    partition_cls = element(topic_cls, "partitions")
    by_topic: dict[str, list[Any]] = {}
    for read in reads:
        by_topic.setdefault(read.topic, []).append(
            build(
                partition_cls,
                partition_index=read.partition,
                error_code=error_code(read.error),
                high_watermark=read.high_watermark,
                last_stable_offset=read.high_watermark,
                log_start_offset=read.log_start_offset,
                aborted_transactions=(),
                preferred_read_replica=-1,
                records=read.records,
            )
        )
    responses = tuple(build(topic_cls, topic=name, partitions=tuple(ps)) for name, ps in by_topic.items())
    return build(
        cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, session_id=NO_SESSION, responses=responses
    )


def _query(topic: str, partition: int, timestamp: int) -> OffsetQuery:
    if timestamp == EARLIEST_TIMESTAMP:
        return OffsetQuery(topic, partition, OffsetSpec.EARLIEST)
    if timestamp == LATEST_TIMESTAMP:
        return OffsetQuery(topic, partition, OffsetSpec.LATEST)
    # Any other negative value reaches the domain, which refuses it as an invalid timestamp.
    return OffsetQuery(topic, partition, OffsetSpec.TIMESTAMP, timestamp)


def list_offsets(request: Any, version: int, ctx: RequestContext) -> Any:
    """Earliest (-2), latest (-1) or the first offset at or after a time; -1/-1 when none is."""
    cls = response_type(LIST_OFFSETS, version)
    topic_cls = element(cls, "topics")
    partition_cls = element(topic_cls, "partitions")
    queries = [_query(t.name, p.partition_index, p.timestamp) for t in request.topics for p in t.partitions]
    by_topic: dict[str, list[Any]] = {}
    for answer in ctx.core.list_offsets(queries):
        by_topic.setdefault(answer.topic, []).append(
            build(
                partition_cls,
                partition_index=answer.partition,
                error_code=error_code(answer.error),
                timestamp=answer.timestamp_ms,
                offset=answer.offset,
                leader_epoch=-1,
            )
        )
    topics = tuple(build(topic_cls, name=name, partitions=tuple(ps)) for name, ps in by_topic.items())
    return build(cls, throttle_time=NO_THROTTLE, topics=topics)
