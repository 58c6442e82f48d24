"""Share-group administration for ``Admin``: describe (members, and per partition the window and its
counts), group configurations (set, remove, describe) and delete, over the ShareService. Each call goes
to the group's coordinator (in a cluster, the leader of its ``__share_group_state`` partition, found
with FindCoordinator), and again to the coordinator found again while it moves (``call_coordinator``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from logstore.client.groups.coordinator import ADMIN_BACKOFF, CoordinatorStub, call_coordinator
from logstore.wire.logstore.v1 import group_pb2, share_pb2

_STATES = {group_pb2.GROUP_STATE_EMPTY: "Empty", group_pb2.GROUP_STATE_STABLE: "Stable"}


class ShareMemberDescription(NamedTuple):
    member_id: str
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topics: list[str]
    acquired_records: int
    """Records this member holds under a lock right now."""


class SharePartitionState(NamedTuple):
    """One share-partition: every offset below ``start_offset`` is done for the group; ``end_offset`` is
    the first never delivered. ``in_flight`` = available or acquired inside the window, ``acquired`` =
    of those held under a lock, ``archived`` = rejected or over the delivery limit since the group began,
    ``lag`` = records of the log not done yet."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    log_end_offset: int
    in_flight: int
    acquired: int
    archived: int
    lag: int


class ShareGroupDescription(NamedTuple):
    group_id: str
    state: str
    group_epoch: int
    members: list[ShareMemberDescription]
    partitions: list[SharePartitionState]
    dead_letter_topic: str


class GroupConfigEntry(NamedTuple):
    name: str
    value: str
    is_group_value: bool
    """True when set for this group, False when it is the broker's default."""


class ShareAdmin:
    """The share-group calls, each on the stub of the group's coordinator (``for_group``, looked up
    afresh for each call, as the group admin calls are). Thread-safe: it keeps no state between calls."""

    def __init__(self, for_group: Callable[[str], CoordinatorStub], timeout_s: float) -> None:
        self._for_group = for_group
        self._timeout_s = timeout_s

    def _call(self, method: str, request: Any, what: str) -> Any:
        return call_coordinator(
            self._for_group(request.group_id),
            method,
            request,
            what,
            timeout_s=self._timeout_s,
            backoff=ADMIN_BACKOFF,
        )

    def describe_share_group(self, group_id: str) -> ShareGroupDescription:
        answer = self._call(
            "DescribeShareGroup",
            share_pb2.DescribeShareGroupRequest(group_id=group_id),
            f"describing share group {group_id!r}",
        )
        group = answer.group
        return ShareGroupDescription(
            group_id=group.group_id or group_id,
            state=_STATES.get(group.state, "Unknown"),
            group_epoch=group.group_epoch,
            members=[
                ShareMemberDescription(
                    m.member_id,
                    m.member_epoch,
                    m.client_id,
                    m.client_host,
                    list(m.topic_names),
                    m.acquired_records,
                )
                for m in group.members
            ],
            partitions=[
                SharePartitionState(
                    p.topic,
                    p.partition,
                    p.start_offset,
                    p.end_offset,
                    p.log_end_offset,
                    p.in_flight_records,
                    p.acquired_records,
                    p.archived_records,
                    p.lag,
                )
                for p in group.partitions
            ],
            dead_letter_topic=group.dead_letter_topic,
        )

    def alter_group_config(
        self, group_id: str, set: Mapping[str, object] | None = None, delete: Iterable[str] = ()
    ) -> None:
        """Set group configs (Kafka's names, e.g. ``share.record.lock.duration.ms``) and remove others
        (back to the broker's default); all or nothing. Works before the group's first member joins."""
        values = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in (set or {}).items()}
        self._call(
            "AlterGroupConfig",
            share_pb2.AlterGroupConfigRequest(group_id=group_id, set=values, delete=list(delete)),
            f"altering the configuration of share group {group_id!r}",
        )

    def describe_group_config(self, group_id: str) -> list[GroupConfigEntry]:
        answer = self._call(
            "DescribeGroupConfig",
            share_pb2.DescribeGroupConfigRequest(group_id=group_id),
            f"describing the configuration of share group {group_id!r}",
        )
        return [GroupConfigEntry(c.name, c.value, c.is_group_value) for c in answer.configs]

    def delete_share_group(self, group_id: str) -> None:
        self._call(
            "DeleteShareGroup",
            share_pb2.DeleteShareGroupRequest(group_id=group_id),
            f"deleting share group {group_id!r}",
        )
