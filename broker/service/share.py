"""ShareService: share-group membership, acquiring fetches, acknowledgements and share-group admin.

Translation only: requests are checked for shape (INVALID_ARGUMENT for a malformed one) and turned into
plain values, the share domain decides, its answers are turned back. As share.proto says, ShareHeartbeat
answers group errors in its `error_code`, ShareFetch and ShareAcknowledge answer errors of the whole
request (unknown member or group, a consumer group's id) in theirs and per-partition or per-range errors
in the entries; the admin calls fail through gRPC statuses with the code in the trailer.

In a cluster a broker that does not coordinate the group answers NOT_COORDINATOR the same way (in
`error_code` for the heartbeat, fetch and acknowledge, as a status for the admin calls), except that it
forwards a ShareFetch or ShareAcknowledge to the coordinator itself (the domain does). A call forwarded
by another broker carries `FORWARDED_KEY` in its metadata and is never forwarded again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.share.values import (
    DEFAULT_MAX_RECORDS,
    AckRange,
    ConfigChange,
    PartitionAckOutcome,
    PartitionAcks,
    ShareFetchSpec,
    ShareGroupView,
    ShareHeartbeat,
)
from logstore.broker.errors import partition_error
from logstore.broker.group_machine import GroupCoordinatorError
from logstore.broker.observability import DISABLED, BrokerMetrics
from logstore.broker.service.answers import AnswerBudget, call_lease
from logstore.broker.service.calls import (
    MAX_PARTITIONS_PER_REQUEST,
    check_not_negative,
    require,
    unary,
)
from logstore.broker.service.guard import authorizing, check_reads
from logstore.broker.service.share_reads import ShareSubscriptions
from logstore.broker.share_machine.errors import InconsistentGroupProtocolError
from logstore.wire.logstore.v1 import group_pb2, share_pb2_grpc
from logstore.wire.logstore.v1 import share_pb2 as pb

log = logging.getLogger("logstore.broker.service")

ACQUIRE_MODES = frozenset(pb.ShareAcquireMode.values())

MAX_RANGES_PER_REQUEST = 10_000
"""Most acknowledged ranges in one request (share.proto: more is INVALID_ARGUMENT)."""
REQUEST_ERRORS = (GroupCoordinatorError, InconsistentGroupProtocolError, NotCoordinatorError)
"""Errors of a whole share-group request, answered in its error_code field."""
FORWARDED_KEY = "logstore-forwarded"
"""The call metadata entry (value "1") of a ShareFetch or ShareAcknowledge that a broker forwarded to the
group's coordinator (`broker/replication/share_forward.py`)."""


def forwarded(context: grpc.aio.ServicerContext) -> bool:
    """Whether another broker forwarded this call here (then it is served here or refused, never passed on)."""
    return any(key == FORWARDED_KEY and value == "1" for key, value in context.invocation_metadata() or ())


def partition_filter(request: pb.ShareFetchRequest) -> frozenset[tuple[str, int]] | None:
    """The request's `partitions`, None when not sent (all of the member's assignment)."""
    if not request.HasField("partitions"):
        return None
    return frozenset((t.topic, p) for t in request.partitions.topics for p in t.partitions)


def check_group_id(group_id: str) -> None:
    require(bool(group_id), "group_id must not be empty: name the share group")


def acknowledgements(entries: Sequence[pb.PartitionAcknowledgements]) -> list[PartitionAcks]:
    require(
        len(entries) <= MAX_PARTITIONS_PER_REQUEST,
        f"the request acknowledges {len(entries)} partitions; the limit is {MAX_PARTITIONS_PER_REQUEST}",
    )
    ranges = sum(len(entry.ranges) for entry in entries)
    require(
        ranges <= MAX_RANGES_PER_REQUEST,
        f"the request acknowledges {ranges} ranges; the limit is {MAX_RANGES_PER_REQUEST} per request",
    )
    return [
        PartitionAcks(
            entry.topic,
            entry.partition,
            [
                AckRange(r.first_offset, r.last_offset, int(r.type), r.delay_ms, r.not_an_attempt)
                for r in entry.ranges
            ],
        )
        for entry in entries
    ]


def acknowledgement_results(
    outcomes: Iterable[PartitionAckOutcome],
) -> list[pb.PartitionAcknowledgementResults]:
    answers = []
    for outcome in outcomes:
        code, message = partition_error(outcome.error)
        results = []
        for result in outcome.results:
            range_code, range_message = partition_error(result.error)
            results.append(
                pb.AcknowledgementResult(
                    first_offset=result.first_offset,
                    last_offset=result.last_offset,
                    error_code=range_code,
                    error_message=range_message,
                )
            )
        answers.append(
            pb.PartitionAcknowledgementResults(
                topic=outcome.topic,
                partition=outcome.partition,
                error_code=code,
                error_message=message,
                results=results,
            )
        )
    return answers


def group_description(view: ShareGroupView) -> pb.ShareGroupDescription:
    return pb.ShareGroupDescription(
        group_id=view.group_id,
        state=group_pb2.GROUP_STATE_STABLE if view.stable else group_pb2.GROUP_STATE_EMPTY,
        group_epoch=view.group_epoch,
        members=[
            pb.ShareMemberDescription(
                member_id=m.member_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                topic_names=list(m.topic_names),
                acquired_records=m.acquired_records,
            )
            for m in view.members
        ],
        partitions=[
            pb.SharePartitionDescription(
                topic=p.topic,
                partition=p.partition,
                start_offset=p.start_offset,
                end_offset=p.end_offset,
                log_end_offset=p.log_end_offset,
                in_flight_records=p.in_flight_records,
                acquired_records=p.acquired_records,
                archived_records=p.archived_records,
                lag=p.lag,
            )
            for p in view.partitions
        ],
        dead_letter_topic=view.dead_letter_topic,
    )


class ShareService(share_pb2_grpc.ShareServiceServicer):
    def __init__(
        self,
        core: BrokerCore,
        fetch_max_bytes: int,
        answers: AnswerBudget | None = None,
        metrics: BrokerMetrics = DISABLED,
    ) -> None:
        self._core = core
        self._metrics = metrics
        self._fetch_max_bytes = fetch_max_bytes
        self._answers = answers or AnswerBudget(2**62, 2**62)
        self._subscriptions = ShareSubscriptions(self._described_topics)

    def _described_topics(self, group_id: str, member_id: str) -> list[str]:
        """A member's topics from its group's description (for one `ShareSubscriptions` no longer holds)."""
        try:
            members = self._core.share.describe(group_id).members
        except REQUEST_ERRORS:
            return []  # no such group: the fetch itself answers that
        return [t for m in members if m.member_id == member_id for t in m.topic_names]

    @unary
    async def ShareHeartbeat(
        self, request: pb.ShareHeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.ShareHeartbeatResponse:
        check_group_id(request.group_id)
        share = self._core.share
        client_host = request.client_host
        if not client_host and request.member_epoch == 0:
            client_host = context.peer() or ""
        heartbeat = ShareHeartbeat(
            request.group_id,
            request.member_id,
            request.member_epoch,
            list(request.topic_names),
            request.client_id,
            client_host,
        )
        try:
            answer = share.heartbeat(heartbeat)
        except REQUEST_ERRORS as error:
            log.debug("share heartbeat of %r in %r refused: %s", request.member_id, request.group_id, error)
            code, message = partition_error(error)
            intervals = share.intervals(request.group_id)
            return pb.ShareHeartbeatResponse(
                error_code=code,
                error_message=message,
                member_id=request.member_id,
                heartbeat_interval_ms=intervals[0],
                session_timeout_ms=intervals[1],
            )
        self._subscriptions.heard(
            request.group_id, answer.member_id, request.member_epoch, request.topic_names
        )
        return pb.ShareHeartbeatResponse(
            member_id=answer.member_id,
            member_epoch=answer.member_epoch,
            heartbeat_interval_ms=answer.heartbeat_interval_ms,
            session_timeout_ms=answer.session_timeout_ms,
            assignment=[
                group_pb2.TopicPartitions(topic=topic, partitions=list(partitions))
                for topic, partitions in answer.assignment
            ],
        )

    @unary
    async def ShareFetch(self, request: pb.ShareFetchRequest, context: grpc.aio.ServicerContext) -> bytes:
        """Answered serialized, as Fetch is (see `calls.passing_bytes`)."""
        check_group_id(request.group_id)
        check_not_negative(request.max_wait_ms, "max_wait_ms")
        check_not_negative(request.max_records, "max_records")
        check_not_negative(request.max_bytes, "max_bytes")
        require(
            request.acquire_mode in ACQUIRE_MODES,
            f"acquire_mode {request.acquire_mode} is unknown; use SHARE_ACQUIRE_MODE_BATCH_OPTIMIZED (0) "
            "or SHARE_ACQUIRE_MODE_RECORD_LIMIT (1)",
        )
        max_bytes = (
            min(request.max_bytes, self._fetch_max_bytes) if request.max_bytes else self._fetch_max_bytes
        )
        if authorizing() and not request.acknowledge_only:  # Read at every fetch: a revoked ACL stops it
            check_reads(self._subscriptions.topics(request.group_id, request.member_id))
        lease = call_lease(self._answers, context)
        if not request.acknowledge_only:
            # Like Fetch, a reader whose earlier answers are still unread waits for room here, and the
            # batches handed out count against the budget until the call ends. The room is taken before
            # a long poll: concurrent long polls of one connection may pass its budget by their room.
            max_bytes = max(1, min(max_bytes, await lease.wait_for_room()))
        spec = ShareFetchSpec(
            request.group_id,
            request.member_id,
            acknowledgements(request.acknowledgements),
            max_wait_ms=request.max_wait_ms,
            max_records=request.max_records or DEFAULT_MAX_RECORDS,
            max_bytes=max_bytes,
            priority=request.priority,
            acknowledge_only=request.acknowledge_only,
            record_limit=request.acquire_mode == pb.SHARE_ACQUIRE_MODE_RECORD_LIMIT,
            partitions=partition_filter(request),
        )
        try:
            answer = await self._core.share.fetch(spec, forwarded=forwarded(context))
        except REQUEST_ERRORS as error:
            code, message = partition_error(error)
            return pb.ShareFetchResponse(error_code=code, error_message=message).SerializeToString()
        lease.charge(sum(len(p.records) for p in answer.partitions))
        self._metrics.share_fetched("grpc", answer.partitions)
        return pb.ShareFetchResponse(
            partitions=[
                pb.SharePartitionRecords(
                    topic=p.topic,
                    partition=p.partition,
                    records=p.records,
                    acquired_ranges=[
                        pb.AcquiredRange(
                            first_offset=r.first_offset,
                            last_offset=r.last_offset,
                            delivery_count=r.delivery_count,
                        )
                        for r in p.ranges
                    ],
                )
                for p in answer.partitions
            ],
            acknowledgement_results=acknowledgement_results(answer.acks),
            lock_duration_ms=answer.lock_duration_ms,
        ).SerializeToString()

    @unary
    async def ShareAcknowledge(
        self, request: pb.ShareAcknowledgeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ShareAcknowledgeResponse:
        check_group_id(request.group_id)
        acks = acknowledgements(request.acknowledgements)
        try:
            outcomes = await self._core.share.acknowledge(
                request.group_id, request.member_id, acks, forwarded=forwarded(context)
            )
        except REQUEST_ERRORS as error:
            code, message = partition_error(error)
            return pb.ShareAcknowledgeResponse(error_code=code, error_message=message)
        return pb.ShareAcknowledgeResponse(results=acknowledgement_results(outcomes))

    @unary
    async def DescribeShareGroup(
        self, request: pb.DescribeShareGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeShareGroupResponse:
        check_group_id(request.group_id)
        return pb.DescribeShareGroupResponse(
            group=group_description(self._core.share.describe(request.group_id))
        )

    @unary
    async def AlterGroupConfig(
        self, request: pb.AlterGroupConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.AlterGroupConfigResponse:
        check_group_id(request.group_id)
        change = ConfigChange(request.group_id, dict(request.set), list(request.delete))
        await self._core.share.alter_config(change)
        return pb.AlterGroupConfigResponse()

    @unary
    async def DescribeGroupConfig(
        self, request: pb.DescribeGroupConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeGroupConfigResponse:
        check_group_id(request.group_id)
        entries = self._core.share.describe_config(request.group_id)
        return pb.DescribeGroupConfigResponse(
            configs=[
                pb.GroupConfigEntry(name=e.name, value=e.value, is_group_value=e.is_group_value)
                for e in entries
            ]
        )

    @unary
    async def DeleteShareGroup(
        self, request: pb.DeleteShareGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteShareGroupResponse:
        check_group_id(request.group_id)
        await self._core.share.delete_group(request.group_id)
        return pb.DeleteShareGroupResponse()
