"""The coordinator's mutable bookkeeping for one group and its members.

`Group` keeps one index beside its members, ``holders``: partition -> the member it is assigned to or
pending revocation from. Every change to a member's partitions goes through `Group.set_partitions`, so
the index cannot drift, and a partition can never be held by two members (that raises).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logstore.broker.group_machine.model import (
    EMPTY_ASSIGNMENT,
    Assignment,
    GroupConfig,
    GroupState,
    MemberState,
    TopicPartition,
)
from logstore.broker.group_machine.subscription import Subscription

AssignmentInputs = tuple[str, frozenset[tuple[str, frozenset[str]]], frozenset[tuple[str, int]]]


@dataclass(slots=True)
class Member:
    member_id: str
    instance_id: str | None
    subscription: Subscription
    resolved_topics: frozenset[str]
    rebalance_timeout_ms: int
    session_deadline_ms: int
    client_id: str = ""
    client_host: str = ""
    epoch: int = 0
    previous_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Assignment = EMPTY_ASSIGNMENT
    pending_revocation: Assignment = EMPTY_ASSIGNMENT
    owned_reported: Assignment | None = None
    revocation_deadline_ms: int | None = None
    session_timeout_ms: int | None = None  # the member's own choice; None: the group's


@dataclass(slots=True)
class Group:
    group_id: str
    config: GroupConfig = field(default_factory=GroupConfig)
    first_member_assignor: str | None = None  # the choice of the member that joined the empty group
    epoch: int = 0
    target_epoch: int = 0
    target: dict[str, Assignment] = field(default_factory=dict)
    assignment_inputs: AssignmentInputs | None = None  # what the current target was computed from
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    replaced: dict[str, str] = field(default_factory=dict)  # member id taken over -> its instance id
    holders: dict[TopicPartition, str] = field(default_factory=dict)

    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        settled = all(
            m.state is MemberState.STABLE and m.epoch == self.target_epoch for m in self.members.values()
        )
        return GroupState.STABLE if settled else GroupState.RECONCILING

    def is_free_for(self, member_id: str, tp: TopicPartition) -> bool:
        return self.holders.get(tp, member_id) == member_id

    def set_partitions(self, member: Member, assigned: Assignment, pending_revocation: Assignment) -> None:
        for tp in member.assigned | member.pending_revocation:
            del self.holders[tp]
        for tp in assigned | pending_revocation:
            holder = self.holders.setdefault(tp, member.member_id)
            if holder != member.member_id:
                raise AssertionError(f"{tp} would be held by both {holder!r} and {member.member_id!r}")
        member.assigned = assigned
        member.pending_revocation = pending_revocation

    def add_member(self, member: Member) -> None:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id

    def remove_member(self, member: Member) -> None:
        """Drop the member and free every partition it held."""
        self.set_partitions(member, EMPTY_ASSIGNMENT, EMPTY_ASSIGNMENT)
        del self.members[member.member_id]
        self.target.pop(member.member_id, None)
        if member.instance_id is not None and self.static_members.get(member.instance_id) == member.member_id:
            del self.static_members[member.instance_id]
            self._forget_replaced(member.instance_id)
        if not self.members:
            self.first_member_assignor = None

    def replace_static_member(self, old: Member, new_member_id: str) -> Member:
        """Hand a static member's place (partitions, target, subscription) to a new member id."""
        assert old.instance_id is not None
        new = Member(
            member_id=new_member_id,
            instance_id=old.instance_id,
            subscription=old.subscription,
            resolved_topics=old.resolved_topics,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            session_deadline_ms=old.session_deadline_ms,
            session_timeout_ms=old.session_timeout_ms,
            client_id=old.client_id,
            client_host=old.client_host,
        )
        assigned, pending = old.assigned, old.pending_revocation
        self.set_partitions(old, EMPTY_ASSIGNMENT, EMPTY_ASSIGNMENT)
        del self.members[old.member_id]
        self.add_member(new)
        self.set_partitions(new, assigned, pending)
        self.target[new_member_id] = self.target.pop(old.member_id, EMPTY_ASSIGNMENT)
        self._forget_replaced(old.instance_id)
        self.replaced[old.member_id] = old.instance_id
        return new

    def _forget_replaced(self, instance_id: str) -> None:
        """Keep at most the latest replaced member id per instance id, so the map stays small."""
        for member_id in [m for m, i in self.replaced.items() if i == instance_id]:
            del self.replaced[member_id]
