"""Checks on what callers send the coordinator, each failing with an `InvalidGroupRequestError` (or a
fencing error) that says what was wrong and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping

from logstore.broker.group_machine.errors import FencedMemberEpochError, InvalidGroupRequestError
from logstore.broker.group_machine.model import (
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    Assignment,
    HeartbeatRequest,
    MemberState,
    TopicPartition,
)
from logstore.broker.group_machine.state import Group, Member
from logstore.broker.group_machine.subscription import Subscription


def check_group_id(group_id: str) -> None:
    if not isinstance(group_id, str) or not group_id:
        raise InvalidGroupRequestError(f"group id must be a non-empty string, got {group_id!r}")


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise InvalidGroupRequestError(f"{name} must be a positive number of milliseconds, got {value!r}")


def check_timeouts(session_timeout_ms: int, heartbeat_interval_ms: int) -> None:
    check_positive("session_timeout_ms", session_timeout_ms)
    check_positive("heartbeat_interval_ms", heartbeat_interval_ms)
    if heartbeat_interval_ms >= session_timeout_ms:
        raise InvalidGroupRequestError(
            f"heartbeat_interval_ms ({heartbeat_interval_ms}) must be smaller than session_timeout_ms "
            f"({session_timeout_ms}), or members time out between heartbeats"
        )


def checked_topics(topic_partitions: Mapping[str, int]) -> dict[str, int]:
    for topic, count in topic_partitions.items():
        if not isinstance(topic, str) or not topic or not isinstance(count, int) or count < 0:
            raise InvalidGroupRequestError(
                f"topic metadata needs non-empty topic names and partition counts >= 0, got {topic!r}: {count!r}"
            )
    return dict(topic_partitions)


def check_request(request: HeartbeatRequest) -> None:
    check_group_id(request.group_id)
    epoch = request.member_epoch
    if not isinstance(epoch, int) or epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        raise InvalidGroupRequestError(
            f"member epoch must be 0 (join), -1 (leave), -2 (static leave) or a positive epoch, got {epoch!r}"
        )
    if not isinstance(request.member_id, str) or (epoch != JOIN_GROUP_MEMBER_EPOCH and not request.member_id):
        raise InvalidGroupRequestError(
            f"member id must be the one from the join response when the member epoch is {epoch}; only a "
            "join (epoch 0) may send an empty member id"
        )
    if request.instance_id is not None and (
        not isinstance(request.instance_id, str) or not request.instance_id
    ):
        raise InvalidGroupRequestError(
            f"instance_id must be a non-empty string or unset, got {request.instance_id!r}"
        )
    if request.rebalance_timeout_ms is not None:
        check_positive("rebalance_timeout_ms", request.rebalance_timeout_ms)
    if request.session_timeout_ms is not None:
        check_positive("session_timeout_ms", request.session_timeout_ms)


def check_session_timeout(
    session_timeout_ms: int, low_ms: int, high_ms: int, heartbeat_interval_ms: int
) -> None:
    """A member's own session timeout must lie within the broker's bounds and exceed the heartbeat pace."""
    if not low_ms <= session_timeout_ms <= high_ms:
        raise InvalidGroupRequestError(
            f"session_timeout_ms {session_timeout_ms} is outside the broker's bounds [{low_ms}, {high_ms}] "
            "(group_min_session_timeout_ms, group_max_session_timeout_ms); ask for a value within them"
        )
    if session_timeout_ms <= heartbeat_interval_ms:
        raise InvalidGroupRequestError(
            f"session_timeout_ms {session_timeout_ms} must be larger than the group's heartbeat interval "
            f"({heartbeat_interval_ms} ms), or the member times out between heartbeats"
        )


def owned_partitions(request: HeartbeatRequest) -> Assignment | None:
    if request.owned_partitions is None:
        return None
    owned = frozenset(TopicPartition(topic, partition) for topic, partition in request.owned_partitions)
    for topic, partition in owned:
        if not isinstance(topic, str) or not isinstance(partition, int) or partition < 0:
            raise InvalidGroupRequestError(
                f"owned partitions must be (topic name, partition >= 0) pairs, got {(topic, partition)!r}"
            )
    return owned


def requested_subscription(request: HeartbeatRequest) -> Subscription | None:
    if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
        return None
    return Subscription.parse(request.subscribed_topic_names, request.subscribed_topic_regex)


def check_member_epoch(
    group: Group, member: Member, request: HeartbeatRequest, owned: Assignment | None
) -> None:
    """The epoch must be the member's current one, or its previous one when the member reports owning
    only partitions it still has (the last response was lost or is not processed yet)."""
    epoch = request.member_epoch
    if epoch == member.epoch:
        return
    if (
        epoch == member.previous_epoch
        and epoch < member.epoch
        and owned is not None
        and owned <= member.assigned
    ):
        return
    if member.state is MemberState.LEFT_STATIC:
        detail = "it left the group as a static member (epoch -2)"
    else:
        detail = f"its current epoch is {member.epoch}"
    raise FencedMemberEpochError(
        f"member {member.member_id!r} of group {group.group_id!r} sent epoch {epoch} but {detail}; release "
        "all partitions and rejoin with member epoch 0"
    )
