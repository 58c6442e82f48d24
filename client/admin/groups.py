"""Group administration for ``Admin``: list, describe (with lag), delete, and reset committed offsets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

import grpc
from logstore.client.groups.coordinator import ADMIN_BACKOFF, call_coordinator
from logstore.client.groups.rpc import flatten
from logstore.client.shared.errors import error_from_rpc
from logstore.client.shared.types import TopicPartition
from logstore.wire.logstore.v1 import group_pb2, group_pb2_grpc

_STATES = {
    group_pb2.GROUP_STATE_EMPTY: "Empty",
    group_pb2.GROUP_STATE_RECONCILING: "Reconciling",
    group_pb2.GROUP_STATE_STABLE: "Stable",
}
_MEMBER_STATES = {
    group_pb2.MEMBER_STATE_STABLE: "Stable",
    group_pb2.MEMBER_STATE_UNREVOKED_PARTITIONS: "UnrevokedPartitions",
    group_pb2.MEMBER_STATE_UNRELEASED_PARTITIONS: "UnreleasedPartitions",
    group_pb2.MEMBER_STATE_LEFT_STATIC: "LeftStatic",
}


class GroupListing(NamedTuple):
    group_id: str
    state: str
    member_count: int
    type: str = "consumer"
    """"consumer" or "share" (Kafka's group type); a broker that does not say is taken as "consumer"."""


class MemberDescription(NamedTuple):
    member_id: str
    instance_id: str
    client_id: str
    client_host: str
    subscribed_topics: list[str]
    subscribed_pattern: str
    member_epoch: int
    state: str
    assignment: frozenset[TopicPartition]
    pending_revocation: frozenset[TopicPartition]


class PartitionProgress(NamedTuple):
    """A group's progress on one partition; -1 where unknown (no commit, partition gone)."""

    topic: str
    partition: int
    committed_offset: int
    log_end_offset: int
    lag: int
    member_id: str
    metadata: str


class GroupDescription(NamedTuple):
    group_id: str
    state: str
    assignor: str
    group_epoch: int
    members: list[MemberDescription]
    offsets: list[PartitionProgress]


class OffsetReset(NamedTuple):
    """How one partition's committed offset moved (or would move, in a dry run)."""

    topic: str
    partition: int
    previous_offset: int
    new_offset: int


class GroupAdmin:
    """The group calls, over a GroupService stub. Thread-safe: it keeps no state between calls."""

    def __init__(
        self,
        stub: group_pb2_grpc.GroupServiceStub,
        timeout_s: float,
        *,
        for_group: Callable[[str], group_pb2_grpc.GroupServiceStub] | None = None,
        everywhere: Callable[[], list[group_pb2_grpc.GroupServiceStub]] | None = None,
    ) -> None:
        """``stub`` serves calls about no group in particular; ``for_group`` gives the stub of a group's
        coordinator, ``everywhere`` one stub per live broker (a cluster's groups are spread over its
        coordinators); both default to ``stub`` (a broker alone)."""
        self._stub = stub
        self._timeout_s = timeout_s
        self._for_group = for_group
        self._everywhere = everywhere

    def _call(
        self, method: str, request: object, what: str, group_id: str | None = None, *, again: bool = False
    ) -> Any:
        """The answer of GroupService.<method> (its message type follows the method's name), from the
        coordinator of ``group_id`` when given; with ``again`` (calls that may be repeated: describe,
        delete) sent again while the coordinator moves or none is there yet (``call_coordinator``)."""
        stub = self._stub if group_id is None or self._for_group is None else self._for_group(group_id)
        if again:
            return call_coordinator(
                stub, method, request, what, timeout_s=self._timeout_s, backoff=ADMIN_BACKOFF
            )
        try:
            return getattr(stub, method)(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what) from None

    def list_groups(self) -> list[GroupListing]:
        """Every group, from every coordinator (each broker lists the groups it coordinates)."""
        found: dict[str, GroupListing] = {}
        stubs = [self._stub]
        for stub in stubs:
            try:
                answer = stub.ListGroups(group_pb2.ListGroupsRequest(), timeout=self._timeout_s)
            except grpc.RpcError as exc:
                raise error_from_rpc(exc, "listing groups") from None
            for g in answer.groups:
                found.setdefault(
                    g.group_id,
                    GroupListing(
                        g.group_id, _STATES.get(g.state, "Unknown"), g.member_count, g.type or "consumer"
                    ),
                )
            if stub is self._stub and self._everywhere is not None:
                stubs += self._everywhere()  # in a cluster: the other brokers' groups too
        return sorted(found.values(), key=lambda g: g.group_id) if len(stubs) > 1 else list(found.values())

    def describe_group(self, group_id: str) -> GroupDescription:
        answer = self._call(
            "DescribeGroup",
            group_pb2.DescribeGroupRequest(group_id=group_id),
            f"describing group {group_id!r}",
            group_id,
            again=True,
        )
        group = answer.group
        return GroupDescription(
            group_id=group.group_id,
            state=_STATES.get(group.state, "Unknown"),
            assignor=group.assignor,
            group_epoch=group.group_epoch,
            members=[
                MemberDescription(
                    member_id=m.member_id,
                    instance_id=m.instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    subscribed_topics=list(m.subscribed_topic_names),
                    subscribed_pattern=m.subscribed_topic_regex,
                    member_epoch=m.member_epoch,
                    state=_MEMBER_STATES.get(m.state, "Unknown"),
                    assignment=flatten(m.assigned_partitions),
                    pending_revocation=flatten(m.pending_revocation),
                )
                for m in group.members
            ],
            offsets=[
                PartitionProgress(
                    o.topic, o.partition, o.committed_offset, o.log_end_offset, o.lag, o.member_id, o.metadata
                )
                for o in group.offsets
            ],
        )

    def delete_group(self, group_id: str) -> None:
        self._call(
            "DeleteGroup",
            group_pb2.DeleteGroupRequest(group_id=group_id),
            f"deleting group {group_id!r}",
            group_id,
            again=True,
        )

    def reset_offsets(
        self,
        group_id: str,
        scope: Iterable[str | TopicPartition] = (),
        *,
        to: str | None = None,
        offset: int | None = None,
        timestamp: int | datetime | None = None,
        shift: int | None = None,
        dry_run: bool = False,
    ) -> list[OffsetReset]:
        """Move a group's committed offsets, for every partition of the topics named in ``scope``, the
        partitions named there, or (empty scope) every partition the group has an offset for. Exactly one
        of ``to`` ("earliest" or "latest"), ``offset``, ``timestamp`` (ms since the epoch or a datetime)
        or ``shift`` says where. The group must have no members. ``dry_run`` only answers what would be."""
        chosen = [
            name
            for name, value in (("to", to), ("offset", offset), ("timestamp", timestamp), ("shift", shift))
            if value is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                f"say where to move the offsets with exactly one of to, offset, timestamp, shift; got {chosen}"
            )
        request = group_pb2.ResetOffsetsRequest(group_id=group_id, dry_run=dry_run, partitions=_scope(scope))
        if to is not None:
            if to not in ("earliest", "latest"):
                raise ValueError(f"to must be 'earliest' or 'latest', got {to!r}")
            request.mode = group_pb2.RESET_MODE_EARLIEST if to == "earliest" else group_pb2.RESET_MODE_LATEST
        elif offset is not None:
            request.mode, request.offset = group_pb2.RESET_MODE_OFFSET, offset
        elif timestamp is not None:
            ms = int(timestamp.timestamp() * 1000) if isinstance(timestamp, datetime) else timestamp
            request.mode, request.timestamp_ms = group_pb2.RESET_MODE_TIMESTAMP, ms
        else:
            assert shift is not None  # exactly one was given
            request.mode, request.shift = group_pb2.RESET_MODE_SHIFT, shift
        answer = self._call("ResetOffsets", request, f"resetting offsets of group {group_id!r}", group_id)
        return [OffsetReset(r.topic, r.partition, r.previous_offset, r.new_offset) for r in answer.results]


def _scope(scope: Iterable[str | TopicPartition]) -> list[group_pb2.TopicPartitions]:
    """Topic names stand for all their partitions; TopicPartitions name single ones."""
    whole: list[str] = []
    some: dict[str, list[int]] = {}
    for item in scope:
        if isinstance(item, str):
            whole.append(item)
        else:
            tp = TopicPartition(*item)
            some.setdefault(tp.topic, []).append(tp.partition)
    entries = [group_pb2.TopicPartitions(topic=t) for t in dict.fromkeys(whole) if t not in some]
    entries += [group_pb2.TopicPartitions(topic=t, partitions=sorted(p)) for t, p in some.items()]
    return entries
