"""Produce and InitProducerId: RecordBatch v2 bytes go to the domain as they came (they are our segments'
format); acks=0 is answered with nothing at all, as Kafka does."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.domain.values import Acks, AppendOutcome, ProduceEntry
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.hot_answers import Encoded, produce_answer
from logstore.broker.kafka.versions import INIT_PRODUCER_ID

ACKS = {0: Acks.NONE, 1: Acks.LEADER, -1: Acks.ALL}

log = logging.getLogger("logstore.broker.kafka")


def handle(request: Any, version: int, ctx: RequestContext) -> Any | None:
    """Acks 0 and 1 are appended and answered now (acks=0 with nothing at all); acks=all returns the
    coroutine that waits for the fsync."""
    acks = ACKS.get(request.acks)
    if acks is None:
        return _answer(request, version, {}, ErrorCode.invalid_required_acks)
    entries = [
        ProduceEntry(t.name, p.index, p.records or b"")  # kio's Records is bytes: no copy
        for t in request.topic_data
        for p in t.partition_data
    ]
    if acks is Acks.ALL:
        return _durable(request, version, ctx, entries)
    done = ctx.core.append_now(entries)
    ctx.metrics.produced("kafka", entries, done)
    if acks is Acks.NONE:
        for outcome in done:
            if outcome.error is not None:
                log.debug("acks=0 produce to %s-%s lost: %s", outcome.topic, outcome.partition, outcome.error)
        return None
    return _answer(request, version, {(o.topic, o.partition): o for o in done}, ErrorCode.none)


async def _durable(request: Any, version: int, ctx: RequestContext, entries: list[ProduceEntry]) -> Any:
    timeout_ms = request.timeout.total_seconds() * 1000 or ctx.produce_timeout_ms
    done = await ctx.core.produce(entries, Acks.ALL, timeout_ms / 1000)
    ctx.metrics.produced("kafka", entries, done)
    return _answer(request, version, {(o.topic, o.partition): o for o in done}, ErrorCode.none)


def _answer(
    request: Any, version: int, outcomes: dict[tuple[str, int], AppendOutcome], refusal: ErrorCode
) -> Encoded:
    """Every partition of the request, in its order: its outcome, or `refusal` where it has none."""
    topics = [(t.name, [p.index for p in t.partition_data]) for t in request.topic_data]
    return produce_answer(version, topics, outcomes, int(refusal))


def init_producer_id(request: Any, version: int, ctx: RequestContext) -> Any:
    """A fresh idempotent producer id; transactions are not supported here, so a transactional id is
    refused (nothing was allocated for it)."""
    cls = response_type(INIT_PRODUCER_ID, version)
    if request.transactional_id is not None:
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.invalid_request,
            producer_id=-1,
            producer_epoch=-1,
        )
    producer_id, epoch = ctx.core.init_producer_id()
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        producer_id=producer_id,
        producer_epoch=epoch,
    )
