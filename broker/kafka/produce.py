"""Produce and InitProducerId: RecordBatch v2 bytes go to the domain as they came (they are our segments'
format); acks=0 is answered with nothing at all, as Kafka does."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode
from logstore.broker.domain.values import Acks, AppendOutcome, ProduceEntry
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, kafka_time, response_type
from logstore.broker.kafka.context import RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.versions import INIT_PRODUCER_ID, PRODUCE

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
    if acks is Acks.NONE:
        for outcome in done:
            if outcome.error is not None:
                log.debug("acks=0 produce to %s-%s lost: %s", outcome.topic, outcome.partition, outcome.error)
        return None
    return _answer(request, version, {(o.topic, o.partition): o for o in done}, ErrorCode.none)


async def _durable(request: Any, version: int, ctx: RequestContext, entries: list[ProduceEntry]) -> Any:
    timeout_ms = request.timeout.total_seconds() * 1000 or ctx.produce_timeout_ms
    done = await ctx.core.produce(entries, Acks.ALL, timeout_ms / 1000)
    return _answer(request, version, {(o.topic, o.partition): o for o in done}, ErrorCode.none)


def _answer(
    request: Any, version: int, outcomes: dict[tuple[str, int], AppendOutcome], refusal: ErrorCode
) -> Any:
    """Every partition of the request, in its order: its outcome, or `refusal` where it has none."""
    cls = response_type(PRODUCE, version)
    topic_cls = element(cls, "responses")
    partition_cls = element(topic_cls, "partition_responses")
    responses = []
    for topic in request.topic_data:
        partitions = []
        for p in topic.partition_data:
            outcome = outcomes.get((topic.name, p.index))
            code = refusal if outcome is None else error_code(outcome.error)
            partitions.append(
                build(
                    partition_cls,
                    index=p.index,
                    error_code=code,
                    base_offset=outcome.base_offset if outcome else -1,
                    log_append_time=kafka_time(outcome.log_append_time_ms) if outcome else None,
                    log_start_offset=outcome.log_start_offset if outcome else -1,
                    record_errors=(),
                    error_message=error_message(outcome.error) if outcome else None,
                )
            )
        responses.append(build(topic_cls, name=topic.name, partition_responses=tuple(partitions)))
    return build(cls, responses=tuple(responses), throttle_time=NO_THROTTLE)


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
