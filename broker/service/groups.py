"""GroupService: consumer-group membership, committed offsets, and group administration.

Heartbeat and CommitOffsets answer consumer-group errors in the response's `error_code` (a client's
membership logic reads one field); everything else, and the admin calls, fail through gRPC statuses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc
from logstore.broker.domain.core import BrokerCore
from logstore.broker.domain.errors import NotCoordinatorError
from logstore.broker.domain.groups import (
    GroupView,
    OffsetCommitEntry,
    PartitionScope,
    ResetMode,
    ResetSpec,
)
from logstore.broker.errors import partition_error
from logstore.broker.group_machine import GroupCoordinatorError, GroupState, HeartbeatRequest, MemberState
from logstore.broker.service.calls import MAX_PARTITIONS_PER_REQUEST, check_partition_count, require, unary
from logstore.wire.logstore.v1 import group_pb2 as pb
from logstore.wire.logstore.v1 import group_pb2_grpc

REFUSALS = (GroupCoordinatorError, NotCoordinatorError)
"""Answered in the heartbeat's or commit's error code, as the group protocol's own refusals are (a client
finds the coordinator again on NOT_COORDINATOR); other calls raise them as a gRPC status."""

log = logging.getLogger("logstore.broker.service")

GROUP_STATES = {
    GroupState.EMPTY: pb.GROUP_STATE_EMPTY,
    GroupState.RECONCILING: pb.GROUP_STATE_RECONCILING,
    GroupState.STABLE: pb.GROUP_STATE_STABLE,
}
MEMBER_STATES = {
    MemberState.STABLE: pb.MEMBER_STATE_STABLE,
    MemberState.UNREVOKED_PARTITIONS: pb.MEMBER_STATE_UNREVOKED_PARTITIONS,
    MemberState.UNRELEASED_PARTITIONS: pb.MEMBER_STATE_UNRELEASED_PARTITIONS,
    MemberState.LEFT_STATIC: pb.MEMBER_STATE_LEFT_STATIC,
}
RESET_MODES = {
    pb.RESET_MODE_EARLIEST: ResetMode.EARLIEST,
    pb.RESET_MODE_LATEST: ResetMode.LATEST,
    pb.RESET_MODE_OFFSET: ResetMode.OFFSET,
    pb.RESET_MODE_TIMESTAMP: ResetMode.TIMESTAMP,
    pb.RESET_MODE_SHIFT: ResetMode.SHIFT,
}


def topic_partitions(partitions: Iterable[tuple[str, int]]) -> list[pb.TopicPartitions]:
    """Partitions grouped by topic, topics sorted by name, partitions ascending."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [pb.TopicPartitions(topic=t, partitions=sorted(ps)) for t, ps in sorted(by_topic.items())]


def scope(entries: Iterable[pb.TopicPartitions], what: str) -> PartitionScope:
    """(topic, partitions) pairs from the request, within the per-request partition limit."""
    pairs = [(entry.topic, tuple(entry.partitions)) for entry in entries]
    size = sum(len(numbers) or 1 for _, numbers in pairs)
    require(
        size <= MAX_PARTITIONS_PER_REQUEST,
        f"the {what} request names {size} partitions; the limit is {MAX_PARTITIONS_PER_REQUEST} per request",
    )
    return pairs


def heartbeat_request(request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> HeartbeatRequest:
    subscription = request.subscription if request.HasField("subscription") else None
    owned = None
    if request.HasField("owned_partitions"):
        owned = [(entry.topic, p) for entry in request.owned_partitions.topics for p in entry.partitions]
    client_host = request.client_host
    if not client_host and request.member_epoch == 0:
        client_host = context.peer() or ""
    return HeartbeatRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id or None,
        rebalance_timeout_ms=request.rebalance_timeout_ms or None,
        subscribed_topic_names=list(subscription.topic_names) if subscription is not None else None,
        subscribed_topic_regex=(subscription.topic_regex or None) if subscription is not None else None,
        server_assignor=request.server_assignor or None,
        owned_partitions=owned,
        client_id=request.client_id,
        client_host=client_host,
        session_timeout_ms=request.session_timeout_ms or None,
    )


def group_description(view: GroupView) -> pb.GroupDescription:
    group = view.description
    return pb.GroupDescription(
        group_id=group.group_id,
        state=GROUP_STATES.get(group.state, pb.GROUP_STATE_UNSPECIFIED),
        group_epoch=group.group_epoch,
        assignment_epoch=group.target_assignment_epoch,
        assignor=group.assignor,
        members=[
            pb.MemberDescription(
                member_id=m.member_id,
                instance_id=m.instance_id or "",
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=m.subscribed_topic_names,
                subscribed_topic_regex=m.subscribed_topic_regex or "",
                member_epoch=m.member_epoch,
                state=MEMBER_STATES.get(m.state, pb.MEMBER_STATE_UNSPECIFIED),
                assigned_partitions=topic_partitions(m.assigned_partitions),
                pending_revocation=topic_partitions(m.pending_revocation),
                target_assignment=topic_partitions(m.target_assignment),
            )
            for m in group.members
        ],
        offsets=[
            pb.GroupPartitionOffsets(
                topic=p.topic,
                partition=p.partition,
                committed_offset=p.committed_offset,
                metadata=p.metadata,
                log_end_offset=p.log_end_offset,
                lag=p.lag,
                member_id=p.member_id,
            )
            for p in view.progress
        ],
    )


class GroupService(group_pb2_grpc.GroupServiceServicer):
    def __init__(self, core: BrokerCore) -> None:
        self._core = core

    @unary
    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatResponse:
        groups = self._core.groups
        try:
            answer = groups.heartbeat(heartbeat_request(request, context))
        except REFUSALS as error:
            log.debug("heartbeat of %r in group %r refused: %s", request.member_id, request.group_id, error)
            code, message = partition_error(error)
            return pb.HeartbeatResponse(
                error_code=code,
                error_message=message,
                member_id=request.member_id,
                heartbeat_interval_ms=groups.heartbeat_interval_ms,
                session_timeout_ms=groups.session_timeout_ms,
            )
        return pb.HeartbeatResponse(
            member_id=answer.member_id,
            member_epoch=answer.member_epoch,
            heartbeat_interval_ms=answer.heartbeat_interval_ms,
            session_timeout_ms=answer.session_timeout_ms or groups.session_timeout_ms,
            assignment=topic_partitions(answer.assignment),
        )

    @unary
    async def CommitOffsets(
        self, request: pb.CommitOffsetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CommitOffsetsResponse:
        check_partition_count(request.offsets, "commit")
        entries = [OffsetCommitEntry(o.topic, o.partition, o.offset, o.metadata) for o in request.offsets]
        try:
            outcomes = await self._core.groups.commit(
                request.group_id, request.member_id, request.member_epoch, entries
            )
        except REFUSALS as error:
            log.debug("commit of %r in group %r refused: %s", request.member_id, request.group_id, error)
            code, message = partition_error(error)
            refused = [
                pb.OffsetCommitResult(
                    topic=e.topic, partition=e.partition, error_code=code, error_message=message
                )
                for e in entries
            ]
            return pb.CommitOffsetsResponse(error_code=code, error_message=message, results=refused)
        results = []
        for outcome in outcomes:
            code, message = partition_error(outcome.error)
            results.append(
                pb.OffsetCommitResult(
                    topic=outcome.topic, partition=outcome.partition, error_code=code, error_message=message
                )
            )
        return pb.CommitOffsetsResponse(results=results)

    @unary
    async def FetchOffsets(
        self, request: pb.FetchOffsetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.FetchOffsetsResponse:
        found = self._core.groups.fetch_offsets(request.group_id, scope(request.partitions, "fetch offsets"))
        return pb.FetchOffsetsResponse(
            offsets=[
                pb.CommittedOffset(
                    topic=c.topic,
                    partition=c.partition,
                    offset=c.offset,
                    metadata=c.metadata,
                    commit_timestamp_ms=c.commit_timestamp_ms,
                )
                for c in found
            ]
        )

    @unary
    async def ListGroups(
        self, request: pb.ListGroupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGroupsResponse:
        listings = [
            pb.GroupListing(
                group_id=g.group_id,
                state=GROUP_STATES.get(g.state, pb.GROUP_STATE_UNSPECIFIED),
                member_count=g.member_count,
                type="consumer",
            )
            for g in self._core.groups.list_groups()
        ]
        listings += [
            pb.GroupListing(
                group_id=group_id,
                state=pb.GROUP_STATE_STABLE if stable else pb.GROUP_STATE_EMPTY,
                member_count=members,
                type="share",
            )
            for group_id, stable, members in self._core.share.list_groups()
        ]
        listings.sort(key=lambda listing: listing.group_id)
        return pb.ListGroupsResponse(groups=listings)

    @unary
    async def DescribeGroup(
        self, request: pb.DescribeGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.DescribeGroupResponse:
        view = self._core.groups.describe_group(request.group_id)
        return pb.DescribeGroupResponse(group=group_description(view))

    @unary
    async def DeleteGroup(
        self, request: pb.DeleteGroupRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteGroupResponse:
        await self._core.groups.delete_group(request.group_id)
        return pb.DeleteGroupResponse()

    @unary
    async def ResetOffsets(
        self, request: pb.ResetOffsetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetOffsetsResponse:
        spec = ResetSpec(RESET_MODES.get(request.mode), request.offset, request.timestamp_ms, request.shift)
        outcomes = await self._core.groups.reset_offsets(
            request.group_id, scope(request.partitions, "reset offsets"), spec, dry_run=request.dry_run
        )
        return pb.ResetOffsetsResponse(
            results=[
                pb.ResetPartitionResult(
                    topic=o.topic,
                    partition=o.partition,
                    previous_offset=o.previous_offset,
                    new_offset=o.new_offset,
                )
                for o in outcomes
            ]
        )
