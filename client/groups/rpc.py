"""The GroupService calls a consumer makes (Heartbeat, CommitOffsets, FetchOffsets), as plain values in
and out. The consumer's group driver and the admin client share them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import grpc
from logstore.client.groups.coordinator import CoordinatorStub
from logstore.client.groups.membership import HeartbeatAnswer, HeartbeatPlan, partitions
from logstore.client.shared.connection import Connection
from logstore.client.shared.errors import (
    CommitFailedError,
    MemberLostError,
    error_from_code,
    error_from_rpc,
    for_code,
    group_error,
)
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import common_pb2, group_pb2, group_pb2_grpc

NO_OFFSET = -1
"""FetchOffsets' answer for a partition without a committed offset."""
OUTSIDE_MEMBER_ID = ""
OUTSIDE_MEMBER_EPOCH = -1
"""What commits from outside the group (assign() consumers, tools) send as member id and epoch."""


def group_stub(
    connection: Connection, group_id: str | None = None, timeout_s: float = 30.0
) -> group_pb2_grpc.GroupServiceStub:
    """The GroupService stub for one group's calls: on its coordinator's channel (``CoordinatorStub``,
    found again when it moves); without ``group_id``, on the current broker's (listing groups)."""
    if group_id is None:
        # The Connection carries stubs for the topic services only; groups go over the same channel.
        return group_pb2_grpc.GroupServiceStub(connection.calls)  # with the interceptors
    stub: Any = CoordinatorStub(connection, group_pb2_grpc.GroupServiceStub, group_id, timeout_s=timeout_s)
    return cast(group_pb2_grpc.GroupServiceStub, stub)


def partition_set(tps: Iterable[TopicPartition]) -> list[group_pb2.TopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return [group_pb2.TopicPartitions(topic=t, partitions=sorted(p)) for t, p in sorted(by_topic.items())]


def flatten(entries: Iterable[group_pb2.TopicPartitions]) -> frozenset[TopicPartition]:
    return partitions((entry.topic, entry.partitions) for entry in entries)


def heartbeat_request(group_id: str, plan: HeartbeatPlan, client_id: str) -> group_pb2.HeartbeatRequest:
    request = group_pb2.HeartbeatRequest(
        group_id=group_id,
        member_id=plan.member_id,
        member_epoch=plan.member_epoch,
        instance_id=plan.instance_id,
        rebalance_timeout_ms=plan.rebalance_timeout_ms,
        server_assignor=plan.server_assignor,
        client_id=client_id,
        session_timeout_ms=plan.session_timeout_ms,
    )
    if plan.subscription is not None:
        request.subscription.topic_names.extend(plan.subscription.topics)
        request.subscription.topic_regex = plan.subscription.pattern
    if plan.owned is not None:
        request.owned_partitions.SetInParent()  # "owns nothing" differs from "unchanged"
        request.owned_partitions.topics.extend(partition_set(plan.owned))
    return request


def heartbeat_answer(response: group_pb2.HeartbeatResponse) -> HeartbeatAnswer:
    return HeartbeatAnswer(
        error_code=response.error_code,
        error_message=response.error_message,
        member_id=response.member_id,
        member_epoch=response.member_epoch,
        heartbeat_interval_ms=response.heartbeat_interval_ms,
        session_timeout_ms=response.session_timeout_ms,
        assignment=flatten(response.assignment),
    )


def commit_request(
    group_id: str,
    member_id: str,
    member_epoch: int,
    offsets: Mapping[TopicPartition, int],
    metadata: str = "",
) -> group_pb2.CommitOffsetsRequest:
    for tp, offset in offsets.items():
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"the offset to commit for {tp} must be a non-negative int, got {offset!r}")
    return group_pb2.CommitOffsetsRequest(
        group_id=group_id,
        member_id=member_id,
        member_epoch=member_epoch,
        offsets=[
            group_pb2.OffsetCommit(topic=tp.topic, partition=tp.partition, offset=offset, metadata=metadata)
            for tp, offset in offsets.items()
        ],
    )


def check_commit(response: group_pb2.CommitOffsetsResponse, group_id: str) -> None:
    """Raise for a refused commit: CommitFailedError when the member was fenced or is unknown (its
    partitions were reassigned), the group error otherwise, or the first per-partition error."""
    code = response.error_code
    if issubclass(for_code(code), MemberLostError):
        raise CommitFailedError(
            f"group {group_id!r}: commit refused because this consumer is no longer the member that owned "
            f"these partitions; they were reassigned to another member and its offsets win "
            f"({response.error_message or common_pb2.ErrorCode.Name(code)})"
        )
    if code != common_pb2.ERROR_CODE_NONE:
        raise group_error(code, response.error_message, group_id)
    for result in response.results:
        if result.error_code:
            raise error_from_code(
                result.error_code, result.error_message, where=f"{result.topic}-{result.partition}"
            )


def commit(
    stub: group_pb2_grpc.GroupServiceStub,
    request: group_pb2.CommitOffsetsRequest,
    timeout_s: float,
) -> None:
    try:
        response = stub.CommitOffsets(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, f"committing offsets of group {request.group_id!r}") from None
    check_commit(response, request.group_id)


def fetch_committed(
    stub: group_pb2_grpc.GroupServiceStub, group_id: str, tps: Iterable[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int]:
    """The group's committed offsets of ``tps``: the next record to read, or NO_OFFSET (-1)."""
    wanted = list(tps)
    if not wanted:
        return {}
    request = group_pb2.FetchOffsetsRequest(group_id=group_id, partitions=partition_set(wanted))
    try:
        response = stub.FetchOffsets(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, f"fetching committed offsets of group {group_id!r}") from None
    return committed_offsets(response)


def committed_offsets(response: group_pb2.FetchOffsetsResponse) -> dict[TopicPartition, int]:
    return {TopicPartition(c.topic, c.partition): c.offset for c in response.offsets}
