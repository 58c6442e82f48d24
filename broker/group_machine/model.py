"""Plain values going in and out of the group coordinator: requests, responses, descriptions, config.

Everything here is immutable and holds only built-in types, so the service layer can convert it to and
from the wire without knowing anything about the coordinator's internals.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

# Member epochs with a special meaning in a heartbeat (the same numbers as Kafka's KIP-848).
JOIN_GROUP_MEMBER_EPOCH = 0
LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2


class TopicPartition(NamedTuple):
    topic: str
    partition: int


Assignment = frozenset[TopicPartition]
EMPTY_ASSIGNMENT: Assignment = frozenset()


class GroupState(StrEnum):
    """Kafka's consumer-group states, minus ASSIGNING: the target assignment is computed in the same
    call that bumps the group epoch, so a group is never seen waiting for its assignor."""

    EMPTY = "Empty"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class MemberState(StrEnum):
    """Where a member stands on the way from its current assignment to its target assignment."""

    STABLE = "Stable"  # owns exactly its target at the target epoch
    UNREVOKED_PARTITIONS = "UnrevokedPartitions"  # must stop owning some partitions first
    UNRELEASED_PARTITIONS = "UnreleasedPartitions"  # waits for other members to release partitions
    LEFT_STATIC = "LeftStatic"  # static member gone with epoch -2; its partitions wait for its return


class RemovalReason(StrEnum):
    LEFT = "left"  # heartbeat with epoch -1
    SESSION_TIMEOUT = "session_timeout"  # no heartbeat for session_timeout_ms
    REBALANCE_TIMEOUT = "rebalance_timeout"  # did not revoke partitions within its rebalance timeout
    REPLACED = "replaced"  # a new process joined with the same static instance id


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Defaults for every group; a group can override some of them with `GroupConfig`."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    rebalance_timeout_ms: int = 300_000  # used when a joining member does not send one
    assignor: str = "uniform"
    min_session_timeout_ms: int = 6_000  # bounds on what a member may ask for (Kafka's
    max_session_timeout_ms: int = 1_800_000  # group.min/max.session.timeout.ms)


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Per-group overrides; None keeps the coordinator default (for `assignor`: the first member's
    choice, then the coordinator default)."""

    assignor: str | None = None
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """One consumer heartbeat (Kafka's ConsumerGroupHeartbeat).

    ``member_epoch``: 0 to join (or rejoin after a fence), -1 to leave, -2 for a static member to leave
    temporarily, otherwise the epoch from the last response. ``member_id`` is empty on a first join;
    the coordinator then generates one.

    Fields left at None mean "unchanged since my last heartbeat" (a joining member must send a
    subscription). Sending either subscription field replaces the whole subscription: the topics
    subscribed are the names plus every existing topic the regex matches with RE2's ``fullmatch``; topics
    whose names start with ``__`` never match a regex. ``owned_partitions`` is what the member owns
    right now; None means "not reported" and is read as "still owns everything it was given".
    ``server_assignor`` is the member's preferred assignor ("uniform" or "range"); it counts only for
    the member that joins an empty group, unless a `GroupConfig` names the group's assignor.
    ``rebalance_timeout_ms`` bounds how long the member may take to give up revoked partitions, and
    ``session_timeout_ms`` how long the coordinator waits for its next heartbeat.
    """

    group_id: str
    member_id: str = ""
    member_epoch: int = JOIN_GROUP_MEMBER_EPOCH
    instance_id: str | None = None
    rebalance_timeout_ms: int | None = None
    subscribed_topic_names: Collection[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned_partitions: Collection[tuple[str, int]] | None = None
    client_id: str = ""
    client_host: str = ""
    session_timeout_ms: int | None = None
    """The member's own session timeout (None: keep the one sent before, or the group's)."""


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    """``assignment`` is the complete set of partitions the member may own now (never a delta)."""

    member_id: str
    member_epoch: int
    heartbeat_interval_ms: int
    assignment: Assignment
    session_timeout_ms: int = 0
    """How long the coordinator waits for the member's next heartbeat (0 on a leave)."""


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    group_id: str
    member_id: str
    instance_id: str | None
    reason: RemovalReason


@dataclass(frozen=True, slots=True)
class TickResult:
    """What `GroupCoordinator.tick` changed, and when the next timeout falls due (None: no member)."""

    removed: tuple[MemberRemoved, ...]
    next_deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    member_epoch: int
    state: MemberState
    owned_partitions: Assignment | None  # as last reported by the member; None if never reported
    assigned_partitions: Assignment  # what the coordinator lets the member own now
    pending_revocation: Assignment  # what the member must stop owning before it moves on
    target_assignment: Assignment  # where the member is heading


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: GroupState
    group_epoch: int
    target_assignment_epoch: int
    assignor: str
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    state: GroupState
    member_count: int
