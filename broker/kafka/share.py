"""Share groups over Kafka's protocol (KIP-932, Kafka 4.1's v1): ShareGroupHeartbeat, ShareFetch, ShareAcknowledge.

Translation only: membership, acquisition locks, delivery counts and dead letters are the share domain's,
the same groups the gRPC ShareService serves. What is Kafka's own is done here: topics are named by id,
a share session (`share_sessions`) says which partitions a fetch reads, and acknowledgements come as
offset ranges with one type for the range or one per offset (0 marks a gap: an offset with no record).
Errors of the whole request go in its `error_code`, those of a partition or of its acknowledgements in
the partition's fields, through the one table in `errors`.

In a cluster a share group lives with its coordinator (the leader of its `__share_group_state`
partition). ShareFetch and ShareAcknowledge reach partition leaders, and the domain forwards them there.
Kafka clients find a share group's coordinator with FindCoordinator key type GROUP, which answers the
consumer-group coordinator of that id (a broker cannot tell a share group's id from a consumer group's
before the group exists); when that broker does not coordinate the share group, it passes the
ShareGroupHeartbeat on to the broker that does (`HeartbeatForwarder`) instead of answering
NOT_COORDINATOR, which would only send the client back to itself.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from logstore.broker.auth.acl import Operation, ResourceType
from logstore.broker.domain.share.values import (
    DEFAULT_MAX_RECORDS,
    AckRange,
    PartitionAckOutcome,
    PartitionAcks,
    ShareFetchAnswer,
    ShareFetchSpec,
    ShareHeartbeat,
)
from logstore.broker.kafka import sasl
from logstore.broker.kafka.api_versions import NO_THROTTLE
from logstore.broker.kafka.codec import build, element, response_type
from logstore.broker.kafka.context import Held, RequestContext
from logstore.broker.kafka.errors import error_code, error_message
from logstore.broker.kafka.groups import client_host
from logstore.broker.kafka.metadata import topic_uuid
from logstore.broker.kafka.share_sessions import (
    FINAL_EPOCH,
    OPEN_EPOCH,
    SessionKey,
    TopicPartition,
    UnknownTopicIdError,
)
from logstore.broker.kafka.versions import SHARE_ACKNOWLEDGE, SHARE_FETCH, SHARE_GROUP_HEARTBEAT
from logstore.broker.service.share import MAX_RANGES_PER_REQUEST
from logstore.broker.share_machine.model import AcknowledgeType

from logstore.errors import InvalidRequestError, LogStoreError

log = logging.getLogger("logstore.broker.kafka")

GAP = 0
"""An acknowledge type for an offset that holds no record (compacted away, a control batch)."""
ACK_TYPES = frozenset({GAP, AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT})
"""v1's types: gap, accept, release, reject (renew came with v2)."""


def _ms(value: datetime.timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _timedelta_ms(ms: int) -> i32Timedelta:
    return i32Timedelta.parse(datetime.timedelta(milliseconds=ms))


def _uuid_hex(topic_id: uuid.UUID | None) -> str:
    return topic_id.hex if topic_id is not None else ""


# --- ShareGroupHeartbeat ---------------------------------------------------------------------------------


async def share_group_heartbeat(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(SHARE_GROUP_HEARTBEAT, version)
    share = ctx.core.share
    beat = ShareHeartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        list(request.subscribed_topic_names or ()),  # null: unchanged, which the domain reads from ()
        ctx.client_id or "",
        client_host(ctx),
    )
    try:
        if not request.member_id:
            raise InvalidRequestError(
                "member_id must not be empty: a share consumer makes up its own (a uuid)"
            )
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        for topic in beat.topic_names:
            sasl.require(ctx.auth, Operation.READ, ResourceType.TOPIC, topic)
        answer = await share.heartbeat_anywhere(beat)
    except LogStoreError as exc:
        log.debug("share heartbeat of %r in %r refused: %s", request.member_id, request.group_id, exc)
        return build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=error_code(exc),
            error_message=error_message(exc),
            member_id=request.member_id,
            member_epoch=-1,
            heartbeat_interval=_timedelta_ms(share.intervals(request.group_id)[0]),
            assignment=None,
        )
    if answer.member_epoch == FINAL_EPOCH:
        ctx.share_sessions.drop_member(request.group_id, request.member_id)
        assignment = None
    else:
        ids = ctx.core.topics.ids()
        assignment_cls = element(cls, "assignment")
        partitions_cls = element(assignment_cls, "topic_partitions")
        assignment = build(
            assignment_cls,
            topic_partitions=tuple(
                build(partitions_cls, topic_id=topic_uuid(ids[topic]), partitions=tuple(partitions))
                for topic, partitions in answer.assignment
                if topic in ids
            ),
        )
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        member_id=answer.member_id,
        member_epoch=answer.member_epoch,
        heartbeat_interval=_timedelta_ms(answer.heartbeat_interval_ms),
        assignment=assignment,
    )


# --- acknowledgements, shared by ShareFetch and ShareAcknowledge -------------------------------------------


def ack_ranges(batches: Sequence[Any]) -> list[AckRange]:
    """One batch's offsets with one type, or one type per offset (runs of a type become one range);
    gaps are dropped: there is no record there to decide about."""
    ranges: list[AckRange] = []
    for batch in batches:
        first, last, types = batch.first_offset, batch.last_offset, batch.acknowledge_types
        if first < 0 or last < first:
            raise InvalidRequestError(f"acknowledgement batch {first}-{last} is not a range of offsets")
        if not types or any(t not in ACK_TYPES for t in types):
            raise InvalidRequestError(
                f"acknowledgement batch {first}-{last} has types {list(types)}; each must be 0 (gap), "
                "1 (accept), 2 (release) or 3 (reject)"
            )
        if len(types) == 1:
            if types[0] != GAP:
                ranges.append(AckRange(first, last, types[0]))
            continue
        if len(types) != last - first + 1:
            raise InvalidRequestError(
                f"acknowledgement batch {first}-{last} has {len(types)} types; give one for the whole "
                f"batch or one per offset ({last - first + 1})"
            )
        start = first
        for offset in range(first + 1, last + 2):
            if offset == last + 1 or types[offset - first] != types[start - first]:
                if types[start - first] != GAP:
                    ranges.append(AckRange(start, offset - 1, types[start - first]))
                start = offset
    return ranges


@dataclass(slots=True)
class _PartitionAnswer:
    error: LogStoreError | None = None
    ack_error: LogStoreError | None = None
    acked: bool = False
    records: bytes | None = None
    acquired: list[tuple[int, int, int]] = field(default_factory=list)


class _Answers:
    """What each partition of the request gets back, grouped by topic id in the order first met."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[int, _PartitionAnswer]] = {}

    def at(self, topic_id: str, partition: int) -> _PartitionAnswer:
        return self.topics.setdefault(topic_id, {}).setdefault(partition, _PartitionAnswer())


def _first_error(outcome: PartitionAckOutcome) -> LogStoreError | None:
    if outcome.error is not None:
        return outcome.error
    return next((r.error for r in outcome.results if r.error is not None), None)


def _acks(
    topics: Sequence[Any], names: dict[str, str], answers: _Answers, auth: sasl.ConnectionAuth | None
) -> tuple[list[PartitionAcks], dict[tuple[str, int], str]]:
    """The request's acknowledgements by topic name; partitions of an unknown topic id are answered
    UNKNOWN_TOPIC_ID, and of a topic the principal may not Read TOPIC_AUTHORIZATION_FAILED, and left
    out. Also the topic id of each (name, partition) acknowledged."""
    acks: list[PartitionAcks] = []
    ids: dict[tuple[str, int], str] = {}
    count = 0
    for topic in topics:
        hex_id = _uuid_hex(topic.topic_id)
        for partition in topic.partitions:
            if not partition.acknowledgement_batches:
                continue
            name = names.get(hex_id)
            if name is None:
                answers.at(hex_id, partition.partition_index).ack_error = _unknown_topic_id(hex_id)
                continue
            refused = sasl.refusal(auth, Operation.READ, ResourceType.TOPIC, name)
            if refused is not None:
                answers.at(hex_id, partition.partition_index).ack_error = refused
                continue
            ranges = ack_ranges(partition.acknowledgement_batches)
            count += len(ranges)
            if count > MAX_RANGES_PER_REQUEST:
                raise InvalidRequestError(
                    f"the request acknowledges more than {MAX_RANGES_PER_REQUEST} ranges; send fewer at a time"
                )
            acks.append(PartitionAcks(name, partition.partition_index, ranges))
            ids[name, partition.partition_index] = hex_id
    return acks, ids


def _record_outcomes(
    outcomes: Iterable[PartitionAckOutcome], ids: dict[tuple[str, int], str], answers: _Answers
) -> None:
    for outcome in outcomes:
        hex_id = ids.get((outcome.topic, outcome.partition))
        if hex_id is None:
            continue
        answer = answers.at(hex_id, outcome.partition)
        answer.acked = True
        answer.ack_error = _first_error(outcome)


def _unknown_topic_id(hex_id: str) -> UnknownTopicIdError:
    return UnknownTopicIdError(
        f"no topic has id {hex_id or 'null'}: it was deleted or never existed; refresh metadata"
    )


def _names_by_id(ctx: RequestContext) -> dict[str, str]:
    return {hex_id: name for name, hex_id in ctx.core.topics.ids().items()}


def _check_ids(request: Any) -> SessionKey:
    if not request.group_id:
        raise InvalidRequestError("group_id must not be empty: name the share group")
    if not request.member_id:
        raise InvalidRequestError("member_id must not be empty: send the id the share consumer made up")
    return request.group_id, request.member_id


def _session_partitions(topics: Sequence[Any]) -> list[TopicPartition]:
    return [(_uuid_hex(t.topic_id), p.partition_index) for t in topics for p in t.partitions]


def _forgotten(forgotten: Sequence[Any]) -> list[TopicPartition]:
    return [(_uuid_hex(t.topic_id), p) for t in forgotten for p in t.partitions]


# --- ShareFetch --------------------------------------------------------------------------------------------


async def share_fetch(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(SHARE_FETCH, version)
    names = _names_by_id(ctx)
    answers = _Answers()
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        key = _check_ids(request)
        epoch = request.share_session_epoch
        acks, ack_ids = _acks(request.topics, names, answers, ctx.auth)
        if epoch == OPEN_EPOCH and acks:
            raise InvalidRequestError("a share fetch that opens a session (epoch 0) cannot acknowledge")
        session = ctx.share_sessions.advance(
            key, epoch, _session_partitions(request.topics), _forgotten(request.forgotten_topics_data)
        )
        final = epoch == FINAL_EPOCH
        wanted = {(names[t], p) for t, p in session.partitions if t in names}
        for hex_id, partition in session.partitions:
            if hex_id not in names:
                answers.at(hex_id, partition).error = _unknown_topic_id(hex_id)
            elif (
                refused := sasl.refusal(ctx.auth, Operation.READ, ResourceType.TOPIC, names[hex_id])
            ) is not None:
                answers.at(hex_id, partition).error = refused  # Read at every fetch: a revoked ACL stops it
                wanted.discard((names[hex_id], partition))
        if epoch == OPEN_EPOCH:  # a full request is answered for every partition it names
            for hex_id, partition in session.partitions:
                answers.at(hex_id, partition)
        lease = ctx.answers.lease(ctx.connection)
        max_bytes = max(1, min(request.max_bytes or ctx.fetch_max_bytes, ctx.fetch_max_bytes))
        if not final:
            max_bytes = max(1, min(max_bytes, await lease.wait_for_room()))
        spec = ShareFetchSpec(
            request.group_id,
            request.member_id,
            acks,
            max_wait_ms=max(0, _ms(request.max_wait)),
            max_records=request.max_records if request.max_records > 0 else DEFAULT_MAX_RECORDS,
            max_bytes=max_bytes,
            acknowledge_only=final,
            partitions=frozenset(wanted),
        )
        answer = await ctx.core.share.fetch(spec)
        if final:
            ctx.share_sessions.close(key)
    except LogStoreError as exc:
        log.debug("share fetch of %r in %r refused: %s", request.member_id, request.group_id, exc)
        return _refused(cls, exc)
    _record_outcomes(answer.acks, ack_ids, answers)
    _record_acquired(answer, names, answers)
    lease.charge(sum(len(p.records) for p in answer.partitions))
    ctx.metrics.share_fetched("kafka", answer.partitions)
    return Held(
        build(
            cls,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            error_message=None,
            acquisition_lock_timeout=_timedelta_ms(answer.lock_duration_ms),
            responses=_responses(cls, answers, _fetched),
            node_endpoints=(),
        ),
        lease,
    )


def _record_acquired(answer: ShareFetchAnswer, names: dict[str, str], answers: _Answers) -> None:
    ids = {name: hex_id for hex_id, name in names.items()}
    for acquired in answer.partitions:
        partition = answers.at(ids[acquired.topic], acquired.partition)
        partition.records = acquired.records
        partition.acquired = [(r.first_offset, r.last_offset, r.delivery_count) for r in acquired.ranges]


def _responses(
    cls: type[Any], answers: _Answers, fields: Callable[[type[Any], _PartitionAnswer], dict[str, Any]]
) -> tuple[Any, ...]:
    """The per-topic answers of ShareFetch or ShareAcknowledge; `fields` gives a partition's own."""
    topic_cls = element(cls, "responses")
    partition_cls = element(topic_cls, "partitions")
    no_leader_change = build(element(partition_cls, "current_leader"), leader_id=-1, leader_epoch=-1)
    return tuple(
        build(
            topic_cls,
            topic_id=topic_uuid(hex_id),
            partitions=tuple(
                build(
                    partition_cls,
                    partition_index=number,
                    current_leader=no_leader_change,
                    **fields(partition_cls, p),
                )
                for number, p in partitions.items()
            ),
        )
        for hex_id, partitions in answers.topics.items()
    )


def _fetched(partition_cls: type[Any], p: _PartitionAnswer) -> dict[str, Any]:
    acquired_cls = element(partition_cls, "acquired_records")
    return {
        "error_code": error_code(p.error),
        "error_message": error_message(p.error),
        "acknowledge_error_code": error_code(p.ack_error),
        "acknowledge_error_message": error_message(p.ack_error),
        "records": p.records or b"",  # kio cannot write a null records field (flexible)
        "acquired_records": tuple(
            build(acquired_cls, first_offset=first, last_offset=last, delivery_count=count)
            for first, last, count in p.acquired
        ),
    }


def _acknowledged(partition_cls: type[Any], p: _PartitionAnswer) -> dict[str, Any]:
    return {"error_code": error_code(p.ack_error), "error_message": error_message(p.ack_error)}


def _refused(cls: type[Any], error: LogStoreError) -> Any:
    """A ShareFetch or ShareAcknowledge answered with an error of the whole request."""
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=error_code(error),
        error_message=error_message(error),
        acquisition_lock_timeout=_timedelta_ms(0),
        responses=(),
        node_endpoints=(),
    )


# --- ShareAcknowledge --------------------------------------------------------------------------------------


async def share_acknowledge(request: Any, version: int, ctx: RequestContext) -> Any:
    cls = response_type(SHARE_ACKNOWLEDGE, version)
    names = _names_by_id(ctx)
    answers = _Answers()
    try:
        sasl.require(ctx.auth, Operation.READ, ResourceType.GROUP, request.group_id)
        key = _check_ids(request)
        epoch = request.share_session_epoch
        if epoch == OPEN_EPOCH:
            raise InvalidRequestError(
                "ShareAcknowledge needs an open share session: its epoch cannot be 0 (open one with ShareFetch)"
            )
        acks, ack_ids = _acks(request.topics, names, answers, ctx.auth)
        ctx.share_sessions.advance(key, epoch)
        outcomes = await ctx.core.share.acknowledge(request.group_id, request.member_id, acks)
        if epoch == FINAL_EPOCH:
            ctx.share_sessions.close(key)
    except LogStoreError as exc:
        log.debug("share acknowledge of %r in %r refused: %s", request.member_id, request.group_id, exc)
        return _refused(cls, exc)
    _record_outcomes(outcomes, ack_ids, answers)
    return build(
        cls,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        error_message=None,
        responses=_responses(cls, answers, _acknowledged),
        node_endpoints=(),
    )
