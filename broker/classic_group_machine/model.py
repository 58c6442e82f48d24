"""Plain values in and out of the classic group coordinator: requests, answers, descriptions, config.

The classic protocol leaves assignment to the clients: the coordinator only collects every member's
JoinGroup, picks a protocol all of them support and a leader, hands the leader everyone's metadata, and
passes the leader's assignment (opaque bytes) to each member in its SyncGroup answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ClassicGroupState(StrEnum):
    """Kafka's names for the states of a classic group (as DescribeGroups and ListGroups show them)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ClassicConfig:
    """Kafka's group.min/max.session.timeout.ms bound what a member may ask for."""

    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """One JoinGroup. ``require_known_member_id`` is true from v4 (KIP-394): a member without an id is
    first given one and asked to join again with it, so a lost answer does not leave a ghost member."""

    group_id: str
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    require_known_member_id: bool = True


@dataclass(frozen=True, slots=True)
class JoinedMember:
    """What the leader learns about each member: its id and its metadata for the chosen protocol."""

    member_id: str
    instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A JoinGroup's answer once the rebalance completes (or fails for this member: ``error``)."""

    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[JoinedMember, ...] = ()
    """Everyone's metadata, for the leader only; followers get none."""
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class SyncResult:
    """A SyncGroup's answer: this member's assignment from the leader, or why there is none."""

    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None
    error: Exception | None = None


@dataclass(slots=True)
class Completions:
    """Requests of other members (or the caller's own) that a call or a timeout has answered."""

    joins: dict[tuple[str, str], JoinResult] = field(default_factory=dict)
    """Answers to JoinGroup requests, by (group id, member id)."""
    syncs: dict[tuple[str, str], SyncResult] = field(default_factory=dict)
    removed: list[tuple[str, str, str]] = field(default_factory=list)
    """(group id, member id, why) of every member removed."""


@dataclass(frozen=True, slots=True)
class ClassicMemberDescription:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    """The member's metadata for the group's protocol."""
    assignment: bytes


@dataclass(frozen=True, slots=True)
class ClassicGroupDescription:
    group_id: str
    state: ClassicGroupState
    generation_id: int
    protocol_type: str
    protocol_name: str
    leader_id: str
    members: tuple[ClassicMemberDescription, ...]


@dataclass(frozen=True, slots=True)
class ClassicGroupListing:
    group_id: str
    protocol_type: str
    state: ClassicGroupState
    member_count: int
